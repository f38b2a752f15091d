//! The outbox: replies are stored first (split at the platform's limit), then posted in order per
//! connector, retried with backoff while a connector is down, given up only on a fatal error.

use crate::delivery::CONVERSATION_KEY;
use crate::events::Event;
use crate::split::split_for;
use crate::store::Pending;
use crate::store::{StoreError, now_ms};
use crate::{Bridge, Target, backoff};
use mosaic_connector::{ConnectorError, Inbound, Outbound, ReplyTo};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a reply is to the turn the orchestrator last got.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer<'a> {
    /// Neither: a notice, a command's answer.
    Other,
    /// The orchestrator's own reply: the turn is answered.
    Own,
    /// Its final answer, relayed for it (hook call `call`, taken once): only while the turn
    /// still owes one.
    Relayed(Option<&'a str>),
}

/// Why a reply could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The text is empty.
    #[error("nothing to send: the text is empty")]
    Empty,
    /// No target was given and nobody has written to the orchestrator yet.
    #[error(
        "no conversation yet: nobody has written to the orchestrator; pass --room CONNECTOR:ROOM"
    )]
    NoConversation,
    /// The target's connector is not running.
    #[error("no connector {0:?} is running")]
    UnknownConnector(String),
    /// The target's room is not bridged.
    #[error("room {room:?} of {connector} is not bridged")]
    RoomNotBridged {
        /// Connector id.
        connector: String,
        /// Room.
        room: String,
    },
    /// No chat message has this queue id.
    #[error("no chat message #{0}: answer a message by the number in its `[chat #N from …]`")]
    UnknownMessage(i64),
    /// The stored conversation could not be read.
    #[error("the stored conversation is unreadable: {0}")]
    Conversation(#[source] serde_json::Error),
    /// The database failed (retryable).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long one platform call of the outbox may take before it counts as a passing failure
/// (retried with backoff): a call that hangs must not hold every later reply.
const PLATFORM_CALL_LIMIT: Duration = Duration::from_secs(30);

/// `call`, or a retryable error when it takes longer than [`PLATFORM_CALL_LIMIT`].
async fn within<T>(
    call: impl std::future::Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    tokio::time::timeout(PLATFORM_CALL_LIMIT, call)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::new(
                mosaic_connector::ErrorKind::Retryable,
                format!("no answer from the platform within {PLATFORM_CALL_LIMIT:?}"),
            ))
        })
}

impl Bridge {
    /// Where an answer to chat message `queue_id` goes: its room and thread, as a reply to it.
    pub fn target_of(&self, queue_id: i64) -> Result<Target, ReplyError> {
        let queued = self.inner.store.lock().unwrap().queued(queue_id)?;
        let queued = queued.ok_or(ReplyError::UnknownMessage(queue_id))?;
        Ok(Target::answering(&queued.inbound))
    }

    /// Posts `text` for the orchestrator (a notice, a command's answer): to `target`, or else
    /// to where the last delivered message came from. Split at the platform's limit. Returns how
    /// many messages were queued.
    pub fn reply(&self, text: &str, target: Option<Target>) -> Result<usize, ReplyError> {
        self.reply_as(text, target, Answer::Other)
    }

    /// The orchestrator's own reply (`mosaic reply`, its MCP tool), as [`Bridge::reply`]: the
    /// turn it works on is answered (its final answer is not relayed too).
    pub fn orchestrator_reply(
        &self,
        text: &str,
        target: Option<Target>,
    ) -> Result<usize, ReplyError> {
        self.reply_as(text, target, Answer::Own)
    }

    /// [`Bridge::reply`], as `answer` says the reply stands to the orchestrator's last turn.
    pub(crate) fn reply_as(
        &self,
        text: &str,
        target: Option<Target>,
        answer: Answer<'_>,
    ) -> Result<usize, ReplyError> {
        let text = text.trim_end();
        if text.is_empty() {
            return Err(ReplyError::Empty);
        }
        let target = match target {
            Some(t) => t,
            None => {
                let stored = self.inner.store.lock().unwrap().get(CONVERSATION_KEY)?;
                let stored = stored.ok_or(ReplyError::NoConversation)?;
                serde_json::from_str(&stored).map_err(ReplyError::Conversation)?
            }
        };
        let Some(connector) = self.inner.connectors.get(&target.connector) else {
            return Err(ReplyError::UnknownConnector(target.connector));
        };
        let view = self.view();
        // A native command's answer goes to the user who ran it, through the platform's own
        // channel, wherever they ran it.
        let native = matches!(target.reply_to, Some(ReplyTo::Native(_)));
        if !native && !view.acl.room_allowed(&target.connector, &target.room) {
            return Err(ReplyError::RoomNotBridged {
                connector: target.connector,
                room: target.room,
            });
        }
        let parts = split_for(text, &connector.capabilities());
        // Whether the turn is answered changes in the reply's own transaction: a crash never
        // leaves a reply queued and its turn still owing one (relayed again), nor the reverse.
        let queued = self.commit(|s| {
            let call = match answer {
                Answer::Other => None,
                Answer::Own => {
                    s.answered()?;
                    None
                }
                Answer::Relayed(call) => {
                    if !s.answered()? {
                        return Ok(Vec::new());
                    }
                    call
                }
            };
            s.enqueue_out_once(
                call,
                &target.connector,
                &target.room,
                target.thread.as_deref(),
                target.reply_to.as_ref(),
                &parts,
            )
        })?;
        if queued.is_empty() {
            return Ok(0);
        }
        self.inner.wake_outbox.notify_one();
        Ok(queued.len())
    }

