//! The built-in `local` connector: the default that works with no credentials. Its platform is
//! the daemon's own API: `mosaic chat` posts messages there (`POST /v1/chat`, which hands them
//! straight to [`crate::Bridge::accept`], so a 202 means stored), and reads replies from the
//! event stream, where the outbox publishes every posted message. Every message posted to the
//! room is also kept in its history (`local-room.jsonl` in the state directory), so what was
//! said while no `mosaic chat` was open is shown when one opens.

use crate::acl::LOCAL;
use async_trait::async_trait;
use mosaic_connector::{
    Capabilities, Connector, ConnectorError, ErrorKind, Health, Markdown, Outbound, RunContext,
};
use mosaic_fleet::Paths;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;

/// The local room's history is cut to its newer half when it grows past this.
const HISTORY_MAX_BYTES: u64 = 1 << 20;

/// The local connector.
#[derive(Debug)]
pub struct LocalConnector {
    history: PathBuf,
}

/// One message posted to the local room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalMessage {
    /// The outbox's key for it (unique).
    pub key: String,
    /// Its text.
    pub text: String,
}

impl LocalConnector {
    /// The local connector of the fleet in `paths`.
    pub fn new(paths: &Paths) -> LocalConnector {
        LocalConnector {
            history: history_path(paths),
        }
    }

    fn keep(&self, message: &LocalMessage) -> std::io::Result<()> {
        if std::fs::metadata(&self.history).is_ok_and(|m| m.len() > HISTORY_MAX_BYTES) {
            let text = std::fs::read_to_string(&self.history)?;
            let lines: Vec<&str> = text.lines().collect();
            let newer = lines[lines.len() / 2..].join("\n") + "\n";
            mosaic_fleet::paths::write_atomic(&self.history, &newer)?;
        }
        let line = serde_json::to_string(message).expect("a message serializes") + "\n";
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.history)?;
        // One write per message: a reader never sees half of one.
        file.write_all(line.as_bytes())
    }
}

/// Where the local room's history is kept.
pub fn history_path(paths: &Paths) -> PathBuf {
    paths.state_dir.join("local-room.jsonl")
}

/// The local room's history, oldest first (unreadable lines are skipped).
pub fn read_history(paths: &Paths) -> Vec<LocalMessage> {
    std::fs::read_to_string(history_path(paths))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[async_trait]
impl Connector for LocalConnector {
    fn id(&self) -> &str {
        LOCAL
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: 4000,
            markdown: Markdown::CommonMark,
            threads: false,
            native_commands: false,
            reactions: false,
        }
    }

    async fn run(&self, mut ctx: RunContext) -> Result<(), ConnectorError> {
        // Inbound arrives through the API; this only lives as long as the bridge listens.
        ctx.health.set(Health::Up);
        tokio::select! {
            _ = ctx.inbound.closed() => {}
            _ = ctx.shutdown.wait() => {}
        }
        Ok(())
    }

    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError> {
        // Posting is the outbox's `message_out` event on the stream `mosaic chat` reads; the
        // history keeps it for a `mosaic chat` opened later.
        let kept = LocalMessage {
            key: message.key.clone(),
            text: message.text.clone(),
        };
        self.keep(&kept).map_err(|e| {
            ConnectorError::new(
                ErrorKind::Retryable,
                format!("cannot keep the local room's history: {e}"),
            )
        })?;
        Ok(message.key.clone())
    }

    async fn ack(&self, _room: &str, _message_id: &str) -> Result<(), ConnectorError> {
        Ok(())
    }
}
