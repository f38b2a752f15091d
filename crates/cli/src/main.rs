//! `mosaic`: run a fleet of AI coding agents in tmux and command it.

mod chat;
mod client;
mod connectors;
mod daemon;
mod demo_agent;
mod logging;
mod mcp;
mod spool;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use mosaic_api::wire::{HealthReport, ReplyRequest};
use mosaic_connector::Health;
use mosaic_exec::{Actor, Executor, Outcome, render};
use mosaic_fleet::paths::AgentToken;
use mosaic_fleet::verify::{Check, Level};
use mosaic_fleet::{Fleet, Paths, create_private_dir, wizard};
use mosaic_grammar::{FleetCommand, InstallArgs, LogsArgs};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run a fleet of AI coding agents (Claude Code, Codex, pi) in tmux and command it.
#[derive(Debug, Parser)]
#[command(name = "mosaic", version, propagate_version = true)]
struct Cli {
    /// Config directory (roster.yaml, presets/) [default: $XDG_CONFIG_HOME/mosaic]
    #[arg(long, global = true, env = "MOSAIC_CONFIG", value_name = "DIR")]
    config: Option<PathBuf>,
    /// State directory [default: $XDG_STATE_HOME/mosaic]
    #[arg(long, global = true, env = "MOSAIC_STATE", value_name = "DIR")]
    state: Option<PathBuf>,
    /// More diagnostics on stderr, once per level: warn (info for `mosaic up`), then info, debug,
    /// trace. RUST_LOG, when set, overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Set up, start, stop, observe and change the fleet.
    #[command(subcommand)]
    Fleet(Box<FleetCommand>),
    /// Run the demo agent: a scripted stand-in for an AI harness (NOT an AI), used where no
    /// harness is installed and by the tests.
    DemoAgent(demo_agent::DemoArgs),
    /// Run the daemon in the foreground: start the fleet, bridge chat to the orchestrator, serve
    /// the API on loopback.
    Up {
        /// Address for the API [default: the roster's bridge.api_listen, 127.0.0.1:7317].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// How log lines on stderr look: text, or json (one JSON object per line).
        #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
        log_format: logging::LogFormat,
        /// Allow a non-loopback API address (the token then travels in clear unless a TLS proxy
        /// or a private network protects it).
        #[arg(long)]
        allow_remote: bool,
    },
    /// Stop the daemon (`mosaic up`); the fleet keeps running (`mosaic fleet stop` stops it).
    Down {
        /// Seconds to wait for it to exit.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=3600), value_name = "SECS", allow_negative_numbers = true)]
        timeout: i64,
    },
    /// Chat with the orchestrator from this terminal (through the daemon).
    Chat {
        /// Seconds to keep printing replies after standard input ends.
        #[arg(long, default_value_t = 2.0, value_name = "SECS", value_parser = linger_secs, allow_negative_numbers = true)]
        linger: f64,
    },
    /// Post a message to chat as the orchestrator (for any harness).
    Reply {
        /// CONNECTOR:ROOM [default: where the last message came from].
        #[arg(long, value_name = "CONNECTOR:ROOM", conflicts_with = "to")]
        room: Option<String>,
        /// Answer chat message N (the N of `[chat #N from …]`): in its room, as a reply to it.
        #[arg(long, value_name = "N")]
        to: Option<i64>,
        /// The text; `-` reads it from standard input.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
        text: Vec<String>,
    },
    /// Report a harness hook to the daemon. With no EVENT, reads the hook's JSON payload from
    /// standard input (Claude Code and Codex hooks); a JSON argument (Codex notify) works too; a
    /// named EVENT takes an optional JSON payload on standard input (pi's extension). Never fails
    /// the harness that runs it.
    Hook {
        /// The agent it is about (inside an agent: itself, from its own token).
        #[arg(long)]
        agent: Option<String>,
        /// busy, idle, waiting-for-input, ended, a harness event name, or a JSON payload.
        event: Option<String>,
    },
    /// Serve the orchestrator's fleet tools over MCP on stdio.
    Mcp,
    /// Print shell completions.
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
}

