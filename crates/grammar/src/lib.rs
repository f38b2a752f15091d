//! The `fleet` command tree, defined once: `mosaic fleet …` parses it from argv, and the same
//! types (with their generated help) serve every other surface that speaks the fleet grammar.

pub mod chat;
pub mod native;

use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Every `fleet` verb. In JSON (the API's typed commands) a command is an object tagged by its
/// verb, e.g. `{"verb": "add", "name": "w", "runtime": "demo"}`; omitted options take the same
/// defaults as on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case", deny_unknown_fields)]
pub enum FleetCommand {
    /// Create or re-create the roster with an interactive wizard (no AI involved).
    Init(Box<InitArgs>),
    /// Prepare this host: config and state directories, a tmux check, shell completions.
    Install(InstallArgs),
    /// Start agents that are not running (all when none are named).
    Start(StartArgs),
    /// Stop agents gracefully, killing them after a timeout (all when none are named).
    Stop(StopArgs),
    /// One-screen summary of the fleet.
    Status {},
    /// Table of every agent; `--json` for the versioned machine-readable form.
    Ps(PsArgs),
    /// Check that this host can run the roster and that the sessions match it.
    Verify(VerifyArgs),
    /// Each harness's installed and newest version, where it came from, and who runs it.
    Versions(VersionsArgs),
    /// Update harnesses: wait for their agents' turns to end, install, start them again on
    /// their conversations; the previous version comes back if the new one fails.
    Update(UpdateArgs),
    /// List the presets, or show one.
    Presets(PresetsArgs),
    /// Add a worker to the roster and start it.
    Add(AddArgs),
    /// Stop an agent and remove it from the roster.
    Remove(RemoveArgs),
    /// Stop and start an agent.
    Restart(RestartArgs),
    /// Type text into an agent and submit it (exactly once).
    Send(SendArgs),
    /// Show how agents talk to each other, or switch it live: `tmux` (typed into panes) or
    /// `matrix` (also posted in each agent's own Matrix room).
    Comms(CommsArgs),
    /// Attach this terminal to an agent's session (detach with C-b d).
    Attach(AgentArg),
    /// Print an agent's pane (all scrollback), or follow its output live.
    Logs(LogsArgs),
    /// Confirm a destructive command asked for in chat (the code comes with the request).
    #[command(hide = true)]
    Confirm {
        /// The confirmation code.
        code: String,
    },
}

impl FleetCommand {
    /// The verb as typed (`status`, `add`, ...), for audit logs and ACL decisions.
    pub fn verb(&self) -> &'static str {
        match self {
            FleetCommand::Init(_) => "init",
            FleetCommand::Install(_) => "install",
            FleetCommand::Start(_) => "start",
            FleetCommand::Stop(_) => "stop",
            FleetCommand::Status {} => "status",
            FleetCommand::Ps(_) => "ps",
            FleetCommand::Verify(_) => "verify",
            FleetCommand::Versions(_) => "versions",
            FleetCommand::Update(_) => "update",
            FleetCommand::Presets(_) => "presets",
            FleetCommand::Add(_) => "add",
            FleetCommand::Remove(_) => "remove",
            FleetCommand::Restart(_) => "restart",
            FleetCommand::Send(_) => "send",
            FleetCommand::Comms(_) => "comms",
            FleetCommand::Attach(_) => "attach",
            FleetCommand::Logs(_) => "logs",
            FleetCommand::Confirm { .. } => "confirm",
        }
    }

    /// The command as a chat line, `/fleet VERB …`, quoted like a shell would (the text of
    /// `send` as is: chat keeps it literally).
    pub fn to_line(&self) -> String {
        match self {
            FleetCommand::Send(a) => format!(
                "/fleet send {} {}",
                shell_words::quote(&a.name),
                a.text.join(" ")
            ),
            _ => format!("/fleet {}", shell_words::join(self.to_args())),
        }
    }

    /// The words that parse back to this very command, verb first: how a typed command is shown
    /// (audit logs, `/fleet …` lines). Options at their defaults are left out.
    pub fn to_args(&self) -> Vec<String> {
        let mut w = Words(vec![self.verb().to_owned()]);
        match self {
            FleetCommand::Init(args) => {
                let InitArgs {
                    preset_name,
                    preset,
                    profile,
                    admins,
                    name,
                    orchestrator_runtime,
                    worker_runtime,
                    comms,
                    socket,
                    connector,
                    connector_answers,
                    yes,
                    dry_run,
                } = &**args;
                w.opt(None, preset_name.as_deref());
                w.opt(Some("--preset"), preset.as_deref());
                w.opt(Some("--profile"), profile.as_deref());
                w.many("--admin", admins);
                w.opt(Some("--name"), name.as_deref());
                w.opt(
                    Some("--orchestrator-runtime"),
                    orchestrator_runtime.as_deref(),
                );
                w.opt(Some("--worker-runtime"), worker_runtime.as_deref());
                w.value(comms.as_ref().map(|c| ("--comms", c.to_possible_value())));
                w.opt(Some("--socket"), socket.as_deref());
                w.opt(Some("--connector"), connector.as_deref());
                // The connector's own flags (the `mosaic` binary's; never secret values).
                for (flag, values) in connector_answers {
                    w.many(&format!("--{flag}"), values);
                }
                w.flag("--yes", *yes);
                w.flag("--dry-run", *dry_run);
            }
            FleetCommand::Install(a) => {
                let dir = a.completions_dir.as_ref().map(|d| d.display().to_string());
                w.opt(Some("--completions-dir"), dir.as_deref());
            }
            FleetCommand::Start(a) => {
                w.0.extend(a.agents.iter().cloned());
                w.number("--wait", a.wait, START_WAIT_SECS);
            }
            FleetCommand::Stop(a) => {
                w.0.extend(a.agents.iter().cloned());
                w.number("--timeout", a.timeout, STOP_TIMEOUT_SECS);
            }
            FleetCommand::Status {} => {}
            FleetCommand::Ps(a) => w.flag("--json", a.json),
            FleetCommand::Verify(a) => w.flag("--json", a.json),
            FleetCommand::Versions(a) => {
                w.0.extend(a.harnesses.iter().cloned());
                w.flag("--json", a.json);
            }
            FleetCommand::Update(a) => {
                w.0.extend(a.harnesses.iter().cloned());
                w.opt(Some("--to"), a.to.as_deref());
                w.number("--drain", a.drain, UPDATE_DRAIN_SECS);
                w.flag("--force", a.force);
                w.flag("--dry-run", a.dry_run);
            }
            FleetCommand::Presets(a) => match &a.action {
                None => {}
                Some(PresetsAction::Show { name }) => w.0.extend(["show".into(), name.clone()]),
            },
            FleetCommand::Add(a) => {
                w.0.push(a.name.clone());
                w.opt(Some("--runtime"), Some(&a.runtime));
                w.opt(Some("--model"), a.model.as_deref());
                w.opt(Some("--workdir"), a.workdir.as_deref());
                w.opt(Some("--instructions"), a.instructions.as_deref());
                w.many("--env", &a.env);
                w.flag("--no-start", a.no_start);
            }
            FleetCommand::Remove(a) => {
                w.0.push(a.name.clone());
                w.number("--timeout", a.timeout, STOP_TIMEOUT_SECS);
            }
            FleetCommand::Restart(a) => {
                w.0.push(a.name.clone());
                w.number("--timeout", a.timeout, STOP_TIMEOUT_SECS);
            }
            // The text is last: everything after the name is text, dashes included.
            FleetCommand::Send(a) => {
                w.0.push(a.name.clone());
                w.0.extend(a.text.iter().cloned());
            }
            FleetCommand::Comms(a) => {
                if let Some(mode) = a.mode {
                    w.0.push(
                        mode.to_possible_value()
                            .expect("not skipped")
                            .get_name()
                            .into(),
                    );
                }
            }
            FleetCommand::Attach(a) => w.0.push(a.name.clone()),
            FleetCommand::Logs(a) => {
                w.0.push(a.name.clone());
                w.flag("--follow", a.follow);
                w.flag("--screen", a.screen);
            }
            FleetCommand::Confirm { code } => w.0.push(code.clone()),
        }
        w.0
    }
}

