//! The connector registry: every chat platform this build of mosaic has, each described once by
//! its crate.
//!
//! A connector crate defines its typed settings (serde, `deny_unknown_fields`) and implements
//! [`ConnectorConfig`] for them: the type name, the rooms and secrets the settings name, their
//! checks, the wizard's questions, the verify checks of its secrets and the `build` that returns
//! the running [`Connector`]. It exports `pub static TYPE: Typed<Settings> = Typed::new();` and
//! the binary registers it with one line ([`register`]). The roster, `mosaic fleet init`,
//! `mosaic fleet verify`, the ACL and the daemon then all pick it up from here; nothing else
//! names a platform.

use crate::{Connector, ConnectorError};
use mosaic_roster::{
    ConnectorEntry, ConnectorSchema, SecretRef, SettingProblem, check_secret_ref,
    register_connector_schema,
};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

/// How serious a verify finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Worth knowing; does not fail verify.
    Warn,
    /// Must be fixed; verify exits non-zero.
    Fail,
}

/// One verify finding.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Check {
    /// How serious.
    pub level: Level,
    /// What was checked.
    pub subject: String,
    /// What was found.
    pub detail: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Check {
    /// A finding.
    pub fn new(
        level: Level,
        subject: impl Into<String>,
        detail: impl Into<String>,
        hint: Option<String>,
    ) -> Check {
        Check {
            level,
            subject: subject.into(),
            detail: detail.into(),
            hint,
        }
    }
}

/// One question of `mosaic fleet init` about a connector's settings, as data the wizard renders
/// (a flag, a terminal prompt, a default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The settings field the answer fills.
    pub field: &'static str,
    /// The `mosaic fleet init` flag, without `--`. Types share a flag when it means the same
    /// thing (`target`, `secret-env`).
    pub flag: &'static str,
    /// The flag's value name (`ID`, `URL`, `VAR`).
    pub value_name: &'static str,
    /// The question as asked in a terminal.
    pub prompt: &'static str,
    /// What kind of answer it takes.
    pub kind: QuestionKind,
}

/// The kinds of answer a [`Question`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuestionKind {
    /// One value, with an optional default.
    Text {
        /// The default answer.
        default: Option<&'static str>,
    },
    /// One or more values (comma-separated in a terminal; the flag repeats).
    List,
    /// Where a secret is: the name of an environment variable (the default is offered), or a
    /// file with `file_flag`. The secret itself is never asked for.
    Secret {
        /// The variable offered by default.
        default_env: &'static str,
        /// The flag naming a file instead, without `--`.
        file_flag: Option<&'static str>,
    },
}

impl Question {
    /// `--flag VALUE` as shown in errors and help.
    pub fn usage(&self) -> String {
        match self.kind {
            QuestionKind::List => {
                format!("--{} {} (repeat for several)", self.flag, self.value_name)
            }
            _ => format!("--{} {}", self.flag, self.value_name),
        }
    }
}

/// A chat platform's typed settings: everything mosaic needs to know about the platform.
pub trait ConnectorConfig: DeserializeOwned + Send + Sync + 'static {
    /// The type name written as `type:` in the roster.
    const TYPE: &'static str;
    /// One line for the wizard's menu.
    const SUMMARY: &'static str;

    /// The wizard's questions, in the order asked.
    fn questions() -> Vec<Question>;

    /// The field holding the rooms, and the rooms.
    fn rooms(&self) -> (&'static str, Vec<String>);

    /// Each secret with the field naming it.
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)>;

    /// Checks beyond the types (id formats …); paths relative to the entry.
    fn validate(&self) -> Vec<SettingProblem> {
        Vec::new()
    }

    /// Checks the shape of a platform user id (an ACL entry, `--admin`); `Err` says what an id
    /// of this platform looks like and where to find one.
    fn check_user_id(_user: &str) -> Result<(), String> {
        Ok(())
    }

    /// Checks a secret's value (its shape, without contacting the platform); `Err` is what is
    /// wrong and how to fix it.
    fn check_secret(&self, _field: &str, _value: &str) -> Result<(), (String, String)> {
        Ok(())
    }

    /// The running connector (secrets are read here, by the daemon only).
    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError>;
}

/// What a connector's `build` gets besides its settings.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// The instance id (the roster entry's `id`).
    pub id: &'a str,
    /// The fleet's state directory; a connector keeps what it must remember across restarts
    /// (a session, a crypto store) in `connectors/ID/` under it, mode 0700.
    pub state_dir: &'a std::path::Path,
    /// The users the roster's ACL names for this connector when it is built (a platform that
    /// joins rooms on invitation joins only theirs; every message is still checked against the
    /// live ACL by the bridge).
    pub users: &'a [String],
}

impl BuildContext<'_> {
    /// This connector instance's own directory under the state directory (not created).
    pub fn own_dir(&self) -> std::path::PathBuf {
        self.state_dir.join("connectors").join(self.id)
    }
}

/// A registered connector type: the roster's schema plus the wizard, verify and build.
pub trait ConnectorType: ConnectorSchema {
    /// One line for the wizard's menu.
    fn summary(&self) -> &'static str;

    /// The wizard's questions.
    fn questions(&self) -> Vec<Question>;

    /// Verify findings for one entry (secrets present and well-formed); `index` is its place in
    /// the roster.
    fn verify(&self, index: usize, entry: &ConnectorEntry) -> Vec<Check>;