    /// Answers an inbound message in its room and thread.
    pub(crate) fn respond(&self, inbound: &Inbound, text: &str) {
        if let Err(e) = self.reply(text, Some(Target::answering(inbound))) {
            tracing::warn!(
                connector = %inbound.connector,
                room = %inbound.room,
                error = %e,
                "cannot answer in the room"
            );
        }
    }

    /// Posts what the outbox holds, until the bridge stops.
    pub(crate) async fn outbox_loop(&self) {
        let inner = &self.inner;
        while !inner.stop.load(Ordering::Relaxed) {
            let notified = inner.wake_outbox.notified();
            let pending = inner
                .outbox_store
                .lock()
                .unwrap()
                .pending_out(now_ms())
                .unwrap_or_default();
            let mut blocked: HashSet<String> = HashSet::new();
            for (p, due) in pending {
                if blocked.contains(&p.connector) {
                    continue;
                }
                if !due {
                    // Keep order per connector: later messages wait for this one.
                    blocked.insert(p.connector.clone());
                    continue;
                }
                let Some(connector) = inner.connectors.get(&p.connector).cloned() else {
                    let _ = inner
                        .outbox_store
                        .lock()
                        .unwrap()
                        .out_failed(p.id, "connector not running");
                    continue;
                };
                let room = match within(self.resolve_room(connector.as_ref(), &p.room)).await {
                    Ok(room) => room,
                    Err(e) => {
                        self.outbox_failed(p, e, &mut blocked);
                        continue;
                    }
                };
                let rendered =
                    mosaic_connector::render::render(&p.text, connector.capabilities().markdown);
                let out = Outbound {
                    room: room.clone(),
                    text: rendered.text,
                    html: rendered.html,
                    reply_to: p.reply_to.clone(),
                    thread: p.thread.clone(),
                    key: format!("mosaic-out-{}", p.id),
                };
                match within(connector.send(&out)).await {
                    Ok(platform_id) => {
                        tracing::debug!(outbox_id = p.id, platform_id, "posted");
                        if let Err(e) = inner
                            .outbox_store
                            .lock()
                            .unwrap()
                            .out_sent(p.id, &platform_id)
                        {
                            tracing::warn!(outbox_id = p.id, error = %e, "a message was posted but cannot be marked so; it may be posted again");
                        }
                        let _ = inner.events.send(Event::MessageOut {
                            id: p.id,
                            key: out.key.clone(),
                            connector: p.connector,
                            room,
                            text: p.text,
                        });
                    }
                    Err(e) => self.outbox_failed(p, e, &mut blocked),
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// An outbox message could not be sent: tried again after the platform's delay or a
    /// backoff (holding back its connector's later messages, to keep their order), or given up
    /// on a fatal error.
    fn outbox_failed(&self, p: Pending, e: ConnectorError, blocked: &mut HashSet<String>) {
        let inner = &self.inner;
        match e {
            e if e.is_retryable() => {
                let delay = e.retry_after().unwrap_or_else(|| backoff(p.attempts + 1));
                tracing::debug!(
                    connector = %p.connector,
                    room = %p.room,
                    outbox_id = p.id,
                    attempt = p.attempts + 1,
                    error = %e,
                    "sending a message failed; retrying"
                );
                let _ = inner.outbox_store.lock().unwrap().out_retry(
                    p.id,
                    p.attempts + 1,
                    now_ms() + delay.as_millis() as i64,
                    &e.to_string(),
                );
                blocked.insert(p.connector);
            }
            e => {
                tracing::error!(
                    connector = %p.connector,
                    room = %p.room,
                    outbox_id = p.id,
                    error = %e,
                    "giving up on a message"
                );
                let _ = inner
                    .outbox_store
                    .lock()
                    .unwrap()
                    .out_failed(p.id, &e.to_string());
            }
        }
    }
}
