//! The `Connector` trait: the one small, platform-neutral interface between mosaic's bridge and a
//! chat platform (Discord, Matrix, Telegram, Slack, the built-in local chat).
//!
//! A connector only moves messages: it yields what users say in its rooms and posts what the
//! bridge gives it. Everything else (the command grammar, the ACL, queueing, retries, splitting
//! long replies at [`Capabilities::max_message_len`]) is the bridge's job, decided once for all
//! platforms from the connector's [`ErrorKind`]s and [`Capabilities`].

#[cfg(feature = "test-util")]
pub mod compliance;
mod error;
#[cfg(feature = "test-util")]
pub mod fake;
pub mod registry;
pub mod render;

pub use error::{ConnectorError, ErrorKind};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Something a user said in a bridged room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// The connector it came through (its id, e.g. `discord`, `local`).
    pub connector: String,
    /// The platform's message id; with `connector`, the key that deduplicates redeliveries.
    pub message_id: String,
    /// The room (channel, chat, room id) it was said in.
    pub room: String,
    /// The platform's user id of the author.
    pub user: String,
    /// A display name for envelopes and logs.
    pub user_name: String,
    /// The text as typed.
    pub text: String,
    /// The thread it belongs to, on platforms with threads.
    pub thread: Option<String>,
    /// A native command (a Discord slash command, …) rather than a typed message: the platform
    /// waits for an answer, so even a refusal is answered.
    #[serde(default)]
    pub native_command: bool,
}

/// Something the bridge asks the connector to post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    /// Room to post in.
    pub room: String,
    /// The text, rendered for the platform's [`Markdown`] dialect and at most
    /// [`Capabilities::max_message_len`] characters (the bridge renders and splits).
    pub text: String,
    /// The same message as HTML, for platforms whose dialect is [`Markdown::MatrixHtml`]
    /// (`text` is then the plain-text body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// What this message answers, where the platform supports replies.
    pub reply_to: Option<ReplyTo>,
    /// A thread to post in, where the platform supports threads.
    pub thread: Option<String>,
    /// A key unique to this message, stable across retries (platforms with a nonce use it to
    /// drop duplicates).
    pub key: String,
}

/// What an outbound message answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum ReplyTo {
    /// A message a user typed (its platform id).
    Message(String),
    /// A native command (an [`Inbound`] with `native_command`, by its `message_id`): the platform
    /// waits for this answer through its own channel (a Discord interaction follow-up, a Slack
    /// `response_url`).
    Native(String),
}

impl ReplyTo {
    /// The id of what is answered.
    pub fn id(&self) -> &str {
        match self {
            ReplyTo::Message(id) | ReplyTo::Native(id) => id,
        }
    }
}

/// Markdown dialects, so replies can be rendered for the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Markdown {
    /// No markup: text is shown as is.
    Plain,
    /// CommonMark.
    CommonMark,
    /// Discord's markdown.
    Discord,
    /// Slack's mrkdwn.
    SlackMrkdwn,
    /// Telegram's MarkdownV2.
    TelegramV2,
    /// Matrix `org.matrix.custom.html` from CommonMark.
    MatrixHtml,
}

/// What a platform can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The longest message the platform accepts, in characters.
    pub max_message_len: usize,
    /// Its markdown dialect.
    pub markdown: Markdown,
    /// Whether messages can be posted in threads.
    pub threads: bool,
    /// Whether the platform has native slash commands (registered from the grammar).
    pub native_commands: bool,
    /// Whether messages can be acknowledged with a reaction (else with a short message).
    pub reactions: bool,
}

/// A connector's health, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", content = "detail", rename_all = "lowercase")]
pub enum Health {
    /// Not connected yet.
    Starting,
    /// Connected and serving.
    Up,
    /// Connected with trouble (rate limited, resuming…).
    Degraded(String),
    /// Not connected; the bridge retries with backoff.
    Down(String),
}

/// Sets a connector's health; the bridge owns the receiving side and shows it in `status`.
#[derive(Debug, Clone)]
pub struct HealthReporter(Arc<watch::Sender<Health>>);

