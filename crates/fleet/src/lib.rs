//! The mosaic fleet engine: where things live, how each harness is launched, the lifecycle of
//! the roster's agents over one private tmux server, the `ps` JSON schema, `verify`, and re-init.

mod engine;
mod error;
pub mod harness;
pub mod init;
mod live;
pub mod paths;
pub mod render;
pub mod status;
pub mod supervisor;
pub mod update;
pub mod verify;
pub mod versions;
pub mod wizard;

pub use engine::{
    Fleet, Outcome, PaneWriter, create_private_dir, leading_comments, pane_writer, worker_from,
};

impl Outcome {
    /// Whether this outcome means the operation failed for that agent.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::ExitedAtStart { .. })
    }
}
pub use error::FleetError;
pub use live::{LiveRoster, Reload};
pub use paths::Paths;
pub use status::{
    Activity, AgentState, AgentStatus, ChatLink, FleetStatus, Observed, PS_SCHEMA, Source,
    StatusReport,
};
pub use supervisor::{Change, Supervisor};