/// Answers for `fleet init`; any answer not given is asked for (or, without a terminal, is an
/// error naming its flag).
#[derive(Debug, Clone, PartialEq, Eq, Default, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitArgs {
    /// Configuration type: a preset name (general, coding, research, hybrid, or your own).
    #[arg(value_name = "PRESET", conflicts_with = "preset")]
    pub preset_name: Option<String>,
    /// The same as PRESET, as a flag.
    #[arg(long, value_name = "NAME", conflicts_with = "profile")]
    pub preset: Option<String>,
    /// A ready profile: a preset with its chat wiring (e.g. `mos-discord`).
    #[arg(long, value_name = "NAME", conflicts_with = "preset_name")]
    pub profile: Option<String>,
    /// Platform user id to make admin of the chat connector (repeatable).
    #[arg(long = "admin", value_name = "ID")]
    pub admins: Vec<String>,
    /// Fleet name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Runtime of the orchestrator (claude, codex, pi, demo).
    #[arg(long, value_name = "RUNTIME")]
    pub orchestrator_runtime: Option<String>,
    /// Runtime of every worker (claude, codex, pi, demo).
    #[arg(long, value_name = "RUNTIME")]
    pub worker_runtime: Option<String>,
    /// How agents talk to each other.
    #[arg(long, value_enum)]
    pub comms: Option<CommsArg>,
    /// tmux socket name for the fleet's private server.
    #[arg(long, value_name = "NAME")]
    pub socket: Option<String>,
    /// Chat connector for the orchestrator: `none` or a connector type this build has (see
    /// `mosaic fleet init --help` for each type's own flags).
    #[arg(long, value_name = "TYPE")]
    pub connector: Option<String>,
    /// Answers to the connector's own questions, by flag name (`guild` → values): from the
    /// flags each registered connector type adds to `init` ([`register_init_flags`]), or, in
    /// the API's typed JSON, `"connector_answers": {"guild": ["…"]}`.
    #[arg(skip)]
    pub connector_answers: std::collections::BTreeMap<String, Vec<String>>,
    /// Take the default for every question not answered by a flag, and write without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show what would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl InitArgs {
    /// The preset asked for, positionally or with `--preset`.
    pub fn chosen_preset(&self) -> Option<&str> {
        self.preset_name
            .as_deref()
            .or(self.preset.as_deref())
            .or(self.profile.as_deref())
    }
}

