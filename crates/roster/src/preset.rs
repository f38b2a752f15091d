//! Presets: recommended agent sets for a kind of work, shipped in the binary or added by the user.

use crate::connector::ConnectorEntry;
use crate::model::{AclEntry, Agent, CommsMode, Role, Roster, SCHEMA_VERSION, TmuxSettings};
use crate::validate::{RosterError, deserialize};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The presets that ship with mosaic, as `(name, YAML text)`.
pub const SHIPPED: &[(&str, &str)] = &[
    ("general", include_str!("../../../presets/general.yaml")),
    ("coding", include_str!("../../../presets/coding.yaml")),
    ("research", include_str!("../../../presets/research.yaml")),
    ("hybrid", include_str!("../../../presets/hybrid.yaml")),
    (
        "mos-discord",
        include_str!("../../../presets/mos-discord.yaml"),
    ),
];

/// Where a preset came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresetSource {
    /// Built into the binary.
    Shipped,
    /// A file in the user's presets directory.
    User(String),
}

/// A preset file: a description and the agents it recommends (exactly one orchestrator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetSpec {
    /// Schema version; same as the roster's.
    pub version: u32,
    /// One line shown in the wizard.
    pub description: String,
    /// The recommended agents.
    pub agents: Vec<Agent>,
    /// Chat connectors the preset wires the orchestrator to (profiles such as `mos-discord`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<ConnectorEntry>,
}

/// A named preset.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// Name (the file stem).
    pub name: String,
    /// Where it came from.
    pub source: PresetSource,
    /// The YAML text as written.
    pub text: String,
    /// The parsed content.
    pub spec: PresetSpec,
}

/// The answers that turn a preset into a roster.
#[derive(Debug, Clone, PartialEq)]
pub struct InitAnswers {
    /// Fleet name.
    pub fleet: String,
    /// Runtime for the orchestrator; the preset's choice when `None`.
    pub orchestrator_runtime: Option<String>,
    /// Runtime for every worker; the preset's choice when `None`.
    pub worker_runtime: Option<String>,
    /// Comms mode.
    pub comms: CommsMode,
    /// tmux socket name.
    pub socket: String,
    /// Chat connectors for the orchestrator; the preset's own when `None` (`Some` of nothing:
    /// none at all).
    pub connectors: Option<Vec<ConnectorEntry>>,
    /// Chat permissions (the admin given at init).
    pub acl: Vec<AclEntry>,
}

impl Preset {
    /// Parses and validates preset text; `source_name` prefixes error positions.
    pub fn parse(
        name: &str,
        text: &str,
        source: PresetSource,
        source_name: &str,
    ) -> Result<Preset, RosterError> {
        let spec: PresetSpec = deserialize(text, source_name)?;
        // A preset obeys the roster's agent invariants; check them through a stand-in roster.
        let probe = Roster {
            version: spec.version,
            fleet: "preset".into(),
            comms: CommsMode::Tmux,
            tmux: TmuxSettings::default(),
            agents: spec.agents.clone(),
            connectors: spec.connectors.clone(),
            acl: Vec::new(),
            bridge: Default::default(),
            update: Default::default(),
        };
        probe.checked(text, source_name)?;
        Ok(Preset {
            name: name.to_owned(),
            source,
            text: text.to_owned(),
            spec,
        })
    }

    /// The roster this preset gives for `answers`.
    pub fn instantiate(&self, answers: &InitAnswers) -> Roster {
        let agents = self
            .spec
            .agents
            .iter()
            .cloned()
            .map(|mut agent| {
                let chosen = match agent.role {
                    Role::Orchestrator => &answers.orchestrator_runtime,
                    Role::Worker => &answers.worker_runtime,
                };
                if let Some(runtime) = chosen {
                    agent.runtime = runtime.clone();
                }
                agent
            })
            .collect();
        Roster {
            version: SCHEMA_VERSION,
            fleet: answers.fleet.clone(),
            comms: answers.comms,
            tmux: TmuxSettings {
                socket: answers.socket.clone(),
            },
            agents,
            connectors: answers
                .connectors
                .clone()
                .unwrap_or_else(|| self.spec.connectors.clone()),
            acl: answers.acl.clone(),
            bridge: Default::default(),
            update: Default::default(),
        }
    }
}

/// Every preset: shipped ones, then the user's `*.yaml` files in `user_dir` (a user preset with a
/// shipped name replaces it). Invalid user presets are returned as errors beside the valid ones.
pub fn all_presets(user_dir: Option<&Path>) -> (Vec<Preset>, Vec<RosterError>) {
    // A shipped preset can only fail where this build lacks what it needs (a profile whose
    // connector type is not built in); it is skipped and reported, like a bad user preset.
    let mut presets = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in SHIPPED {
        match Preset::parse(
            name,
            text,
            PresetSource::Shipped,
            &format!("presets/{name}.yaml"),
        ) {
            Ok(p) => presets.push(p),
            Err(e) => errors.push(e),
        }
    }
    let Some(dir) = user_dir else {
        return (presets, errors);
    };
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => return (presets, errors),
    };
    files.sort();
    for path in files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
    {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let shown = path.display().to_string();
        let loaded = std::fs::read_to_string(&path)
            .map_err(|source| RosterError::Io {
                path: shown.clone(),
                source,
            })
            .and_then(|text| {
                Preset::parse(&name, &text, PresetSource::User(shown.clone()), &shown)
            });
        match loaded {
            Ok(preset) => match presets.iter_mut().find(|p| p.name == name) {
                Some(existing) => *existing = preset,
                None => presets.push(preset),
            },
            Err(e) => errors.push(e),
        }
    }
    (presets, errors)
}
