//! Connector entries of the roster and the registry of connector types that validates them.
//!
//! The roster does not know any chat platform: an entry is `{type, id, …settings}`, and the
//! settings belong to the connector type named by `type`, which checks them (each connector
//! crate registers its type once, at start-up; see `mosaic_connector::registry`). Problems are
//! reported with paths relative to the entry, which the roster turns into
//! `connectors[i].field` with a line and column.

use crate::model::SecretRef;
use serde::{Deserialize, Serialize};
use std::sync::RwLock;

/// One chat connector of the roster: a type, an instance id, and the type's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorEntry {
    /// The connector type (`discord`, `telegram`, …): which registered type reads the settings.
    #[serde(rename = "type")]
    pub kind: String,
    /// The instance id, unique in the roster; the ACL and the bridge's state are keyed by it.
    /// Defaults to the type, so one instance per platform needs no id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Everything else: the type's settings, checked by the type.
    #[serde(flatten)]
    pub settings: serde_yaml_ng::Mapping,
}

impl ConnectorEntry {
    /// An entry of type `kind` with `settings` and the default id.
    pub fn new(kind: &str, settings: serde_yaml_ng::Mapping) -> ConnectorEntry {
        ConnectorEntry {
            kind: kind.to_owned(),
            id: None,
            settings,
        }
    }

    /// The instance id: `id`, or the type when none is given.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.kind)
    }

    /// The registered type that reads this entry, if this build has it.
    pub fn schema(&self) -> Option<&'static dyn ConnectorSchema> {
        connector_schema(&self.kind)
    }

    /// The rooms (channels, chats, rooms) this entry bridges; empty when its type is unknown
    /// or its settings are invalid.
    pub fn rooms(&self) -> Vec<String> {
        self.schema()
            .and_then(|s| s.rooms(&self.settings).ok())
            .unwrap_or_default()
    }

    /// The secrets this entry names, with the field naming each; empty when its type is unknown
    /// or its settings are invalid.
    pub fn secrets(&self) -> Vec<(String, SecretRef)> {
        self.schema()
            .and_then(|s| s.secrets(&self.settings).ok())
            .unwrap_or_default()
    }
}

/// A problem in one connector entry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    /// Path relative to the entry (`channels[0]`, `token.env`); empty for the entry itself.
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl SettingProblem {
    /// A problem at `path` (relative to the entry).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> SettingProblem {
        SettingProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What the roster needs of a connector type: its name and a check of an entry's settings.
/// `mosaic_connector::ConnectorType` extends it with the wizard, verify and build.
pub trait ConnectorSchema: Send + Sync + 'static {
    /// The type name written as `type:` in the roster.
    fn type_name(&self) -> &'static str;

    /// Every problem of `settings` (the entry without `type` and `id`), all at once.
    fn check(&self, settings: &serde_yaml_ng::Mapping) -> Vec<SettingProblem>;

    /// The rooms the settings bridge.
    fn rooms(&self, settings: &serde_yaml_ng::Mapping) -> Result<Vec<String>, SettingProblem>;

    /// The secrets the settings name, each with its field.
    fn secrets(
        &self,
        settings: &serde_yaml_ng::Mapping,
    ) -> Result<Vec<(String, SecretRef)>, SettingProblem>;

    /// Checks the shape of a platform user id (for the ACL and `--admin`); `Err` says what an id
    /// of this platform looks like.
    fn check_user(&self, user: &str) -> Result<(), String>;
}

static SCHEMAS: RwLock<Vec<&'static dyn ConnectorSchema>> = RwLock::new(Vec::new());

/// Makes connector type `schema` known to roster validation; registering a name again replaces
/// it. Called by `mosaic_connector::registry::register`.
pub fn register_connector_schema(schema: &'static dyn ConnectorSchema) {
    let mut schemas = SCHEMAS.write().unwrap_or_else(|e| e.into_inner());
    schemas.retain(|s| s.type_name() != schema.type_name());
    schemas.push(schema);
}

