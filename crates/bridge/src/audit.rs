//! The audit log: one JSON line per command or refusal, appended and flushed.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC time.
    pub time: String,
    /// Connector (platform) id.
    pub platform: String,
    /// Platform user id.
    pub user: String,
    /// Room.
    pub room: String,
    /// The command line, or `(talk)` for a message to the orchestrator.
    pub command: String,
    /// `ok`, `error: …`, `refused: …`, `ignored: …`, `awaiting confirmation`, `rate-limited`.
    pub outcome: String,
}

/// An append-only JSON-lines file.
pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        // Private also when an older version created it readable by others.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Appends a record.
    pub fn record(&self, platform: &str, user: &str, room: &str, command: &str, outcome: &str) {
        let rec = AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            platform: platform.into(),
            user: user.into(),
            room: room.into(),
            command: command.into(),
            outcome: outcome.into(),
        };
        let mut line = serde_json::to_string(&rec).expect("records serialize");
        line.push('\n');
        let mut f = self.file.lock().unwrap();
        // An audit write failure must not stop the bridge; it is logged.
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|_| f.flush()) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}
