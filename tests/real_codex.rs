//! The real Codex CLI (npm `@openai/codex`, installed by `deploy/install-harnesses.sh`) as a
//! mosaic harness, end to end: real tmux on the sandbox's socket, the real `mosaic up` daemon, and
//! the scripted model server (TEST SUPPORT) in place of OpenAI. Every assertion is on a real
//! effect: what reached the model, what the room got (`mosaic chat`), what `ps --json` shows.
//!
//! Each test writes a roster with a Codex orchestrator (`mos`) and a Codex worker (`worker`), each
//! with its own `CODEX_HOME` holding the offline recipe (docs: the codex probe report): the
//! scripted provider, no daemon, no plugins, no update check, a trusted workdir.

mod support;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::rig::*;
use support::*;

/// How long a real Codex may take to start, answer or restart on a slow shared machine (a
/// bound, not a measure).
const CODEX_SECS: u64 = 40;

/// What an agent's Codex may do on its own.
#[derive(Clone, Copy)]
enum Permissions {
    /// No sandbox, never asks (`approval_policy = "never"`, `danger-full-access`).
    Full,
    /// A sandbox, and a dialog for anything outside it (`on-request`, `workspace-write`).
    Asks,
}

/// A running fleet: the sandbox, the scripted model, the daemon.
struct Rig {
    s: Sandbox,
    model: mosaic_scripted_model::Running,
    daemon: Child,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The Sandbox then kills its tmux server, and with it every Codex and MCP server.
    }
}

/// `config.toml` for one agent's `CODEX_HOME`: fully offline against the scripted model.
fn codex_config(model_url: &str, workdir: &std::path::Path, permissions: Permissions) -> String {
    let (approval, sandbox) = match permissions {
        Permissions::Full => ("never", "danger-full-access"),
        Permissions::Asks => ("on-request", "workspace-write"),
    };
    format!(
        r#"model = "scripted"
model_provider = "scripted"
approval_policy = "{approval}"
sandbox_mode = "{sandbox}"
check_for_update_on_startup = false

[model_providers.scripted]
name = "scripted"
base_url = "{model_url}/v1"
wire_api = "responses"

[features]
daemon_auto_start = false
plugins = false
remote_plugin = false
apps = false
tool_suggest = false
in_app_updates = false
api_key_model_discovery = false

[tui]
show_tooltips = false

[analytics]
enabled = false

[feedback]
enabled = false

[notice]
hide_full_access_warning = true

[projects."{}"]
trust_level = "trusted"
"#,
        workdir.display()
    )
}

impl Rig {
    /// Writes the roster and each agent's Codex config, starts `mosaic up` and waits until both
    /// Codex TUIs show their composer.
    fn start(orchestrator: Permissions) -> Rig {
        let s = Sandbox::new();
        let model = model();
        let mut agents = String::new();
        for (name, role, permissions) in [
            ("mos", "orchestrator", orchestrator),
            ("worker", "worker", Permissions::Full),
        ] {
            let workdir = s.dir.path().join(format!("work-{name}"));
            let codex_home = s.dir.path().join(format!("codex-{name}"));
            std::fs::create_dir_all(&workdir).unwrap();
            std::fs::create_dir_all(&codex_home).unwrap();
            std::fs::write(
                codex_home.join("config.toml"),
                codex_config(&model.base_url(), &workdir, permissions),
            )
            .unwrap();
            agents.push_str(&format!(
                "- name: {name}\n  role: {role}\n  runtime: codex\n  workdir: {}\n  env:\n    CODEX_HOME: {}\n",
                workdir.display(),
                codex_home.display()
            ));
        }
        std::fs::create_dir_all(s.config()).unwrap();
        std::fs::write(
            s.roster_path(),
            format!(
                "version: 1\nfleet: fleet\ntmux:\n  socket: {}\nagents:\n{agents}",
                s.socket
            ),
        )
        .unwrap();
        let _ = std::fs::remove_file(s.state().join("daemon.json"));
        let daemon = s
            .command(&["up", "--listen", "127.0.0.1:0"])
            .env("PATH", path_with_harnesses())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(s.dir.path().join("daemon.log")).unwrap())
            .spawn()
            .unwrap();
        let rig = Rig { s, model, daemon };
        let info = rig.s.state().join("daemon.json");
        let deadline = std::time::Instant::now() + Duration::from_secs(DAEMON_START_SECS);
        while !read_opt(&info).contains(r#""fleet":"started""#) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for the daemon to start the fleet:\n{}",
                rig.diagnosis()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for agent in ["mos", "worker"] {
            rig.wait_ready(agent);
        }
        rig
    }