/// The registered connector type called `name`.
pub fn connector_schema(name: &str) -> Option<&'static dyn ConnectorSchema> {
    SCHEMAS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|s| s.type_name() == name)
        .copied()
}

/// The names of every registered connector type, in registration order.
pub fn connector_type_names() -> Vec<&'static str> {
    SCHEMAS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|s| s.type_name())
        .collect()
}

/// Checks a secret reference: exactly one of `env`/`file`, and a usable variable name.
/// `path` is the field's path, used for the problems.
pub fn check_secret_ref(path: &str, secret: &SecretRef) -> Option<SettingProblem> {
    match (&secret.env, &secret.file) {
        (Some(_), Some(_)) => Some(SettingProblem::new(
            path,
            "set either env or file, not both",
        )),
        (None, None) => Some(SettingProblem::new(
            path,
            "name where the secret is: `{env: VAR}` or `{file: PATH}`",
        )),
        (Some(v), None) if v.is_empty() || v.contains('=') => Some(SettingProblem::new(
            format!("{path}.env"),
            format!(
                "invalid environment variable name {}",
                crate::redact::shown(v)
            ),
        )),
        // A pasted token in place of the variable's name: refuse it without echoing it.
        (Some(v), None) if !is_variable_name(v) => Some(SettingProblem::new(
            format!("{path}.env"),
            "this is not an environment variable name (it looks like the secret itself): put the \
             secret in a variable or a file and name that here; never write it in roster.yaml",
        )),
        // A pasted token in place of the file's path: refuse it without echoing it.
        (None, Some(f)) if crate::redact::looks_like_secret(f) => Some(SettingProblem::new(
            format!("{path}.file"),
            "this is not a file path (it looks like the secret itself): put the secret in a file \
             and name that file here; never write it in roster.yaml",
        )),
        // The daemon may run anywhere (systemd starts it in /): a relative path means nothing.
        (None, Some(f)) if !(f.starts_with('/') || f.starts_with("~/")) => {
            Some(SettingProblem::new(
                format!("{path}.file"),
                format!(
                    "the secret file {} must be an absolute path (or start with ~/)",
                    crate::redact::shown(f)
                ),
            ))
        }
        _ => None,
    }
}

/// Whether `name` is a portable environment variable name (`[A-Za-z_][A-Za-z0-9_]*`, at most
/// 64 characters); tokens (with dots, dashes, or very long) are not.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_resolve_from_files_and_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            SecretRef::file(f.display().to_string()).resolve().unwrap(),
            "s3cret"
        );
        let err = SecretRef::env("MOSAIC_SURELY_UNSET_VAR")
            .resolve()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable MOSAIC_SURELY_UNSET_VAR is not set"
        );
    }

    #[test]
    fn a_pasted_token_is_not_a_variable_name_and_is_not_echoed() {
        let token = "MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123";
        let p = check_secret_ref("token", &SecretRef::env(token)).unwrap();
        assert_eq!(p.path, "token.env");
        assert!(p.message.contains("looks like the secret itself"));
        assert!(!p.message.contains(token));
        assert!(check_secret_ref("token", &SecretRef::env("DISCORD_TOKEN")).is_none());
        // The same token given as a file path: refused, not echoed.
        let p = check_secret_ref("token", &SecretRef::file(token)).unwrap();
        assert_eq!(p.path, "token.file");
        assert!(!p.message.contains(token), "{}", p.message);
        let p = check_secret_ref("token", &SecretRef::file("relative/tok")).unwrap();
        assert!(
            p.message.contains("must be an absolute path"),
            "{}",
            p.message
        );
        for ok in [
            "/etc/mosaic/discord.token",
            "~/.config/mosaic/discord.token",
        ] {
            assert!(
                check_secret_ref("token", &SecretRef::file(ok)).is_none(),
                "{ok}"
            );
        }
        assert!(is_variable_name("_X1") && !is_variable_name("1X") && !is_variable_name("a-b"));
    }
}
