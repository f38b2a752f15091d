//! The machine-readable fleet state: the `mosaic fleet ps --json` schema.

use serde::{Deserialize, Serialize};

/// Identifies the JSON document and its version; bumped on any incompatible change.
pub const PS_SCHEMA: &str = "mosaic.fleet.ps/v1";

/// The whole fleet at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetStatus {
    /// Always `mosaic.fleet.ps/v1` ([`PS_SCHEMA`]).
    pub schema: String,
    /// Fleet name.
    pub fleet: String,
    /// The tmux socket name (`tmux -L`).
    pub socket: String,
    /// When this snapshot was taken (RFC 3339, UTC).
    pub generated_at: String,
    /// One entry per roster agent, then any session of this fleet the roster does not know.
    pub agents: Vec<AgentStatus>,
}

/// One agent's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    /// Agent name.
    pub name: String,
    /// `orchestrator` or `worker` (`unknown` for orphans).
    pub role: String,
    /// Runtime name (`unknown` for orphans).
    pub runtime: String,
    /// Model, when the roster sets one.
    pub model: Option<String>,
    /// Host the agent runs on (`local` is this machine).
    pub host: String,
    /// tmux session name.
    pub session: String,
    /// Process id of the harness, when a pane exists.
    pub pid: Option<u32>,
    /// Lifecycle state.
    pub state: AgentState,
    /// Exit status, when the harness has exited.
    pub exit_status: Option<i32>,
    /// Signal number, when the harness was killed by a signal.
    pub exit_signal: Option<i32>,
    /// When the session started (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// Last output or input in the pane (RFC 3339, UTC).
    pub last_activity: Option<String>,
    /// Whether a person is attached to the session.
    pub attached: bool,
}

/// An agent's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// The harness process is alive in its pane.
    Running,
    /// The harness exited or was killed; its pane remains until stop/restart.
    Dead,
    /// No session exists.
    Stopped,
    /// A session of this fleet that the roster does not list.
    Orphan,
}

impl AgentState {
    /// The state's name as shown in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Running => "running",
            AgentState::Dead => "dead",
            AgentState::Stopped => "stopped",
            AgentState::Orphan => "orphan",
        }
    }
}

/// `fleet status`: the fleet's state with the roster's settings a summary shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusReport {
    /// The state of every agent (as `ps`).
    pub fleet: FleetStatus,
    /// How agents talk to each other (`tmux` or `matrix`).
    pub comms: String,
    /// The chat connectors the roster wires the orchestrator to.
    pub chat: Vec<ChatLink>,
}

/// One chat connector of the roster, as `fleet status` summarizes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChatLink {
    /// Connector type (`discord`, `telegram`, …).
    pub connector: String,
    /// Its instance id (the ACL's key; the type unless the roster names another).
    pub id: String,
    /// How many rooms it bridges.
    pub rooms: usize,
}

impl StatusReport {
    /// The summary of `fleet` under `roster`.
    pub fn new(roster: &mosaic_roster::Roster, fleet: FleetStatus) -> StatusReport {
        StatusReport {
            fleet,
            comms: roster.comms.as_str().to_owned(),
            chat: roster
                .connectors
                .iter()
                .map(|c| ChatLink {
                    connector: c.kind.clone(),
                    id: c.id().to_owned(),
                    rooms: c.rooms().len(),
                })
                .collect(),
        }
    }
}

/// Formats seconds since the epoch as RFC 3339 UTC; `None` for zero.
pub(crate) fn timestamp(secs: i64) -> Option<String> {
    (secs > 0)
        .then(|| chrono::DateTime::from_timestamp(secs, 0))
        .flatten()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_json() {
        let status = FleetStatus {
            schema: PS_SCHEMA.into(),
            fleet: "f".into(),
            socket: "mosaic".into(),
            generated_at: "2026-01-01T00:00:00Z".into(),
            agents: vec![AgentStatus {
                name: "mos".into(),
                role: "orchestrator".into(),
                runtime: "demo".into(),
                model: None,
                host: "local".into(),
                session: "mos".into(),
                pid: Some(42),
                state: AgentState::Running,
                exit_status: None,
                exit_signal: None,
                started_at: timestamp(1_700_000_000),
                last_activity: None,
                attached: false,
            }],
        };
        let json = serde_json::to_string(&status).unwrap();
        assert!(json.contains("\"state\":\"running\""));
        assert!(json.contains("\"started_at\":\"2023-11-14T22:13:20Z\""));
        assert_eq!(serde_json::from_str::<FleetStatus>(&json).unwrap(), status);
    }
}