    /// Polls `f` until it is true, failing with what the fleet shows.
    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(CODEX_SECS);
        while !f() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.diagnosis()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's log and each agent's screen, for a failure message.
    fn diagnosis(&self) -> String {
        let mut out = format!(
            "daemon.log:\n{}",
            read_opt(&self.s.dir.path().join("daemon.log"))
        );
        out.push_str(&format!(
            "\nps: {}",
            text(&self.s.run(&["fleet", "ps", "--json"]).stdout)
        ));
        for agent in ["mos", "worker"] {
            let screen = self.s.tmux().capture(agent, true).unwrap_or_default();
            out.push_str(&format!("\n--- {agent}:\n{screen}"));
        }
        out
    }

    /// Runs mosaic with the real harnesses on PATH.
    fn mosaic(&self, args: &[&str]) -> String {
        ok_with_harnesses(&self.s, args)
    }

    /// Waits until the agent's Codex shows its composer, idle (its ready screen).
    fn wait_ready(&self, agent: &str) {
        wait_for_secs(&format!("{agent}'s Codex to be ready"), CODEX_SECS, || {
            let screen = self.s.tmux().capture(agent, false).unwrap_or_default();
            screen.contains("Ask Codex to do anything") && !screen.contains("esc to interrupt")
        });
    }

    /// The agent's `(activity, activity_source, activity_detail)` as `ps --json` shows it.
    fn activity(&self, agent: &str) -> (String, String, String) {
        self.s.activity(agent)
    }

    /// Waits until `ps` shows the agent's activity `want`, from its hooks.
    fn wait_activity(&self, agent: &str, want: &str) {
        let mut last = Default::default();
        wait_for_secs(
            &format!("{agent} to be {want} (hook); last seen {last:?}"),
            CODEX_SECS,
            || {
                last = self.activity(agent);
                last.0 == want && last.1 == "hook"
            },
        );
    }

    /// The texts a person typed (or mosaic pasted) that reached the model, one per request
    /// that started a turn, oldest first: each user-turn request's newest typed message.
    /// Codex's thread-title requests (a JSON-schema answer, quoting the prompt) are left out.
    fn prompts(&self) -> Vec<String> {
        self.model
            .shared
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/responses" && !is_title_request(&r.body))
            .filter(|r| ends_with_user_message(&r.body))
            .filter_map(|r| typed_messages(&r.body).pop())
            .collect()
    }

    /// The pid of the sandbox's tmux server.
    fn tmux_server_pid(&self) -> String {
        self.s
            .tmux()
            .run(&["display-message", "-p", "#{pid}"])
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Opens `mosaic chat` (the local room) as the owner.
    fn chat(&self) -> Chat {
        let mut child = self
            .s
            .command(&["chat", "--linger", "600"])
            .env("PATH", path_with_harnesses())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let printed = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let printed = printed.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut p = printed.lock().unwrap();
                    p.push_str(&line);
                    p.push('\n');
                }
            });
        }
        // The chat client connects its event stream before it reads input.
        std::thread::sleep(Duration::from_millis(500));
        Chat {
            child,
            stdin,
            printed,
        }
    }
}

/// `mosaic chat`, its output collected as it comes.
struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    printed: Arc<Mutex<String>>,
}

impl Chat {
    /// Sends one chat message (one line).
    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Everything the room showed so far.
    fn printed(&self) -> String {
        self.printed.lock().unwrap().clone()
    }

