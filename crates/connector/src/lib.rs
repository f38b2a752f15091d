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

pub use error::{ConnectorError, ErrorKind};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

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
    /// The text, at most [`Capabilities::max_message_len`] characters (the bridge splits).
    pub text: String,
    /// A message to reply to, where the platform supports replies.
    pub reply_to: Option<String>,
    /// A thread to post in, where the platform supports threads.
    pub thread: Option<String>,
    /// A key unique to this message, stable across retries (platforms with a nonce use it to
    /// drop duplicates).
    pub key: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The interface between the bridge and one chat platform.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// This connector's id: the `connector` of its [`Inbound`] events.
    fn id(&self) -> &str;

    /// What the platform can do.
    fn capabilities(&self) -> Capabilities;

    /// Where to pick up after a restart: the last message the bridge took in each room, as
    /// `(room, message id)`. Called before [`Connector::run`]; a platform with message history
    /// fetches what was said since (the bridge drops anything it has already seen).
    fn resume_after(&self, _last_taken: &[(String, String)]) {}

    /// Connects and forwards every message from the connector's rooms to `inbound` until the
    /// receiver is dropped or the connection fails. The bridge calls it again after a failure,
    /// with backoff, when the error is retryable.
    async fn run(&self, inbound: mpsc::Sender<Inbound>) -> Result<(), ConnectorError>;

    /// Posts one message; returns the platform's id for it.
    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError>;

    /// Acknowledges a received message (a reaction, or a short reply where there are none).
    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError>;

    /// Shows that the orchestrator is working on an answer, where the platform can.
    async fn typing(&self, _room: &str) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// The connection's current health.
    fn health(&self) -> Health;
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
            reply_to: None,
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
