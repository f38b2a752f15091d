//! Fleet errors.

use mosaic_roster::RosterError;
use mosaic_tmux::TmuxError;

/// Why a fleet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No roster yet.
    #[error("no roster at {path}; create one with `mosaic fleet init`")]
    NoRoster {
        /// Where it was looked for.
        path: String,
    },
    /// The roster is unreadable or invalid.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// tmux failed.
    #[error("tmux: {0}")]
    Tmux(#[from] TmuxError),
    /// The named agent is not in the roster.
    #[error("no agent named {name:?} in the roster (agents: {known})")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The roster's agent names, comma-separated.
        known: String,
    },
    /// The operation needs a running agent.
    #[error("agent {name} is {state}; start it with `mosaic fleet start {name}`")]
    NotRunning {
        /// Agent name.
        name: String,
        /// Its state.
        state: &'static str,
    },
    /// The operation is not allowed.
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl FleetError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        FleetError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