impl HealthReporter {
    /// A reporter and the receiver that reads it, starting at [`Health::Starting`].
    pub fn new() -> (HealthReporter, watch::Receiver<Health>) {
        let (tx, rx) = watch::channel(Health::Starting);
        (HealthReporter(Arc::new(tx)), rx)
    }

    /// Reports `health`.
    pub fn set(&self, health: Health) {
        self.0.send_replace(health);
    }

    /// A receiver that sees every later report.
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.0.subscribe()
    }

    /// The health last reported.
    pub fn get(&self) -> Health {
        self.0.borrow().clone()
    }
}

/// The room name under which a connector's [`Checkpoint`](Handoff::Checkpoint) is kept among
/// its cursors (no platform's room id starts with `@`).
pub const CHECKPOINT_ROOM: &str = "@checkpoint";

/// Where each room stopped: the last message the bridge took there, as `(room, message id)`,
/// and the connector's last committed checkpoint. Live: it moves as the bridge takes messages,
/// so a connector that reconnects reads where the bridge is now, not where it was at start.
#[derive(Debug, Clone)]
pub struct Cursors(watch::Receiver<Vec<(String, String)>>);

impl Cursors {
    /// Cursors read from `receiver`.
    pub fn new(receiver: watch::Receiver<Vec<(String, String)>>) -> Cursors {
        Cursors(receiver)
    }

    /// Fixed cursors (tests, or a connector run outside the bridge).
    pub fn fixed(points: Vec<(String, String)>) -> Cursors {
        let (tx, rx) = watch::channel(points);
        // A receiver keeps its last value once the sender is gone.
        drop(tx);
        Cursors(rx)
    }

    /// The current `(room, last message taken)` points.
    pub fn current(&self) -> Vec<(String, String)> {
        self.0
            .borrow()
            .iter()
            .filter(|(room, _)| room != CHECKPOINT_ROOM)
            .cloned()
            .collect()
    }

    /// The connector's last committed checkpoint, if it ever made one.
    pub fn checkpoint(&self) -> Option<String> {
        self.0
            .borrow()
            .iter()
            .find(|(room, _)| room == CHECKPOINT_ROOM)
            .map(|(_, value)| value.clone())
    }
}

/// What a connector hands the bridge, in order.
#[derive(Debug)]
pub enum Handoff {
    /// Something a user said.
    Message(Inbound),
    /// A point to resume from after a restart (a poll offset, a sync token), covering every
    /// message handed over before it. The bridge keeps it once it has stored those messages and
    /// answers `true`; `false` when one of them could not be stored, so the connector must fetch
    /// them again from the platform (the bridge drops the ones it already has).
    Checkpoint {
        /// The connector's own encoding of the point.
        value: String,
        /// Where the answer goes.
        committed: oneshot::Sender<bool>,
    },
}

/// The bridge has stopped taking messages from this connector run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bridge stopped taking messages")]
pub struct Closed;

/// Where a connector hands the bridge what users said (and its checkpoints), in order.
#[derive(Debug, Clone)]
pub struct InboundSink(mpsc::Sender<Handoff>);

impl InboundSink {
    /// A sink feeding `sender`.
    pub fn new(sender: mpsc::Sender<Handoff>) -> InboundSink {
        InboundSink(sender)
    }

    /// Hands over one message.
    pub async fn send(&self, inbound: Inbound) -> Result<(), Closed> {
        self.0
            .send(Handoff::Message(inbound))
            .await
            .map_err(|_| Closed)
    }

    /// Hands over a checkpoint and waits until the bridge kept it (`true`) or refused it because
    /// a message before it was not stored (`false`). A connector confirms receipt to its
    /// platform only up to a kept checkpoint.
    pub async fn checkpoint(&self, value: String) -> Result<bool, Closed> {
        let (committed, answer) = oneshot::channel();
        self.0
            .send(Handoff::Checkpoint { value, committed })
            .await
            .map_err(|_| Closed)?;
        answer.await.map_err(|_| Closed)
    }

    /// Resolves once the bridge stops taking messages.
    pub async fn closed(&self) {
        self.0.closed().await
    }
}