/// The flags the chat connector types add to `fleet init` (their questions, like `--guild`),
/// registered once by the binary: every surface that parses `fleet init` accepts them.
static INIT_FLAGS: std::sync::RwLock<Vec<clap::Arg>> = std::sync::RwLock::new(Vec::new());

/// Registers the connector flags of `fleet init` (replacing any registered before).
pub fn register_init_flags(flags: Vec<clap::Arg>) {
    *INIT_FLAGS.write().unwrap_or_else(|e| e.into_inner()) = flags;
}

/// The `init` subcommand with the registered connector flags added.
pub fn with_init_flags(init: clap::Command) -> clap::Command {
    init.args(INIT_FLAGS.read().unwrap_or_else(|e| e.into_inner()).iter())
}

/// The connector flags given to `init`, by flag name ([`InitArgs::connector_answers`]).
pub fn init_answers(init: &clap::ArgMatches) -> std::collections::BTreeMap<String, Vec<String>> {
    INIT_FLAGS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|arg| {
            let id = arg.get_id().as_str();
            let values: Vec<String> = init.get_many::<String>(id)?.cloned().collect();
            Some((id.to_owned(), values))
        })
        .collect()
}

/// Comms modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommsArg {
    /// Paste into tmux panes.
    Tmux,
    /// Through Matrix rooms (needs a Matrix connector).
    Matrix,
}

