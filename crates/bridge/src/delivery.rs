//! The delivery worker: types queued chat messages into the orchestrator's pane, one at a time,
//! in order, when it is idle, over one long-lived tmux control client.
//!
//! Exactly once across crashes: a message is marked `delivering` (committed) before it is pasted
//! and `delivered` after the pane reacted. A message found `delivering` at start-up was cut off
//! mid-way: if its envelope is in the pane's scrollback it was pasted, so Enter is pressed once
//! more (harmless if it was already submitted) and it is marked delivered; otherwise it goes back
//! to the queue. The text is never pasted twice.

use crate::activity::Activity;
use crate::events::Event;
use crate::store::{Queued, Store, StoreError};
use mosaic_fleet::harness::paste_settle;
use mosaic_fleet::{Fleet, FleetError};
use mosaic_tmux::{ControlClient, SendOptions, TmuxError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The key under which the last delivered message's origin is kept (where replies go).
pub const CONVERSATION_KEY: &str = "conversation";

/// Why the worker could not reach the orchestrator or type a message into its pane. Every kind
/// is retried: the worker reconnects and the message stays queued.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The fleet (roster) could not be opened.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The roster has no orchestrator.
    #[error("the roster has no orchestrator")]
    NoOrchestrator,
    /// The orchestrator's pane is dead.
    #[error("{0} is dead")]
    Dead(String),
    /// tmux failed.
    #[error(transparent)]
    Tmux(#[from] TmuxError),
    /// The bridge database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the worker needs.
pub struct DeliveryWorker {
    /// The bridge database.
    pub db: std::path::PathBuf,
    /// Opens the fleet (roster, tmux) afresh on each (re)connect.
    pub open_fleet: Box<dyn Fn() -> Result<Fleet, FleetError> + Send>,
    /// The orchestrator's activity.
    pub activity: Arc<Activity>,
    /// Where events go.
    pub events: broadcast::Sender<Event>,
    /// Set to stop the worker.
    pub stop: Arc<AtomicBool>,
    /// Signals that a message was queued.
    pub wake: Receiver<()>,
    /// Told about each delivered message (the bridge shows "typing" in its room).
    pub delivered: tokio::sync::mpsc::UnboundedSender<mosaic_connector::Inbound>,
}

/// The envelope that precedes a chat message in the pane; it carries the queue id.
pub fn envelope(q: &Queued) -> String {
    format!(
        "{}{} on {}/{}] {}",
        marker(q.id),
        q.inbound.user_name,
        q.inbound.connector,
        q.inbound.room,
        q.inbound.text
    )
}

fn marker(id: i64) -> String {
    format!("[chat #{id} from ")
}

struct Session {
    agent: String,
    client: ControlClient,
    settle: Duration,
}

impl DeliveryWorker {
    /// Runs until `stop` is set. Blocking: give it its own thread.
    pub fn run(self) {
        let store = match Store::open(&self.db) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the delivery worker cannot open its database");
                return;
            }
        };
        let mut session: Option<Session> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(s) = session.as_mut() else {
                match self.connect(&store) {
                    Ok(s) => {
                        tracing::debug!(agent = %s.agent, "delivery worker attached");
                        session = Some(s)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "delivery worker cannot attach; retrying");
                        self.wait_for_wake(Duration::from_millis(500))
                    }
                }
                continue;
            };
            let next = match store.next_queued() {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the delivery queue");
                    self.wait_for_wake(Duration::from_millis(500));
                    continue;
                }
            };
            let Some(message) = next else {
                if self.drain_output(s).is_err() {
                    session = None;
                    continue;
                }
                self.wait_for_wake(Duration::from_millis(200));
                continue;
            };
            if !self.activity.is_idle() {
                match s
                    .client
                    .next_output(Instant::now() + Duration::from_millis(200))
                {
                    Ok(Some(data)) => self.activity.output(&data),
                    Ok(None) => {}
                    Err(_) => session = None,
                }
                continue;
            }
            if let Err(e) = self.deliver(&store, s, &message) {
                tracing::warn!(
                    queue_id = message.id,
                    agent = %s.agent,
                    error = %e,
                    "delivering a chat message failed; it stays queued"
                );
                let _ = store.mark_queued(message.id);
                session = None;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn wait_for_wake(&self, timeout: Duration) {
        match self.wake.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
        }
    }

    fn drain_output(&self, s: &mut Session) -> Result<(), mosaic_tmux::TmuxError> {
        while let Some(data) = s.client.next_output(Instant::now())? {
            self.activity.output(&data);
        }
        Ok(())
    }

    fn connect(&self, store: &Store) -> Result<Session, DeliveryError> {
        let fleet = (self.open_fleet)()?;
        let orchestrator = fleet
            .roster
            .orchestrator()
            .ok_or(DeliveryError::NoOrchestrator)?
            .clone();
        let mut client = ControlClient::attach(&fleet.tmux, &orchestrator.name, false)?;
        if client.pane_dead() {
            return Err(DeliveryError::Dead(orchestrator.name));
        }
        // Resolve deliveries a crash cut off (see the module docs).
        let cut_off = store.in_delivery()?;
        if !cut_off.is_empty() {
            let history = fleet.capture(&orchestrator.name, true)?;
            for q in cut_off {
                if history.contains(&marker(q.id)) {
                    tracing::info!(
                        queue_id = q.id,
                        agent = %orchestrator.name,
                        "a cut-off delivery was pasted; submitting it"
                    );
                    client.command(&format!("send-keys -t {} Enter", client.pane()))?;
                    store.mark_delivered(q.id)?;
                } else {
                    tracing::info!(
                        queue_id = q.id,
                        agent = %orchestrator.name,
                        "a cut-off delivery was not pasted; queued again"
                    );
                    store.mark_queued(q.id)?;
                }
            }
        }
        Ok(Session {
            settle: paste_settle(&orchestrator.runtime),
            agent: orchestrator.name,
            client,
        })
    }

    fn deliver(&self, store: &Store, s: &mut Session, q: &Queued) -> Result<(), DeliveryError> {
        store.mark_delivering(q.id)?;
        let opts = SendOptions {
            settle: s.settle,
            ..SendOptions::default()
        };
        // Where replies go: set before the paste, since the orchestrator may answer at once.
        let origin = serde_json::to_string(&crate::Target::answering(&q.inbound))
            .expect("a target serializes");
        store.set(CONVERSATION_KEY, &origin)?;
        // Busy from before the paste: any hook the harness sends about this turn comes later.
        self.activity.submitted();
        let report = match s.client.send_text(&envelope(q), &opts) {
            Ok(r) => r,
            Err(e) => {
                self.activity.abandoned();
                return Err(e.into());
            }
        };
        store.mark_delivered(q.id)?;
        tracing::info!(
            queue_id = q.id,
            agent = %s.agent,
            connector = %q.inbound.connector,
            room = %q.inbound.room,
            "delivered a chat message"
        );
        self.activity.output(&report.reaction);
        let _ = self.delivered.send(q.inbound.clone());
        let _ = self.events.send(Event::Delivered {
            id: q.id,
            agent: s.agent.clone(),
        });
        Ok(())
    }
}