/// Tells a running connector to stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A trigger and the signal it sets.
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// The signal `receiver` carries (the bridge keeps one trigger for all its connectors).
    pub fn from_receiver(receiver: watch::Receiver<bool>) -> Shutdown {
        Shutdown(receiver)
    }

    /// Whether stopping was asked for.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once stopping is asked for (or the trigger is dropped).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// What [`Connector::run`] works with.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Where every message from the connector's rooms goes.
    pub inbound: InboundSink,
    /// Where each room stopped; a platform with message history fetches what was said since
    /// after every fresh session (the bridge drops anything it has already seen).
    pub cursors: Cursors,
    /// Where the connector reports its health.
    pub health: HealthReporter,
    /// Set when the bridge stops: close the connection cleanly and return `Ok`.
    pub shutdown: Shutdown,
}

/// The interface between the bridge and one chat platform.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// This connector's instance id (the roster entry's `id`): the `connector` of its
    /// [`Inbound`] events, the key of its rooms in the ACL.
    fn id(&self) -> &str;

    /// What the platform can do.
    fn capabilities(&self) -> Capabilities;

    /// Connects and forwards every message from the connector's rooms to `ctx.inbound` until
    /// `ctx.shutdown` is set (then returns `Ok`) or the connection fails. The bridge calls it
    /// again after a failure, with backoff, when the error is retryable.
    async fn run(&self, ctx: RunContext) -> Result<(), ConnectorError>;

    /// Posts one message; returns the platform's id for it.
    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError>;

    /// Acknowledges a received message (a reaction, or a short reply where there are none).
    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError>;

    /// Shows that the orchestrator is working on an answer, where the platform can: in `room`,
    /// and in `thread` (the thread of the message being answered, as the connector named it in
    /// [`Inbound::thread`]) where the platform's indicator belongs to a thread (Telegram's forum
    /// topics).
    async fn typing(&self, _room: &str, _thread: Option<&str>) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// The roster's ACL changed: `users` are now this connector's allowed users (as
    /// [`registry::BuildContext::users`] had them at the start).
    async fn users_changed(&self, _users: &[String]) {}

    /// The room of the fleet's own for agent `agent` (comms through this platform: the agent's
    /// traffic is posted there), made the first time with the connector's allowed users invited
    /// and the same room after that, across restarts. Platforms where the bot cannot make rooms
    /// answer [`ErrorKind::Fatal`] (the default).
    async fn agent_room(&self, agent: &str) -> Result<String, ConnectorError> {
        Err(ConnectorError::new(
            ErrorKind::Fatal,
            format!(
                "connector {} cannot make a room for agent {agent}: its platform does not carry the fleet's comms",
                self.id()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_types_round_trip_through_json() {
        let inbound = Inbound {
            connector: "local".into(),
            message_id: "7".into(),
            room: "lobby".into(),
            user: "u1".into(),
            user_name: "Ann".into(),
            text: "hi\nthere".into(),
            thread: Some("t".into()),
            native_command: false,
        };
        let json = serde_json::to_string(&inbound).unwrap();
        assert_eq!(serde_json::from_str::<Inbound>(&json).unwrap(), inbound);
        let out = Outbound {
            room: "r".into(),
            text: "x".into(),
            html: Some("<b>x</b>".into()),
            reply_to: Some(ReplyTo::Native("i1".into())),
            thread: None,
            key: "k".into(),
        };
        assert_eq!(
            serde_json::from_str::<Outbound>(&serde_json::to_string(&out).unwrap()).unwrap(),
            out
        );
        for health in [
            Health::Starting,
            Health::Up,
            Health::Degraded("slow".into()),
            Health::Down("gone".into()),
        ] {
            let json = serde_json::to_string(&health).unwrap();
            assert_eq!(serde_json::from_str::<Health>(&json).unwrap(), health);
        }
        assert_eq!(
            serde_json::to_string(&Health::Down("x".into())).unwrap(),
            r#"{"state":"down","detail":"x"}"#
        );
        let caps = Capabilities {
            max_message_len: 2000,
            markdown: Markdown::Discord,
            threads: true,
            native_commands: true,
            reactions: true,
        };
        assert_eq!(
            serde_json::from_str::<Capabilities>(&serde_json::to_string(&caps).unwrap()).unwrap(),
            caps
        );
    }
}