/// `chat --linger`: seconds from 0 to [`mosaic_grammar::MAX_WAIT_SECS`] (a huge or infinite
/// value would overflow a `Duration`).
fn linger_secs(s: &str) -> std::result::Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    let max = mosaic_grammar::MAX_WAIT_SECS as f64;
    if !(0.0..=max).contains(&secs) {
        return Err(format!("{s} is not in 0..={max}"));
    }
    Ok(secs)
}

/// The exit status when standard output's reader went away (a shell's status for SIGPIPE).
const EPIPE_EXIT: u8 = 141;

/// Exits quietly with [`EPIPE_EXIT`] when printing fails because the reader of standard output
/// or error went away (`mosaic fleet ps | head`): Rust ignores SIGPIPE, so `println!` would panic.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(EPIPE_EXIT.into());
        }
        default(info);
    }));
}

/// An error and its causes, each cause once (a cause already in the message is not repeated).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    connectors::register_all();
    let matches = cli_command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Top::Fleet(command) = &mut cli.command
        && let FleetCommand::Init(args) = command.as_mut()
    {
        args.connector_answers = connectors::init_answers(&matches);
    }
    match &cli.command {
        Top::Up { log_format, .. } => logging::init(1, cli.verbose, *log_format),
        _ => logging::init(0, cli.verbose, logging::LogFormat::Text),
    }
    let paths = Paths::resolve(cli.config, cli.state);
    // The user's own harness manifests join the shipped ones; a broken one is left out (and
    // `mosaic fleet verify` fails on it).
    for problem in mosaic_roster::load_harness_dir(&paths.harnesses_dir()) {
        eprintln!("warning: harness manifest ignored: {problem}");
    }
    match run(&paths, cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The whole command line: the derived tree plus each connector type's `fleet init` flags.
fn cli_command() -> clap::Command {
    connectors::with_init_flags(Cli::command())
}

fn run(paths: &Paths, command: Top) -> Result<ExitCode> {
    // The daemon is the owner's: an agent (holding its own token) neither starts nor stops it.
    if client::agent_token().is_some() && matches!(command, Top::Up { .. } | Top::Down { .. }) {
        bail!("`mosaic up` and `mosaic down` are the owner's, not an agent's");
    }
    match command {
        Top::Fleet(cmd) => fleet(paths, *cmd),
        Top::DemoAgent(args) => demo_agent::run(paths, &args).map(|_| ExitCode::SUCCESS),
        Top::Up {
            listen,
            allow_remote,
            ..
        } => daemon::up(paths, exe()?, listen, allow_remote).map(|_| ExitCode::SUCCESS),
        Top::Down { timeout } => down(paths, Duration::from_secs(timeout.unsigned_abs())),
        Top::Chat { linger } => chat::run(
            paths,
            client::Daemon::locate(paths)?,
            Duration::from_secs_f64(linger),
        )
        .map(|_| ExitCode::SUCCESS),
        Top::Reply { room, to, text } => {
            let text = read_text(text)?;
            let request = ReplyRequest { text, room, to };
            let daemon = client::Daemon::locate(paths);
            match spool::post_or_keep(
                paths,
                daemon.as_ref().map_err(|e| anyhow::anyhow!("{e:#}")),
                &request,
            )? {
                spool::Replied::Queued(n) => println!("queued {n} message(s)"),
                spool::Replied::Kept(file) => eprintln!(
                    "mosaic reply: the daemon is not running; the reply is kept ({}) and posted when `mosaic up` starts",
                    file.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Top::Hook { agent, event } => {
            hook(paths, agent, event);
            Ok(ExitCode::SUCCESS)
        }
        Top::Mcp => mcp::serve(paths.clone()).map(|_| ExitCode::SUCCESS),
        Top::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cli_command(), "mosaic", &mut buf);
            use std::io::Write;
            match std::io::stdout().lock().write_all(&buf) {
                // The reader is gone (`| head`): as for any Unix tool, not an error to report.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    Ok(ExitCode::from(EPIPE_EXIT))
                }
                other => other
                    .map(|_| ExitCode::SUCCESS)
                    .context("writing the completions"),
            }
        }
    }
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the mosaic executable")
}

fn open(paths: &Paths) -> Result<Fleet> {
    Ok(Fleet::open(paths.clone(), exe()?)?)
}

/// `mosaic fleet …`: the terminal-only verbs here, everything else through the executor.
fn fleet(paths: &Paths, mut cmd: FleetCommand) -> Result<ExitCode> {
    if client::agent_token().is_some() {
        return fleet_as_agent(paths, cmd);
    }
    match &mut cmd {
        FleetCommand::Init(args) => {
            let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
            wizard::run(paths, args, interactive, &mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        FleetCommand::Install(args) => {
            install(paths, args)?;
            return Ok(ExitCode::SUCCESS);
        }
        FleetCommand::Attach(args) => {
            let fleet = open(paths)?;
            fleet.capture(&args.name, false)?;
            if !std::io::stdin().is_terminal() {
                bail!(
                    "attach needs a terminal; use `mosaic fleet logs {}` to read the pane",
                    args.name
                );
            }
            use std::os::unix::process::CommandExt;
            let err = fleet.tmux.attach_command(&args.name).exec();
            bail!("could not run tmux attach: {err}");
        }
        FleetCommand::Logs(args) if args.follow => {
            open(paths)?.follow(&args.name, &mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        FleetCommand::Send(args) => args.text = vec![read_text(std::mem::take(&mut args.text))?],
        _ => {}
    }
    // A long command says each step as it happens (stderr: stdout stays the result), and chat
    // hears what it should through the daemon, when one runs.
    let here = |cmd: &FleetCommand| -> Result<Outcome> {
        let mut progress = Progress::new(paths);
        let outcome =
            Executor::new(paths.clone(), exe()?)
                .exec_reporting(cmd, &Actor::cli(), &mut |step| progress.show(step));
        progress.done();
        Ok(outcome?)
    };
    let mut outcome = match (&cmd, client::Daemon::running(paths)) {
        // One writer per pane: with the daemon running, the daemon types it.
        (FleetCommand::Send(args), Some(daemon)) => {
            let sent = daemon?
                .post(
                    &format!("/v1/agents/{}/send", args.name),
                    serde_json::json!({ "text": args.text.join(" ") }),
                )
                .map_err(|e| {
                    if e.is::<client::NoAnswer>() {
                        e.context(format!(
                            "the text may or may not have been typed into {0}: look at its screen (`mosaic fleet attach {0}`) before sending it again",
                            args.name
                        ))
                    } else {
                        e
                    }
                })?;
            serde_json::from_value(sent).context("the daemon's answer to send")?
        }
        // The daemon knows the roster and asks tmux through its kept client; one of another
        // version (a status it does not shape the same), gone meanwhile or not answering (a
        // frozen one): read here.
        (FleetCommand::Ps(_), Some(_)) => {
            match client::Daemon::locate_quick(paths, PS_TIMEOUT)
                .and_then(|d| d.get("/v1/fleet"))
                .and_then(|v| serde_json::from_value(v).context("the daemon's fleet status"))
            {
                Ok(status) => Outcome::Ps { status },
                Err(_) => here(&cmd)?,
            }
        }
        _ => here(&cmd)?,
    };
    if let Outcome::Verify { checks } = &mut outcome {
        checks.extend(daemon_checks(paths));
    }
    let shown = render::terminal(&outcome, render::wants_json(&cmd));
    eprint!("{}", shown.stderr);
    print!("{}", shown.stdout);
    if let Outcome::Status { .. } = outcome {
        println!("{}", daemon_line(paths));
    }
    Ok(if shown.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `mosaic fleet …` inside an agent (it holds its own token): through the daemon, which runs it
/// with the role the agent may act with (`bridge.orchestrator_role`; workers may run none).
fn fleet_as_agent(paths: &Paths, mut cmd: FleetCommand) -> Result<ExitCode> {
    match &mut cmd {
        FleetCommand::Attach(_)
        | FleetCommand::Install(_)
        | FleetCommand::Logs(LogsArgs { follow: true, .. }) => bail!(
            "`mosaic fleet {}` is for a person at a terminal, not for an agent",
            cmd.verb()
        ),
        FleetCommand::Send(args) => args.text = vec![read_text(std::mem::take(&mut args.text))?],
        _ => {}
    }
    let daemon = client::Daemon::running(paths)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "an agent runs fleet commands through the daemon, and it is not running (`mosaic up`)"
            )
        })??
        .with_limit(client::COMMAND_TIMEOUT);
    let answer = daemon.post("/v1/commands", serde_json::json!({ "command": cmd }))?;
    let outcome: Outcome = serde_json::from_value(answer["outcome"].clone())
        .context("the daemon's answer to a command")?;
    let shown = render::terminal(&outcome, render::wants_json(&cmd));
    eprint!("{}", shown.stderr);
    print!("{}", shown.stdout);
    Ok(if shown.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `mosaic down`: asks the daemon holding this state directory's lock to stop (SIGTERM) and
/// waits until it has let the lock go.
fn down(paths: &Paths, timeout: Duration) -> Result<ExitCode> {
    if client::Daemon::running(paths).is_none() {
        println!(
            "mosaic down: no daemon runs for {}",
            paths.state_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(paths.state_dir.join(client::DAEMON_FILE))
            .context("the daemon holds its lock but has not written daemon.json yet; try again")?,
    )
    .context("daemon.json is corrupt")?;
    let pid = info["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
        .context("daemon.json names no pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .with_context(|| format!("cannot signal the daemon (pid {})", pid.as_raw_nonzero()))?;
    let deadline = std::time::Instant::now() + timeout;
    // Gone, or a zombie its parent has not reaped yet.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{}/status", pid.as_raw_nonzero())).is_ok_and(|st| {
            st.lines()
                .any(|l| l.starts_with("State:") && !l.contains("Z (zombie)"))
        })
    };
    while client::Daemon::running(paths).is_some() || alive() {
        if std::time::Instant::now() >= deadline {
            bail!(
                "the daemon (pid {}) is still running after {} s",
                pid.as_raw_nonzero(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "mosaic down: the daemon stopped (the fleet keeps running; `mosaic fleet stop` stops it)"
    );
    Ok(ExitCode::SUCCESS)
}

/// How a long command's steps are shown: one line each on standard error (stdout stays the
/// result); in a terminal, how a long wait stands is shown in place, on one line. Chat hears
/// what it should through the daemon, when one runs.
struct Progress<'a> {
    paths: &'a Paths,
    terminal: bool,
    /// A wait is shown in place (and must be cleared before the next line).
    waiting: bool,
}

impl<'a> Progress<'a> {
    fn new(paths: &'a Paths) -> Progress<'a> {
        Progress {
            paths,
            terminal: std::io::stderr().is_terminal(),
            waiting: false,
        }
    }

    fn show(&mut self, step: &mosaic_fleet::update::Progress) {
        use mosaic_fleet::update::ProgressKind;
        match step.kind {
            ProgressKind::Waiting if self.terminal => {
                eprint!("\r\x1b[K{}", step.text);
                self.waiting = true;
                return;
            }
            ProgressKind::Waiting => return,
            ProgressKind::Step | ProgressKind::Announce => {}
        }
        self.done();
        eprintln!("{}", step.text);
        if step.kind == ProgressKind::Announce
            && let Some(Ok(daemon)) = client::Daemon::running(self.paths)
            && let Err(e) = daemon.post("/v1/rooms", serde_json::json!({ "text": step.text }))
        {
            eprintln!("warning: chat was not told: {e:#}");
        }
    }

    /// Clears a wait shown in place.
    fn done(&mut self) {
        if std::mem::take(&mut self.waiting) {
            eprint!("\r\x1b[K");
        }
    }
}

/// What the daemon of this state directory says of itself.
enum DaemonHealth {
    NotRunning,
    /// It holds its lock but did not answer (stopped, stuck, or starting): why.
    NoAnswer(String),
    Up(HealthReport),
}

/// How long `fleet status` and `fleet verify` wait for the daemon's health.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon's health, asked with [`HEALTH_TIMEOUT`].
fn daemon_health(paths: &Paths) -> DaemonHealth {
    let Some(daemon) = client::Daemon::running(paths) else {
        return DaemonHealth::NotRunning;
    };
    match daemon
        .and_then(|d| d.with_limit(HEALTH_TIMEOUT).get("/v1/health"))
        .and_then(|h| serde_json::from_value(h).context("the daemon's health"))
    {
        Ok(health) => DaemonHealth::Up(health),
        Err(e) => DaemonHealth::NoAnswer(format!("{e:#}")),
    }
}

/// A connector's health as a word and its detail.
fn health_words(health: &Health) -> (&'static str, &str) {
    match health {
        Health::Starting => ("starting", ""),
        Health::Up => ("up", ""),
        Health::Degraded(d) => ("degraded", d),
        Health::Down(d) => ("down", d),
    }
}

/// One line about the daemon for `fleet status`: running or not, its queue, its connectors.
fn daemon_line(paths: &Paths) -> String {
    let health = match daemon_health(paths) {
        DaemonHealth::Up(health) => health,
        DaemonHealth::NotRunning => {
            return "daemon: not running (start it with `mosaic up`)".into();
        }
        DaemonHealth::NoAnswer(why) => return format!("daemon: running, not answering: {why}"),
    };
    let connectors: Vec<String> = health
        .connectors
        .iter()
        .map(|c| match health_words(&c.health) {
            (state, "") => format!("{} {state}", c.id),
            // Why it is down or degraded (a refused token, a missing intent) is said here too.
            (state, detail) => format!("{} {state} ({detail})", c.id),
        })
        .collect();
    format!(
        "daemon: running; {} message(s) queued for the orchestrator; connectors: {}",
        health.queue,
        connectors.join(", ")
    )
}

/// The running daemon's view: each connector's connection (a refused intent or token shows here).
fn daemon_checks(paths: &Paths) -> Vec<Check> {
    let health = match daemon_health(paths) {
        DaemonHealth::Up(health) => health,
        DaemonHealth::NotRunning => {
            return vec![Check::new(
                Level::Warn,
                "daemon",
                "not running",
                Some("mosaic up (or systemctl --user start mosaic)".into()),
            )];
        }
        DaemonHealth::NoAnswer(why) => {
            return vec![Check::new(
                Level::Fail,
                "daemon",
                format!("running, not answering: {why}"),
                Some("mosaic down && mosaic up".into()),
            )];
        }
    };
    let roster = mosaic_roster::Roster::load(&paths.roster()).ok();
    let mut out = vec![Check::new(
        Level::Ok,
        "daemon",
        format!("running; {} message(s) queued", health.queue),
        None,
    )];
    for c in &health.connectors {
        let (state, detail) = health_words(&c.health);
        let (level, what) = match state {
            "up" => (Level::Ok, "connected".to_owned()),
            "starting" => (Level::Warn, "connecting".to_owned()),
            "degraded" => (Level::Warn, format!("degraded: {detail}")),
            _ => (Level::Fail, format!("down: {detail}")),
        };
        // The guide is named after the connector's type; its id may be anything.
        let kind = roster
            .as_ref()
            .and_then(|r| r.connectors.iter().find(|e| e.id() == c.id))
            .map_or(c.id.as_str(), |e| e.kind.as_str());
        let hint = (level == Level::Fail)
            .then(|| format!("see docs/connectors/{kind}.md (troubleshooting)"));
        out.push(Check::new(level, format!("connector {}", c.id), what, hint));
    }
    out
}

/// Words joined by spaces, or standard input for `-`.
fn read_text(words: Vec<String>) -> Result<String> {
    if words == ["-"] {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the text from standard input")?;
        Ok(s)
    } else {
        Ok(words.join(" "))
    }
}

/// Reports a hook event; never fails the harness that called it.
fn hook(paths: &Paths, agent: Option<String>, event: Option<String>) {
    if let Err(e) = report_hook(paths, agent, event) {
        eprintln!("mosaic hook: {e:#}");
    }
}

/// The longest `fleet ps` waits for the daemon before it reads the fleet itself.
const PS_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest a hook waits for the daemon: it never hangs its harness (a stopped daemon that
/// still accepts connections would otherwise hold every tool call).
const HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a hook's payload that is read (a transcript is not a payload); the rest is
/// read and let go, so the harness writing it never meets a closed pipe.
const MAX_HOOK_PAYLOAD: u64 = 16 << 20;

/// The longest final answer a hook passes on (a chat room is no place for more); a longer one
/// is cut, saying so.
const MAX_HOOK_ANSWER: usize = 256 << 10;

fn report_hook(paths: &Paths, agent: Option<String>, event: Option<String>) -> Result<()> {
    // A JSON argument is the payload (Codex's notify); a name is the event, with any payload on
    // stdin (pi's extension); nothing is the payload on stdin (Claude Code, Codex hooks).
    let (event, payload) = match event {
        Some(arg) => match serde_json::from_str::<serde_json::Value>(arg.trim()) {
            Ok(mut v) if v.is_object() => {
                cut_answer(&mut v);
                (mosaic_api::hook_event_name(&arg), v)
            }
            _ => (
                arg.trim().to_owned(),
                read_payload(Duration::from_millis(500)),
            ),
        },
        None => {
            let payload = read_payload(Duration::from_secs(5));
            (mosaic_api::hook_event_name(&payload.to_string()), payload)
        }
    };
    if event.is_empty() {
        bail!("no event: pass one (busy, idle, …) or a harness's JSON payload");
    }
    let mut payload = payload;
    // A final answer's call gets an id: a copy (kept below, or sent again) is taken once.
    if mosaic_bridge::final_answer(&payload).is_some()
        && payload.get(mosaic_bridge::HOOK_CALL_ID).is_none()
    {
        payload[mosaic_bridge::HOOK_CALL_ID] = mosaic_fleet::paths::random_hex(8)?.into();
    }
    let mut body = serde_json::json!({ "event": event, "payload": payload });
    if let Some(agent) = &agent {
        body["agent"] = agent.as_str().into();
    }
    let away = match client::Daemon::locate_quick(paths, HOOK_TIMEOUT) {
        Err(e) => e,
        Ok(daemon) => match daemon.post("/v1/hooks", body) {
            Ok(_) => return Ok(()),
            Err(e) if e.downcast_ref::<client::Unreachable>().is_some() => e,
            // The daemon answered: it refused the hook.
            Err(e) => return Err(e),
        },
    };
    // The daemon is away or restarting: an agent's final answer is kept for it.
    if mosaic_bridge::final_answer(&payload).is_none() {
        return Err(away);
    }
    let Some(agent) = hook_agent(paths, agent)? else {
        return Err(away);
    };
    let kept = spool::KeptHook {
        agent,
        event,
        payload,
    };
    let file = spool::keep_hook(paths, &kept)?;
    eprintln!(
        "mosaic hook: {away:#}; the final answer is kept in {} for the daemon to post when it starts",
        file.display()
    );
    Ok(())
}

/// The agent a hook is about when it is kept for the daemon: the caller's own (its token,
/// checked), or the `--agent` a person named; `None` unless it is an agent of the roster (a
/// worker's answer goes to its room, the orchestrator's to the room of the turn it answered).
fn hook_agent(paths: &Paths, named: Option<String>) -> Result<Option<String>> {
    let agent = match client::agent_token() {
        None => named,
        Some(presented) => {
            let own = AgentToken::parse(&presented)
                .filter(|(name, secret)| {
                    AgentToken::read(paths, name).is_some_and(|t| t.matches(secret))
                })
                .map(|(name, _)| name.to_owned())
                .context("this agent's token is not one the fleet gave; the hook was not kept")?;
            if let Some(other) = named.filter(|n| *n != own) {
                bail!("agent {own} may report only its own hooks, not {other}'s");
            }
            Some(own)
        }
    };
    let roster = mosaic_roster::Roster::load(&paths.roster())?;
    Ok(agent.filter(|name| roster.agent(name).is_some()))
}

/// A JSON payload on stdin (`null` when stdin is a terminal, empty, not JSON, or says nothing
/// within `wait`: a hook never hangs its harness).
fn read_payload(wait: Duration) -> serde_json::Value {
    if std::io::stdin().is_terminal() {
        return serde_json::Value::Null;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut stdin = std::io::stdin().lock();
        let _ = (&mut stdin)
            .take(MAX_HOOK_PAYLOAD)
            .read_to_string(&mut text);
        let _ = tx.send(text);
        let _ = std::io::copy(&mut stdin, &mut std::io::sink());
    });
    let mut payload = rx
        .recv_timeout(wait)
        .ok()
        .and_then(|t| serde_json::from_str(t.trim()).ok())
        .unwrap_or(serde_json::Value::Null);
    cut_answer(&mut payload);
    payload
}

/// Cuts a final answer longer than [`MAX_HOOK_ANSWER`] in `payload`, saying how much was cut.
fn cut_answer(payload: &mut serde_json::Value) {
    for field in ["last_assistant_message", "last-assistant-message"] {
        if let Some(answer) = payload.get_mut(field)
            && let Some(text) = answer.as_str()
            && text.len() > MAX_HOOK_ANSWER
        {
            let mut end = MAX_HOOK_ANSWER;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            *answer = format!(
                "{}\n… ({} more bytes cut: the whole answer is in the agent's pane)",
                &text[..end],
                text.len() - end
            )
            .into();
        }
    }
}

fn install(paths: &Paths, args: &InstallArgs) -> Result<()> {
    create_private_dir(&paths.config_dir)?;
    create_private_dir(&paths.presets_dir())?;
    create_private_dir(&paths.state_dir)?;
    println!("config: {}", paths.config_dir.display());
    println!("state:  {}", paths.state_dir.display());
    let version = mosaic_tmux::Tmux::version()
        .context("tmux is required: install tmux 3.5 or newer (deploy/install-deps.sh)")?;
    let probe = mosaic_tmux::Tmux::new(format!("mosaic-install-check-{}", std::process::id()));
    probe
        .new_session(&mosaic_tmux::SessionSpec {
            name: "check".into(),
            argv: vec!["true".into()],
            size: (80, 24),
            ..Default::default()
        })
        .context("tmux could not start a session")?;
    probe.kill_server()?;
    println!("tmux:   {version} works");
    let home = mosaic_fleet::paths::home_dir();
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".local/share"));
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    let targets = [
        (
            clap_complete::Shell::Bash,
            data.join("bash-completion/completions"),
            "mosaic",
        ),
        (
            clap_complete::Shell::Zsh,
            data.join("zsh/site-functions"),
            "_mosaic",
        ),
        (
            clap_complete::Shell::Fish,
            config.join("fish/completions"),
            "mosaic.fish",
        ),
    ];
    for (shell, dir, file) in targets {
        let dir = args.completions_dir.clone().unwrap_or(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cli_command(), "mosaic", &mut buf);
        let path = dir.join(file);
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        println!("completions ({shell}): {}", path.display());
    }
    let unit_dir = config.join("systemd/user");
    std::fs::create_dir_all(&unit_dir)
        .with_context(|| format!("creating {}", unit_dir.display()))?;
    let mut unit = include_str!("../../../deploy/systemd/mosaic.service")
        .replace("@MOSAIC@", &exe()?.display().to_string());
    for (var, dir) in [
        ("MOSAIC_CONFIG", &paths.config_dir),
        ("MOSAIC_STATE", &paths.state_dir),
    ] {
        if std::env::var_os(var).is_some() {
            unit = unit.replace(
                "[Install]",
                &format!("Environment={var}={}\n\n[Install]", dir.display()),
            );
        }
    }
    let unit_path = unit_dir.join("mosaic.service");
    std::fs::write(&unit_path, unit).with_context(|| format!("writing {}", unit_path.display()))?;
    println!(
        "daemon: {} (enable: systemctl --user enable --now mosaic)",
        unit_path.display()
    );
    if !paths.roster().exists() {
        println!("next: `mosaic fleet init` to create the roster");
    }
    Ok(())
}
