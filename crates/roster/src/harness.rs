//! Harness manifests: everything mosaic knows about a harness (Claude Code, Codex, pi, the demo
//! agent, or one a user adds), as data. One YAML file per harness: the shipped ones from the
//! repository's `harnesses/` folder are built into the binary; files in the config directory's
//! `harnesses/` folder add harnesses or replace a shipped one of the same name
//! ([`load_harness_dir`]). Everything else asks this table ([`harness`], [`harnesses`]); nothing
//! else names a harness.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The name of the built-in demo agent's harness.
pub const DEMO_RUNTIME: &str = "demo";

/// The shipped manifests, in the order they are offered.
const BUILTIN: &[(&str, &str)] = &[
    ("claude", include_str!("../../../harnesses/claude.yaml")),
    ("codex", include_str!("../../../harnesses/codex.yaml")),
    ("pi", include_str!("../../../harnesses/pi.yaml")),
    (DEMO_RUNTIME, include_str!("../../../harnesses/demo.yaml")),
];

/// The placeholders a launch argument may hold, each replaced by its value:
/// `{mosaic}` the mosaic executable, `{agent}` the agent's name, `{model}` its model,
/// `{instructions}` its instructions, `{instructions_toml}` the same as a TOML basic string,
/// `{mcp_config}` a file holding mosaic's MCP server in the `mcpServers` JSON form,
/// `{mosaic_toml}` the mosaic executable as a TOML string, `{hook_toml}` the shell command that
/// reports a hook (`'MOSAIC' hook`) as a TOML string, `{hooks_file}` the agent's rendered
/// [`HooksFile`].
pub const PLACEHOLDERS: &[&str] = &[
    "mosaic",
    "mosaic_toml",
    "hook_toml",
    "hooks_file",
    "agent",
    "model",
    "instructions",
    "instructions_toml",
    "mcp_config",
    "session",
];

static EMPTY_ARGS: Vec<String> = Vec::new();

/// One harness, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Harness {
    /// Name used in the roster (`runtime: claude`).
    pub name: String,
    /// One line for prompts and tables.
    pub description: String,
    /// How it is started.
    pub launch: Launch,
    /// Environment given to it (the agent's own `env` wins).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How its version is read; none for the built-in demo agent.
    #[serde(default)]
    pub version: Option<VersionProbe>,
    /// When a started harness counts as ready.
    #[serde(default)]
    pub ready: Ready,
    /// How it is asked to exit.
    pub exit: Exit,
    /// Its hook events (as `mosaic hook` receives them) and the state each one means.
    #[serde(default)]
    pub hooks: BTreeMap<String, HookEffect>,
    /// The file `{hooks_file}` names, written for each agent at launch.
    #[serde(default)]
    pub hooks_file: Option<HooksFile>,
    /// What its screen shows in each state: the fallback when no hook reports.
    #[serde(default)]
    pub screen: ScreenPatterns,
    /// How long its pane must be quiet after a paste before Enter is pressed (rich TUIs debounce
    /// pastes: an Enter inside the debounce window becomes a newline).
    #[serde(default)]
    pub paste_settle_ms: u64,
    /// How it goes back to an agent's last conversation when mosaic launches it again.
    #[serde(default)]
    pub resume: Option<Resume>,
    /// Where it comes from: its npm package, or a command that prints its newest version.
    #[serde(default)]
    pub package: Package,
    /// The command that installs version `{version}` (a version, or `latest`). A harness with
    /// an npm package needs none: npm installs it where the installed one is.
    #[serde(default)]
    pub update: Option<Vec<String>>,
}

/// How a harness resumes a conversation: the session its hooks name is kept for the agent, and
/// the next launch adds `args` (with `{session}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// Added last to the command line; `{session}` is the agent's last session.
    pub args: Vec<String>,
    /// The field of a hook's payload that names the session (`session_id`, `session_file`).
    pub from: String,
    /// What a session must look like to be resumed (anything else starts afresh).
    #[serde(default)]
    pub check: SessionCheck,
}

