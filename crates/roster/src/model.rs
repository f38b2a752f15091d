//! The roster's wire types: what `roster.yaml` may contain.

use crate::connector::ConnectorEntry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The roster schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The default tmux socket name (`tmux -L mosaic`).
pub const DEFAULT_SOCKET: &str = "mosaic";

/// A whole fleet: the source of truth for what should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    /// Schema version; must equal [`SCHEMA_VERSION`].
    pub version: u32,
    /// The fleet's name.
    pub fleet: String,
    /// How agents talk to each other.
    #[serde(default)]
    pub comms: CommsMode,
    /// tmux settings for this fleet.
    #[serde(default, skip_serializing_if = "TmuxSettings::is_default")]
    pub tmux: TmuxSettings,
    /// The agents; exactly one has role `orchestrator`.
    pub agents: Vec<Agent>,
    /// Chat connectors bridged to the orchestrator; each entry's settings belong to its type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<ConnectorEntry>,
    /// Who may do what from chat; anyone not listed is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclEntry>,
    /// Settings of the bridge daemon (`mosaic up`).
    #[serde(default, skip_serializing_if = "BridgeSettings::is_default")]
    pub bridge: BridgeSettings,
    /// Harness update checks.
    #[serde(default, skip_serializing_if = "UpdateSettings::is_default")]
    pub update: UpdateSettings,
}

/// One chat user's permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclEntry {
    /// The connector instance the user id belongs to: its `id`, which defaults to its type
    /// (`discord`, `telegram`, …).
    pub connector: String,
    /// The platform's user id.
    pub user: String,
    /// What the user may do.
    pub role: AclRole,
}

/// Chat permissions, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclRole {
    /// status, ps, help, presets, verify, logs.
    Viewer,
    /// + talking to the orchestrator, send, start, stop, restart.
    Operator,
    /// + init, add, remove.
    Admin,
}

impl AclRole {
    /// The role's name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            AclRole::Viewer => "viewer",
            AclRole::Operator => "operator",
            AclRole::Admin => "admin",
        }
    }
}

/// Settings of the bridge daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeSettings {
    /// Address of the HTTP API; loopback unless you say otherwise.
    pub api_listen: String,
    /// Past this many messages waiting for the orchestrator, senders are told their place.
    pub queue_notice: usize,
    /// Messages and commands one chat user may send per minute.
    pub rate_per_minute: u32,
    /// The role the orchestrator's own tools (`mosaic reply`, MCP) act with.
    pub orchestrator_role: AclRole,
    /// Seconds after a delivery after which a still-busy orchestrator gets the next message anyway.
    pub busy_timeout_secs: u64,
    /// Days the bridge keeps what it has handled (delivered chat messages, sent replies, the
    /// message ids it drops repeats by); older ones are pruned once a day.
    pub history_days: u32,
}

/// The default API address.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:7317";

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            api_listen: DEFAULT_API_LISTEN.into(),
            queue_notice: 20,
            rate_per_minute: 30,
            orchestrator_role: AclRole::Admin,
            busy_timeout_secs: 600,
            history_days: 30,
        }
    }
}

impl BridgeSettings {
    fn is_default(&self) -> bool {
        *self == BridgeSettings::default()
    }
}

impl Roster {
    /// The orchestrator, if the roster has one (a validated roster always does).
    pub fn orchestrator(&self) -> Option<&Agent> {
        self.agents.iter().find(|a| a.role == Role::Orchestrator)
    }

    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }
}

/// How agents of the fleet communicate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommsMode {
    /// Messages are pasted into each agent's tmux pane.
    #[default]
    Tmux,
    /// Messages travel through Matrix rooms (needs a Matrix connector).
    Matrix,
}

impl CommsMode {
    /// Every mode, for prompts and help.
    pub const ALL: [CommsMode; 2] = [CommsMode::Tmux, CommsMode::Matrix];

    /// The mode's name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            CommsMode::Tmux => "tmux",
            CommsMode::Matrix => "matrix",
        }
    }
}

/// tmux settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmuxSettings {
    /// The socket name passed as `tmux -L`; a dedicated server keeps the user's own tmux untouched.
    #[serde(default = "default_socket")]
    pub socket: String,
}

fn default_socket() -> String {
    DEFAULT_SOCKET.to_owned()
}

impl Default for TmuxSettings {
    fn default() -> Self {
        TmuxSettings {
            socket: default_socket(),
        }
    }
}

impl TmuxSettings {
    fn is_default(&self) -> bool {
        *self == TmuxSettings::default()
    }
}

/// One agent of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Unique name, `[a-z][a-z0-9-]{0,31}`; also the tmux session name.
    pub name: String,
    /// Orchestrator or worker.
    #[serde(default)]
    pub role: Role,
    /// The harness that runs the agent: `claude`, `codex`, `pi` or `demo`.
    pub runtime: String,
    /// The model the harness should use; the harness default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Working directory (`~` expands to the home directory); the home directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Instructions appended to the harness's system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Extra environment variables (not for secrets: those stay in the environment or files).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// What to do when the agent exits.
    #[serde(default, skip_serializing_if = "RestartPolicy::is_default")]
    pub restart: RestartPolicy,
    /// Where the agent runs; `local` is this machine.
    #[serde(default = "default_host", skip_serializing_if = "is_local")]
    pub host: String,
    /// Whether each launch goes back to its last conversation (where its harness can).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub resume: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(value: &bool) -> bool {
    *value
}

