//! What a command did, as data: every surface renders it (see [`crate::render`]), and the JSON
//! surface is the outcome itself (schema `docs/schema/outcome.v1.json`).

use mosaic_fleet::verify::{Check, Level};
use mosaic_fleet::{FleetStatus, StatusReport};
use serde::{Deserialize, Serialize};

/// The result of one fleet command. In JSON, an object tagged by `outcome` (`status`, `ps`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// `status`: the fleet's state and the roster's chat wiring.
    Status {
        /// The summary.
        report: StatusReport,
    },
    /// `ps`: every agent's state (schema `mosaic.fleet.ps/v1`).
    Ps {
        /// The fleet's state.
        status: FleetStatus,
    },
    /// `verify`: every finding; any `fail` fails the command.
    Verify {
        /// The findings, in the order checked.
        checks: Vec<Check>,
    },
    /// `presets`: the presets there are.
    Presets {
        /// Shipped presets, then the user's.
        presets: Vec<PresetInfo>,
        /// The directory for the user's own presets.
        user_dir: String,
        /// Why each invalid user preset was skipped.
        skipped: Vec<String>,
    },
    /// `presets show NAME`: one preset's YAML.
    Preset {
        /// Preset name.
        name: String,
        /// Its YAML text as written.
        text: String,
    },
    /// `start`: what happened to each agent.
    Started {
        /// One entry per agent.
        agents: Vec<AgentOutcome>,
    },
    /// `stop`: what happened to each agent.
    Stopped {
        /// One entry per agent.
        agents: Vec<AgentOutcome>,
        /// Why the last good roster was used (roster.yaml is broken or gone: stopping what runs
        /// always works).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback: Option<String>,
    },
    /// `restart`: the stop, then the start.
    Restarted {
        /// The stop's entries, then the start's.
        agents: Vec<AgentOutcome>,
    },
    /// `send`: the text was typed and submitted once.
    Sent {
        /// The agent typed into.
        agent: String,
        /// Characters pasted (after sanitizing).
        pasted_chars: usize,
        /// How many times Enter was pressed before the agent reacted.
        enter_presses: u32,
    },
    /// `comms`: how agents talk to each other.
    Comms {
        /// The mode in use now: `tmux` or `matrix`.
        mode: String,
        /// Whether this command switched it (false when it only showed it, or it already was).
        changed: bool,
    },
    /// `add`: the agent is in the roster (and, unless `--no-start`, was started).
    Added {
        /// The new agent.
        agent: String,
        /// The roster file written.
        roster: String,
        /// The start's outcome; absent with `--no-start`.
        started: Option<Vec<AgentOutcome>>,
    },
    /// `remove`: the agent was stopped and is no longer in the roster.
    Removed {
        /// The agent removed.
        agent: String,
        /// The roster file written.
        roster: String,
        /// How it was stopped.
        stopped: AgentOutcome,
    },
    /// `init` (non-interactive): what the wizard reported.
    Init {
        /// The wizard's report: the preset, the diff or the written roster, next steps.
        report: String,
    },
    /// `logs`: the agent's pane text.
    Logs {
        /// The agent.
        agent: String,
        /// The pane: all scrollback, or the screen with `--screen`.
        text: String,
    },
    /// `versions`: each harness's versions.
    Versions {
        /// One entry per harness.
        harnesses: Vec<mosaic_fleet::versions::HarnessVersion>,
    },
    /// `update`: what happened to each harness.
    Updated {
        /// One entry per harness, in the order updated (the orchestrator's last).
        harnesses: Vec<mosaic_fleet::update::HarnessUpdate>,
    },
    /// `help`: the grammar's generated help.
    Help {
        /// The help text.
        text: String,
    },
}

/// What happened to one agent in a lifecycle command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentOutcome {
    /// Agent name.
    pub agent: String,
    /// What happened.
    #[serde(flatten)]
    pub result: mosaic_fleet::Outcome,
}

impl AgentOutcome {
    /// Pairs from the engine as outcomes.
    pub fn from_pairs(pairs: Vec<(String, mosaic_fleet::Outcome)>) -> Vec<AgentOutcome> {
        pairs
            .into_iter()
            .map(|(agent, result)| AgentOutcome { agent, result })
            .collect()
    }
}

/// One preset, as `fleet presets` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PresetInfo {
    /// Preset name.
    pub name: String,
    /// Its one-line description.
    pub description: String,
    /// Its agents.
    pub agents: Vec<PresetAgent>,
    /// Where it comes from.
    pub source: PresetOrigin,
}

/// One agent of a preset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PresetAgent {
    /// Agent name.
    pub name: String,
    /// Its runtime.
    pub runtime: String,
}

/// Where a preset comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PresetOrigin {
    /// Built into mosaic.
    Shipped,
    /// The user's own file.
    User {
        /// The file.
        path: String,
    },
}

impl From<&mosaic_roster::Preset> for PresetInfo {
    fn from(p: &mosaic_roster::Preset) -> PresetInfo {
        PresetInfo {
            name: p.name.clone(),
            description: p.spec.description.clone(),
            agents: p
                .spec
                .agents
                .iter()
                .map(|a| PresetAgent {
                    name: a.name.clone(),
                    runtime: a.runtime.clone(),
                })
                .collect(),
            source: match &p.source {
                mosaic_roster::PresetSource::Shipped => PresetOrigin::Shipped,
                mosaic_roster::PresetSource::User(path) => {
                    PresetOrigin::User { path: path.clone() }
                }
            },
        }
    }
}

impl Outcome {
    /// Whether the command failed for the user even though it ran: an agent that exited at start,
    /// or a verify finding that fails. The CLI exits 1 then.
    pub fn is_failure(&self) -> bool {
        let any_failed = |agents: &[AgentOutcome]| agents.iter().any(|a| a.result.is_failure());
        match self {
            Outcome::Started { agents }
            | Outcome::Stopped { agents, .. }
            | Outcome::Restarted { agents } => any_failed(agents),
            Outcome::Added {
                started: Some(agents),
                ..
            } => any_failed(agents),
            Outcome::Removed { stopped, .. } => stopped.result.is_failure(),
            Outcome::Verify { checks } => checks.iter().any(|c| c.level == Level::Fail),
            Outcome::Updated { harnesses } => harnesses.iter().any(|h| h.result.is_failure()),
            _ => false,
        }
    }
}