    /// Waits until the room showed `needle`.
    fn wait_for(&self, needle: &str) {
        wait_for_secs(&format!("the room to show {needle:?}"), CODEX_SECS, || {
            self.printed().contains(needle)
        });
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Codex's thread-title request: it asks for a JSON-schema answer and quotes the user's prompt.
fn is_title_request(body: &Value) -> bool {
    body["text"]["format"]["type"] == "json_schema"
}

/// Whether the request's last input item is a user message (a new turn, not a tool result).
fn ends_with_user_message(body: &Value) -> bool {
    body["input"]
        .as_array()
        .and_then(|items| items.last())
        .is_some_and(|item| item["type"] == "message" && item["role"] == "user")
}

/// The user messages of a request that a person typed (not Codex's own context items).
fn typed_messages(body: &Value) -> Vec<String> {
    const CONTEXT: [&str; 5] = [
        "<environment_context>",
        "# AGENTS.md instructions",
        "<user_instructions>",
        "<INSTRUCTIONS>",
        "<turn_aborted>",
    ];
    body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message" && item["role"] == "user")
        .map(|item| {
            item["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|part| part["text"].as_str())
                .collect::<String>()
        })
        .filter(|t| !CONTEXT.iter().any(|c| t.starts_with(c)))
        .collect()
}

/// 1. Both Codex agents start and show their composer; before their first prompt their state
///    comes from the process (Codex sends SessionStart with the first prompt). `fleet send`
///    submits a multi-line text full of shell metacharacters exactly once, byte for byte.
#[test]
fn codex_starts_and_a_send_reaches_the_model_once_byte_for_byte() {
    let rig = Rig::start(Permissions::Full);
    assert_eq!(
        rig.s.states(),
        [
            ("mos".to_owned(), "running".to_owned()),
            ("worker".to_owned(), "running".to_owned())
        ]
    );
    // Codex sends no hook before its first prompt: the daemon sees it ready on its screen.
    wait_for_secs("the worker ready by its screen", CODEX_SECS, || {
        let (activity, source, _) = rig.activity("worker");
        activity == "idle" && source == "screen"
    });
    let message = "check $HOME; rm -rf / && echo \"x\" | cat\nsecond line with `uname` and 'quotes' > out.txt\n  third, indented: $(whoami) & %s \\n";
    rig.mosaic(&["fleet", "send", "worker", message]);
    wait_for_secs("the model to answer", CODEX_SECS, || {
        rig.s.screen("worker").contains("ok: check $HOME")
    });
    rig.wait_activity("worker", "idle");
    assert_eq!(rig.prompts(), [message], "exactly once, byte for byte");
    // Nothing more arrives later (no second Enter, no retry).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rig.prompts(), [message]);
}

/// 2. A slow turn: `ps` shows busy from Codex's own hooks while the model works, then idle.
#[test]
fn codex_hooks_show_busy_then_idle() {
    let rig = Rig::start(Permissions::Full);
    rig.mosaic(&["fleet", "send", "worker", "[[slow 3000]] take your time"]);
    rig.wait_activity("worker", "busy");
    assert!(
        rig.s.screen("worker").contains("esc to interrupt"),
        "it is really working: {}",
        rig.s.screen("worker")
    );
    rig.wait_activity("worker", "idle");
    assert!(
        rig.s
            .screen("worker")
            .contains("ok: [[slow 3000]] take your time")
    );
    assert_eq!(rig.prompts(), ["[[slow 3000]] take your time"]);
}

/// 3. The orchestrator asks for approval (a command outside its sandbox): `waiting-for-input`
///    from its PermissionRequest hook, a chat message meanwhile neither reaches the model nor
///    answers the dialog, the room is told once; a person declines at the terminal and the
///    queued message is then delivered.
#[test]
fn codex_approval_dialog_waits_and_holds_chat() {
    let rig = Rig::start(Permissions::Asks);
    let target = rig.s.dir.path().join("work-mos").join("approved.txt");
    let mut chat = rig.chat();
    chat.say(&format!(
        r#"[[tool exec_command {{"cmd":"touch {}","sandbox_permissions":"require_escalated","justification":"the test wants to write"}}]]"#,
        target.display()
    ));
    wait_for_secs("the approval dialog", CODEX_SECS, || {
        rig.s
            .screen("mos")
            .contains("Would you like to run the following command?")
    });
    rig.wait_activity("mos", "waiting-for-input");
    let (_, _, detail) = rig.activity("mos");
    assert_eq!(
        detail,
        format!("permission to run Bash: touch {}", target.display())
    );
    chat.say("held while the dialog is open");
    chat.wait_for("mos is waiting for input at its terminal");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !rig.prompts().iter().any(|p| p.contains("held while")),
        "nothing reaches the model while it waits: {:?}",
        rig.prompts()
    );
    assert!(
        !target.exists(),
        "the chat message did not approve the command"
    );
    let screen = rig.s.screen("mos");
    assert!(
        screen.contains("Would you like to run the following command?"),
        "the dialog is still open: {screen}"
    );
    // A person declines at the terminal.
    rig.s
        .tmux()
        .run(&["send-keys", "-t", "mos", "Escape"])
        .unwrap();
    rig.wait("the held message to reach the model", || {
        rig.prompts().iter().any(|p| p.contains("held while"))
    });
    assert!(!target.exists(), "declined");
    let held: Vec<_> = rig
        .prompts()
        .into_iter()
        .filter(|p| p.contains("held while"))
        .collect();
    assert_eq!(held.len(), 1, "delivered once: {held:?}");
    let told = format!(
        "mos is waiting for input at its terminal: permission to run Bash: touch {}",
        target.display()
    );
    assert_eq!(
        chat.printed().matches(&told).count(),
        1,
        "told once, with what it asks: {}",
        chat.printed()
    );
    rig.wait_activity("mos", "idle");
}

/// 4. The worker's Codex is killed: the supervisor sees it dead and restarts it (the default
///    policy); the tmux server and the orchestrator are untouched.
#[test]
fn a_killed_codex_is_restarted_and_nothing_else_is_touched() {
    let rig = Rig::start(Permissions::Full);
    let server = rig.tmux_server_pid();
    let orchestrator = rig.s.pid("mos").unwrap();
    let events = event_stream(&rig.s);
    let killed = rig.s.kill_agent("worker");
    wait_for_secs("the supervisor to see the worker dead", CODEX_SECS, || {
        events
            .lock()
            .unwrap()
            .contains(&("worker".into(), "dead".into()))
    });
    wait_for_secs("the supervisor to restart the worker", CODEX_SECS, || {
        events
            .lock()
            .unwrap()
            .contains(&("worker".into(), "restarted".into()))
    });
    wait_for_secs("a new worker process", CODEX_SECS, || {
        rig.s.pid("worker").is_some_and(|p| p != killed)
    });
    rig.wait_ready("worker");
    assert!(
        rig.s.states().iter().all(|(_, state)| state == "running"),
        "{:?}",
        rig.s.states()
    );
    assert_eq!(rig.tmux_server_pid(), server, "the tmux server lives on");
    assert_eq!(rig.s.pid("mos"), Some(orchestrator), "the orchestrator too");
    // And the restarted worker works.
    rig.mosaic(&["fleet", "send", "worker", "after the restart"]);
    wait_for_secs("the restarted worker to answer", CODEX_SECS, || {
        rig.s.screen("worker").contains("ok: after the restart")
    });
    // Its exit sequence (Ctrl-C on the empty composer quits Codex) stops it without a kill.
    rig.wait_activity("worker", "idle");
    let out = rig.mosaic(&["fleet", "stop", "worker"]);
    assert!(out.contains("worker: stopped"), "{out}");
    assert_eq!(rig.s.pid("mos"), Some(orchestrator));
}

/// 5. As orchestrator, Codex answers a chat message in the local room with `mosaic reply` from
///    its shell and with mosaic's MCP tool; its MCP server runs with the agent's own token.
#[test]
fn a_codex_orchestrator_replies_through_the_cli_and_mcp() {
    let rig = Rig::start(Permissions::Full);
    let mut chat = rig.chat();
    // Its shell has the agent's own token (`mosaic reply` acts as the orchestrator, not as the
    // owner); that answer is relayed, being no reply.
    chat.say(r#"who am I [[bash echo "token of ${MOSAIC_AGENT_TOKEN%%:*}"]]"#);
    chat.wait_for("done: token of");
    assert!(
        chat.printed().contains("done: token of mos\n"),
        "{}",
        chat.printed()
    );
    rig.wait_activity("mos", "idle");
    chat.say(r#"please answer [[bash "$MOSAIC_BIN" reply --to {chat_id} via-cli]]"#);
    chat.wait_for("via-cli");
    rig.wait_activity("mos", "idle");
    chat.say(r#"and again [[tool mcp__mosaic__reply {"text":"via-mcp","to":{chat_id}}]]"#);
    chat.wait_for("via-mcp");
    rig.wait_activity("mos", "idle");
    // The MCP server got what it needs to act as this agent (Codex passes only what it is
    // told to).
    let mcp = mcp_server_pid(&rig);
    let environ = std::fs::read(format!("/proc/{mcp}/environ")).unwrap();
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        vars.iter()
            .any(|v| v.starts_with("MOSAIC_AGENT_TOKEN=mos:")),
        "{vars:?}"
    );
    assert!(
        vars.iter()
            .any(|v| *v == format!("MOSAIC_STATE={}", rig.s.state().display())),
        "{vars:?}"
    );
    // When it replied itself, its closing text (`done: …`) is not relayed on top.
    std::thread::sleep(Duration::from_secs(1));
    let printed = chat.printed();
    assert_eq!(printed.matches("via-cli").count(), 1, "{printed}");
    assert_eq!(printed.matches("via-mcp").count(), 1, "{printed}");
    assert_eq!(printed.matches("done:").count(), 1, "{printed}");
}

/// The pid of the `mosaic mcp` server the orchestrator's Codex started (a descendant of it).
fn mcp_server_pid(rig: &Rig) -> u32 {
    let orchestrator = rig.s.pid("mos").unwrap() as u32;
    let parent_of = |pid: u32| -> Option<u32> {
        let status = read_opt(&PathBuf::from(format!("/proc/{pid}/status")));
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse().ok())
    };
    let descends = |mut pid: u32| {
        while let Some(parent) = parent_of(pid).filter(|p| *p > 1) {
            if parent == orchestrator {
                return true;
            }
            pid = parent;
        }
        false
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| {
            let cmdline = read_opt(&PathBuf::from(format!("/proc/{pid}/cmdline")));
            let argv: Vec<&str> = cmdline.split('\0').collect();
            argv.get(1) == Some(&"mcp") && argv[0].ends_with("/mosaic") && descends(pid)
        })
        .unwrap_or_else(|| {
            panic!("no `mosaic mcp` under the orchestrator's Codex (pid {orchestrator})")
        })
}

/// 6. A turn that answers a chat message with plain text (no reply tool): Codex's Stop hook
///    carries the final text, and it is relayed to the room once.
#[test]
fn a_codex_answer_without_reply_is_relayed_once() {
    let rig = Rig::start(Permissions::Full);
    let mut chat = rig.chat();
    chat.say("[[say the plain answer 42]]");
    chat.wait_for("the plain answer 42");
    rig.wait_activity("mos", "idle");
    std::thread::sleep(Duration::from_secs(2));
    let printed = chat.printed();
    assert_eq!(
        printed.matches("the plain answer 42").count(),
        1,
        "{printed}"
    );
}

/// `(role, text)` of each message of the turn request (not a title request) whose newest typed
/// message contains `needle`, if the model got one: the conversation it was shown.
fn conversation_with(rig: &Rig, needle: &str) -> Option<Vec<(String, String)>> {
    rig.model.shared.requests().into_iter().rev().find_map(|r| {
        if r.path != "/v1/responses"
            || is_title_request(&r.body)
            || !ends_with_user_message(&r.body)
            || !typed_messages(&r.body).pop()?.contains(needle)
        {
            return None;
        }
        let items = r.body["input"].as_array()?;
        Some(
            items
                .iter()
                .filter(|item| item["type"] == "message")
                .map(|item| {
                    let text = item["content"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|part| part["text"].as_str())
                        .collect::<String>();
                    (item["role"].as_str().unwrap_or("").to_owned(), text)
                })
                .collect(),
        )
    })
}

/// A restart goes back to the agent's last conversation: Codex names its session with its first
/// prompt's hooks, `fleet restart` launches it with `resume` and that id last, and the model's
/// next request holds the earlier turn.
#[test]
fn a_restarted_codex_resumes_its_last_conversation() {
    let rig = Rig::start(Permissions::Full);
    assert_eq!(
        kept_session(&rig.s, "worker"),
        None,
        "Codex names no session before its first prompt"
    );
    let alpha = unique("ALPHA");
    rig.mosaic(&[
        "fleet",
        "send",
        "worker",
        &format!("[[say noted {alpha}]] remember the word {alpha}"),
    ]);
    wait_for_secs("the model's answer on screen", CODEX_SECS, || {
        rig.s.screen("worker").contains(&format!("noted {alpha}"))
    });
    rig.wait_activity("worker", "idle");
    let mut session = None;
    wait_for_secs(
        "the worker's session kept from its hooks",
        CODEX_SECS,
        || {
            session = kept_session(&rig.s, "worker");
            session.is_some()
        },
    );
    let session = session.unwrap();
    assert!(is_uuid(&session), "{session:?}");

    let before = rig.s.pid("worker").unwrap();
    let out = rig.mosaic(&["fleet", "restart", "worker"]);
    assert!(out.ends_with("worker: started\n"), "{out}");
    let pid = rig.s.pid("worker").unwrap();
    assert_ne!(pid, before, "a new Codex");
    let argv = cmdline(pid);
    assert_eq!(
        argv[argv.len() - 4..],
        ["-c", "tui.resume_cwd=current", "resume", session.as_str()],
        "{argv:?}"
    );
    rig.wait_ready("worker");
    let beta = unique("BETA");
    rig.mosaic(&[
        "fleet",
        "send",
        "worker",
        &format!("[[say answered {beta}]] what was the word? {beta}"),
    ]);
    let mut conversation = None;
    wait_for_secs("the second prompt at the model", CODEX_SECS, || {
        conversation = conversation_with(&rig, &beta);
        conversation.is_some()
    });
    let conversation = conversation.unwrap();
    assert_resumed(&conversation, &alpha);
    wait_for_secs("the second answer on screen", CODEX_SECS, || {
        rig.s.screen("worker").contains(&format!("answered {beta}"))
    });
    rig.wait_activity("worker", "idle");
    assert_eq!(
        kept_session(&rig.s, "worker").as_deref(),
        Some(session.as_str()),
        "a resumed Codex keeps its session id"
    );
}
