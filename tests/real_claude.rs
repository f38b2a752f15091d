//! The real Claude Code (from npm, `deploy/install-harnesses.sh`) in a fleet run by the real
//! `mosaic up`, in real tmux, against the scripted model (TEST SUPPORT): start → ready, one exact
//! send, busy → idle from its own hooks, a permission dialog chat cannot answer, a killed harness
//! restarted, an orchestrator replying through the CLI and the MCP tool, and an unanswered turn
//! relayed. No network: every endpoint is on loopback and Claude Code's own traffic is off.

mod support;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::rig::*;
use support::*;

/// The model every agent asks for: one with no retirement banner.
const MODEL: &str = "claude-opus-5-5";
/// A test key for the scripted model; Claude Code remembers its last 20 characters as approved.
const API_KEY: &str = "sk-ant-scripted-test-key-0123456789abcdef";
/// The shipped manifest, which the fleet runs with one flag added (see [`Rig::new`]).
const SHIPPED_MANIFEST: &str = include_str!("../harnesses/claude.yaml");
/// How long a step involving Claude Code may take on a slow shared machine (a bound, not a
/// measure).
const STEP_SECS: u64 = 40;

/// A fleet of two Claude Code agents (orchestrator `mos`, worker `w1`), each against its own
/// scripted model, run by `mosaic up`, with a `mosaic chat` session as the room.
struct Rig {
    s: Sandbox,
    mos_model: mosaic_scripted_model::Running,
    w1_model: mosaic_scripted_model::Running,
    daemon: Child,
    room: Room,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.room.child.kill();
        let _ = self.room.child.wait();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The Sandbox kills its tmux server (and with it each Claude Code) when dropped.
    }
}

