//! Why a command failed: a typed error with a [`ErrorKind`] every surface maps its own way
//! (an exit code, an HTTP status, a chat answer).

use mosaic_fleet::FleetError;
use mosaic_roster::AclRole;

/// What kind of failure an [`ExecError`] is, so callers can tell retryable from fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Not allowed: the actor's role, or a rule of the fleet (e.g. the one orchestrator).
    Refused,
    /// Something named does not exist (agent, preset, roster).
    NotFound,
    /// The command cannot work as given or here (bad value, wrong surface, agent not running).
    Invalid,
    /// A passing failure (tmux timed out); the same command may work later.
    Transient,
    /// A fault of the host or of mosaic (tmux missing, a file unwritable).
    Internal,
}

impl ErrorKind {
    /// The kind's name as in JSON (`not-found`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Transient => "transient",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Why the executor did not run a command, or why it failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The actor's role is below what the command needs.
    #[error("refused: `{verb}` needs role {}", needed.as_str())]
    Forbidden {
        /// The verb asked for.
        verb: &'static str,
        /// The role it needs.
        needed: AclRole,
        /// The actor's role.
        role: AclRole,
    },
    /// The verb needs a terminal on the host (attach, logs --follow, install, the wizard).
    #[error("`{verb}` needs a terminal on the host; run `mosaic fleet {verb}` there")]
    NeedsTerminal {
        /// The verb asked for.
        verb: &'static str,
    },
    /// `confirm` with nothing waiting for it (chat confirmations are the bridge's).
    #[error("nothing to confirm")]
    NothingToConfirm,
    /// `confirm` from the CLI, where commands run at once.
    #[error(
        "`confirm` answers a destructive command asked for in chat; from the CLI, commands run at once"
    )]
    ConfirmOutsideChat,
    /// `presets show NAME` for an unknown preset.
    #[error("no preset named {name:?}; presets: {known}")]
    NoPreset {
        /// The name asked for.
        name: String,
        /// The known presets, comma-separated.
        known: String,
    },
    /// A command line that does not parse (or is not a command at all).
    #[error("{0}")]
    BadCommand(#[from] mosaic_grammar::chat::ParseError),
    /// The fleet engine failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The command's thread failed (a bug).
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ExecError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExecError::Forbidden { .. } => ErrorKind::Refused,
            ExecError::NeedsTerminal { .. }
            | ExecError::NothingToConfirm
            | ExecError::ConfirmOutsideChat
            | ExecError::BadCommand(_) => ErrorKind::Invalid,
            ExecError::NoPreset { .. } => ErrorKind::NotFound,
            ExecError::Fleet(e) => fleet_kind(e),
            ExecError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether trying the same command again later may work.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }
}

fn fleet_kind(e: &FleetError) -> ErrorKind {
    use mosaic_tmux::ErrorKind as Tmux;
    match e {
        FleetError::NoRoster { .. } | FleetError::UnknownAgent { .. } => ErrorKind::NotFound,
        FleetError::Roster(_)
        | FleetError::NotRunning { .. }
        | FleetError::BadName { .. }
        | FleetError::UnknownRuntime { .. }
        | FleetError::AgentExists { .. }
        | FleetError::BadEnv { .. }
        | FleetError::BadAnswer(_) => ErrorKind::Invalid,
        FleetError::RemoteHost { .. }
        | FleetError::SecondOrchestrator
        | FleetError::RemoveOrchestrator { .. }
        | FleetError::Refused(_) => ErrorKind::Refused,
        FleetError::Tmux(t) => match t.kind {
            // A dialog waits on a person: try again once it is answered.
            Tmux::Timeout | Tmux::Io | Tmux::DialogShown | Tmux::DialogAppeared => {
                ErrorKind::Transient
            }
            Tmux::NoServer | Tmux::NoSession => ErrorKind::NotFound,
            Tmux::PaneDead => ErrorKind::Invalid,
            Tmux::NotInstalled | Tmux::Failed => ErrorKind::Internal,
        },
        FleetError::Io { .. } => ErrorKind::Internal,
    }
}