/// What a usable session looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionCheck {
    /// A UUID (Claude Code opens a search picker for anything else).
    Uuid,
    /// An absolute path to a file that exists (pi starts afresh at a missing path silently).
    File,
    /// Any non-empty text without control characters.
    #[default]
    Text,
}

impl SessionCheck {
    /// Whether `session` is usable now (to resume it).
    pub fn accepts(self, session: &str) -> bool {
        self.well_formed(session)
            && (self != SessionCheck::File || std::path::Path::new(session).is_file())
    }

    /// Whether `session` could name a session (to keep it): [`SessionCheck::accepts`] but for
    /// what only holds later. pi names its session file at launch and writes it with its first
    /// answer, and no later hook names it again: the path is kept before the file exists.
    pub fn well_formed(self, session: &str) -> bool {
        if session.is_empty() || session.len() > 4096 || session.chars().any(char::is_control) {
            return false;
        }
        match self {
            SessionCheck::Uuid => {
                let b = session.as_bytes();
                b.len() == 36
                    && b.iter().enumerate().all(|(i, c)| match i {
                        8 | 13 | 18 | 23 => *c == b'-',
                        _ => c.is_ascii_hexdigit(),
                    })
            }
            SessionCheck::File => std::path::Path::new(session).is_absolute(),
            SessionCheck::Text => true,
        }
    }
}

/// Where a harness comes from, for `fleet versions` and `fleet update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Its npm package (`@anthropic-ai/claude-code`): npm says the newest version and installs
    /// updates, globally or in the local prefix the installed one is in.
    #[serde(default)]
    pub npm: Option<String>,
    /// Or a command that prints its newest version.
    #[serde(default)]
    pub latest: Option<Vec<String>>,
}

/// The command line, in parts; each argument may hold [`PLACEHOLDERS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    /// The program and its fixed arguments. A bare program name is looked up on `PATH`.
    pub command: Vec<String>,
    /// Added when the agent has a model (`[--model, "{model}"]`).
    #[serde(default)]
    pub model: Vec<String>,
    /// Added when the agent has instructions.
    #[serde(default)]
    pub instructions: Vec<String>,
    /// Added when the agent is the orchestrator: how it gets mosaic's tools (MCP).
    #[serde(default)]
    pub orchestrator: Vec<String>,
    /// Added for every agent: how mosaic's hooks are installed (`{hooks_file}`, `{hook_toml}`).
    #[serde(default)]
    pub hooks: Vec<String>,
}

/// A file mosaic writes into the agent's state directory at each launch (`{hooks_file}` is its
/// path): the harness's hook configuration, or an extension that reports its events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksFile {
    /// The file's name (no directories).
    pub name: String,
    /// Its text. Only the placeholders `{hook_json}`, `{mosaic_json}` and `{agent_json}` are
    /// replaced (JSON strings, quotes included); every other brace stays as written.
    #[serde(default)]
    pub template: Option<String>,
    /// Or a file built into mosaic, by name: `pi-extension` (deploy/harness/pi/mosaic.ts).
    #[serde(default)]
    pub asset: Option<String>,
}

/// The files built into mosaic that a manifest's `hooks_file.asset` may name.
pub const ASSETS: &[(&str, &str)] = &[(
    "pi-extension",
    include_str!("../../../deploy/harness/pi/mosaic.ts"),
)];

impl HooksFile {
    /// The file's text for an agent: `hook`, `mosaic` and `agent` are the values of the
    /// placeholders (plain; each is written as a JSON string).
    pub fn render(&self, hook: &str, mosaic: &str, agent: &str) -> String {
        if let Some(asset) = &self.asset {
            return ASSETS
                .iter()
                .find(|(name, _)| name == asset)
                .map(|(_, text)| (*text).to_owned())
                .unwrap_or_default();
        }
        let json = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        self.template
            .as_deref()
            .unwrap_or_default()
            .replace("{hook_json}", &json(hook))
            .replace("{mosaic_json}", &json(mosaic))
            .replace("{agent_json}", &json(agent))
    }
}