/// `fleet comms`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommsArgs {
    /// The mode to switch to; without it, the mode in use is shown.
    #[serde(default)]
    pub mode: Option<CommsArg>,
}

/// `fleet install`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallArgs {
    /// Directory for shell completions (default: the XDG data dirs of bash, zsh and fish).
    #[arg(long, value_name = "DIR")]
    pub completions_dir: Option<PathBuf>,
}

/// `fleet start`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartArgs {
    /// Agents to start (default: all).
    #[serde(default)]
    pub agents: Vec<String>,
    /// Seconds to wait for each harness to draw its first screen.
    #[arg(long, default_value_t = START_WAIT_SECS, value_name = "SECS", value_parser = secs_parser(), allow_negative_numbers = true)]
    #[serde(default = "start_wait", deserialize_with = "bounded_secs")]
    pub wait: u64,
}

/// `fleet stop`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopArgs {
    /// Agents to stop (default: all).
    #[serde(default)]
    pub agents: Vec<String>,
    /// Seconds to wait for a graceful exit before killing.
    #[arg(long, default_value_t = STOP_TIMEOUT_SECS, value_name = "SECS", value_parser = secs_parser(), allow_negative_numbers = true)]
    #[serde(default = "stop_timeout", deserialize_with = "bounded_secs")]
    pub timeout: u64,
}

/// `fleet ps`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsArgs {
    /// Print JSON (schema mosaic.fleet.ps/v1, see docs/use.md).
    #[arg(long)]
    #[serde(default)]
    pub json: bool,
}

/// `fleet versions`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsArgs {
    /// Harnesses to show (default: all but the demo agent).
    #[serde(default)]
    pub harnesses: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    #[serde(default)]
    pub json: bool,
}

/// `fleet update`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// Harnesses to update (default: every installed one the roster uses).
    #[serde(default)]
    pub harnesses: Vec<String>,
    /// The version to install (default: the newest).
    #[arg(long, value_name = "VERSION")]
    #[serde(default)]
    pub to: Option<String>,
    /// Seconds to wait for the agents to finish their turns.
    #[arg(long, default_value_t = UPDATE_DRAIN_SECS, value_name = "SECS", value_parser = secs_parser(), allow_negative_numbers = true)]
    #[serde(default = "update_drain", deserialize_with = "bounded_secs")]
    pub drain: u64,
    /// Update even if agents are still busy after the drain (their turns are cut short), or
    /// reinstall the version already there.
    #[arg(long)]
    #[serde(default)]
    pub force: bool,
    /// Say what would be done, and do nothing.
    #[arg(long)]
    #[serde(default)]
    pub dry_run: bool,
}

/// `fleet verify`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    #[serde(default)]
    pub json: bool,
}

/// `fleet presets`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetsArgs {
    /// `show NAME` prints one preset's YAML.
    #[command(subcommand)]
    #[serde(default)]
    pub action: Option<PresetsAction>,
}

/// `fleet presets` actions.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PresetsAction {
    /// Print a preset's YAML (copy it into ~/.config/mosaic/presets/ to adapt it).
    Show {
        /// Preset name.
        name: String,
    },
}

/// `fleet add`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    /// New agent's name ([a-z][a-z0-9-]{0,31}).
    pub name: String,
    /// Harness: claude, codex, pi or demo.
    #[arg(long, value_name = "RUNTIME")]
    pub runtime: String,
    /// Model for the harness.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Working directory.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Instructions appended to the harness's system prompt.
    #[arg(long, value_name = "TEXT")]
    pub instructions: Option<String>,
    /// Extra environment variable KEY=VALUE (repeatable; not for secrets).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    #[serde(default)]
    pub env: Vec<String>,
    /// Only change the roster; do not start the agent.
    #[arg(long)]
    #[serde(default)]
    pub no_start: bool,
}

/// `fleet remove`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    /// Agent to remove.
    pub name: String,
    /// Seconds to wait for a graceful exit before killing.
    #[arg(long, default_value_t = STOP_TIMEOUT_SECS, value_name = "SECS", value_parser = secs_parser(), allow_negative_numbers = true)]
    #[serde(default = "stop_timeout", deserialize_with = "bounded_secs")]
    pub timeout: u64,
}

