//! The real pi (npm `@mariozechner/pi-coding-agent`) in a real fleet: real tmux on the
//! sandbox's private socket, the real `mosaic up` daemon, and the scripted model (TEST SUPPORT)
//! on loopback speaking OpenAI chat completions. pi runs fully offline (`PI_OFFLINE=1`) with its
//! whole configuration in the sandbox (`PI_CODING_AGENT_DIR`); mosaic loads its own extension
//! into it (`-e mosaic.ts`), which reports pi's events through `mosaic hook`.
//!
//! Every assertion is on a real effect: what reached the model, what `mosaic chat` shows of the
//! room, what `ps --json` and the daemon's event stream say.

mod support;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::rig::*;
use support::*;

/// The model id pi is given, as `provider/id` (pi's `--model` takes both in one).
const MODEL: &str = "scripted/scripted-pi";

/// How long a test waits for pi to do something (a bound for a loaded machine, not a measure).
const PI_SECS: u64 = 90;

/// A pi fleet: the sandbox, its scripted model and its running daemon (stopped on drop, before
/// the sandbox kills its tmux server).
struct PiFleet {
    daemon: Child,
    model: mosaic_scripted_model::Running,
    url: String,
    token: String,
    s: Sandbox,
}

impl Drop for PiFleet {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Where the orchestrator and the worker work (each its own folder in the sandbox).
fn workdir(s: &Sandbox, agent: &str) -> std::path::PathBuf {
    s.dir.path().join(format!("work-{agent}"))
}

impl PiFleet {
    /// A roster with an orchestrator `mos` and a worker `w1`, both on pi, and pi's offline
    /// configuration in the sandbox; `prepare` may add files before the fleet starts. Returns
    /// once `mosaic up` has started the fleet.
    fn up(prepare: impl FnOnce(&Sandbox)) -> PiFleet {
        let s = Sandbox::new();
        let model = model();
        let pi_dir = s.home().join(".pi/agent");
        std::fs::create_dir_all(&pi_dir).unwrap();
        // The scripted model as pi's only provider (`baseUrl` must end in /v1: pi's OpenAI client
        // appends /chat/completions). The key is not the name of an environment variable, so pi
        // takes it literally.
        let models = serde_json::json!({
            "providers": { "scripted": {
                "baseUrl": format!("{}/v1", model.base_url()),
                "api": "openai-completions",
                "apiKey": "scripted-not-a-secret",
                "models": [{
                    "id": "scripted-pi", "name": "Scripted (test support)", "reasoning": false,
                    "input": ["text"], "contextWindow": 128000, "maxTokens": 4096
                }]
            }}
        });
        std::fs::write(pi_dir.join("models.json"), models.to_string()).unwrap();
        std::fs::write(
            pi_dir.join("settings.json"),
            r#"{"enableInstallTelemetry": false}"#,
        )
        .unwrap();
        for agent in ["mos", "w1"] {
            std::fs::create_dir_all(workdir(&s, agent)).unwrap();
        }
        let env = format!(
            "    env:\n      PI_CODING_AGENT_DIR: {}\n      PI_OFFLINE: \"1\"\n",
            pi_dir.display()
        );
        let roster = format!(
            "version: 1\nfleet: rig\ntmux:\n  socket: {socket}\nagents:\n\
             \x20 - name: mos\n    role: orchestrator\n    runtime: pi\n    model: {MODEL}\n    workdir: {mos}\n{env}\
             \x20 - name: w1\n    role: worker\n    runtime: pi\n    model: {MODEL}\n    workdir: {w1}\n    instructions: You are a worker of a test fleet.\n{env}",
            socket = s.socket,
            mos = workdir(&s, "mos").display(),
            w1 = workdir(&s, "w1").display(),
        );
        std::fs::create_dir_all(s.config()).unwrap();
        std::fs::write(s.roster_path(), roster).unwrap();
        prepare(&s);
        let log = s.dir.path().join("up.log");
        let daemon = mosaic(&s, &["up", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let info = s.state().join("daemon.json");
        let deadline = std::time::Instant::now() + Duration::from_secs(PI_SECS);
        while !read_opt(&info).contains(r#""fleet":"started""#) {
            assert!(
                std::time::Instant::now() < deadline,
                "mosaic up did not start the fleet in {PI_SECS} s:\n{}\nmos:\n{}\nw1:\n{}",
                read_opt(&log),
                s.tmux().capture("mos", false).unwrap_or_default(),
                s.tmux().capture("w1", false).unwrap_or_default(),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let info: serde_json::Value = serde_json::from_str(&read(&info)).unwrap();
        PiFleet {
            daemon,
            model,
            url: info["url"].as_str().unwrap().to_owned(),
            token: read(&s.state().join("api.token")).trim().to_owned(),
            s,
        }
    }

    /// Runs mosaic (as the owner) and returns stdout; fails the test if it failed.
    fn ok(&self, args: &[&str]) -> String {
        ok_with_harnesses(&self.s, args)
    }

    /// `agent`'s row in `ps --json`.
    fn row(&self, agent: &str) -> serde_json::Value {
        self.s.agent_row(agent)
    }

    /// `(activity, activity_source, activity_detail)` of `agent` in `ps --json`.
    fn activity(&self, agent: &str) -> (String, String, String) {
        self.s.activity(agent)
    }

    /// Waits until `agent` runs and its own `session_start` hook said it is at its editor.
    fn wait_ready(&self, agent: &str) {
        wait_for_secs(&format!("{agent} ready by its hook"), PI_SECS, || {
            let row = self.row(agent);
            row["state"] == "running"
                && row["activity"] == "idle"
                && row["activity_source"] == "hook"
                && row["activity_detail"] == "session_start"
        });
    }

    /// The newest user text of each chat-completions request the model got, oldest first (one
    /// per model call: a tool call's follow-up repeats the prompt, so it is left out).
    fn prompts(&self) -> Vec<String> {
        self.model
            .shared
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v1/chat/completions")
            .filter_map(|r| {
                let messages = r.body["messages"].as_array()?.clone();
                let last = messages.last()?;
                (last["role"] == "user").then(|| user_text(last))
            })
            .collect()
    }

    /// The pane's visible screen.
    fn screen(&self, agent: &str) -> String {
        self.s.tmux().capture(agent, false).unwrap_or_default()
    }

    /// Presses `keys` in `agent`'s pane, as a person at the terminal would.
    fn press(&self, agent: &str, keys: &[&str]) {
        self.s
            .tmux()
            .run(&[&["send-keys", "-t", &format!("={agent}:")][..], keys].concat())
            .unwrap();
    }

    /// A `mosaic chat` session (the local room), printing what the room is told.
    fn chat(&self) -> ChatSession {
        let mut child = mosaic(&self.s, &["chat", "--linger", "600"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let room = Arc::new(Mutex::new(String::new()));
        let sink = room.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut room = sink.lock().unwrap();
                room.push_str(&line);
                room.push('\n');
            }
        });
        let input = child.stdin.take().unwrap();
        // `mosaic chat` opens the event stream before it reads its first line; give it a moment
        // so the answers to the first message are seen.
        std::thread::sleep(Duration::from_millis(500));
        ChatSession { child, input, room }
    }

    /// The daemon's event stream (`GET /v1/events`), collected from now on.
    fn events(&self) -> Events {
        let url = format!("{}/v1/events", self.url);
        let auth = format!("Bearer {}", self.token);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let (opened, opened_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(600)))
                .build()
                .into();
            let response = agent.get(&url).header("Authorization", &auth).call();
            let _ = opened.send(());
            let Ok(r) = response else { return };
            let reader = BufReader::new(r.into_body().into_reader());
            for line in reader.lines().map_while(Result::ok) {
                if let Some(Ok(v)) = line
                    .strip_prefix("data:")
                    .map(|d| serde_json::from_str::<serde_json::Value>(d.trim()))
                {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        opened_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the event stream opens");
        Events { seen }
    }
}

/// `mosaic ARGS` in the sandbox, with the real harnesses first on `PATH` (so the tmux server the
/// daemon starts, and every launch, finds pi).
fn mosaic(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = s.command(args);
    c.env("PATH", path_with_harnesses());
    c
}

/// The text of a chat-completions user message (a string, or text parts joined by newlines).
fn user_text(message: &serde_json::Value) -> String {
    match &message["content"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A running `mosaic chat`: what is typed goes to the orchestrator, `room()` is what the local
/// room was told since it started.
struct ChatSession {
    child: Child,
    input: ChildStdin,
    room: Arc<Mutex<String>>,
}

impl ChatSession {
    fn say(&mut self, line: &str) {
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
    }

    fn room(&self) -> String {
        self.room.lock().unwrap().clone()
    }

    /// How many lines of the room are exactly `line`.
    fn count(&self, line: &str) -> usize {
        self.room().lines().filter(|l| *l == line).count()
    }
}

impl Drop for ChatSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's events so far.
struct Events {
    seen: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Events {
    /// The `agent_state` events of `agent`, as `(state, source, detail)`.
    fn states_of(&self, agent: &str) -> Vec<(String, String, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "agent_state" && e["name"] == agent)
            .map(|e| {
                let field = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
                (field("state"), field("source"), field("detail"))
            })
            .collect()
    }
}

/// 1. pi starts and says so by its own hook; `fleet send` types a multi-line text full of shell
///    metacharacters into it, and the model gets it exactly once, byte for byte.
#[test]
fn pi_starts_ready_by_its_hook_and_a_send_reaches_the_model_once_byte_for_byte() {
    let f = PiFleet::up(|_| {});
    f.wait_ready("mos");
    f.wait_ready("w1");
    // pi may report ready (its hook) a moment before it has drawn its startup header.
    wait_for_secs(
        "pi's header naming mosaic's extension and the scripted model",
        PI_SECS,
        || {
            let screen = f.screen("w1");
            screen.contains("mosaic.ts") && screen.contains("scripted-pi")
        },
    );
    let sent = "first line: $HOME; rm -rf / && echo \"x\" | cat\nsecond line: `uname -a` 'quoted' \\back\\slash\nthird line: $(id) > /dev/null";
    let out = f.ok(&["fleet", "send", "w1", sent]);
    assert!(out.contains("submitted"), "{out}");
    wait_for_secs("the text at the model", PI_SECS, || {
        f.prompts().iter().any(|p| p.contains("third line"))
    });
    wait_for_secs("w1 idle again by its hook", PI_SECS, || {
        f.activity("w1") == ("idle".into(), "hook".into(), "agent_end".into())
    });
    let prompts = f.prompts();
    assert_eq!(
        prompts.iter().filter(|p| p.contains("first line")).count(),
        1,
        "exactly once: {prompts:#?}"
    );
    assert_eq!(
        prompts.iter().find(|p| p.contains("first line")).unwrap(),
        sent,
        "byte for byte"
    );
}

/// 2. A slow answer: pi's own hooks make the worker busy (`agent_start`) and then idle again
///    (`agent_end`).
#[test]
fn a_slow_turn_is_busy_then_idle_by_pis_hooks() {
    let f = PiFleet::up(|_| {});
    f.wait_ready("w1");
    let events = f.events();
    f.ok(&["fleet", "send", "w1", "think hard [[slow 3000]]"]);
    wait_for_secs("w1 busy by its hook", PI_SECS, || {
        f.activity("w1") == ("busy".into(), "hook".into(), "agent_start".into())
    });
    wait_for_secs("w1 idle by its hook", PI_SECS, || {
        f.activity("w1") == ("idle".into(), "hook".into(), "agent_end".into())
    });
    assert!(
        f.screen("w1").contains("ok: think hard"),
        "the answer arrived: {}",
        f.screen("w1")
    );
    assert_eq!(
        events.states_of("w1"),
        [
            ("busy".into(), "hook".into(), "-".into()),
            ("idle".into(), "hook".into(), "-".into())
        ],
        "one turn: busy, then idle, from pi's own hooks"
    );
}

/// A test-only pi extension (auto-loaded from the orchestrator's `.pi/extensions/`): it asks the
/// person at the terminal before every bash tool call, as a permission prompt would.
const GATE_EXTENSION: &str = r#"// TEST ONLY: asks before every bash tool call.
export default function (pi: any) {
	pi.on("tool_call", async (event: any, ctx: any) => {
		if (event.toolName !== "bash") return undefined;
		const ok = await ctx.ui.confirm("Gate asks", `Allow ${event.input.command}?`);
		return ok ? undefined : { block: true, reason: "denied at the terminal" };
	});
}
"#;

/// 3. A dialog (another extension asks the person at the terminal): the orchestrator is
///    `waiting-for-input` by its hook, a chat message sent meanwhile is held (it neither reaches
///    the model nor answers the dialog), the room is told once; once a person dismisses the
///    dialog at the terminal, the held message is delivered.
#[test]
fn a_dialog_is_waiting_for_input_and_holds_chat_until_a_person_answers_it() {
    let f = PiFleet::up(|s| {
        let dir = workdir(s, "mos").join(".pi/extensions");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gate.ts"), GATE_EXTENSION).unwrap();
    });
    f.wait_ready("mos");
    let made = workdir(&f.s, "mos").join("made-by-pi");
    let mut chat = f.chat();
    chat.say("please [[bash touch made-by-pi]]");
    wait_for_secs("mos waiting for input by its hook", PI_SECS, || {
        f.activity("mos")
            == (
                "waiting-for-input".into(),
                "hook".into(),
                "Gate asks".into(),
            )
    });
    assert!(f.screen("mos").contains("Allow touch made-by-pi?"));
    chat.say("meanwhile [[say second answer]]");
    let told = "mos is waiting for input at its terminal: Gate asks. Someone with access to the machine must answer it (`mosaic fleet attach mos`); chat messages wait until then.";
    wait_for_secs("the room to be told", PI_SECS, || chat.count(told) == 1);
    // Give a wrong delivery every chance to happen (an Enter would pick "Yes").
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        f.prompts().iter().all(|p| !p.contains("meanwhile")),
        "held while the dialog is open: {:#?}",
        f.prompts()
    );
    assert!(!made.exists(), "the chat message did not answer the dialog");
    let status = f.ok(&["fleet", "status"]);
    assert!(
        status.contains("waiting for input: Gate asks")
            && status.contains("1 message(s) queued for the orchestrator"),
        "{status}"
    );
    assert!(
        f.screen("mos").contains("Allow touch made-by-pi?"),
        "the dialog is still open:\n{}",
        f.screen("mos")
    );
    // A person at the terminal says no.
    f.press("mos", &["Escape"]);
    wait_for_secs("the held message at the model", PI_SECS, || {
        f.prompts().iter().any(|p| p.contains("meanwhile"))
    });
    wait_for_secs("its answer in the room", PI_SECS, || {
        chat.count("second answer") == 1
    });
    assert!(!made.exists(), "the person said no");
    assert_eq!(
        f.prompts()
            .iter()
            .filter(|p| p.contains("meanwhile"))
            .count(),
        1
    );
    assert_eq!(chat.count(told), 1, "told once: {}", chat.room());
}

/// `fleet send` to a worker whose dialog is open is refused and types nothing: its Enter would
/// answer the dialog (pick "Yes" and run the command) and the text would be lost. Once a person
/// answers it, a send goes through.
#[test]
fn a_send_to_a_worker_in_a_dialog_is_refused_and_answers_nothing() {
    let f = PiFleet::up(|s| {
        let dir = workdir(s, "w1").join(".pi/extensions");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gate.ts"), GATE_EXTENSION).unwrap();
    });
    f.wait_ready("w1");
    let made = workdir(&f.s, "w1").join("made-by-pi");
    f.ok(&["fleet", "send", "w1", "please [[bash touch made-by-pi]]"]);
    wait_for_secs("w1 waiting for input by its hook", PI_SECS, || {
        f.activity("w1")
            == (
                "waiting-for-input".into(),
                "hook".into(),
                "Gate asks".into(),
            )
    });
    let out = mosaic(&f.s, &["fleet", "send", "w1", "hello while it asks"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("w1 is waiting for input at its terminal: Gate asks"),
        "{}",
        text(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!made.exists(), "the dialog was not answered");
    assert!(
        f.screen("w1").contains("Allow touch made-by-pi?"),
        "{}",
        f.screen("w1")
    );
    f.press("w1", &["Escape"]);
    wait_for_secs("w1 idle by its hook", PI_SECS, || {
        f.activity("w1") == ("idle".into(), "hook".into(), "agent_end".into())
    });
    f.ok(&["fleet", "send", "w1", "hello after it asked"]);
    wait_for_secs("the send at the model", PI_SECS, || {
        f.prompts().iter().any(|p| p == "hello after it asked")
    });
    assert!(!made.exists(), "the person said no");
    assert!(
        f.prompts().iter().all(|p| !p.contains("while it asks")),
        "{:#?}",
        f.prompts()
    );
}

/// 4. SIGKILL of the worker's pi: the supervisor sees it dead and restarts it (the default
///    policy), it is ready again by its own hook, and the tmux server and the orchestrator are
///    untouched.
#[test]
fn a_killed_pi_is_dead_then_restarted_and_nothing_else_is_touched() {
    let f = PiFleet::up(|_| {});
    f.wait_ready("mos");
    f.wait_ready("w1");
    let events = f.events();
    let server = || {
        f.s.tmux()
            .run(&["display-message", "-p", "#{pid}"])
            .unwrap()
            .trim()
            .to_owned()
    };
    let server_before = server();
    let mos_before = f.row("mos")["pid"].as_u64().unwrap();
    let killed = f.row("w1")["pid"].as_u64().unwrap();
    assert!(
        Command::new("kill")
            .args(["-9", &killed.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_for_secs(
        "the supervisor to see w1 dead and restart it",
        PI_SECS,
        || {
            let states: Vec<String> = events
                .states_of("w1")
                .into_iter()
                .map(|(state, _, _)| state)
                .collect();
            states
                .iter()
                .position(|s| s == "dead")
                .is_some_and(|dead| states[dead..].iter().any(|s| s == "restarted"))
        },
    );
    wait_for_secs("w1 running with a new pi", PI_SECS, || {
        let row = f.row("w1");
        row["state"] == "running" && row["pid"].as_u64().is_some_and(|p| p != killed)
    });
    f.wait_ready("w1");
    assert_eq!(server(), server_before, "the tmux server is the same");
    assert_eq!(f.row("mos")["pid"].as_u64().unwrap(), mos_before);
    assert_eq!(f.row("mos")["state"], "running");
    // The restarted pi works.
    f.ok(&["fleet", "send", "w1", "after the restart"]);
    wait_for_secs("the restarted pi at the model", PI_SECS, || {
        f.prompts().iter().any(|p| p == "after the restart")
    });
}

/// 5. The orchestrator answers a chat message in its room through the CLI (`mosaic reply` run by
///    pi's bash tool) and through mosaic's extension tool `mosaic_reply`; nothing else is relayed.
#[test]
fn the_orchestrator_replies_in_the_room_through_the_cli_and_the_extension_tool() {
    let f = PiFleet::up(|_| {});
    f.wait_ready("mos");
    let mut chat = f.chat();
    chat.say(r#"by cli [[bash "$MOSAIC_BIN" reply --to {chat_id} via-cli]]"#);
    wait_for_secs("via-cli in the room", PI_SECS, || {
        chat.count("via-cli") == 1
    });
    chat.say(r#"by tool [[tool mosaic_reply {"text":"via-mcp","to":{chat_id}}]]"#);
    wait_for_secs("via-mcp in the room", PI_SECS, || {
        chat.count("via-mcp") == 1
    });
    wait_for_secs("mos idle by its hook", PI_SECS, || {
        f.activity("mos") == ("idle".into(), "hook".into(), "agent_end".into())
    });
    std::thread::sleep(Duration::from_secs(2));
    let room = chat.room();
    assert_eq!(
        (chat.count("via-cli"), chat.count("via-mcp")),
        (1, 1),
        "{room}"
    );
    assert!(
        !room.contains("done:"),
        "a turn that replied is not relayed: {room}"
    );
    // The tool really ran mosaic (its output went back to the model).
    let results: Vec<String> = f
        .model
        .shared
        .requests()
        .iter()
        .filter_map(|r| r.body["messages"].as_array()?.last().cloned())
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(results.len(), 2, "{results:#?}");
    assert!(
        results.iter().all(|r| r.contains("queued 1 message(s)")),
        "{results:#?}"
    );
}

/// 6. A turn that answers a chat message with plain text (no reply tool): pi's `agent_end` hook
///    carries the text, and it is relayed to the room once. The message is sent right after the
///    fleet started: it waits until pi is ready.
#[test]
fn a_plain_answer_is_relayed_to_the_room_once() {
    let f = PiFleet::up(|_| {});
    let mut chat = f.chat();
    chat.say("tell me [[say the plain final answer]]");
    wait_for_secs("the answer in the room", PI_SECS, || {
        chat.count("the plain final answer") == 1
    });
    wait_for_secs("mos idle by its hook", PI_SECS, || {
        f.activity("mos") == ("idle".into(), "hook".into(), "agent_end".into())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(chat.count("the plain final answer"), 1, "{}", chat.room());
    assert_eq!(
        f.prompts().iter().filter(|p| p.contains("tell me")).count(),
        1,
        "delivered once: {:#?}",
        f.prompts()
    );
}

/// `fleet stop` of a pi with a two-line draft in its editor: the draft is cleared (one Ctrl-C), `/quit`
/// makes pi exit by itself (its `session_end` hook says so), and neither reaches the model.
#[test]
fn stop_with_a_draft_in_the_editor_exits_cleanly() {
    let f = PiFleet::up(|_| {});
    f.wait_ready("w1");
    let events = f.events();
    // Two lines, pasted as a person's terminal pastes (bracketed), not submitted.
    let tmux = f.s.tmux();
    tmux.run(&["set-buffer", "-b", "draft", "a draft\nnobody sent"])
        .unwrap();
    tmux.run(&["paste-buffer", "-p", "-d", "-b", "draft", "-t", "=w1:"])
        .unwrap();
    wait_for_secs("the draft in the editor", PI_SECS, || {
        let screen = f.screen("w1");
        screen.contains("a draft") && screen.contains("nobody sent")
    });
    let out = f.ok(&["fleet", "stop", "w1"]);
    assert!(out.contains("w1: stopped"), "exited by itself: {out}");
    wait_for_secs("pi's session_end hook", PI_SECS, || {
        events
            .states_of("w1")
            .contains(&("ended".into(), "hook".into(), "session_end".into()))
    });
    assert!(
        f.prompts()
            .iter()
            .all(|p| !p.contains("draft") && !p.contains("/quit")),
        "{:#?}",
        f.prompts()
    );
    assert_eq!(f.row("w1")["state"], "stopped");
    assert_eq!(f.row("mos")["state"], "running");
}

/// `fleet verify` shows pi's version: `pi --version` prints it to standard error, and only after
/// loading the whole app (seconds on a busy machine).
#[test]
fn verify_shows_pis_version() {
    let s = Sandbox::new();
    s.init("general");
    let out = mosaic(&s, &["fleet", "verify"]).output().unwrap();
    let printed = text(&out.stdout);
    let line = printed
        .lines()
        .find(|l| l.contains("harness pi:"))
        .unwrap_or_else(|| panic!("pi is found: {printed}"));
    let version = line
        .split_whitespace()
        .find(|w| w.split('.').count() == 3 && w.split('.').all(|n| n.parse::<u32>().is_ok()));
    assert!(version.is_some(), "{line}");
}

/// `(role, text)` of each message of the chat-completions request whose newest message is a
/// user message containing `needle`, if the model got one: the conversation it was shown.
fn conversation_with(f: &PiFleet, needle: &str) -> Option<Vec<(String, String)>> {
    f.model.shared.requests().into_iter().rev().find_map(|r| {
        if r.path != "/v1/chat/completions" {
            return None;
        }
        let messages = r.body["messages"].as_array()?;
        let last = messages.last()?;
        (last["role"] == "user" && user_text(last).contains(needle)).then(|| {
            messages
                .iter()
                .map(|m| (m["role"].as_str().unwrap_or("").to_owned(), user_text(m)))
                .collect()
        })
    })
}

/// A restart goes back to the agent's last conversation: mosaic's extension names pi's session
/// file, `fleet restart` launches pi with `--session` and that file, and the model's next
/// request holds the earlier turn.
#[test]
fn a_restarted_pi_resumes_its_last_conversation() {
    let f = PiFleet::up(|_| {});
    f.wait_ready("w1");
    let alpha = unique("ALPHA");
    f.ok(&[
        "fleet",
        "send",
        "w1",
        &format!("[[say noted {alpha}]] remember the word {alpha}"),
    ]);
    wait_for_secs("w1's answer, idle by its hook", PI_SECS, || {
        f.activity("w1") == ("idle".into(), "hook".into(), "agent_end".into())
            && f.screen("w1").contains(&format!("noted {alpha}"))
    });
    let mut session = None;
    wait_for_secs("w1's session kept from its hooks", PI_SECS, || {
        session = kept_session(&f.s, "w1");
        session.is_some()
    });
    let session = session.unwrap();
    assert!(
        read(std::path::Path::new(&session)).contains(&alpha),
        "the kept session is the file pi saved the conversation in: {session}"
    );

    let before = f.row("w1")["pid"].as_u64().unwrap();
    let out = f.ok(&["fleet", "restart", "w1"]);
    assert!(out.ends_with("w1: started\n"), "{out}");
    assert_ne!(f.row("w1")["pid"].as_u64().unwrap(), before, "a new pi");
    // pi renames its process (`process.title`), which overwrites /proc/PID/cmdline: the
    // command line is tmux's record of what it started in the pane.
    let command = start_command(&f.s, "w1");
    assert!(
        command.ends_with(&format!(" --session {session}")),
        "{command}"
    );
    f.wait_ready("w1");
    let beta = unique("BETA");
    f.ok(&[
        "fleet",
        "send",
        "w1",
        &format!("[[say answered {beta}]] what was the word? {beta}"),
    ]);
    let mut conversation = None;
    wait_for_secs("the second prompt at the model", PI_SECS, || {
        conversation = conversation_with(&f, &beta);
        conversation.is_some()
    });
    let conversation = conversation.unwrap();
    assert_resumed(&conversation, &alpha);
    wait_for_secs("w1's second answer, idle by its hook", PI_SECS, || {
        f.activity("w1") == ("idle".into(), "hook".into(), "agent_end".into())
    });
    assert_eq!(
        kept_session(&f.s, "w1").as_deref(),
        Some(session.as_str()),
        "a resumed pi keeps its session file"
    );
}
