//! The `fleet` command tree, defined once: `mosaic fleet …` parses it from argv, and the same
//! types (with their generated help) serve every other surface that speaks the fleet grammar.

pub mod chat;
pub mod native;

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Every `fleet` verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
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
    Status,
    /// Table of every agent; `--json` for the versioned machine-readable form.
    Ps(PsArgs),
    /// Check that this host can run the roster and that the sessions match it.
    Verify(VerifyArgs),
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
            FleetCommand::Status => "status",
            FleetCommand::Ps(_) => "ps",
            FleetCommand::Verify(_) => "verify",
            FleetCommand::Presets(_) => "presets",
            FleetCommand::Add(_) => "add",
            FleetCommand::Remove(_) => "remove",
            FleetCommand::Restart(_) => "restart",
            FleetCommand::Send(_) => "send",
            FleetCommand::Attach(_) => "attach",
            FleetCommand::Logs(_) => "logs",
            FleetCommand::Confirm { .. } => "confirm",
        }
    }
}

/// Answers for `fleet init`; any answer not given is asked for (or, without a terminal, is an
/// error naming its flag).
#[derive(Debug, Clone, PartialEq, Eq, Default, Args)]
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
    /// Answers to the connector's own questions, by flag name (`guild` → values). Filled by the
    /// `mosaic` binary from the flags each registered connector type adds to `fleet init`; no
    /// other surface sets them.
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

/// Comms modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommsArg {
    /// Paste into tmux panes.
    Tmux,
    /// Through Matrix rooms (needs a Matrix connector).
    Matrix,
}

/// `fleet install`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct InstallArgs {
    /// Directory for shell completions (default: the XDG data dirs of bash, zsh and fish).
    #[arg(long, value_name = "DIR")]
    pub completions_dir: Option<PathBuf>,
}

/// `fleet start`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StartArgs {
    /// Agents to start (default: all).
    pub agents: Vec<String>,
    /// Seconds to wait for each harness to draw its first screen.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub wait: u64,
}

/// `fleet stop`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StopArgs {
    /// Agents to stop (default: all).
    pub agents: Vec<String>,
    /// Seconds to wait for a graceful exit before killing.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
}

/// `fleet ps`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PsArgs {
    /// Print JSON (schema mosaic.fleet.ps/v1, see docs/use.md).
    #[arg(long)]
    pub json: bool,
}

/// `fleet verify`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VerifyArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fleet presets`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PresetsArgs {
    /// `show NAME` prints one preset's YAML.
    #[command(subcommand)]
    pub action: Option<PresetsAction>,
}

/// `fleet presets` actions.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum PresetsAction {
    /// Print a preset's YAML (copy it into ~/.config/mosaic/presets/ to adapt it).
    Show {
        /// Preset name.
        name: String,
    },
}

/// `fleet add`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
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
    pub env: Vec<String>,
    /// Only change the roster; do not start the agent.
    #[arg(long)]
    pub no_start: bool,
}

/// `fleet remove`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RemoveArgs {
    /// Agent to remove.
    pub name: String,
    /// Seconds to wait for a graceful exit before killing.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
}

/// `fleet restart`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RestartArgs {
    /// Agent to restart.
    pub name: String,
    /// Seconds to wait for a graceful exit before killing.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
}

/// `fleet send`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SendArgs {
    /// Agent to type into.
    pub name: String,
    /// The text (several words are joined by spaces); `-` reads it from standard input.
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
    pub text: Vec<String>,
}

/// A single agent name.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AgentArg {
    /// Agent name.
    pub name: String,
}

/// `fleet logs`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LogsArgs {
    /// Agent name.
    pub name: String,
    /// Stream the pane's output live until the agent stops (Ctrl-C to quit).
    #[arg(long, short = 'f')]
    pub follow: bool,
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

    #[test]
    fn unknown_verbs_are_refused_with_usage() {
        let err = parse(&["frobnicate"]).unwrap_err().to_string();
        assert!(
            err.contains("unrecognized subcommand 'frobnicate'"),
            "{err}"
        );
    }
}