/// How to ask a harness its version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionProbe {
    /// Arguments to the program (`[--version]`).
    pub args: Vec<String>,
    /// Where it prints the version (`pi --version` prints to stderr).
    #[serde(default)]
    pub stream: Stream,
    /// How long to wait for it, in milliseconds (`pi --version` loads the whole app first).
    #[serde(default = "default_version_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_version_timeout_ms() -> u64 {
    2000
}

/// An output stream of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// When a started harness is ready for input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// Ready once its screen shows this text; without it, once it has drawn anything.
    #[serde(default)]
    pub screen: Option<String>,
}

/// How a harness is asked to exit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exit {
    /// Keys pressed first to clear a draft in its input (tmux key names, e.g. `C-c`), so the
    /// exit text is not appended to it.
    #[serde(default)]
    pub clear: Vec<String>,
    /// How long to wait after `clear` (a second Ctrl-C soon after the first quits some).
    #[serde(default)]
    pub clear_settle_ms: u64,
    /// Typed into its input and submitted (`/exit`).
    pub text: String,
}

/// What a hook event says about the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEffect {
    /// It took a prompt and is working.
    Busy,
    /// It finished its turn (or started) and waits for a prompt.
    Idle,
    /// It waits on a person: a permission or choice dialog. A chat message must not answer it.
    WaitingForInput,
    /// Its session ended (it is exiting): its process decides what comes next.
    Ended,
}

impl HookEffect {
    /// mosaic's own event names, which mean the same for every harness: `busy`, `idle`,
    /// `waiting-for-input`, `ended`.
    pub fn generic(event: &str) -> Option<HookEffect> {
        match event {
            "busy" => Some(HookEffect::Busy),
            "idle" => Some(HookEffect::Idle),
            "waiting-for-input" => Some(HookEffect::WaitingForInput),
            "ended" => Some(HookEffect::Ended),
            _ => None,
        }
    }
}

/// Text the screen shows in each state; the fallback when no hook reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenPatterns {
    /// The prompt the screen ends with when it waits for input, where that is fixed and plain.
    #[serde(default)]
    pub idle_prompt: Option<String>,
    /// Shown while it works.
    #[serde(default)]
    pub busy: Vec<String>,
    /// Shown while it waits on a person.
    #[serde(default)]
    pub waiting_for_input: Vec<String>,
    /// Shown by a permission dialog.
    #[serde(default)]
    pub permission: Vec<String>,
}

