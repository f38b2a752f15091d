//! The mosaic roster: what a fleet is (`roster.yaml`), the presets that seed it, validation that
//! reports every problem with its file:line:column and field path, and the merge that lets
//! `mosaic fleet init` run again without losing the user's own changes.

mod connector;
pub mod harness;
pub mod merge;
mod model;
mod preset;
pub mod redact;
mod spans;
mod validate;

pub use connector::{
    ConnectorEntry, ConnectorSchema, SettingProblem, check_secret_ref, connector_schema,
    connector_type_names, is_variable_name, register_connector_schema,
};
pub use harness::{DEMO_RUNTIME, Harness, harness, harness_names, harnesses, load_harness_dir};
pub use model::{
    AclEntry, AclRole, Agent, BridgeSettings, CommsMode, DEFAULT_API_LISTEN, DEFAULT_SOCKET,
    LOCAL_HOST, RestartPolicy, Role, Roster, SCHEMA_VERSION, SecretError, SecretRef, TmuxSettings,
};
pub use preset::{InitAnswers, Preset, PresetSource, PresetSpec, SHIPPED, all_presets};
pub use spans::{Position, SpanIndex};
pub use validate::{Problem, Problems, RESERVED_CONNECTOR_ID, RosterError, check_name};

impl Roster {
    /// The roster as YAML text, as `mosaic` writes it.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a roster always serializes")
    }
}