    /// The running connector for `entry`, keeping its state under `state_dir`; `users` are the
    /// ACL's users of this connector.
    fn build(
        &self,
        entry: &ConnectorEntry,
        state_dir: &std::path::Path,
        users: &[String],
    ) -> Result<Arc<dyn Connector>, ConnectorError>;
}

/// The [`ConnectorType`] of settings `C`.
pub struct Typed<C>(PhantomData<fn() -> C>);

impl<C> Typed<C> {
    /// The type (a `static` in the connector's crate).
    pub const fn new() -> Typed<C> {
        Typed(PhantomData)
    }
}

impl<C> Default for Typed<C> {
    fn default() -> Self {
        Typed::new()
    }
}

fn settings<C: ConnectorConfig>(settings: &serde_yaml_ng::Mapping) -> Result<C, SettingProblem> {
    let value = serde_yaml_ng::Value::Mapping(settings.clone());
    serde_path_to_error::deserialize::<_, C>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        SettingProblem::new(path, e.into_inner().to_string())
    })
}

impl<C: ConnectorConfig> ConnectorSchema for Typed<C> {
    fn type_name(&self) -> &'static str {
        C::TYPE
    }

    fn check(&self, raw: &serde_yaml_ng::Mapping) -> Vec<SettingProblem> {
        let config = match settings::<C>(raw) {
            Ok(c) => c,
            Err(p) => return vec![p],
        };
        let mut out = Vec::new();
        let (field, rooms) = config.rooms();
        if rooms.is_empty() {
            out.push(SettingProblem::new(
                field,
                format!(
                    "a {} connector needs at least one entry in {field}",
                    C::TYPE
                ),
            ));
        }
        for (j, room) in rooms.iter().enumerate() {
            if room.trim().is_empty() {
                out.push(SettingProblem::new(
                    format!("{field}[{j}]"),
                    "an empty room id bridges nothing; name the room",
                ));
            }
        }
        out.extend(config.validate());
        for (field, secret) in config.secrets() {
            out.extend(check_secret_ref(field, secret));
        }
        out
    }

    fn rooms(&self, raw: &serde_yaml_ng::Mapping) -> Result<Vec<String>, SettingProblem> {
        Ok(settings::<C>(raw)?.rooms().1)
    }

    fn secrets(
        &self,
        raw: &serde_yaml_ng::Mapping,
    ) -> Result<Vec<(String, SecretRef)>, SettingProblem> {
        Ok(settings::<C>(raw)?
            .secrets()
            .into_iter()
            .map(|(f, s)| (f.to_owned(), s.clone()))
            .collect())
    }

    fn check_user(&self, user: &str) -> Result<(), String> {
        C::check_user_id(user)
    }
}

impl<C: ConnectorConfig> ConnectorType for Typed<C> {
    fn summary(&self) -> &'static str {
        C::SUMMARY
    }

    fn questions(&self) -> Vec<Question> {
        C::questions()
    }

    fn verify(&self, index: usize, entry: &ConnectorEntry) -> Vec<Check> {
        let subject = |field: &str| format!("connector {index} ({}) {field}", entry.id());
        let config = match settings::<C>(&entry.settings) {
            Ok(c) => c,
            Err(p) => {
                return vec![Check::new(
                    Level::Fail,
                    subject(&p.path),
                    p.message,
                    Some("fix roster.yaml (see `mosaic fleet verify` above)".into()),
                )];
            }
        };
        let mut out = Vec::new();
        for (field, secret) in config.secrets() {
            let check = match secret.resolve() {
                Ok(value) => match config.check_secret(field, &value) {
                    Ok(()) => Check::new(
                        Level::Ok,
                        subject(field),
                        format!("{} is set", secret.describe()),
                        None,
                    ),
                    Err((what, hint)) => Check::new(
                        Level::Fail,
                        subject(field),
                        format!("{} {what}", secret.describe()),
                        Some(hint),
                    ),
                },
                Err(why) => Check::new(
                    Level::Fail,
                    subject(field),
                    why.to_string(),
                    Some(format!(
                        "export the variable or create the file; see docs/connectors/{}.md",
                        C::TYPE
                    )),
                ),
            };
            out.push(check);
        }
        out
    }

    fn build(
        &self,
        entry: &ConnectorEntry,
        state_dir: &std::path::Path,
        users: &[String],
    ) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config = settings::<C>(&entry.settings).map_err(|p| {
            ConnectorError::new(
                crate::ErrorKind::Fatal,
                format!("{}: {}: {}", entry.id(), p.path, p.message),
            )
        })?;
        config.build(&BuildContext {
            id: entry.id(),
            state_dir,
            users,
        })
    }
}

static TYPES: RwLock<Vec<&'static dyn ConnectorType>> = RwLock::new(Vec::new());

/// Registers a connector type (the one line a new connector adds to the binary). Registering a
/// name again replaces the earlier registration.
pub fn register(connector_type: &'static dyn ConnectorType) {
    register_connector_schema(connector_type);
    let mut types = TYPES.write().unwrap_or_else(|e| e.into_inner());
    types.retain(|t| t.type_name() != connector_type.type_name());
    types.push(connector_type);
}

/// The registered type called `name`.
pub fn connector_type(name: &str) -> Option<&'static dyn ConnectorType> {
    TYPES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|t| t.type_name() == name)
        .copied()
}

/// Every registered type, in registration order.
pub fn connector_types() -> Vec<&'static dyn ConnectorType> {
    TYPES.read().unwrap_or_else(|e| e.into_inner()).clone()
}