/// `fleet restart`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    /// Agent to restart.
    pub name: String,
    /// Seconds to wait for a graceful exit before killing.
    #[arg(long, default_value_t = STOP_TIMEOUT_SECS, value_name = "SECS", value_parser = secs_parser(), allow_negative_numbers = true)]
    #[serde(default = "stop_timeout", deserialize_with = "bounded_secs")]
    pub timeout: u64,
}

/// `fleet send`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendArgs {
    /// Agent to type into.
    pub name: String,
    /// The text (several words are joined by spaces); `-` reads it from standard input.
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
    pub text: Vec<String>,
}

/// A single agent name.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentArg {
    /// Agent name.
    pub name: String,
}

/// `fleet logs`.
#[derive(Debug, Clone, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// Agent name.
    pub name: String,
    /// Stream the pane's output live until the agent stops (Ctrl-C to quit).
    #[arg(long, short = 'f', conflicts_with = "screen")]
    #[serde(default)]
    pub follow: bool,
    /// Only the visible screen, not the scrollback.
    #[arg(long)]
    #[serde(default)]
    pub screen: bool,
}

/// Builds an argument list option by option.
struct Words(Vec<String>);

impl Words {
    fn opt(&mut self, flag: Option<&str>, value: Option<&str>) {
        if let Some(v) = value {
            self.0.extend(flag.map(str::to_owned));
            // A value that looks like a flag is attached with `=`, so it stays a value.
            match flag {
                Some(f) if v.starts_with('-') => {
                    self.0.pop();
                    self.0.push(format!("{f}={v}"));
                }
                _ => self.0.push(v.to_owned()),
            }
        }
    }

    fn many(&mut self, flag: &str, values: &[String]) {
        for v in values {
            self.opt(Some(flag), Some(v));
        }
    }

    fn value(&mut self, v: Option<(&str, Option<clap::builder::PossibleValue>)>) {
        if let Some((flag, Some(v))) = v {
            self.0.extend([flag.to_owned(), v.get_name().to_owned()]);
        }
    }

    fn flag(&mut self, flag: &str, on: bool) {
        if on {
            self.0.push(flag.to_owned());
        }
    }

    fn number(&mut self, flag: &str, n: u64, default: u64) {
        if n != default {
            self.0.extend([flag.to_owned(), n.to_string()]);
        }
    }
}

/// Default of `start --wait`: seconds for each harness to draw its first screen.
pub const START_WAIT_SECS: u64 = 20;
/// Default of `--timeout` (stop, remove, restart): seconds for a graceful exit before killing.
pub const STOP_TIMEOUT_SECS: u64 = 10;
/// Default of `update --drain`: how long agents get to finish their turns.
pub const UPDATE_DRAIN_SECS: u64 = 600;

/// The most seconds any `--wait` or `--timeout` takes (an hour): larger values are refused with
/// a clear error rather than overflowing a deadline.
pub const MAX_WAIT_SECS: u64 = 3600;

fn secs_parser() -> fn(&str) -> Result<u64, String> {
    |text| {
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs <= MAX_WAIT_SECS)
            .ok_or_else(|| format!("{text} is not in 0..={MAX_WAIT_SECS} (a number of seconds)"))
    }
}

/// Seconds from JSON, at most [`MAX_WAIT_SECS`].
fn bounded_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let secs = u64::deserialize(d)?;
    if secs > MAX_WAIT_SECS {
        return Err(serde::de::Error::custom(format!(
            "{secs} seconds is too long: at most {MAX_WAIT_SECS}"
        )));
    }
    Ok(secs)
}

fn update_drain() -> u64 {
    UPDATE_DRAIN_SECS
}

fn start_wait() -> u64 {
    START_WAIT_SECS
}