/// Harness update checks (`update:` in the roster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// How often the daemon asks whether a newer version of a harness the fleet uses exists,
    /// and tells the chat rooms once per new version. Updating stays an explicit act.
    #[serde(default)]
    pub check: UpdateCheck,
}

impl UpdateSettings {
    /// Whether these are the defaults (left out of a written roster).
    pub fn is_default(&self) -> bool {
        *self == UpdateSettings::default()
    }
}

/// How often the daemon checks for harness updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateCheck {
    /// Never (`mosaic fleet versions` asks on demand).
    #[default]
    Never,
    /// Once a day.
    Daily,
    /// Once a week.
    Weekly,
}

impl UpdateCheck {
    /// The time between checks; `None` for never.
    pub fn every(self) -> Option<std::time::Duration> {
        match self {
            UpdateCheck::Never => None,
            UpdateCheck::Daily => Some(std::time::Duration::from_secs(24 * 3600)),
            UpdateCheck::Weekly => Some(std::time::Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// The host name meaning "this machine".
pub const LOCAL_HOST: &str = "local";

fn default_host() -> String {
    LOCAL_HOST.to_owned()
}

fn is_local(host: &String) -> bool {
    host == LOCAL_HOST
}

/// An agent's role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The one agent bridged to chat that steers the fleet.
    Orchestrator,
    /// Any other agent.
    #[default]
    Worker,
}

impl Role {
    /// The role's name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Orchestrator => "orchestrator",
            Role::Worker => "worker",
        }
    }
}

/// What to do when an agent's process exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Leave it stopped.
    Never,
    /// Restart it when it exits with a failure.
    #[default]
    OnFailure,
    /// Always restart it.
    Always,
}

impl RestartPolicy {
    fn is_default(&self) -> bool {
        *self == RestartPolicy::default()
    }
}

/// Where a secret lives: the name of an environment variable, or a file path. Exactly one is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "SecretRefWire")]
pub struct SecretRef {
    /// Environment variable holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// File holding the secret (first line; `~` expands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl SecretRef {
    /// A reference to the environment variable `name`.
    pub fn env(name: impl Into<String>) -> Self {
        SecretRef {
            env: Some(name.into()),
            file: None,
        }
    }

    /// A reference to the file `path`.
    pub fn file(path: impl Into<String>) -> Self {
        SecretRef {
            env: None,
            file: Some(path.into()),
        }
    }

    /// Reads the secret's value (a file's first line), trimmed. Errors name where it was looked
    /// for, never the value.
    pub fn resolve(&self) -> Result<String, SecretError> {
        if let Some(var) = &self.env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                Ok(_) => Err(SecretError::Empty(format!("environment variable {var}"))),
                Err(_) => Err(SecretError::Missing(format!("environment variable {var}"))),
            };
        }
        if let Some(file) = &self.file {
            let path = match file.strip_prefix("~/") {
                Some(rest) => {
                    std::path::Path::new(&std::env::var("HOME").unwrap_or_default()).join(rest)
                }
                None => std::path::PathBuf::from(file),
            };
            return match std::fs::read_to_string(&path) {
                Ok(v) if !v.trim().is_empty() => {
                    Ok(v.lines().next().unwrap_or("").trim().to_owned())
                }
                Ok(_) => Err(SecretError::Empty(format!(
                    "file {}",
                    crate::redact::shown(&path.display().to_string())
                ))),
                Err(e) => Err(SecretError::Unreadable(
                    format!("file {}", crate::redact::shown(&path.display().to_string())),
                    e,
                )),
            };
        }
        Err(SecretError::Unnamed)
    }

    /// Where the secret is, for messages (`environment variable X`, `file F`).
    pub fn describe(&self) -> String {
        match (&self.env, &self.file) {
            (Some(v), _) => format!("environment variable {v}"),
            (_, Some(f)) => format!("file {f}"),
            _ => "nothing".into(),
        }
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is not set.
    #[error("{0} is not set")]
    Missing(String),
    /// The variable or file is empty.
    #[error("{0} is empty")]
    Empty(String),
    /// The file cannot be read.
    #[error("{0}: {1}")]
    Unreadable(String, #[source] std::io::Error),
    /// The reference names neither a variable nor a file.
    #[error("no env or file given")]
    Unnamed,
}

/// The accepted YAML shapes of a [`SecretRef`]: a map, never an inline string.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretRefWire {
    Named(NamedSecret),
    Inline(serde::de::IgnoredAny),
}

/// `{env: VAR}` or `{file: PATH}`, nothing else: a map with any other key (`value:`,
/// `password:`) may hold the secret itself and is refused like an inline one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedSecret {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

impl TryFrom<SecretRefWire> for SecretRef {
    type Error = &'static str;

    fn try_from(wire: SecretRefWire) -> Result<Self, Self::Error> {
        match wire {
            SecretRefWire::Named(NamedSecret { env, file }) => Ok(SecretRef { env, file }),
            SecretRefWire::Inline(_) => Err(
                "a secret is never written in roster.yaml; name where it is: `{env: VAR}` or `{file: PATH}`",
            ),
        }
    }
}
