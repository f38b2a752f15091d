//! Socket Mode on our own WebSocket client.
//!
//! One loop owns every connection (usually one; two while one is being replaced). Each
//! connection's socket is read by a task of its own that reports frames to the loop; the loop
//! acks each envelope on the socket it came from the moment it arrives, then hands the event to
//! the forwarder, which passes events to the bridge in order (and, after each fresh connection,
//! first the messages each room missed, read from `conversations.history`). So the bridge being
//! slow never delays an ack past Slack's 3 seconds.
//!
//! A connection is alive while frames come: the loop pings each one every
//! [`Timing::ping_interval`] and one silent for [`Timing::silence_limit`] (no pong, no ping, no
//! message) is a ghost, replaced by a new connection. A `disconnect` from Slack opens the new
//! connection first; the old one is still read until it closes or its replacement has been up for
//! [`Timing::drain_limit`]. `disconnect` with `link_disabled` (Socket Mode turned off) stops the
//! connector with [`ErrorKind::Auth`], so it does not reconnect in a loop.

use crate::events;
use crate::{Http, Me, Responder, Shared, Timing, timed};
use futures_util::{SinkExt, StreamExt};
use mosaic_connector::{ConnectorError, ErrorKind, Health, Inbound, RunContext};
use rvstruct::ValueStruct;
use serde_json::{Value, json};
use slack_morphism::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The shortest time between two `apps.connections.open` calls (Slack rates it tier 1).
const MIN_OPEN_SPACING: Duration = Duration::from_secs(1);
/// How long a closing socket may take to finish its close handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct Socket {
    pub id: String,
    pub client: Arc<SlackClient<Http>>,
    pub bot: SlackApiToken,
    pub app: SlackApiToken,
    pub me: Me,
    pub timing: Timing,
    pub responses: Arc<Shared>,
}

/// What a connection's task tells the loop.
enum FromConn {
    Text(u64, String),
    /// A pong: the connection carries our frames both ways.
    Pong(u64),
    /// Any other frame (ping, binary): the connection is alive.
    Alive(u64),
    Closed(u64, String),
}

/// What the forwarder passes on, in order.
pub(crate) enum Forward {
    Event(Inbound),
    /// Catch every room up from history since the bridge's cursor.
    CatchUp,
}

struct Conn {
    id: u64,
    /// Frames to write; dropping it closes the socket.
    out: mpsc::UnboundedSender<Message>,
    opened: Instant,
    last_frame: Instant,
    last_ping: Instant,
    /// Since when a ping of ours has gone unanswered (no pong yet).
    unanswered: Option<Instant>,
    hello: bool,
    /// Slack asked it to leave, or it went silent: replaced, then closed.
    leaving: bool,
    /// When it is closed (set once its replacement is up).
    close_at: Option<Instant>,
}

/// A bounded set of recently seen keys.
pub(crate) struct Recent {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Recent {
    const CAP: usize = 4096;

