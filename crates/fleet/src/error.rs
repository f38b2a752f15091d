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
    /// The agent runs on another host, which this version cannot drive.
    #[error(
        "agent {name} runs on host {host:?}; this version of mosaic runs agents on the local host only"
    )]
    RemoteHost {
        /// Agent name.
        name: String,
        /// Its host.
        host: String,
    },
    /// `add` was given an orchestrator: a fleet has exactly one.
    #[error("the fleet already has its one orchestrator; add workers only")]
    SecondOrchestrator,
    /// `remove` was asked to remove the orchestrator.
    #[error(
        "{name} is the orchestrator; a fleet always has exactly one (re-run `mosaic fleet init` to change it)"
    )]
    RemoveOrchestrator {
        /// The orchestrator's name.
        name: String,
    },
    /// The new agent's name is not a valid name.
    #[error("agent name {name:?} {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The runtime is not one mosaic knows.
    #[error("unknown runtime {runtime:?}; expected one of {known}")]
    UnknownRuntime {
        /// The runtime given.
        runtime: String,
        /// The known runtimes, comma-separated.
        known: String,
    },
    /// An agent of that name is already in the roster.
    #[error("an agent named {name} already exists")]
    AgentExists {
        /// The name.
        name: String,
    },
    /// An `--env` entry is not `KEY=VALUE`.
    #[error("--env {entry:?}: expected KEY=VALUE")]
    BadEnv {
        /// The entry as given.
        entry: String,
    },
    /// The operation is not allowed.
    #[error("{0}")]
    Refused(String),
    /// An answer to `init` is missing or wrong (a bad flag, a value of the wrong shape).
    #[error("{0}")]
    BadAnswer(String),
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
