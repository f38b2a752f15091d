//! Shared helpers for the end-to-end tests: a sandbox with its own config and state dirs, its own
//! HOME and its own tmux socket, driving the real `mosaic` binary.
#![allow(dead_code)] // each test file uses a different subset

use mosaic_tmux::Tmux;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The `mosaic` binary under test.
pub const MOSAIC: &str = env!("CARGO_BIN_EXE_mosaic");

/// Registers the connector types the binary has, so the tests read its rosters as it does.
pub fn register_connectors() {
    mosaic_connector::registry::register(&mosaic_discord::TYPE);
    mosaic_connector::registry::register(&mosaic_telegram::TYPE);
    mosaic_connector::registry::register(&mosaic_slack::TYPE);
    mosaic_connector::registry::register(&mosaic_matrix::TYPE);
    mosaic_connector::registry::register(&mosaic_testchat::TYPE);
}

/// `(name, state, pid)` of each agent in a `ps --json` document (pid 0 when none).
pub fn agent_rows(status: &serde_json::Value) -> Vec<(String, String, u64)> {
    status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["state"].as_str().unwrap().to_owned(),
                a["pid"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// An isolated mosaic installation; its tmux server is killed on drop.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub socket: String,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        register_connectors();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let socket = format!(
            "mosaic-e2e-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        Sandbox { dir, socket }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn roster_path(&self) -> PathBuf {
        self.config().join("roster.yaml")
    }

    /// Starts a session of this fleet that the roster does not know (an orphan), running a
    /// program that never exits.
    pub fn stray_session(&self, name: &str) {
        self.tmux()
            .new_session(&mosaic_tmux::SessionSpec {
                name: name.into(),
                fleet: "fleet".into(),
                workdir: None,
                env: vec![],
                argv: vec!["sleep".into(), "1000".into()],
                size: (80, 24),
            })
            .unwrap();
    }

    pub fn tmux(&self) -> Tmux {
        Tmux::new(self.socket.clone())
    }

    /// Environment that points mosaic at this sandbox.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MOSAIC_CONFIG", self.config().display().to_string()),
            ("MOSAIC_STATE", self.state().display().to_string()),
            ("HOME", self.home().display().to_string()),
            (
                "XDG_CONFIG_HOME",
                self.home().join(".config").display().to_string(),
            ),
            (
                "XDG_DATA_HOME",
                self.home().join(".local/share").display().to_string(),
            ),
        ]
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(MOSAIC);
        c.args(args)
            .envs(self.env())
            .env_remove("TMUX")
            // As the owner at a terminal, even when the suite runs inside a mosaic agent.
            .env_remove("MOSAIC_AGENT_TOKEN")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        with_stdin(self.command(args), input)
    }

    /// Runs `mosaic ARGS` as agent `agent` (with its own token, read from its process) with
    /// `input` on standard input, as its harness's hooks and tools run it.
    pub fn run_as_agent(&self, agent: &str, args: &[&str], input: &[u8]) -> Output {
        let mut command = self.command(args);
        command.env(
            "MOSAIC_AGENT_TOKEN",
            self.agent_env(agent, "MOSAIC_AGENT_TOKEN"),
        );
        with_stdin(command, input)
    }

    /// Runs mosaic and returns stdout, failing the test with stderr if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    /// [`Sandbox::ok`] with more environment variables.
    pub fn ok_with(&self, args: &[&str], env: &[(&str, String)]) -> String {
        let out = self
            .command(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosaic {args:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs mosaic, expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "mosaic {args:?} unexpectedly succeeded:\n{}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    /// The arguments of a non-interactive init on this sandbox's socket, every agent on the demo
    /// runtime, followed by `extra`.
    pub fn init_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "fleet",
            "init",
            "--yes",
            "--socket",
            &self.socket,
            "--orchestrator-runtime",
            "demo",
            "--worker-runtime",
            "demo",
        ];
        args.extend_from_slice(extra);
        args
    }

    /// Inits a fleet from `preset` with every agent on the demo runtime.
    pub fn init(&self, preset: &str) -> String {
        self.ok(&self.init_args(&["--preset", preset]))
    }

    /// The process id of a running agent.
    pub fn pid(&self, agent: &str) -> Option<u64> {
        self.ps()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == agent)
            .and_then(|a| a["pid"].as_u64())
    }

    /// Kills an agent's harness from outside (SIGKILL); returns its pid.
    pub fn kill_agent(&self, agent: &str) -> u64 {
        let pid = self.pid(agent).expect("the agent runs");
        assert!(
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
        pid
    }

    pub fn ps(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["fleet", "ps", "--json"])).unwrap()
    }

    /// `name -> state` from `ps --json`.
    /// The agent's row in `ps --json` (`null` when there is none).
    pub fn agent_row(&self, agent: &str) -> serde_json::Value {
        let ps = self.ps();
        ps["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["name"] == agent).cloned())
            .unwrap_or_default()
    }

    /// The agent's `(activity, activity_source, activity_detail)` as `ps --json` shows it
    /// (`-` for what it does not show).
    pub fn activity(&self, agent: &str) -> (String, String, String) {
        let row = self.agent_row(agent);
        let field = |k: &str| row[k].as_str().unwrap_or("-").to_owned();
        (
            field("activity"),
            field("activity_source"),
            field("activity_detail"),
        )
    }

    pub fn states(&self) -> Vec<(String, String)> {
        agent_rows(&self.ps())
            .into_iter()
            .map(|(name, state, _)| (name, state))
            .collect()
    }

    /// `(turn, room, text)` of each chat message the demo orchestrator `mos` received (notices
    /// left out).
    pub fn chats(&self) -> Vec<(u64, String, String)> {
        self.transcript("mos")
            .into_iter()
            .zip(self.transcript_turns("mos"))
            .filter(|(t, _)| !t.starts_with("[fleet notice] "))
            .map(|(t, turn)| {
                let (head, text) = t.split_once("] ").expect("an envelope");
                let room = head.rsplit(" on ").next().unwrap().to_owned();
                (turn, room, text.to_owned())
            })
            .collect()
    }

    /// Messages the demo agent `agent` received, in order.
    pub fn transcript(&self, agent: &str) -> Vec<String> {
        self.transcript_entries(agent)
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The turn each message of demo agent `agent`'s transcript came in (several chat messages
    /// can share one).
    pub fn transcript_turns(&self, agent: &str) -> Vec<u64> {
        self.transcript_entries(agent)
            .iter()
            .map(|e| e["turn"].as_u64().unwrap())
            .collect()
    }

    /// Demo agent `agent`'s transcript: one JSON object per message it received.
    fn transcript_entries(&self, agent: &str) -> Vec<serde_json::Value> {
        let path = self
            .state()
            .join("agents")
            .join(agent)
            .join("demo-transcript.jsonl");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Only whole lines: the demo agent may be writing the next one right now.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The value of `name` in running agent `agent`'s environment (its own token, say).
    pub fn agent_env(&self, agent: &str, name: &str) -> String {
        let pid = self.pid(agent).expect("running");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let prefix = format!("{name}=");
        environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .find_map(|v| v.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("{agent} has no {name}"))
    }

    pub fn screen(&self, agent: &str) -> String {
        self.tmux().capture(agent, true).unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let tmux = self.tmux();
        let _ = tmux.kill_server();
        // A server that crashed or was killed (tests do that) leaves its socket file: nobody
        // listens on it any more, and nothing else uses this test's socket name.
        let socket = tmux.socket_path();
        if std::os::unix::net::UnixStream::connect(&socket).is_err() {
            let _ = std::fs::remove_file(&socket);
        }
    }
}

/// `texts` with each envelope's random nonce (`[chat #N:3fa9c1 from`) replaced by `NONCE`, so
/// tests can compare whole envelopes.
pub fn nonce_masked(texts: Vec<String>) -> Vec<String> {
    texts
        .into_iter()
        .map(|t| {
            let mut out = String::new();
            let mut rest = t.as_str();
            while let Some(i) = rest.find("[chat #") {
                let (head, tail) = rest.split_at(i + "[chat #".len());
                out.push_str(head);
                let digits =
                    tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let after = &tail[digits..];
                let hex = after
                    .strip_prefix(':')
                    .map(|h| h.len() - h.trim_start_matches(|c: char| c.is_ascii_hexdigit()).len());
                match hex {
                    Some(n) if n > 0 => {
                        out.push_str(&tail[..digits]);
                        out.push_str(":NONCE");
                        rest = &after[1 + n..];
                    }
                    _ => rest = tail,
                }
            }
            out.push_str(rest);
            out
        })
        .collect()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `f` until it is true (10 s at most: a generous bound for slow shared machines, not a
/// performance assertion).
pub fn wait_for(what: &str, f: impl FnMut() -> bool) {
    wait_for_secs(what, 10, f)
}

/// How long a test waits for `mosaic up` to have started the fleet: the daemon itself waits up
/// to 30 s for the agents' first screens (a bound for slow shared machines, not a measure).
pub const DAEMON_START_SECS: u64 = 90;

/// [`wait_for`] with a longer bound, for waits that include deliberate backoff.
/// An HTTP client for the daemon's API: statuses are answers, not errors; no call hangs a test.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub fn wait_for_secs(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// The file's text, or empty when it cannot be read (yet).
pub fn read_opt(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
pub mod api;
pub mod bridge;
pub mod rig;

/// Sends one JSON-RPC request (an MCP client talking to `mosaic mcp`).
pub fn rpc(stdin: &mut impl std::io::Write, id: u64, method: &str, params: serde_json::Value) {
    let msg = serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    writeln!(stdin, "{msg}").unwrap();
    stdin.flush().unwrap();
}

/// Reads lines until the JSON-RPC response with `id`.
pub fn response(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    id: u64,
) -> serde_json::Value {
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["id"] == id {
            return v;
        }
    }
    panic!("no response {id}");
}

/// Starts `mosaic mcp` in the sandbox: the process, its stdin and its stdout's lines.
pub fn mcp_client(
    s: &Sandbox,
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = s
        .command(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, stdin, lines)
}

/// Waits for the `/fleet confirm CODE` request posted in `room` of the testchat platform at
/// `dir`, and returns its code.
pub fn confirmation_code(dir: &Path, room: &str) -> String {
    let asked = || {
        mosaic_testchat::posted(dir, room)
            .into_iter()
            .find_map(|t| {
                t.split_once("/fleet confirm ")
                    .map(|(_, code)| code.to_owned())
            })
    };
    wait_for_secs("the confirmation request", 30, || asked().is_some());
    asked()
        .unwrap_or_default()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

/// A `mosaic up` process, killed (SIGKILL, as a crash would) when dropped.
pub struct Up(pub std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `mosaic` command in a real terminal: a tmux pane (120x40) on the sandbox's own server, with
/// the sandbox's environment plus `env`.
pub struct Terminal {
    tmux: Tmux,
    name: String,
}

impl Terminal {
    /// Starts `mosaic ARGS` in the pane of a new session `name`.
    pub fn start(s: &Sandbox, name: &str, args: &[&str], env: &[(&str, String)]) -> Terminal {
        let tmux = s.tmux();
        let mut vars: Vec<(String, String)> = s
            .env()
            .into_iter()
            .chain(env.iter().cloned())
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        vars.push(("TERM".into(), "xterm-256color".into()));
        let mut argv = vec![MOSAIC.to_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        tmux.new_session(&mosaic_tmux::SessionSpec {
            name: name.into(),
            fleet: "terminal-test".into(),
            workdir: Some(s.home()),
            env: vars,
            argv,
            size: (120, 40),
        })
        .unwrap();
        Terminal {
            tmux,
            name: name.to_owned(),
        }
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        self.tmux.capture(&self.name, false).unwrap_or_default()
    }

    /// Waits until the screen shows `needle`.
    pub fn wait(&self, what: &str, needle: &str) {
        wait_for(what, || self.screen().contains(needle));
    }

    /// Presses tmux keys (`Enter`, `Up`, `C-l`; `-l TEXT` types text literally).
    pub fn keys(&self, keys: &[&str]) {
        let target = format!("={}:", self.name);
        let mut args = vec!["send-keys", "-t", &target];
        args.extend_from_slice(keys);
        self.tmux.run(&args).unwrap();
    }

    /// Types `text` and presses Enter.
    pub fn type_line(&self, text: &str) {
        if !text.is_empty() {
            self.keys(&["-l", text]);
        }
        self.keys(&["Enter"]);
    }
}

/// Runs `command` with `input` on its standard input; its output.
fn with_stdin(mut command: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