fn stop_timeout() -> u64 {
    STOP_TIMEOUT_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Probe {
        #[command(subcommand)]
        cmd: FleetCommand,
    }

    fn parse(args: &[&str]) -> Result<FleetCommand, clap::Error> {
        Probe::try_parse_from(std::iter::once("fleet").chain(args.iter().copied())).map(|p| p.cmd)
    }

    #[test]
    fn send_keeps_text_literally_even_with_dashes() {
        let FleetCommand::Send(s) = parse(&["send", "w", "--not-a-flag", "; kill-server"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.text, ["--not-a-flag", "; kill-server"]);
    }

    /// A negative number of seconds is refused by the range check, not with clap's hint to
    /// write `-- -1` (which would make it an agent name).
    #[test]
    fn a_negative_timeout_is_out_of_range_not_a_stray_argument() {
        for args in [
            &["stop", "--timeout", "-1"][..],
            &["start", "--wait", "-5"],
            &["restart", "w", "--timeout", "-1"],
            &["remove", "w", "--timeout", "-1"],
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(!err.contains("-- -"), "{args:?}: {err}");
            assert!(
                err.contains("-1 is not in 0..=3600") || err.contains("-5 is not in 0..=3600"),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn add_needs_a_runtime_and_says_so() {
        let err = parse(&["add", "w"]).unwrap_err().to_string();
        assert!(err.contains("--runtime <RUNTIME>"), "{err}");
        assert!(err.contains("Usage:"), "{err}");
    }

    #[test]
    fn init_flags_parse() {
        let FleetCommand::Init(i) = parse(&[
            "init",
            "--preset",
            "coding",
            "--yes",
            "--connector",
            "discord",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(i.chosen_preset(), Some("coding"));
        assert!(i.yes);
        assert_eq!(i.connector.as_deref(), Some("discord"));
        // A platform's own flags belong to its connector type (the binary adds them to
        // `mosaic fleet init`); the shared grammar, and so chat, has none.
        for platform_flag in ["--guild", "--target", "--homeserver", "--secret-env"] {
            assert!(
                parse(&["init", platform_flag, "1"]).is_err(),
                "{platform_flag}"
            );
        }
        let FleetCommand::Init(i) = parse(&["init", "research"]).unwrap() else {
            panic!()
        };
        assert_eq!(i.chosen_preset(), Some("research"));
        assert!(parse(&["init", "research", "--preset", "coding"]).is_err());
    }

    /// A typed command with a field no verb has (a typo) is refused, not run without it.
    #[test]
    fn typed_commands_refuse_unknown_fields() {
        for json in [
            r#"{"verb":"init","preset":"coding","conector":"none"}"#,
            r#"{"verb":"stop","agents":["w"],"timout":5}"#,
            r#"{"verb":"add","name":"w","runtime":"demo","modle":"x"}"#,
            r#"{"verb":"status","conector":"none"}"#,
            r#"{"verb":"presets","action":{"action":"show","name":"coding","x":1}}"#,
        ] {
            let e = serde_json::from_str::<FleetCommand>(json)
                .unwrap_err()
                .to_string();
            assert!(e.contains("unknown field"), "{json}: {e}");
        }
        let ok = r#"{"verb":"init","preset":"coding","connector":"discord","connector_answers":{"guild":["1"]}}"#;
        let FleetCommand::Init(init) = serde_json::from_str::<FleetCommand>(ok).unwrap() else {
            panic!()
        };
        assert_eq!(init.connector_answers["guild"], ["1"]);
    }

    #[test]
    fn waits_and_timeouts_are_bounded_with_a_clear_error() {
        for args in [
            &["stop", "--timeout", "18446744073709551615"][..],
            &["restart", "helper", "--timeout", "3601"],
            &["remove", "helper", "--timeout", "99999999999"],
            &["start", "--wait", "18446744073709551615"],
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains("0..=3600"), "{args:?}: {e}");
        }
        assert!(parse(&["stop", "--timeout", "3600"]).is_ok());
        let json = r#"{"verb":"restart","name":"helper","timeout":18446744073709551615}"#;
        let e = serde_json::from_str::<FleetCommand>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 3600"), "{e}");
        let ok = r#"{"verb":"restart","name":"helper","timeout":5}"#;
        assert!(serde_json::from_str::<FleetCommand>(ok).is_ok());
    }

    const SAMPLES: &[&[&str]] = &[
        &["status"],
        &["ps", "--json"],
        &["verify"],
        &["presets"],
        &["presets", "show", "coding"],
        &["start"],
        &["start", "a", "b", "--wait", "5"],
        &["stop", "--timeout", "3"],
        &[
            "add",
            "w",
            "--runtime",
            "demo",
            "--model",
            "m",
            "--workdir",
            "/tmp",
            "--instructions=-be brief",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--no-start",
        ],
        &["remove", "w"],
        &["restart", "w", "--timeout", "1"],
        &["send", "w", "--not-a-flag", "; kill-server"],
        &["comms"],
        &["comms", "matrix"],
        &["attach", "w"],
        &["logs", "w", "--screen"],
        &["logs", "w", "-f"],
        &["install", "--completions-dir", "/tmp/c"],
        &["confirm", "abc"],
        &[
            "init",
            "coding",
            "--admin",
            "1",
            "--name",
            "f",
            "--orchestrator-runtime",
            "demo",
            "--worker-runtime",
            "pi",
            "--comms",
            "matrix",
            "--socket",
            "s",
            "--connector",
            "matrix",
            "--yes",
            "--dry-run",
        ],
        &["init", "--profile", "mos-discord"],
    ];

    #[test]
    fn to_args_parses_back_to_the_same_command() {
        for sample in SAMPLES {
            let cmd = parse(sample).unwrap();
            let args = cmd.to_args();
            let again = parse(&args.iter().map(String::as_str).collect::<Vec<_>>())
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(again, cmd, "{sample:?} -> {args:?}");
        }
        assert_eq!(
            parse(&["stop", "w"]).unwrap().to_args(),
            ["stop", "w"],
            "defaults are left out"
        );
    }

    #[test]
    fn to_line_parses_back_in_chat() {
        use crate::chat::{ChatInput, parse as chat};
        for sample in SAMPLES {
            let mut cmd = parse(sample).unwrap();
            let line = cmd.to_line();
            // Chat keeps the text of `send` as one literal string.
            if let FleetCommand::Send(s) = &mut cmd {
                s.text = vec![s.text.join(" ")];
            }
            assert_eq!(chat(&line), ChatInput::Command(Box::new(cmd)), "{line}");
        }
        let send = parse(&["send", "w", "it's 'quoted'", "and; more"]).unwrap();
        assert_eq!(send.to_line(), "/fleet send w it's 'quoted' and; more");
    }

    #[test]
    fn commands_round_trip_through_json_with_the_cli_defaults() {
        for sample in SAMPLES {
            let cmd = parse(sample).unwrap();
            let json = serde_json::to_string(&cmd).unwrap();
            assert_eq!(
                serde_json::from_str::<FleetCommand>(&json).unwrap(),
                cmd,
                "{json}"
            );
        }
        let typed: FleetCommand =
            serde_json::from_str(r#"{"verb": "add", "name": "w", "runtime": "demo"}"#).unwrap();
        assert_eq!(typed, parse(&["add", "w", "--runtime", "demo"]).unwrap());
        let typed: FleetCommand = serde_json::from_str(r#"{"verb": "stop"}"#).unwrap();
        assert_eq!(typed, parse(&["stop"]).unwrap());
        let typed: FleetCommand = serde_json::from_str(r#"{"verb": "status"}"#).unwrap();
        assert_eq!(typed, FleetCommand::Status {});
        assert!(serde_json::from_str::<FleetCommand>(r#"{"verb": "frobnicate"}"#).is_err());
        assert!(serde_json::from_str::<FleetCommand>(r#"{"verb": "add", "name": "w"}"#).is_err());
    }

    #[test]
    fn unknown_verbs_are_refused_with_usage() {
        let err = parse(&["frobnicate"]).unwrap_err().to_string();
        assert!(
            err.contains("unrecognized subcommand 'frobnicate'"),
            "{err}"
        );
    }
}