    pub(crate) fn new() -> Recent {
        Recent {
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `key` is new (it is remembered).
    pub(crate) fn insert(&mut self, key: &str) -> bool {
        if self.set.contains(key) {
            return false;
        }
        if self.order.len() == Self::CAP
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(key.to_owned());
        self.order.push_back(key.to_owned());
        true
    }
}

fn retryable(why: impl Into<String>) -> ConnectorError {
    ConnectorError::new(ErrorKind::Retryable, why.into())
}

impl Socket {
    pub(crate) async fn run(self, ctx: RunContext) -> Result<(), ConnectorError> {
        let RunContext {
            inbound,
            cursors,
            health,
            mut shutdown,
        } = ctx;
        let (frames_tx, mut frames) = mpsc::unbounded_channel::<FromConn>();
        let (opened_tx, mut opened) = mpsc::unbounded_channel::<Result<Ws, ConnectorError>>();
        let (forward, forward_rx) = mpsc::unbounded_channel::<Forward>();
        let forwarder = tokio::spawn(
            crate::catchup::Forwarder::new(
                inbound.clone(),
                cursors,
                self.client.clone(),
                self.bot.clone(),
                self.me.clone(),
                self.id.clone(),
                self.timing.api_timeout,
            )
            .run(forward_rx),
        );
        let _forwarder = AbortOnDrop(forwarder);
        let mut conns: Vec<Conn> = Vec::new();
        let mut next_id = 0u64;
        let mut opening = false;
        let mut last_open: Option<Instant> = None;
        let mut open_at: Option<Instant> = Some(Instant::now());
        let mut envelopes = Recent::new();
        let tick_every = (self.timing.ping_interval / 2).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Open a connection when one is due and none is being opened.
            if !opening && open_at.is_some_and(|at| Instant::now() >= at) {
                let spacing_ok = last_open.is_none_or(|t| t.elapsed() >= MIN_OPEN_SPACING);
                if spacing_ok {
                    open_at = None;
                    opening = true;
                    last_open = Some(Instant::now());
                    let (client, app, tx) =
                        (self.client.clone(), self.app.clone(), opened_tx.clone());
                    let timing = self.timing;
                    tokio::spawn(async move {
                        let _ = tx.send(open(&client, &app, timing).await);
                    });
                } else {
                    open_at = last_open.map(|t| t + MIN_OPEN_SPACING);
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return Ok(()),
                _ = inbound.closed() => return Ok(()),
                Some(result) = opened.recv() => {
                    opening = false;
                    match result {
                        Ok(ws) => {
                            next_id += 1;
                            let (out, out_rx) = mpsc::unbounded_channel();
                            tokio::spawn(conn_task(next_id, ws, out_rx, frames_tx.clone()));
                            let now = Instant::now();
                            conns.push(Conn {
                                id: next_id,
                                out,
                                opened: now,
                                last_frame: now,
                                last_ping: now,
                                unanswered: None,
                                hello: false,
                                leaving: false,
                                close_at: None,
                            });
                        }
                        Err(e) => {
                            if !e.is_retryable() || !conns.iter().any(|c| c.hello && !c.leaving) {
                                return Err(e);
                            }
                            tracing::warn!(connector = %self.id, error = %e, "slack: cannot open a new Socket Mode connection yet");
                            open_at = Some(Instant::now() + e.retry_after().unwrap_or(Duration::from_secs(2)));
                        }
                    }
                }
                Some(frame) = frames.recv() => match frame {
                    FromConn::Pong(id) => {
                        if let Some(c) = conns.iter_mut().find(|c| c.id == id) {
                            c.last_frame = Instant::now();
                            c.unanswered = None;
                        }
                    }
                    FromConn::Alive(id) => {
                        if let Some(c) = conns.iter_mut().find(|c| c.id == id) {
                            c.last_frame = Instant::now();
                        }
                    }
                    FromConn::Text(id, text) => {
                        let Some(c) = conns.iter_mut().find(|c| c.id == id) else { continue };
                        c.last_frame = Instant::now();
                        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                            tracing::warn!(connector = %self.id, "slack: a Socket Mode frame that is not JSON");
                            continue;
                        };
                        // Ack first, on the socket it came from: Slack wants it within 3 s.
                        if let Some(envelope) = frame["envelope_id"].as_str() {
                            let _ = c.out.send(Message::text(json!({ "envelope_id": envelope }).to_string()));
                            if !envelopes.insert(envelope) {
                                continue; // a redelivery of an envelope already handled
                            }
                        }
                        match frame["type"].as_str().unwrap_or_default() {
                            "hello" => {
                                c.hello = true;
                                let now = Instant::now();
                                let drain = self.timing.drain_limit;
                                for other in conns.iter_mut().filter(|o| o.leaving && o.close_at.is_none()) {
                                    other.close_at = Some(now + drain);
                                }
                                let ours = conns.iter().filter(|c| c.hello).count() as u64;
                                if let Some(n) = frame["num_connections"].as_u64() && n > ours {
                                    tracing::warn!(connector = %self.id, slack_connections = n, ours,
                                        "slack: another program holds Socket Mode connections of this app; Slack splits the events between them");
                                }
                                health.set(Health::Up);
                                let _ = forward.send(Forward::CatchUp);
                            }
                            "disconnect" => {
                                let reason = frame["reason"].as_str().unwrap_or("unknown");
                                if reason == "link_disabled" {
                                    return Err(ConnectorError::new(ErrorKind::Auth,
                                        "slack: Socket Mode is turned off for this app (disconnect: link_disabled); turn it on under Settings → Socket Mode, then restart"));
                                }
                                tracing::info!(connector = %self.id, reason, "slack: Slack asks to reconnect; opening the new connection first");
                                c.leaving = true;
                                if !opening && open_at.is_none() {
                                    open_at = Some(Instant::now());
                                }
                            }
                            "events_api" => {
                                if let Some(ev) = events::message(&self.id, &self.me, None, &frame["payload"]["event"]) {
                                    let _ = forward.send(Forward::Event(ev));
                                }
                            }
                            "slash_commands" => {
                                let envelope = frame["envelope_id"].as_str().unwrap_or_default();
                                if let Some((ev, url)) = events::slash(&self.id, &frame["payload"], envelope) {
                                    let mut responses = self.responses.responses.lock().unwrap();
                                    responses.retain(|_, r| r.at.elapsed() < crate::RESPONSE_URL_TTL);
                                    responses.insert(ev.message_id.clone(), Responder {
                                        url,
                                        room: ev.room.clone(),
                                        user: ev.user.clone(),
                                        at: Instant::now(),
                                        uses: 0,
                                    });
                                    drop(responses);
                                    let _ = forward.send(Forward::Event(ev));
                                }
                            }
                            _ => {} // interactive and others: acked, nothing to do
                        }
                    }
                    FromConn::Closed(id, why) => {
                        let Some(at) = conns.iter().position(|c| c.id == id) else { continue };
                        let gone = conns.remove(at);
                        tracing::info!(connector = %self.id, why, "slack: a Socket Mode connection closed");
                        if !conns.iter().any(|c| c.hello && !c.leaving) {
                            if !gone.hello && !conns.iter().any(|c| c.hello) {
                                return Err(retryable(format!("slack: the Socket Mode connection closed before hello: {why}")));
                            }
                            health.set(Health::Degraded(format!("reconnecting to Slack ({why})")));
                            if !opening && open_at.is_none() {
                                open_at = Some(Instant::now());
                            }
                        }
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut failed = None;
                    let mut ghost = false;
                    conns.retain_mut(|c| {
                        if !c.hello {
                            if now - c.opened > self.timing.hello_timeout {
                                failed = Some("no hello from Slack on a new connection");
                                return false;
                            }
                            return true;
                        }
                        if c.close_at.is_some_and(|at| now >= at) {
                            return false; // replaced: dropping `out` closes it
                        }
                        // Silent, or deaf to our pings (frames still come, but what we write, acks
                        // included, may not get through): a ghost.
                        let silent = now - c.last_frame > self.timing.silence_limit;
                        let deaf = c.unanswered.is_some_and(|t| now - t > self.timing.silence_limit);
                        if !c.leaving && (silent || deaf) {
                            c.leaving = true;
                            ghost = true;
                        }
                        if now - c.last_ping >= self.timing.ping_interval {
                            c.last_ping = now;
                            c.unanswered.get_or_insert(now);
                            let _ = c.out.send(Message::Ping(Vec::new().into()));
                        }
                        true
                    });
                    let live = conns.iter().any(|c| c.hello && !c.leaving);
                    if let Some(why) = failed && !live && !opening {
                        return Err(retryable(format!("slack: {why}")));
                    }
                    if ghost {
                        tracing::warn!(connector = %self.id, "slack: a Socket Mode connection went silent; replacing it");
                        if !live {
                            health.set(Health::Degraded("the Slack connection went silent; reconnecting".into()));
                        }
                    }
                    // A new connection still waiting for its hello is the one being opened.
                    let greeting = conns.iter().any(|c| !c.hello);
                    if !live && !opening && !greeting && open_at.is_none() {
                        open_at = Some(now);
                    }
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `apps.connections.open` with the app token, then the WebSocket to the URL it gives.
async fn open(
    client: &SlackClient<Http>,
    app: &SlackApiToken,
    timing: Timing,
) -> Result<Ws, ConnectorError> {
    let session = client.open_session(app);
    let opened = timed(
        timing.api_timeout,
        "apps.connections.open",
        session.apps_connections_open(&SlackApiAppsConnectionOpenRequest::new()),
    )
    .await
    .map_err(|e| {
            let hint = if e.kind == ErrorKind::Auth {
                " (apps.connections.open takes the app-level token, xapp-…, with scope connections:write)"
            } else {
                ""
            };
            ConnectorError::new(e.kind, format!("{}{hint}", e.source))
        })?;
    let url = opened.url.value().to_string();
    match tokio::time::timeout(timing.hello_timeout, connect_async(url.as_str())).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(retryable(format!(
            "slack: Socket Mode connection failed: {e}"
        ))),
        Err(_) => Err(retryable("slack: Socket Mode connection timed out")),
    }
}

/// Reads one socket, reporting its frames, and writes what the loop sends; when the loop drops
/// the sender, closes the socket.
async fn conn_task(
    id: u64,
    mut ws: Ws,
    mut out: mpsc::UnboundedReceiver<Message>,
    frames: mpsc::UnboundedSender<FromConn>,
) {
    let why = loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let _ = frames.send(FromConn::Text(id, text.to_string()));
                }
                Some(Ok(Message::Close(close))) => {
                    break match close {
                        Some(c) => format!("closed by Slack ({} {})", c.code, c.reason),
                        None => "closed by Slack".to_owned(),
                    };
                }
                Some(Ok(Message::Pong(_))) => {
                    let _ = frames.send(FromConn::Pong(id));
                }
                Some(Ok(_)) => {
                    let _ = frames.send(FromConn::Alive(id));
                }
                Some(Err(e)) => break format!("socket error: {e}"),
                None => break "socket closed".to_owned(),
            },
            message = out.recv() => match message {
                Some(m) => {
                    if let Err(e) = ws.send(m).await {
                        break format!("socket error: {e}");
                    }
                }
                None => {
                    let _ = tokio::time::timeout(CLOSE_WAIT, ws.close(None)).await;
                    break "closed by us".to_owned();
                }
            },
        }
    };
    let _ = frames.send(FromConn::Closed(id, why));
}