impl Rig {
    fn new() -> Rig {
        let s = Sandbox::new();
        let mos_model = model();
        let w1_model = model();
        let home = s.home();
        for agent in ["mos", "w1"] {
            std::fs::create_dir_all(workdir(&s, agent)).unwrap();
            // Claude Code's global config: onboarding done, the test key approved, the
            // workdir trusted (each key skips a dialog; see notes/harness-claude.md).
            let config_dir = home.join(format!(".claude-{agent}"));
            std::fs::create_dir_all(&config_dir).unwrap();
            let mut projects = serde_json::Map::new();
            projects.insert(
                workdir(&s, agent).display().to_string(),
                serde_json::json!({ "hasTrustDialogAccepted": true }),
            );
            let config = serde_json::json!({
                "hasCompletedOnboarding": true,
                "theme": "dark",
                "numStartups": 1,
                "customApiKeyResponses": {
                    "approved": [&API_KEY[API_KEY.len() - 20..]],
                    "rejected": []
                },
                "projects": projects,
            });
            std::fs::write(config_dir.join(".claude.json"), config.to_string()).unwrap();
        }
        // claude-opus-5-5 starts in auto mode, which runs `touch` with no dialog. This user
        // runs Claude Code in manual mode: the shipped manifest plus `--permission-mode
        // default`, as a user's own manifest of the same name (it replaces the shipped one).
        let manifest = SHIPPED_MANIFEST.replace(
            "  command: [claude]\n",
            "  command: [claude, --permission-mode, default]\n",
        );
        assert_ne!(
            manifest, SHIPPED_MANIFEST,
            "the shipped launch command moved"
        );
        std::fs::create_dir_all(s.config().join("harnesses")).unwrap();
        std::fs::write(s.config().join("harnesses/claude.yaml"), manifest).unwrap();

        let agent_yaml = |name: &str, role: &str, model_url: &str| {
            let config_dir = home.join(format!(".claude-{name}"));
            format!(
                "  - name: {name}
    role: {role}
    runtime: claude
    model: {MODEL}
    workdir: {workdir}
    instructions: You are in a test.
    env:
      CLAUDE_CONFIG_DIR: {config_dir}
      ANTHROPIC_BASE_URL: {model_url}
      ANTHROPIC_API_KEY: {API_KEY}
      DISABLE_AUTOUPDATER: '1'
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1'
      DISABLE_TELEMETRY: '1'
      DISABLE_ERROR_REPORTING: '1'
      CLAUDE_CODE_MODEL_CATALOG: 'off'
      CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL: '1'
",
                workdir = workdir(&s, name).display(),
                config_dir = config_dir.display(),
            )
        };
        let roster = format!(
            "version: 1\nfleet: rig\ntmux:\n  socket: {}\nagents:\n{}{}",
            s.socket,
            agent_yaml("mos", "orchestrator", &mos_model.base_url()),
            agent_yaml("w1", "worker", &w1_model.base_url()),
        );
        std::fs::create_dir_all(s.config()).unwrap();
        std::fs::write(s.roster_path(), roster).unwrap();

        let log = std::fs::File::create(s.dir.path().join("daemon.log")).unwrap();
        let daemon = s
            .command(&["up", "--listen", "127.0.0.1:0"])
            .env("PATH", path_with_harnesses())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for_secs("mosaic up to start the fleet", DAEMON_START_SECS, || {
            read_opt(&s.state().join("daemon.json")).contains(r#""fleet":"started""#)
        });
        let room = Room::open(&s);
        Rig {
            s,
            mos_model,
            w1_model,
            daemon,
            room,
        }
    }

    /// Runs mosaic with the harnesses on PATH; its stdout, failing the test if it failed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self
            .s
            .command(args)
            .env("PATH", path_with_harnesses())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mosaic {args:?} failed:\n{}\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            self.diagnosis()
        );
        text(&out.stdout)
    }

    /// The agent's row in `ps --json`.
    fn row(&self, agent: &str) -> serde_json::Value {
        self.s.agent_row(agent)
    }

    /// `(state, activity, activity_source)` of the agent.
    fn activity(&self, agent: &str) -> (String, String, String) {
        let row = self.row(agent);
        let s = |k: &str| row[k].as_str().unwrap_or("").to_owned();
        (s("state"), s("activity"), s("activity_source"))
    }

    /// Waits until the agent's harness said by its own hook that it is `activity`.
    fn wait_activity(&self, agent: &str, activity: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(STEP_SECS);
        loop {
            let seen = self.activity(agent);
            if seen == ("running".into(), activity.into(), "hook".into()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{agent} never became {activity} by its hook (last seen {seen:?})\n{}",
                self.diagnosis()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The screens and the daemon's log, for a failure message.
    fn diagnosis(&self) -> String {
        let screen = |a: &str| self.s.tmux().capture(a, false).unwrap_or_default();
        format!(
            "--- mos screen ---\n{}\n--- w1 screen ---\n{}\n--- room ---\n{:?}\n--- daemon log (tail) ---\n{}",
            screen("mos"),
            screen("w1"),
            self.room.lines(),
            tail(&read_opt(&self.s.dir.path().join("daemon.log")), 3000)
        )
    }

    fn pane_pid(&self, agent: &str) -> u64 {
        self.row(agent)["pid"].as_u64().expect("the agent runs")
    }

    fn tmux_server_pid(&self) -> String {
        self.s
            .tmux()
            .run(&["display-message", "-p", "#{pid}"])
            .unwrap()
            .trim()
            .to_owned()
    }
}

fn workdir(s: &Sandbox, agent: &str) -> std::path::PathBuf {
    s.dir.path().join(format!("work-{agent}"))
}

fn tail(text: &str, n: usize) -> &str {
    let mut cut = text.len().saturating_sub(n);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    &text[cut..]
}

/// The local room: a `mosaic chat` session kept open, with everything it printed.
struct Room {
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Room {
    fn open(s: &Sandbox) -> Room {
        let mut child = s
            .command(&["chat", "--linger", "600"])
            .env("PATH", path_with_harnesses())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        // `mosaic chat` connects its event stream before it reads its first line.
        std::thread::sleep(Duration::from_millis(500));
        Room {
            child,
            stdin,
            lines,
        }
    }

    /// Says one line in the room (to the orchestrator).
    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// How many lines the room printed that contain `needle`.
    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

/// The prompts (the user's typed text: the last text block that is not a system reminder) of
/// each turn the model was asked, in order: the main turns only (requests offering tools).
fn prompts(model: &mosaic_scripted_model::Running) -> Vec<String> {
    let mut seen = Vec::new();
    for r in model.shared.requests() {
        if r.path != "/v1/messages"
            || r.body["tools"]
                .as_array()
                .is_none_or(|tools| tools.is_empty())
        {
            continue;
        }
        for message in r.body["messages"].as_array().unwrap() {
            if message["role"] != "user" {
                continue;
            }
            let blocks: Vec<&str> = match &message["content"] {
                serde_json::Value::String(t) => vec![t.as_str()],
                serde_json::Value::Array(blocks) => blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str())
                    .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
                    .filter(|t| !t.starts_with("[Request interrupted"))
                    .collect(),
                _ => vec![],
            };
            seen.extend(blocks.into_iter().map(str::to_owned));
        }
    }
    // Each request repeats the conversation so far: keep each user message once, by position.
    let last = model
        .shared
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/v1/messages" && r.body["tools"].is_array());
    let Some(last) = last else { return vec![] };
    let mut conversation = Vec::new();
    for message in last.body["messages"].as_array().unwrap() {
        if message["role"] != "user" {
            continue;
        }
        if let serde_json::Value::Array(blocks) = &message["content"] {
            conversation.extend(
                blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str())
                    .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
                    .filter(|t| !t.starts_with("[Request interrupted"))
                    .map(str::to_owned),
            );
        } else if let Some(t) = message["content"].as_str() {
            conversation.push(t.to_owned());
        }
    }
    // Every prompt ever sent is in the newest conversation (nothing was compacted).
    for p in &seen {
        assert!(conversation.contains(p), "{p:?} left the conversation");
    }
    conversation
}

fn wait_for_prompt(rig: &Rig, model: &mosaic_scripted_model::Running, what: &str, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(STEP_SECS);
    while !prompts(model).iter().any(|p| p.contains(needle)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the model never got {needle:?} (prompts {:?})\n{}",
            prompts(model),
            rig.diagnosis()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_room(rig: &Rig, what: &str, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(STEP_SECS);
    while rig.room.count(needle) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the room never showed {needle:?}\n{}",
            rig.diagnosis()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn starts_ready_from_its_hook_and_a_send_arrives_once_byte_for_byte() {
    let rig = Rig::new();
    rig.wait_activity("w1", "idle");
    rig.wait_activity("mos", "idle");
    assert_eq!(
        rig.row("w1")["activity_detail"],
        "SessionStart",
        "ready from Claude Code's SessionStart hook"
    );
    // (No tab: Claude Code's input box turns a pasted tab into spaces, whoever types it.)
    let message = "line one with $HOME; rm -rf / && echo \"x\" | cat\nline `two` has a backtick\n  and 'quotes' \\ here";
    rig.ok(&["fleet", "send", "w1", message]);
    wait_for_prompt(&rig, &rig.w1_model, "the send", "line one");
    // The turn it started ended: nothing else is on its way.
    rig.wait_activity("w1", "idle");
    let got = prompts(&rig.w1_model);
    assert_eq!(
        got,
        vec![message.to_owned()],
        "the model got the text once, byte for byte"
    );
    assert!(
        prompts(&rig.mos_model).is_empty(),
        "nothing went to the orchestrator"
    );
}

#[test]
fn busy_then_idle_from_its_own_hooks() {
    let rig = Rig::new();
    rig.wait_activity("w1", "idle");
    rig.ok(&["fleet", "send", "w1", "[[slow 3000]] take your time"]);
    rig.wait_activity("w1", "busy");
    assert_eq!(rig.row("w1")["activity_detail"], "UserPromptSubmit");
    rig.wait_activity("w1", "idle");
    assert_eq!(rig.row("w1")["activity_detail"], "Stop");
    assert_eq!(
        prompts(&rig.w1_model),
        vec!["[[slow 3000]] take your time".to_owned()]
    );
    let screen = rig.s.screen("w1");
    assert!(
        screen.contains("ok: [[slow 3000]] take your time"),
        "{screen}"
    );
}

#[test]
fn a_permission_dialog_waits_for_a_person_and_chat_never_answers_it() {
    let mut rig = Rig::new();
    rig.wait_activity("mos", "idle");
    let made = workdir(&rig.s, "mos").join("made-by-dialog.txt");
    rig.room.say("[[bash touch made-by-dialog.txt]]");
    rig.wait_activity("mos", "waiting-for-input");
    let detail = rig.row("mos")["activity_detail"].clone();
    assert_eq!(
        detail, "permission to run Bash: touch made-by-dialog.txt",
        "what it asks, from its PermissionRequest hook"
    );
    wait_room(
        &rig,
        "the room is told",
        "mos is waiting for input at its terminal: permission to run Bash: touch made-by-dialog.txt",
    );
    // A chat message meanwhile waits: it reaches neither the dialog nor the model.
    rig.room.say("[[say after the dialog]]");
    let screen_has_dialog = || rig.s.screen("mos").contains("Do you want to proceed?");
    wait_for_secs("the dialog on screen", STEP_SECS, screen_has_dialog);
    // Long enough for a delivery to have happened (it takes well under a second when idle).
    std::thread::sleep(Duration::from_secs(4));
    assert!(screen_has_dialog(), "{}", rig.diagnosis());
    assert!(!made.exists(), "a chat message answered the dialog");
    assert!(
        !prompts(&rig.mos_model)
            .iter()
            .any(|p| p.contains("after the dialog")),
        "the message reached the model while the dialog was open"
    );
    assert_eq!(rig.activity("mos").1, "waiting-for-input");
    // A person at the terminal refuses (Escape), as one would in `mosaic fleet attach mos`.
    rig.s
        .tmux()
        .run(&["send-keys", "-t", "mos", "Escape"])
        .unwrap();
    wait_for_prompt(
        &rig,
        &rig.mos_model,
        "the queued message after the dialog",
        "after the dialog",
    );
    wait_room(&rig, "its answer relayed", "after the dialog");
    assert!(!made.exists(), "the refused command never ran");
    assert_eq!(
        rig.room.count("is waiting for input"),
        1,
        "told once: {:?}",
        rig.room.lines()
    );
    let asked = prompts(&rig.mos_model);
    assert_eq!(
        asked
            .iter()
            .filter(|p| p.contains("after the dialog"))
            .count(),
        1,
        "{asked:?}"
    );
}

#[test]
fn a_killed_harness_is_restarted_and_nothing_else_moves() {
    let rig = Rig::new();
    rig.wait_activity("w1", "idle");
    rig.wait_activity("mos", "idle");
    let server = rig.tmux_server_pid();
    let mos_pid = rig.pane_pid("mos");
    let killed = rig.s.kill_agent("w1");
    // The supervisor looks once a second: it sees the dead harness before restarting it.
    let mut saw_dead = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(STEP_SECS);
    loop {
        let row = rig.row("w1");
        if row["state"] == "dead" {
            saw_dead = true;
        }
        if row["state"] == "running" && row["pid"].as_u64().is_some_and(|p| p != killed) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "w1 was not restarted: {row}\n{}",
            rig.diagnosis()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_dead, "ps showed the dead harness before its restart");
    rig.wait_activity("w1", "idle");
    assert_eq!(rig.tmux_server_pid(), server, "the same tmux server");
    assert_eq!(rig.pane_pid("mos"), mos_pid, "the orchestrator untouched");
    // The restarted harness works.
    rig.ok(&["fleet", "send", "w1", "after the restart"]);
    wait_for_prompt(
        &rig,
        &rig.w1_model,
        "a send after the restart",
        "after the restart",
    );
}

#[test]
fn the_orchestrator_replies_through_the_cli_and_the_mcp_tool() {
    let mut rig = Rig::new();
    rig.wait_activity("mos", "idle");
    // mosaic's own path, as its instructions tell the orchestrator to run it (and as its
    // manifest lets it run without a prompt). `"$MOSAIC_BIN" reply …` cannot be allowed ahead:
    // Claude Code asks about any command with a variable ("A variable in this command can't be
    // checked before it runs"), so it would sit in a dialog.
    rig.room
        .say(&format!("[[bash {MOSAIC} reply --to {{chat_id}} via-cli]]"));
    wait_room(&rig, "the CLI reply", "via-cli");
    rig.wait_activity("mos", "idle");
    rig.room
        .say(r#"[[tool mcp__mosaic__reply {"text":"via-mcp","to":{chat_id}}]]"#);
    wait_room(&rig, "the MCP reply", "via-mcp");
    rig.wait_activity("mos", "idle");
    // It replied itself: nothing of its own final text ("done: …") is relayed.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rig.room.count("via-cli"), 1, "{:?}", rig.room.lines());
    assert_eq!(rig.room.count("via-mcp"), 1, "{:?}", rig.room.lines());
    assert_eq!(rig.room.count("done:"), 0, "{:?}", rig.room.lines());
}

#[test]
fn a_turn_answered_without_reply_is_relayed_once() {
    let mut rig = Rig::new();
    rig.wait_activity("mos", "idle");
    rig.room.say("[[say the plain answer]]");
    wait_room(&rig, "the relayed answer", "the plain answer");
    rig.wait_activity("mos", "idle");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        rig.room.lines(),
        vec!["the plain answer".to_owned()],
        "relayed once, and nothing else"
    );
}

/// The text of each message (`role`, text blocks joined) of the main-turn request whose newest
/// user message contains `needle`, if the model got one: the conversation it was shown.
fn conversation_with(
    model: &mosaic_scripted_model::Running,
    needle: &str,
) -> Option<Vec<(String, String)>> {
    let text_of = |message: &serde_json::Value| match &message["content"] {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    model.shared.requests().into_iter().rev().find_map(|r| {
        if r.path != "/v1/messages" || !r.body["tools"].is_array() {
            return None;
        }
        let messages = r.body["messages"].as_array()?;
        let newest_user = messages.iter().rev().find(|m| m["role"] == "user")?;
        text_of(newest_user).contains(needle).then(|| {
            messages
                .iter()
                .map(|m| (m["role"].as_str().unwrap_or("").to_owned(), text_of(m)))
                .collect()
        })
    })
}

/// Waits until the model got a turn whose newest prompt contains `needle`; its conversation.
fn wait_conversation(rig: &Rig, needle: &str) -> Vec<(String, String)> {
    let mut found = None;
    wait_for_secs(&format!("the model to get {needle:?}"), STEP_SECS, || {
        found = conversation_with(&rig.w1_model, needle);
        found.is_some()
    });
    found.unwrap()
}

/// Waits until w1's turn ended (its Stop hook) and the model's answer is on its screen.
fn wait_turn_done(rig: &Rig, answer: &str) {
    wait_for_secs(&format!("w1 to show {answer:?}, idle"), STEP_SECS, || {
        let row = rig.row("w1");
        row["activity"] == "idle"
            && row["activity_detail"] == "Stop"
            && rig.s.screen("w1").contains(answer)
    });
}

/// Where Claude Code keeps the transcript of `session` (under any project), if it exists.
fn transcript_of(rig: &Rig, agent: &str, session: &str) -> Option<std::path::PathBuf> {
    let projects = rig.s.home().join(format!(".claude-{agent}/projects"));
    std::fs::read_dir(projects)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join(format!("{session}.jsonl"))))
        .find(|p| p.is_file())
}

/// A restart goes back to the agent's last conversation: `fleet restart` launches Claude Code
/// with `--resume` and the session its hooks named, and the model's next request holds the
/// earlier turn. A kept session Claude Code does not know (it exits at once) is forgotten and
/// the agent starts afresh, without `--resume`.
#[test]
fn a_restart_resumes_the_last_conversation_and_an_unknown_one_starts_afresh() {
    let rig = Rig::new();
    rig.wait_activity("w1", "idle");
    let alpha = unique("ALPHA");
    rig.ok(&[
        "fleet",
        "send",
        "w1",
        &format!("[[say noted {alpha}]] remember the word {alpha}"),
    ]);
    wait_conversation(&rig, &alpha);
    wait_turn_done(&rig, &format!("noted {alpha}"));
    let mut session = None;
    wait_for_secs("w1's session kept from its hooks", STEP_SECS, || {
        session = kept_session(&rig.s, "w1");
        session.is_some()
    });
    let session = session.unwrap();
    assert!(is_uuid(&session), "{session:?}");
    assert!(
        transcript_of(&rig, "w1", &session).is_some(),
        "the kept session is the conversation Claude Code saved"
    );

    let before = rig.pane_pid("w1");
    let out = rig.ok(&["fleet", "restart", "w1"]);
    assert!(out.ends_with("w1: started\n"), "{out}");
    let pid = rig.pane_pid("w1");
    assert_ne!(pid, before, "a new Claude Code");
    let argv = cmdline(pid);
    assert_eq!(
        argv[argv.len() - 2..],
        ["--resume".to_owned(), session.clone()],
        "{argv:?}"
    );
    rig.wait_activity("w1", "idle");
    let beta = unique("BETA");
    rig.ok(&[
        "fleet",
        "send",
        "w1",
        &format!("[[say answered {beta}]] what was the word? {beta}"),
    ]);
    let conversation = wait_conversation(&rig, &beta);
    assert_resumed(&conversation, &alpha);
    wait_turn_done(&rig, &format!("answered {beta}"));
    assert_eq!(
        kept_session(&rig.s, "w1").as_deref(),
        Some(session.as_str()),
        "a resumed Claude Code keeps its session id"
    );

    // A well-formed session Claude Code does not know: it exits at once ("No conversation
    // found"); the restart forgets it and starts w1 afresh. (Written while w1 is stopped: a
    // running Claude Code's SessionEnd names its live session, which would be kept again.)
    let before = rig.pane_pid("w1");
    let events = event_stream(&rig.s);
    let out = rig.ok(&["fleet", "stop", "w1"]);
    assert!(out.contains("w1: stopped"), "{out}");
    wait_for_secs("w1's SessionEnd hook taken", STEP_SECS, || {
        events
            .lock()
            .unwrap()
            .contains(&("w1".into(), "ended".into()))
    });
    let unknown = "3f2b8c1e-9d4a-4e7b-8a6c-5b1d2e3f4a5b";
    assert!(transcript_of(&rig, "w1", unknown).is_none());
    std::fs::write(rig.s.state().join("agents/w1/session"), unknown).unwrap();
    let out = rig.ok(&["fleet", "restart", "w1"]);
    assert!(
        out.ends_with("w1: started\n") && !out.contains("exited"),
        "{out}\n{}",
        rig.diagnosis()
    );
    rig.wait_activity("w1", "idle");
    let row = rig.row("w1");
    assert_eq!(row["state"], "running", "{row}");
    let pid = rig.pane_pid("w1");
    assert_ne!(pid, before);
    let argv = cmdline(pid);
    assert!(
        !argv.iter().any(|a| a == "--resume" || a == unknown),
        "started afresh: {argv:?}"
    );
    let gamma = unique("GAMMA");
    rig.ok(&[
        "fleet",
        "send",
        "w1",
        &format!("[[say fresh {gamma}]] a new start {gamma}"),
    ]);
    let conversation = wait_conversation(&rig, &gamma);
    assert!(
        !conversation
            .iter()
            .any(|(_, t)| t.contains(&alpha) || t.contains(&beta)),
        "a fresh conversation: {conversation:#?}"
    );
    wait_turn_done(&rig, &format!("fresh {gamma}"));
    // The unknown session is gone; the one kept now is the fresh conversation's.
    let kept = kept_session(&rig.s, "w1");
    assert!(
        kept.as_deref()
            .is_some_and(|k| k != unknown && k != session),
        "{kept:?}"
    );
    assert!(
        transcript_of(&rig, "w1", kept.as_deref().unwrap()).is_some(),
        "the kept session is the fresh conversation Claude Code saved: {kept:?}"
    );
}