impl Harness {
    /// Parses and checks one manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Harness, HarnessError> {
        let h: Harness = serde_yaml_ng::from_str(text).map_err(|source| HarnessError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        let invalid = |why: String| HarnessError::Invalid {
            origin: origin.to_owned(),
            why,
        };
        crate::check_name(&h.name).map_err(|why| invalid(format!("name {:?}: {why}", h.name)))?;
        if h.launch.command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(invalid("launch.command must name a program".into()));
        }
        if h.exit.text.trim().is_empty() {
            return Err(invalid("exit.text must not be empty".into()));
        }
        if let Some(key) = h.exit.clear.iter().find(|k| !is_key_name(k)) {
            return Err(invalid(format!(
                "exit.clear: {key:?} is not a tmux key name (letters, digits and `-`, not first: `C-c`, `Escape`)"
            )));
        }
        let parts = [
            ("launch.command", &h.launch.command),
            ("launch.model", &h.launch.model),
            ("launch.instructions", &h.launch.instructions),
            ("launch.orchestrator", &h.launch.orchestrator),
            ("launch.hooks", &h.launch.hooks),
            (
                "resume.args",
                h.resume.as_ref().map_or(&EMPTY_ARGS, |r| &r.args),
            ),
        ];
        for (field, args) in parts {
            for arg in args {
                if let Err(name) = expand(arg, |_| Some("")) {
                    return Err(invalid(format!(
                        "{field}: unknown placeholder {{{name}}}; known: {}",
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        if let Some(file) = &h.hooks_file {
            if file.name.is_empty() || file.name.contains('/') || file.name.starts_with('.') {
                return Err(invalid(format!(
                    "hooks_file.name {:?} must be a plain file name",
                    file.name
                )));
            }
            match (&file.template, &file.asset) {
                (Some(_), None) => {}
                (None, Some(asset)) if ASSETS.iter().any(|(n, _)| n == asset) => {}
                (None, Some(asset)) => {
                    return Err(invalid(format!(
                        "hooks_file.asset {asset:?} is not built in; known: {}",
                        ASSETS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                _ => {
                    return Err(invalid(
                        "hooks_file needs exactly one of template and asset".into(),
                    ));
                }
            }
        }
        let uses_file = h.launch.hooks.iter().any(|a| a.contains("{hooks_file}"));
        if uses_file != h.hooks_file.is_some() {
            return Err(invalid(
                "launch.hooks uses {hooks_file} exactly when hooks_file is given".into(),
            ));
        }
        if h.version.as_ref().is_some_and(|v| v.args.is_empty()) {
            return Err(invalid("version.args must not be empty".into()));
        }
        if let Some(resume) = &h.resume
            && (resume.from.is_empty() || !resume.args.iter().any(|a| a.contains("{session}")))
        {
            return Err(invalid(
                "resume needs `from` (a hook payload field) and `{session}` in its args".into(),
            ));
        }
        if h.update.as_ref().is_some_and(|u| u.is_empty()) {
            return Err(invalid("update must name a command".into()));
        }
        if h.package.latest.as_ref().is_some_and(|l| l.is_empty()) {
            return Err(invalid("package.latest must name a command".into()));
        }
        if h.package.npm.is_some() && h.package.latest.is_some() {
            return Err(invalid(
                "package: give npm or latest, not both (npm says the newest version itself)".into(),
            ));
        }
        Ok(h)
    }

    /// The program the harness runs: looked up on `PATH` unless it is a path or `{mosaic}`.
    pub fn program(&self) -> &str {
        &self.launch.command[0]
    }

    /// Whether the program is mosaic itself (the built-in demo agent).
    pub fn is_builtin(&self) -> bool {
        self.program() == "{mosaic}"
    }

    /// Whether the orchestrator's arguments need the MCP config file (`{mcp_config}`).
    pub fn wants_mcp_config(&self) -> bool {
        self.launch
            .orchestrator
            .iter()
            .any(|a| a.contains("{mcp_config}"))
    }

    /// What a hook event called `event` means for this harness.
    pub fn hook(&self, event: &str) -> Option<HookEffect> {
        self.hooks.get(event).copied()
    }
}

/// Whether `key` is a plain tmux key name (`C-c`, `Escape`, `F2`): letters, digits and `-`, not
/// starting with `-` (which tmux would read as an option).
pub fn is_key_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('-')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Replaces each `{name}` in `arg` by `value(name)`, in one pass (a value is never expanded
/// again). `Err(name)` for a placeholder `value` does not know.
pub fn expand<'a>(arg: &str, value: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if !after[..close].is_empty()
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_') =>
            {
                let name = &after[..close];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(name.to_owned());
                }
                out.push_str(value(name).ok_or_else(|| name.to_owned())?);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A manifest that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Its file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a valid manifest (YAML, or a field).
    #[error("{origin}: {source}")]
    Parse {
        /// Where it came from.
        origin: String,
        /// What the parser said.
        source: serde_yaml_ng::Error,
    },
    /// It parsed but makes no sense.
    #[error("{origin}: {why}")]
    Invalid {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        why: String,
    },
}

/// Harnesses from the config directory, by name (they replace a shipped one of the same name).
static USER: RwLock<Vec<Arc<Harness>>> = RwLock::new(Vec::new());

fn builtin() -> &'static [Arc<Harness>] {
    static TABLE: std::sync::OnceLock<Vec<Arc<Harness>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        BUILTIN
            .iter()
            .map(|(name, text)| {
                let h = Harness::parse(text, &format!("harnesses/{name}.yaml"))
                    .unwrap_or_else(|e| panic!("a shipped harness manifest is invalid: {e}"));
                Arc::new(h)
            })
            .collect()
    })
}

/// Every known harness: the shipped ones in their order (a user's file of the same name in its
/// place), then the user's others by name.
pub fn harnesses() -> Vec<Arc<Harness>> {
    let user = USER.read().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<Arc<Harness>> = builtin()
        .iter()
        .map(|b| user.iter().find(|u| u.name == b.name).unwrap_or(b).clone())
        .collect();
    let mut others: Vec<Arc<Harness>> = user
        .iter()
        .filter(|u| !builtin().iter().any(|b| b.name == u.name))
        .cloned()
        .collect();
    others.sort_by(|a, b| a.name.cmp(&b.name));
    all.extend(others);
    all
}

/// The harness called `name`.
pub fn harness(name: &str) -> Option<Arc<Harness>> {
    harnesses().into_iter().find(|h| h.name == name)
}

/// All harness names, for error messages.
pub fn harness_names() -> Vec<String> {
    harnesses().iter().map(|h| h.name.clone()).collect()
}

/// What hook event `event` means: mosaic's own names ([`HookEffect::generic`]), else the
/// harness `runtime`'s manifest, else the first harness whose manifest names it.
pub fn hook_effect(runtime: Option<&str>, event: &str) -> Option<HookEffect> {
    HookEffect::generic(event)
        .or_else(|| runtime.and_then(harness).and_then(|h| h.hook(event)))
        .or_else(|| harnesses().iter().find_map(|h| h.hook(event)))
}

/// Loads every `*.yaml` manifest in `dir` (a missing folder is none) and makes them known,
/// replacing what an earlier load of the user's folder gave. A manifest that fails is left out
/// and returned with why; the others load.
pub fn load_harness_dir(dir: &Path) -> Vec<HarnessError> {
    let mut problems = Vec::new();
    let mut loaded: Vec<Arc<Harness>> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            USER.write().unwrap_or_else(|e| e.into_inner()).clear();
            return problems;
        }
        Err(source) => {
            problems.push(HarnessError::Io {
                path: dir.to_owned(),
                source,
            });
            return problems;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    for path in paths {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|source| HarnessError::Io {
                path: path.clone(),
                source,
            })
            .and_then(|text| Harness::parse(&text, &path.display().to_string()));
        match parsed {
            Ok(h) if loaded.iter().any(|l| l.name == h.name) => {
                problems.push(HarnessError::Invalid {
                    origin: path.display().to_string(),
                    why: format!("harness {:?} is defined by another file too", h.name),
                })
            }
            Ok(h) => loaded.push(Arc::new(h)),
            Err(e) => problems.push(e),
        }
    }
    *USER.write().unwrap_or_else(|e| e.into_inner()) = loaded;
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_manifests_load_in_order() {
        assert_eq!(
            builtin()
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>(),
            ["claude", "codex", "pi", "demo"]
        );
        let pi = builtin().iter().find(|h| h.name == "pi").unwrap();
        assert_eq!(pi.version.as_ref().unwrap().stream, Stream::Stderr);
        assert!(pi.version.as_ref().unwrap().timeout_ms > 2000);
        assert_eq!(builtin()[0].version.as_ref().unwrap().timeout_ms, 2000);
        assert!(builtin()[0].wants_mcp_config());
        assert!(builtin()[3].is_builtin());
    }

    #[test]
    fn placeholders_expand_once() {
        let v = |n: &str| match n {
            "agent" => Some("{model}"),
            "model" => Some("m"),
            _ => None,
        };
        assert_eq!(expand("--name={agent}", v).unwrap(), "--name={model}");
        assert_eq!(expand("{model}{model}", v).unwrap(), "mm");
        assert_eq!(expand("a {b c} {", v).unwrap(), "a {b c} {");
        assert_eq!(expand("{nope}", v).unwrap_err(), "nope");
        assert_eq!(expand("{mosaic}", v).unwrap_err(), "mosaic");
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let base = "name: x\ndescription: d\nlaunch: {command: [x]}\nexit: {text: /exit}\n";
        assert!(Harness::parse(base, "x.yaml").is_ok());
        let unknown = base.replace("[x]", "[x, \"{modle}\"]");
        let err = Harness::parse(&unknown, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("unknown placeholder {modle}"), "{err}");
        let err = Harness::parse(&format!("{base}colour: red\n"), "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.yaml: unknown field `colour`"), "{err}");
        let err = Harness::parse(&base.replace("[x]", "[]"), "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("launch.command must name a program"), "{err}");
        let err = Harness::parse(
            &base.replace("exit: {text: /exit}", "exit: {text: /exit, clear: [-R]}"),
            "x.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("exit.clear: \"-R\" is not a tmux key name"),
            "{err}"
        );
        let err = Harness::parse(&base.replace("name: x", "name: \"a b\""), "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("name \"a b\""), "{err}");
    }

    #[test]
    fn a_hooks_file_is_checked() {
        let base = "name: x\ndescription: d\nlaunch: {command: [x], hooks: [--settings, \"{hooks_file}\"]}\nexit: {text: /exit}\n";
        let with = |file: &str| Harness::parse(&format!("{base}hooks_file: {file}\n"), "x.yaml");
        assert!(with("{name: s.json, template: '{\"a\": {hook_json}}'}").is_ok());
        assert!(with("{name: m.ts, asset: pi-extension}").is_ok());
        for (file, why) in [
            ("{name: ../s.json, template: x}", "plain file name"),
            ("{name: s.json}", "exactly one of template and asset"),
            (
                "{name: s.json, template: x, asset: pi-extension}",
                "exactly one",
            ),
            ("{name: m.ts, asset: nope}", "not built in"),
        ] {
            let err = with(file).unwrap_err().to_string();
            assert!(err.contains(why), "{file}: {err}");
        }
        let err = Harness::parse(base, "x.yaml").unwrap_err().to_string();
        assert!(err.contains("exactly when hooks_file is given"), "{err}");
        // Only the listed placeholders are replaced; JSON braces stay.
        let file = HooksFile {
            name: "s.json".into(),
            template: Some(r#"{"c": {hook_json}, "m": {mosaic_json}, "keep": "{x}"}"#.into()),
            asset: None,
        };
        assert_eq!(
            file.render("'/a b/mosaic' hook", "/a b/mosaic", "w1"),
            r#"{"c": "'/a b/mosaic' hook", "m": "/a b/mosaic", "keep": "{x}"}"#
        );
    }

    #[test]
    fn hook_events_mean_what_the_agents_harness_says() {
        assert_eq!(hook_effect(Some("claude"), "busy"), Some(HookEffect::Busy));
        assert_eq!(
            hook_effect(Some("claude"), "SessionStart"),
            Some(HookEffect::Idle)
        );
        // Codex sends SessionStart with the first prompt.
        assert_eq!(
            hook_effect(Some("codex"), "SessionStart"),
            Some(HookEffect::Busy)
        );
        assert_eq!(
            hook_effect(Some("claude"), "PermissionRequest"),
            Some(HookEffect::WaitingForInput)
        );
        assert_eq!(
            hook_effect(Some("pi"), "dialog_open"),
            Some(HookEffect::WaitingForInput)
        );
        assert_eq!(
            hook_effect(Some("pi"), "session_end"),
            Some(HookEffect::Ended)
        );
        assert_eq!(
            hook_effect(None, "agent-turn-complete"),
            Some(HookEffect::Idle)
        );
        assert_eq!(hook_effect(Some("claude"), "Sneeze"), None);
    }
}
