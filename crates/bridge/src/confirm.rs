//! Confirmations: a destructive command from chat waits for `/fleet confirm CODE` from the same
//! user on the same connector, for two minutes. Pending ones are kept in the bridge database, so
//! a daemon restart keeps them (and their expiry).

use crate::store::{Store, StoreError, now_ms};
use mosaic_grammar::FleetCommand;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a confirmation code stays valid.
pub const CONFIRM_TTL: Duration = Duration::from_secs(120);

/// A command waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The code the user must send back.
    pub code: String,
    /// The connector it was asked on.
    pub connector: String,
    /// The user who asked (only they can confirm).
    pub user: String,
    /// The command to run once confirmed.
    pub command: FleetCommand,
    /// The command line as typed (for the audit log).
    pub line: String,
    /// When it expires (ms since the epoch).
    pub expires_ms: i64,
}

/// Keeps `command` waiting for a confirmation by `user` of `connector`; returns its code.
pub fn ask(
    store: &Store,
    connector: &str,
    user: &str,
    command: FleetCommand,
    line: &str,
) -> Result<String, StoreError> {
    let code = code();
    store.put_confirmation(&Pending {
        code: code.clone(),
        connector: connector.to_owned(),
        user: user.to_owned(),
        command,
        line: line.to_owned(),
        expires_ms: now_ms() + CONFIRM_TTL.as_millis() as i64,
    })?;
    Ok(code)
}

/// Takes the confirmation `code` if `user` of `connector` asked for it and it has not expired.
pub fn take(
    store: &mut Store,
    code: &str,
    connector: &str,
    user: &str,
) -> Result<Option<Pending>, StoreError> {
    store.take_confirmation(code, connector, user, now_ms())
}

/// A fresh six-hex-digit code.
fn code() -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:06x}", h.finish() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_grammar::RemoveArgs;

    fn remove() -> FleetCommand {
        FleetCommand::Remove(RemoveArgs {
            name: "helper".into(),
            timeout: 10,
        })
    }

    #[test]
    fn a_confirmation_survives_a_reopen_and_only_its_asker_takes_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let code = ask(
            &Store::open(&db).unwrap(),
            "tg",
            "u1",
            remove(),
            "/fleet remove helper",
        )
        .unwrap();
        // A restart: a new connection to the same file.
        let mut store = Store::open(&db).unwrap();
        assert_eq!(
            take(&mut store, &code, "tg", "u2").unwrap(),
            None,
            "not theirs"
        );
        assert_eq!(
            take(&mut store, &code, "dc", "u1").unwrap(),
            None,
            "other connector"
        );
        let p = take(&mut store, &code, "tg", "u1").unwrap().expect("kept");
        assert_eq!(
            (p.command, p.line.as_str()),
            (remove(), "/fleet remove helper")
        );
        assert_eq!(
            take(&mut store, &code, "tg", "u1").unwrap(),
            None,
            "used once"
        );
    }

    #[test]
    fn an_expired_confirmation_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("b.db")).unwrap();
        store
            .put_confirmation(&Pending {
                code: "abc123".into(),
                connector: "tg".into(),
                user: "u1".into(),
                command: remove(),
                line: "/fleet remove helper".into(),
                expires_ms: now_ms() - 1,
            })
            .unwrap();
        assert_eq!(take(&mut store, "abc123", "tg", "u1").unwrap(), None);
    }
}
