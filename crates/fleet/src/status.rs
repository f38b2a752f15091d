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
    /// What a running agent is doing (`starting`, `idle`, `busy`, `waiting-for-input`, `stale`),
    /// when its hooks have said; absent when nothing reported (a harness without hooks, or no
    /// daemon to receive them).
    #[serde(default)]
    pub activity: Option<Activity>,
    /// Where `activity` comes from: `hook` (the harness said so), `process` (mosaic launched it
    /// and it has not reported yet) or `screen`.
    #[serde(default)]
    pub activity_source: Option<Source>,
    /// What the agent waits for, or its last hook event: e.g. the question of a permission
    /// dialog.
    #[serde(default)]
    pub activity_detail: Option<String>,
    /// The version of its harness, as last asked (`fleet versions`, `verify`, `update`, the
    /// daily check; `ps` asks nothing itself); null until then, and for the demo agent.
    #[serde(default)]
    pub harness_version: Option<String>,
}

/// What a running agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Activity {
    /// Launched; its harness has not said it is ready.
    Starting,
    /// Ready for a prompt.
    Idle,
    /// Working on a prompt.
    Busy,
    /// Waiting on a person: a permission or choice dialog. Chat messages wait for it.
    WaitingForInput,
    /// Busy for longer than the bridge's `busy_timeout_secs` with no output: maybe stuck.
    Stale,
}

impl Activity {
    /// The name shown in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Starting => "starting",
            Activity::Idle => "idle",
            Activity::Busy => "busy",
            Activity::WaitingForInput => "waiting-for-input",
            Activity::Stale => "stale",
        }
    }
}

/// Where an agent's activity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// One of its harness's hooks.
    Hook,
    /// Its process: launched by mosaic, nothing reported yet.
    Process,
    /// Its screen.
    Screen,
}

impl Source {
    /// The name shown in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hook => "hook",
            Source::Process => "process",
            Source::Screen => "screen",
        }
    }
}

/// An agent's activity as last observed, kept in its state directory (`activity.json`): written
/// by the daemon when a hook reports (one writer), removed at each launch so it always belongs
/// to the running process, read by `ps` in any process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// What it is doing.
    pub activity: Activity,
    /// Where that comes from.
    pub source: Source,
    /// The hook event that said so.
    #[serde(default)]
    pub event: Option<String>,
    /// What it waits for, when it waits.
    #[serde(default)]
    pub detail: Option<String>,
    /// When (seconds since the Unix epoch).
    pub at: i64,
}

impl Observed {
    fn path(paths: &crate::Paths, agent: &str) -> std::path::PathBuf {
        paths.agent_state(agent).join("activity.json")
    }

    /// The agent's last observed activity, if any since it was launched.
    pub fn read(paths: &crate::Paths, agent: &str) -> Option<Observed> {
        let text = std::fs::read_to_string(Self::path(paths, agent)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Keeps this as the agent's activity.
    pub fn write(&self, paths: &crate::Paths, agent: &str) -> std::io::Result<()> {
        let text = serde_json::to_string(self).expect("an observation serializes");
        crate::paths::write_atomic(&Self::path(paths, agent), &text)
    }

    /// Forgets the agent's activity (it is being launched afresh).
    pub fn clear(paths: &crate::Paths, agent: &str) {
        let _ = std::fs::remove_file(Self::path(paths, agent));
    }

    /// The activity as shown now: a `busy` older than `stale_after` on a pane quiet as long
    /// (`last_output`, seconds since the epoch) is `stale`.
    pub fn shown(&self, now: i64, last_output: Option<i64>, stale_after: i64) -> Activity {
        let quiet_since = last_output.map_or(self.at, |o| o.max(self.at));
        if self.activity == Activity::Busy && now - quiet_since > stale_after {
            Activity::Stale
        } else {
            self.activity
        }
    }
}

/// An agent's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// The harness process is alive in its pane.
    Running,
    /// The harness failed (a non-zero exit status) or was killed; its pane remains until
    /// stop/restart.
    Dead,
    /// The harness exited on its own with status 0 (someone typed `/exit`); its pane remains.
    Exited,
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
            AgentState::Exited => "exited",
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
                activity: Some(Activity::WaitingForInput),
                activity_source: Some(Source::Hook),
                activity_detail: Some("permission to run Bash: ls".into()),
                harness_version: None,
            }],
        };
        let json = serde_json::to_string(&status).unwrap();
        assert!(json.contains("\"state\":\"running\""));
        assert!(json.contains("\"activity\":\"waiting-for-input\""));
        assert!(json.contains("\"activity_source\":\"hook\""));
        assert!(json.contains("\"started_at\":\"2023-11-14T22:13:20Z\""));
        assert_eq!(serde_json::from_str::<FleetStatus>(&json).unwrap(), status);
    }

    #[test]
    fn a_long_busy_on_a_quiet_pane_is_stale() {
        let seen = Observed {
            activity: Activity::Busy,
            source: Source::Hook,
            event: Some("UserPromptSubmit".into()),
            detail: None,
            at: 1_000,
        };
        assert_eq!(seen.shown(1_500, Some(1_000), 600), Activity::Busy);
        assert_eq!(seen.shown(1_700, Some(1_000), 600), Activity::Stale);
        assert_eq!(
            seen.shown(1_700, Some(1_650), 600),
            Activity::Busy,
            "it still prints"
        );
        let idle = Observed {
            activity: Activity::Idle,
            ..seen
        };
        assert_eq!(idle.shown(9_999, None, 600), Activity::Idle);
    }
}
