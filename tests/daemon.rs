//! The daemon as a process: `mosaic up`, its API (token, loopback, schema), `mosaic chat`, and
//! no loss or duplicate when it is killed with SIGKILL in the middle of a burst.

mod support;
use mosaic_fleet::FleetStatus;
use mosaic_roster::Roster;
use std::process::{Child, Stdio};
use std::time::Duration;
use support::*;

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn up(s: &Sandbox) -> (Daemon, String, String) {
    up_with_env(s, &[])
}

#[test]
fn the_api_needs_the_token_binds_loopback_and_serves_the_ps_schema() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(
        mosaic_roster::BridgeSettings::default().api_listen,
        "127.0.0.1:7317",
        "loopback unless told otherwise"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(s.state().join("api.token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let a = http_agent();
    assert_eq!(
        a.get(format!("{url}/v1/fleet")).call().unwrap().status(),
        401
    );
    assert_eq!(
        a.get(format!("{url}/v1/fleet"))
            .header("Authorization", "Bearer wrong")
            .call()
            .unwrap()
            .status(),
        401
    );
    let mut r = a
        .get(format!("{url}/v1/fleet"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let status: FleetStatus = r
        .body_mut()
        .read_json()
        .expect("matches the ps schema exactly (unknown fields are refused)");
    assert_eq!(status.schema, "mosaic.fleet.ps/v1");
    assert_eq!(status.agents.len(), 3);
    assert!(
        status
            .agents
            .iter()
            .all(|a| a.state == mosaic_fleet::AgentState::Running),
        "up started the fleet"
    );
    // Control verbs: capture, send, terminate.
    let auth = format!("Bearer {token}");
    let r = a
        .post(format!("{url}/v1/agents/helper/send"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({ "text": "via api" }))
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the send", || s.transcript("helper") == ["via api"]);
    let mut r = a
        .get(format!("{url}/v1/agents/helper/capture?history=true"))
        .header("Authorization", &auth)
        .call()
        .unwrap();
    assert!(
        r.body_mut().read_json::<serde_json::Value>().unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("[demo reply #1]")
    );
    let r = a
        .post(format!("{url}/v1/agents/helper/terminate"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({}))
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        s.states()
            .contains(&("helper".to_owned(), "stopped".to_owned()))
    );
    let r = a
        .post(format!("{url}/v1/agents/nobody/send"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({ "text": "x" }))
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[test]
fn mosaic_chat_talks_to_the_orchestrator_and_runs_commands() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _url, _token) = up(&s);
    let out = s.run_with_stdin(
        &["chat", "--linger", "2"],
        b"hello mos\n/fleet ps\n/fleet add chatty --runtime demo\n/fleet remove chatty\n",
    );
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        printed.contains("orchestrator") && printed.contains("NAME"),
        "{printed}"
    );
    assert!(
        printed.contains("chatty: started"),
        "the local user is admin: {printed}"
    );
    // The owner at the terminal is not asked to confirm (as on the command line; docs/bridge.md).
    assert!(printed.contains("removed chatty from"), "{printed}");
    assert!(
        !printed.contains("```"),
        "code blocks without fences: {printed}"
    );
    wait_for("the talk", || s.transcript("mos").len() == 1);
    let status = s.ok(&["fleet", "status"]);
    assert!(
        status.contains(
            "daemon: running; 0 message(s) queued for the orchestrator; connectors: local up"
        ),
        "{status}"
    );
    assert!(s.transcript("mos")[0].ends_with("] hello mos"));
}

#[test]
fn a_sigkill_mid_burst_loses_nothing_and_doubles_nothing() {
    let s = Sandbox::new();
    s.init("general");
    let (mut d, url, token) = up(&s);
    let a = http_agent();
    let auth = format!("Bearer {token}");
    let post = |url: &str, i: usize| {
        a.post(format!("{url}/v1/chat"))
            .header("Authorization", &auth)
            .send_json(serde_json::json!({ "id": format!("burst-{i:03}"), "text": format!("burst message {i:03}") }))
    };
    let mut acknowledged = 0;
    for i in 0..200 {
        if i == 80 {
            // Mid-burst, mid-delivery: the daemon dies without any chance to clean up.
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
        match post(&url, i) {
            Ok(r) if r.status() == 202 || r.status() == 200 => acknowledged += 1,
            _ => break,
        }
    }
    assert!(
        (60..=81).contains(&acknowledged),
        "the first messages were taken before the kill: {acknowledged}"
    );
    // Restart; the client retries everything it is unsure of (the same ids: duplicates are ignored).
    let (_d2, url2, _) = up(&s);
    for i in 0..200 {
        let r = post(&url2, i).unwrap();
        assert!(r.status() == 202 || r.status() == 200, "{}", r.status());
    }
    // Each one waits for the demo agent's idle hook: a bound for a loaded machine, not a speed.
    wait_for_secs("all 200 messages in the pane", 120, || {
        s.transcript("mos").len() >= 200
    });
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<String> = s
        .transcript("mos")
        .iter()
        .map(|t| t.rsplit("] ").next().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (0..200).map(|i| format!("burst message {i:03}")).collect();
    assert_eq!(got, want, "every message exactly once, in order");
}

#[test]
fn harness_hooks_in_their_own_payload_shapes_pace_the_queue() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _url, _token) = up(&s);
    // Claude Code's UserPromptSubmit hook, as Claude sends it on stdin: the orchestrator is busy.
    let claude_busy = serde_json::json!({
        "session_id": "abc123", "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
        "hook_event_name": "UserPromptSubmit", "prompt": "do the thing"
    });
    let out = s.run_with_stdin(&["hook"], claude_busy.to_string().as_bytes());
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );
    let out = s.run_with_stdin(
        &["chat", "--linger", "0"],
        b"first while busy\nsecond while busy\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        s.transcript("mos").is_empty(),
        "nothing is typed while a hook says busy"
    );
    // Codex's notify program gets its JSON as an argument: the turn is complete.
    let codex_done = serde_json::json!({
        "type": "agent-turn-complete", "turn-id": "t1", "input-messages": ["do the thing"],
        "last-assistant-message": "done"
    });
    s.ok(&["hook", &codex_done.to_string()]);
    // What queued while it was busy goes in together: one turn.
    wait_for("the two messages", || s.transcript("mos").len() == 2);
    assert!(s.transcript("mos")[1].ends_with("] second while busy"));
    assert_eq!(s.transcript_turns("mos"), [1, 1]);
    // (The demo orchestrator ends that turn with its own idle hook.)
    std::thread::sleep(Duration::from_millis(500));
    let out = s.run_with_stdin(&["hook"], claude_busy.to_string().as_bytes());
    assert!(out.status.success());
    let out = s.run_with_stdin(&["chat", "--linger", "0"], b"third while busy\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(s.transcript("mos").len(), 2, "nothing typed while busy");
    // Claude Code's Stop hook: idle again, the next one goes.
    let claude_stop = serde_json::json!({ "session_id": "abc123", "transcript_path": "/tmp/t.jsonl", "hook_event_name": "Stop", "stop_hook_active": false });
    s.run_with_stdin(&["hook"], claude_stop.to_string().as_bytes());
    wait_for("the third message", || s.transcript("mos").len() == 3);
    assert!(s.transcript("mos")[2].ends_with("] third while busy"));
    // A hook never fails its harness, even with the daemon gone or an unknown event.
    let out = s.run(&["hook", "SomethingElse"]);
    assert!(
        out.status.success() && text(&out.stderr).contains("unknown hook event"),
        "{}",
        text(&out.stderr)
    );
}

/// Waits up to `secs` for `child` to exit; kills it and fails the test if it does not.
fn exits_within(child: &mut Child, secs: u64, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

#[test]
fn up_that_cannot_bind_says_why_exits_nonzero_and_leaves_the_fleet_alone() {
    let s = Sandbox::new();
    s.init("general");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let in_use = taken.local_addr().unwrap().to_string();
    for listen in ["abc", in_use.as_str()] {
        let mut child = s
            .command(&["up", "--listen", listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = exits_within(&mut child, 15, &format!("mosaic up --listen {listen}"));
        let err = stderr_of(&mut child);
        assert!(!status.success(), "--listen {listen}");
        assert!(err.contains("cannot listen on"), "--listen {listen}: {err}");
        assert!(!s.state().join("daemon.json").exists());
        assert!(
            s.states().iter().all(|(_, state)| state == "stopped"),
            "bind first: the fleet was not started ({:?})",
            s.states()
        );
    }
}

#[test]
fn one_daemon_per_state_dir_and_a_stale_daemon_json_never_blocks() {
    let s = Sandbox::new();
    s.init("general");
    std::fs::create_dir_all(s.state()).unwrap();
    // Left by a daemon that died; its pid now belongs to a live process (this test).
    std::fs::write(
        s.state().join("daemon.json"),
        serde_json::json!({ "url": "http://127.0.0.1:9", "pid": std::process::id() }).to_string(),
    )
    .unwrap();
    let spawn = || {
        s.command(&["up", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Two started together: exactly one runs.
    let mut both = [Daemon { child: spawn() }, Daemon { child: spawn() }];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let loser = loop {
        if let Some(i) = (0..2).find(|&i| both[i].child.try_wait().unwrap().is_some()) {
            break i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "neither daemon refused to run"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = both[loser].child.wait().unwrap();
    assert!(!status.success());
    assert!(stderr_of(&mut both[loser].child).contains("already runs"));
    let winner = &mut both[1 - loser].child;
    let pid = winner.id();
    wait_for_secs(
        "the running daemon's daemon.json",
        DAEMON_START_SECS,
        || {
            std::fs::read_to_string(s.state().join("daemon.json")).is_ok_and(|t| {
                t.contains(&format!("\"pid\":{pid}")) && t.contains(r#""fleet":"started""#)
            })
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        winner.try_wait().unwrap().is_none(),
        "the winner keeps running"
    );
}

#[test]
fn sigterm_with_an_open_event_stream_exits_within_five_seconds() {
    let s = Sandbox::new();
    s.init("general");
    let (mut d, url, token) = up(&s);
    let (opened, opened_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let client: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let response = client
            .get(format!("{url}/v1/events"))
            .header("Authorization", format!("Bearer {token}"))
            .call();
        let _ = opened.send(());
        // Reads until the daemon closes the stream.
        if let Ok(r) = response {
            let _ = std::io::copy(&mut r.into_body().into_reader(), &mut std::io::sink());
        }
    });
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the event stream opens");
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &d.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = exits_within(
        &mut d.child,
        5,
        "mosaic up after SIGTERM with a stream open",
    );
    assert!(status.success(), "a clean stop: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    reader.join().unwrap();
}

#[test]
fn after_the_tmux_server_dies_the_fleet_comes_back_and_a_queued_message_is_delivered_once() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let server = s
        .tmux()
        .run(&["display-message", "-p", "#{pid}"])
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &server])
            .status()
            .unwrap()
            .success()
    );
    let r = http_agent()
        .post(format!("{url}/v1/chat"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(serde_json::json!({ "id": "after-the-loss", "text": "are you back?" }))
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for_secs("the supervisor to restart the fleet", 30, || {
        s.states().iter().all(|(_, state)| state == "running")
    });
    // The orchestrator also hears that its workers were restarted (`[fleet notice]` lines).
    let chats = || -> Vec<String> {
        s.transcript("mos")
            .into_iter()
            .filter(|t| !t.starts_with("[fleet notice] "))
            .collect()
    };
    wait_for_secs("the queued message in the new orchestrator", 30, || {
        !chats().is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    let got = chats();
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
    assert!(got[0].ends_with("] are you back?"), "{got:?}");
}

#[test]
fn direct_sends_and_queued_deliveries_never_merge_in_one_pane() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let auth = format!("Bearer {token}");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..30 {
                let r = http_agent()
                    .post(format!("{url}/v1/chat"))
                    .header("Authorization", &auth)
                    .send_json(serde_json::json!({ "id": format!("c{i}"), "text": format!("chat {i:03}") }))
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        });
        scope.spawn(|| {
            for i in 0..15 {
                let r = http_agent()
                    .post(format!("{url}/v1/agents/mos/send"))
                    .header("Authorization", &auth)
                    .send_json(serde_json::json!({ "text": format!("direct {i:03}") }))
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        });
        scope.spawn(|| {
            // The CLI goes through the running daemon too.
            for i in 0..5 {
                s.ok(&["fleet", "send", "mos", &format!("cli {i:03}")]);
            }
        });
    });
    wait_for_secs("every submission in the pane", 60, || {
        s.transcript("mos").len() >= 50
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = s.transcript("mos");
    let mut chats = Vec::new();
    let (mut directs, mut clis) = (0, 0);
    for t in &got {
        if t.starts_with("[chat #") {
            let (_, text) = t.split_once("] ").unwrap();
            assert!(
                text.starts_with("chat ") && text.len() == 8,
                "merged: {t:?}"
            );
            chats.push(text.to_owned());
        } else if t.starts_with("direct ") && t.len() == 10 {
            directs += 1;
        } else if t.starts_with("cli ") && t.len() == 7 {
            clis += 1;
        } else {
            panic!("a merged or mangled submission: {t:?}");
        }
    }
    let want: Vec<String> = (0..30).map(|i| format!("chat {i:03}")).collect();
    assert_eq!(chats, want, "chat messages once each, in order");
    assert_eq!((directs, clis, got.len()), (15, 5, 50));
}

#[test]
fn a_paste_the_frozen_orchestrator_never_confirms_is_held_not_pasted_again() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let auth = format!("Bearer {token}");
    let chat = |id: &str, text: &str| {
        let mut r = http_agent()
            .post(format!("{url}/v1/chat"))
            .header("Authorization", &auth)
            .send_json(serde_json::json!({ "id": id, "text": text }))
            .unwrap();
        assert_eq!(r.status(), 202);
        r.body_mut().read_json::<serde_json::Value>().unwrap()["verdict"]["queue_id"]
            .as_i64()
            .unwrap()
    };
    let health = || {
        http_agent()
            .get(format!("{url}/v1/health"))
            .header("Authorization", &auth)
            .call()
            .unwrap()
            .body_mut()
            .read_json::<serde_json::Value>()
            .unwrap()
    };
    // Frozen: for 20 s the harness takes nothing and draws nothing.
    s.ok(&["fleet", "send", "mos", "/freeze 20"]);
    let first = chat("frozen-1", "first while frozen");
    chat("frozen-2", "second while frozen");
    wait_for_secs("the unconfirmed paste to be held", 30, || {
        health()["held"] == serde_json::json!([first])
    });
    // When it thaws it takes what was typed: the one paste, submitted once; nothing was pasted
    // again while it was frozen.
    wait_for_secs("the one paste to be submitted", 30, || {
        !s.transcript("mos").is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.transcript("mos").len(),
        1,
        "pasted once, and the queue waits behind the held message: {:?}",
        s.transcript("mos")
    );
    // A person looks: it did arrive, so they drop it; the queue moves on.
    let r = http_agent()
        .post(format!("{url}/v1/queue/{first}/drop"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({}))
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the second message", || s.transcript("mos").len() == 2);
    std::thread::sleep(Duration::from_millis(500));
    let got = s.transcript("mos");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("] first while frozen"), "{got:?}");
    assert!(got[1].ends_with("] second while frozen"), "{got:?}");
    assert_eq!(health()["held"], serde_json::json!([]));
}

#[test]
fn a_reply_that_cannot_be_queued_says_why_with_its_own_status() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let reply = |body: serde_json::Value| {
        let mut r = http_agent()
            .post(format!("{url}/v1/reply"))
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(body)
            .unwrap();
        let error: serde_json::Value = r.body_mut().read_json().unwrap();
        (
            r.status().as_u16(),
            error["error"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (status, error) = reply(serde_json::json!({ "text": "  " }));
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("nothing to send"), "{error}");
    let (status, error) = reply(serde_json::json!({ "text": "hi" }));
    assert_eq!(status, 409, "{error}");
    assert!(error.contains("no conversation yet"), "{error}");
    let (status, error) = reply(serde_json::json!({ "text": "hi", "room": "telegram:1" }));
    assert_eq!(status, 404, "{error}");
    assert!(
        error.contains("no connector \"telegram\" is running"),
        "{error}"
    );
    let (status, error) = reply(serde_json::json!({ "text": "hi", "room": "local:elsewhere" }));
    assert_eq!(status, 403, "{error}");
    assert!(
        error.contains("room \"elsewhere\" of local is not bridged"),
        "{error}"
    );
    let (status, error) = reply(serde_json::json!({ "text": "hi", "to": 999 }));
    assert_eq!(status, 404, "{error}");
    assert!(error.contains("no chat message #999"), "{error}");
    let (status, _) = reply(serde_json::json!({ "text": "hi", "room": "local:local" }));
    assert_eq!(status, 202);
}

/// `mosaic up` with extra variables in its environment.
/// Removes an earlier daemon's `daemon.json`, so waiting for the next one sees only its own.
fn forget_daemon(s: &Sandbox) {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
}

fn up_with_env(s: &Sandbox, env: &[(&str, &str)]) -> (Daemon, String, String) {
    forget_daemon(s);
    let child = s
        .command(&["up", "--listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_up(s, child)
}

/// Whether this machine lets the tests run a process as pid 1 of its own pid namespace.
fn pid_namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `mosaic up` as pid 1 of a new pid namespace, as in a container: every run has the same pid.
fn up_as_pid_1(s: &Sandbox) -> (Daemon, String, String) {
    forget_daemon(s);
    let mut c = std::process::Command::new("unshare");
    c.args([
        "--pid",
        "--fork",
        "--kill-child",
        MOSAIC,
        "up",
        "--listen",
        "127.0.0.1:0",
    ])
    .envs(s.env())
    .env_remove("TMUX")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    wait_up(s, c.spawn().unwrap())
}

/// Waits until the daemon `child` (spawned after [`forget_daemon`]) has started the fleet.
fn wait_up(s: &Sandbox, child: Child) -> (Daemon, String, String) {
    let info = s.state().join("daemon.json");
    wait_for_secs("the daemon to listen", DAEMON_START_SECS, || {
        std::fs::read_to_string(&info).is_ok_and(|t| t.contains(r#""fleet":"started""#))
    });
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    let token = std::fs::read_to_string(s.state().join("api.token")).unwrap();
    (
        Daemon { child },
        info["url"].as_str().unwrap().to_owned(),
        token,
    )
}

#[test]
fn messages_without_an_id_are_not_duplicates_after_a_restart_with_the_same_pid() {
    if !pid_namespaces_work() {
        eprintln!("skipped: this machine cannot create pid namespaces (unshare --pid)");
        return;
    }
    let s = Sandbox::new();
    s.init("general");
    // The fleet outlives the daemons (a pid namespace takes its processes along when it ends).
    s.ok(&["fleet", "start"]);
    let a = http_agent();
    for run in 0..2 {
        let (mut d, url, token) = up_as_pid_1(&s);
        let info: serde_json::Value =
            serde_json::from_str(&read(&s.state().join("daemon.json"))).unwrap();
        assert_eq!(info["pid"], 1, "the daemon runs as pid 1");
        let mut r = a
            .post(format!("{url}/v1/chat"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(serde_json::json!({ "text": format!("no id, run {run}") }))
            .unwrap();
        let body: serde_json::Value = r.body_mut().read_json().unwrap();
        assert_eq!(r.status(), 202, "run {run}: {body}");
        assert_eq!(body["verdict"]["status"], "queued", "run {run}: {body}");
        wait_for("the delivery", || s.transcript("mos").len() == run + 1);
        let _ = d.child.kill();
        let _ = d.child.wait();
    }
    let got = s.transcript("mos");
    assert!(
        got[0].ends_with("] no id, run 0") && got[1].ends_with("] no id, run 1"),
        "{got:?}"
    );
}

#[test]
fn connector_tokens_stay_in_the_daemon_and_agents_get_what_they_need() {
    let s = Sandbox::new();
    s.init("general");
    let roster = read(&s.roster_path()).replace(
        "- name: helper\n  role: worker\n",
        "- name: helper\n  role: worker\n  env:\n    HELPER_SETTING: from-the-roster\n",
    );
    std::fs::write(s.roster_path(), roster).unwrap();
    const SECRET: &str = "MTIzNDU2Nzg5.secret-discord-token";
    // `up` starts the tmux server, as it does on a fresh boot.
    let (_d, _url, _token) = up_with_env(
        &s,
        &[
            ("DISCORD_TOKEN", SECRET),
            ("SLACK_BOT_TOKEN", SECRET),
            ("LC_ALL", "C.UTF-8"),
        ],
    );
    for agent in ["mos", "helper", "scout"] {
        let pid = s.pid(agent).expect("running");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert!(
            !vars.iter().any(|v| v.contains(SECRET)),
            "{agent}: {vars:?}"
        );
        let has = |prefix: &str| vars.iter().any(|v| v.starts_with(prefix));
        for needed in [
            "PATH=",
            "HOME=",
            "LC_ALL=C.UTF-8",
            "MOSAIC_AGENT=",
            "MOSAIC_STATE=",
        ] {
            assert!(has(needed), "{agent} lacks {needed}: {vars:?}");
        }
        assert!(
            has(&format!("MOSAIC_BIN={MOSAIC}")),
            "{agent} knows mosaic's absolute path: {vars:?}"
        );
        assert_eq!(
            has("HELPER_SETTING=from-the-roster"),
            agent == "helper",
            "{agent}"
        );
    }
    let global = s.tmux().run(&["show-environment", "-g"]).unwrap();
    assert!(!global.contains(SECRET), "{global}");
    assert!(!global.contains("DISCORD_TOKEN"), "{global}");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_remote_listen_address_needs_allow_remote_and_state_files_are_private() {
    let s = Sandbox::new();
    s.init("general");
    let out = s.run(&["up", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0") && err.contains("--allow-remote"),
        "{err}"
    );
    assert!(
        s.states().iter().all(|(_, st)| st == "stopped"),
        "refused before starting anything"
    );
    let out = s.run(&["up", "--listen", "abc"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("expected HOST:PORT"),
        "{}",
        text(&out.stderr)
    );

    let mut child = s
        .command(&["up", "--listen", "0.0.0.0:0", "--allow-remote"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_secs("the daemon to start the fleet", DAEMON_START_SECS, || {
        read_opt(&s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    let token = read(&s.state().join("api.token"));
    let info: serde_json::Value =
        serde_json::from_str(&read(&s.state().join("daemon.json"))).unwrap();
    let port = info["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let r = http_agent()
        .post(format!("http://127.0.0.1:{port}/v1/chat"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(serde_json::json!({ "text": "/fleet ps" }))
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("the audit record", || {
        s.state().join("audit.jsonl").exists()
    });
    for file in [
        "bridge.db",
        "bridge.db-wal",
        "daemon.json",
        "api.token",
        "audit.jsonl",
    ] {
        assert_eq!(mode(&s.state().join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&s.roster_path()), 0o600, "the roster");
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("warning: the API listens on 0.0.0.0:0"),
        "{err}"
    );
}

#[test]
fn idle_connections_cannot_starve_health_or_chat() {
    let s = Sandbox::new();
    s.init("general");
    // The daemon as systemd might run it, with a file limit of 256.
    forget_daemon(&s);
    let mut c = std::process::Command::new("sh");
    c.args([
        "-c",
        "ulimit -n 256 && exec \"$0\" up --listen 127.0.0.1:0",
        MOSAIC,
    ])
    .envs(s.env())
    .env_remove("TMUX")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let (_d, url, token) = wait_up(&s, c.spawn().unwrap());
    let addr = url.trim_start_matches("http://").to_owned();
    // 300 connections that never send a byte (and one that sends half a request line).
    let mut idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    {
        use std::io::Write;
        idle[0].write_all(b"GET /v1/health HT").unwrap();
    }
    let quick: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let auth = format!("Bearer {token}");
    let r = quick
        .get(format!("{url}/v1/health"))
        .header("Authorization", &auth)
        .call()
        .expect("health answers while 300 idle connections are open");
    assert_eq!(r.status(), 200);
    let r = quick
        .post(format!("{url}/v1/chat"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({ "text": "still reachable" }))
        .expect("chat answers too");
    assert_eq!(r.status(), 202);
    wait_for("the delivery", || s.transcript("mos").len() == 1);
    drop(idle);
}

#[test]
fn huge_timeouts_get_clear_errors_on_every_surface() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    for args in [
        &["fleet", "stop", "--timeout", "18446744073709551615"][..],
        &["fleet", "start", "--wait", "18446744073709551615"],
        &["fleet", "restart", "helper", "--timeout", "3601"],
    ] {
        let out = s.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "a usage error, not a panic: {args:?}"
        );
        let err = text(&out.stderr);
        assert!(err.contains("not in 0..=3600"), "{args:?}: {err}");
    }
    for linger in ["1e300", "inf", "NaN", "-1"] {
        let out = s.run(&["chat", "--linger", linger]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{linger}: {}",
            text(&out.stderr)
        );
        // A negative value is out of range, not a stray argument to put after `--`.
        assert!(!text(&out.stderr).contains("-- -"), "{}", text(&out.stderr));
    }
    // From chat: a clear answer, and helper is left running.
    let out = s.run_with_stdin(
        &["chat", "--linger", "1"],
        b"/fleet restart helper --timeout 18446744073709551615\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("not in 0..=3600"),
        "{}",
        text(&out.stdout)
    );
    // From the API: 4xx with a JSON error.
    let a = http_agent();
    let auth = format!("Bearer {token}");
    let mut r = a
        .post(format!("{url}/v1/agents/helper/terminate"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({ "timeout_secs": 18446744073709551615u64 }))
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("at most 3600"),
        "{body}"
    );
    let mut r = a
        .post(format!("{url}/v1/commands"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({ "command": { "verb": "restart", "name": "helper", "timeout": 18446744073709551615u64 } }))
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("at most 3600"),
        "{body}"
    );
    let mut r = a
        .post(format!("{url}/v1/commands"))
        .header("Authorization", &auth)
        .send_json(serde_json::json!({ "line": "restart helper --timeout 99999999999" }))
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("0..=3600"),
        "{body}"
    );
    assert!(
        s.states()
            .contains(&("helper".to_owned(), "running".to_owned())),
        "helper was never touched"
    );
}

#[test]
fn every_api_error_is_json_and_the_bearer_scheme_is_case_insensitive() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let a = http_agent();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = a
            .get(format!("{url}/v1/health"))
            .header("Authorization", format!("{scheme} {token}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let auth = format!("Bearer {token}");
    let check = |mut r: ureq::http::Response<ureq::Body>, status: u16, needle: &str| {
        assert_eq!(r.status(), status, "{needle}");
        let ct = r
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with("application/json"), "{needle}: {ct}");
        let body: serde_json::Value = r.body_mut().read_json().unwrap();
        let e = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{needle}: {body}"));
        assert!(e.to_lowercase().contains(needle), "{needle}: {e}");
    };
    let post = |path: &str| {
        a.post(format!("{url}{path}"))
            .header("Authorization", &auth)
    };
    check(
        post("/v1/chat")
            .header("Content-Type", "application/json")
            .send("{not json")
            .unwrap(),
        400,
        "json",
    );
    check(
        post("/v1/chat")
            .send_json(serde_json::json!({ "id": "x" }))
            .unwrap(),
        422,
        "missing field `text`",
    );
    check(
        post("/v1/chat")
            .header("Content-Type", "text/plain")
            .send("hello")
            .unwrap(),
        415,
        "content-type",
    );
    check(
        a.get(format!("{url}/v1/nope"))
            .header("Authorization", &auth)
            .call()
            .unwrap(),
        404,
        "no such route: /v1/nope",
    );
    check(
        a.get(format!("{url}/v1/chat"))
            .header("Authorization", &auth)
            .call()
            .unwrap(),
        405,
        "does not take get",
    );
    check(
        a.get(format!("{url}/v1/fleet"))
            .header("Authorization", "Basic abc")
            .call()
            .unwrap(),
        401,
        "token",
    );
}

/// Hardening issue, item 18l: `mosaic down` stops the daemon (and says so when none runs); the
/// fleet keeps running.
#[test]
fn mosaic_down_stops_the_daemon_and_leaves_the_fleet() {
    let s = Sandbox::new();
    s.init("general");
    let out = s.ok(&["down"]);
    assert!(out.contains("no daemon runs"), "{out}");
    let (mut d, _url, _token) = up(&s);
    let out = s.ok(&["down"]);
    assert!(out.contains("the daemon stopped"), "{out}");
    let status = exits_within(&mut d.child, 5, "the daemon after `mosaic down`");
    assert!(status.success(), "{status:?}");
    assert!(
        s.states().iter().all(|(_, st)| st == "running"),
        "{:?}",
        s.states()
    );
    assert!(s.ok(&["fleet", "status"]).contains("daemon: not running"));
}

/// `bridge.orchestrator_role` is a real boundary: the orchestrator's own token (not the owner's)
/// runs commands with that role on every path (CLI inside the agent, API routes), and a worker's
/// token may only report its own hooks.
#[test]
fn the_orchestrator_acts_with_its_role_and_a_worker_only_reports_its_own_hooks() {
    let s = Sandbox::new();
    s.init("general");
    let roster = read(&s.roster_path());
    let roster = if roster.contains("\nbridge:\n") {
        roster.replace("\nbridge:\n", "\nbridge:\n  orchestrator_role: viewer\n")
    } else {
        format!("{roster}\nbridge:\n  orchestrator_role: viewer\n")
    };
    std::fs::write(s.roster_path(), roster).unwrap();
    let (_d, url, owner) = up(&s);
    let mos = s.agent_env("mos", "MOSAIC_AGENT_TOKEN");
    let helper = s.agent_env("helper", "MOSAIC_AGENT_TOKEN");
    assert!(mos.starts_with("mos:") && helper.starts_with("helper:"));
    assert!(!mos.contains(&owner) && !helper.contains(&owner));
    let as_agent = |token: &str, args: &[&str]| {
        s.command(args)
            .env("MOSAIC_AGENT_TOKEN", token)
            .output()
            .unwrap()
    };
    // The orchestrator (viewer) may look, not act, though it runs the CLI on the owner's machine.
    let out = as_agent(&mos, &["fleet", "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("helper"),
        "{}",
        text(&out.stdout)
    );
    for args in [
        &["fleet", "stop", "helper"][..],
        &["fleet", "send", "helper", "hi"],
        &["fleet", "remove", "helper"],
    ] {
        let out = as_agent(&mos, args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains("needs role"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(s.states().len(), 3, "nothing was stopped or removed");
    assert!(s.states().iter().all(|(_, st)| st == "running"));
    let out = as_agent(&mos, &["fleet", "attach", "helper"]);
    assert!(
        text(&out.stderr).contains("not for an agent"),
        "{}",
        text(&out.stderr)
    );
    // The same through the API routes.
    let call = |token: &str, method: &str, path: &str, body: serde_json::Value| {
        let auth = format!("Bearer {token}");
        let r = if method == "GET" {
            http_agent()
                .get(format!("{url}{path}"))
                .header("Authorization", &auth)
                .call()
        } else {
            http_agent()
                .post(format!("{url}{path}"))
                .header("Authorization", &auth)
                .send_json(&body)
        };
        r.unwrap().status().as_u16()
    };
    let text_body = serde_json::json!({ "text": "hi" });
    assert_eq!(
        call(&mos, "POST", "/v1/agents/helper/send", text_body.clone()),
        403
    );
    assert_eq!(
        call(
            &mos,
            "POST",
            "/v1/agents/helper/terminate",
            serde_json::json!({})
        ),
        403
    );
    assert_eq!(
        call(
            &mos,
            "GET",
            "/v1/agents/helper/capture",
            serde_json::json!({})
        ),
        200
    );
    assert_eq!(call(&mos, "GET", "/v1/fleet", serde_json::json!({})), 200);
    // The local chat and decisions on held messages are the owner's.
    assert_eq!(call(&mos, "POST", "/v1/chat", text_body.clone()), 403);
    assert_eq!(
        call(&mos, "POST", "/v1/queue/1/drop", serde_json::json!({})),
        403
    );
    // A worker may report its own hooks and nothing else.
    assert_eq!(
        call(
            &helper,
            "POST",
            "/v1/hooks",
            serde_json::json!({ "event": "busy" })
        ),
        204
    );
    assert_eq!(
        call(
            &helper,
            "POST",
            "/v1/hooks",
            serde_json::json!({ "event": "busy", "agent": "mos" })
        ),
        403
    );
    for (method, path) in [
        ("POST", "/v1/reply"),
        ("POST", "/v1/commands"),
        ("GET", "/v1/fleet"),
        ("GET", "/v1/events"),
        ("POST", "/v1/agents/mos/send"),
    ] {
        assert_eq!(
            call(&helper, method, path, text_body.clone()),
            403,
            "{method} {path}"
        );
    }
    let out = as_agent(&helper, &["reply", "pretending to be the orchestrator"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("may not call"),
        "{}",
        text(&out.stderr)
    );
    let out = as_agent(&helper, &["fleet", "status"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    // Forged tokens: a wrong secret, another agent's secret under this name, an unknown agent.
    let secret = |t: &str| t.split_once(':').unwrap().1.to_owned();
    for forged in [
        format!("mos:{}", "0".repeat(64)),
        format!("mos:{}", secret(&helper)),
        format!("ghost:{}", secret(&mos)),
        format!(":{}", secret(&mos)),
    ] {
        assert_eq!(
            call(&forged, "GET", "/v1/health", serde_json::json!({})),
            401,
            "{forged}"
        );
    }
    // The owner's token still does everything, commands included.
    assert_eq!(
        call(&owner, "POST", "/v1/agents/helper/send", text_body),
        200
    );
    // `/v1/commands` is the orchestrator's tools: it runs with the orchestrator's role whoever
    // calls (docs/api.md); the owner acts as admin through the other routes and the CLI.
    let restart = serde_json::json!({ "line": "restart helper" });
    assert_eq!(call(&mos, "POST", "/v1/commands", restart.clone()), 403);
    assert_eq!(call(&owner, "POST", "/v1/commands", restart), 403);
    // The daemon is the owner's: no agent stops it.
    let out = as_agent(&helper, &["down"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the owner's, not an agent's"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        call(&owner, "GET", "/v1/health", serde_json::json!({})),
        200
    );
}

/// While the daemon is away, a worker's `mosaic reply` is not kept for later (the daemon would
/// post it as the orchestrator's); the orchestrator's is.
#[test]
fn only_the_orchestrator_may_keep_a_reply_while_the_daemon_is_away() {
    let s = Sandbox::new();
    s.init("general");
    let (d, _url, _owner) = up(&s);
    let mos = s.agent_env("mos", "MOSAIC_AGENT_TOKEN");
    let helper = s.agent_env("helper", "MOSAIC_AGENT_TOKEN");
    drop(d);
    let reply = |token: &str| {
        s.command(&["reply", "--room", "local:local", "kept?"])
            .env("MOSAIC_AGENT_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = reply(&helper);
    assert!(!out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only the orchestrator replies"),
        "{}",
        text(&out.stderr)
    );
    let spooled = || std::fs::read_dir(s.state().join("spool")).map_or(0, |d| d.count());
    assert_eq!(spooled(), 0);
    let out = reply(&mos);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(spooled(), 1);
}

/// Runs `mosaic ARGS` as `agent` (with its own token, from its process) with `stdin` on standard
/// input; it must say nothing on stderr.
fn as_agent(s: &Sandbox, agent: &str, args: &[&str], stdin: &str) {
    let out = s.run_as_agent(agent, args, stdin.as_bytes());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// Hooks give every agent its true state (with the source, in `ps` and `status`); an
/// orchestrator waiting on a person holds chat messages back and its room is told once.
#[test]
fn hooks_give_each_agent_its_state_and_a_waiting_orchestrator_holds_chat() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _url, _owner) = up(&s);
    wait_for("every demo agent to say it is idle", || {
        ["mos", "helper", "scout"]
            .iter()
            .all(|a| s.activity(a).0 == "idle" && s.activity(a).1 == "hook")
    });
    // A worker waits on a permission dialog (the demo's `/dialog`): its own hook says so, with
    // what it asks.
    s.ok(&["fleet", "send", "helper", "/dialog"]);
    wait_for("the dialog", || {
        s.screen("helper").contains("Do you want to proceed?")
    });
    as_agent(
        &s,
        "helper",
        &["hook", "waiting-for-input"],
        r#"{"tool_name":"Bash","tool_input":{"command":"rm -rf build"}}"#,
    );
    assert_eq!(
        s.activity("helper"),
        (
            "waiting-for-input".into(),
            "hook".into(),
            "permission to run Bash: rm -rf build".into()
        )
    );
    let status = s.ok(&["fleet", "status"]);
    assert!(
        status.contains("waiting for input: permission to run Bash: rm -rf build"),
        "{status}"
    );
    let table = s.ok(&["fleet", "ps"]);
    assert!(table.contains("waiting-for-input (hook)"), "{table}");
    // The orchestrator: a message goes in, then it waits on a person.
    let mut chat = s
        .command(&["chat", "--linger", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = chat.stdin.take().unwrap();
    use std::io::Write;
    writeln!(input, "first").unwrap();
    let chats = |s: &Sandbox| -> Vec<String> {
        s.transcript("mos")
            .into_iter()
            .filter(|t| t.starts_with("[chat #"))
            .collect()
    };
    wait_for("the first message", || chats(&s).len() == 1);
    // Its `idle` hook after the first message (not the `started` one before it).
    wait_for("mos idle again", || {
        s.activity("mos") == ("idle".into(), "hook".into(), "idle".into())
    });
    // Its permission dialog (the demo agent's `/dialog`), and the hook a harness sends with it.
    s.ok(&["fleet", "send", "mos", "/dialog"]);
    wait_for("the dialog", || {
        s.screen("mos").contains("Do you want to proceed?")
    });
    let dialog = r#"{"hook_event_name":"Notification","message":"Claude needs your permission to use Bash"}"#;
    as_agent(&s, "mos", &["hook", "waiting-for-input"], dialog);
    writeln!(input, "second").unwrap();
    // Told again: not announced twice.
    as_agent(&s, "mos", &["hook", "waiting-for-input"], dialog);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(chats(&s).len(), 1, "nothing is typed into a dialog");
    // A person refuses at the terminal: no hook follows (as with Claude Code); the screen shows
    // the dialog gone, and the message goes in.
    s.tmux().run(&["send-keys", "-t", "=mos:", "n"]).unwrap();
    wait_for("the second message", || chats(&s).len() == 2);
    assert!(!s.screen("mos").contains("approved"));
    drop(input);
    let out = chat.wait_with_output().unwrap();
    let printed = text(&out.stdout);
    assert_eq!(
        printed
            .matches(
                "mos is waiting for input at its terminal: Claude needs your permission to use Bash"
            )
            .count(),
        1,
        "{printed}"
    );
    // A worker may not claim to be the orchestrator.
    let token = s.agent_env("helper", "MOSAIC_AGENT_TOKEN");
    let out = s
        .command(&["hook", "--agent", "mos", "busy"])
        .env("MOSAIC_AGENT_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("only its own hooks"),
        "{}",
        text(&out.stderr)
    );
}

/// `mosaic mcp` starts and lists its tools while the daemon is away (a harness starting before
/// the daemon never sees a dead server), answers a call then with a clear tool error, and
/// reaches the daemon once it runs, in the same session.
#[test]
fn the_mcp_server_connects_to_the_daemon_lazily() {
    let s = Sandbox::new();
    s.init("general");
    let (mut child, mut stdin, mut lines) = mcp_client(&s);
    let init = serde_json::json!({
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "test", "version": "0" }
    });
    rpc(&mut stdin, 1, "initialize", init);
    assert!(response(&mut lines, 1)["result"]["capabilities"]["tools"].is_object());
    rpc(&mut stdin, 2, "tools/list", serde_json::json!({}));
    assert!(
        response(&mut lines, 2)["result"]["tools"]
            .as_array()
            .unwrap()
            .len()
            >= 5
    );
    let status = serde_json::json!({ "name": "fleet_status", "arguments": {} });
    rpc(&mut stdin, 3, "tools/call", status.clone());
    let r = response(&mut lines, 3);
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("daemon is not running"),
        "{r}"
    );
    let (_d, _url, _token) = up(&s);
    rpc(&mut stdin, 4, "tools/call", status);
    let r = response(&mut lines, 4);
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("helper"),
        "{r}"
    );
    drop(stdin);
    let _ = child.wait();
}

/// A harness's dialog on the screen (no hook said so), which Enter would approve, is never typed
/// into: a chat message waits, `fleet send` is refused, and the message is delivered once after a
/// person answers at the terminal.
#[test]
fn a_dialog_on_the_screen_is_never_answered_by_a_chat_message() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _url, _token) = up(&s);
    wait_for("mos idle", || s.activity("mos").0 == "idle");
    s.ok(&["fleet", "send", "mos", "/dialog"]);
    wait_for("the dialog", || {
        s.screen("mos").contains("Do you want to proceed?")
    });
    let out = s.run_with_stdin(&["chat", "--linger", "0"], b"after the dialog\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("the dialog to be seen on the screen", || {
        s.activity("mos").0 == "waiting-for-input" && s.activity("mos").1 == "screen"
    });
    let err = s.fails(&["fleet", "send", "mos", "typed into a dialog?"]);
    assert!(err.contains("dialog"), "{err}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(s.transcript("mos").is_empty(), "nothing reached the agent");
    assert!(!s.screen("mos").contains("approved"), "{}", s.screen("mos"));
    // The room of the waiting message hears it once.
    let told = || {
        read_opt(&s.state().join("local-room.jsonl"))
            .matches("mos is waiting for input at its terminal")
            .count()
    };
    wait_for("the room told", || told() == 1);
    // A person refuses at the terminal; the message goes in once.
    s.tmux().run(&["send-keys", "-t", "=mos:", "n"]).unwrap();
    wait_for("the queued message", || s.transcript("mos").len() == 1);
    assert!(s.transcript("mos")[0].ends_with("] after the dialog"));
    let screen = s.screen("mos");
    assert!(
        screen.contains("refused") && !screen.contains("approved"),
        "{screen}"
    );
}

/// The orchestrator hears once, as a `[fleet notice]`, when a worker waits for input, dies or is
/// restarted.
#[test]
fn the_orchestrator_is_told_once_when_a_worker_waits_or_dies() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _url, _token) = up(&s);
    wait_for("the demo agents idle", || s.activity("helper").0 == "idle");
    // The worker shows its permission dialog (the demo's `/dialog`) and its hook says so, twice.
    s.ok(&["fleet", "send", "helper", "/dialog"]);
    wait_for("the dialog", || {
        s.screen("helper").contains("Do you want to proceed?")
    });
    let dialog = r#"{"tool_name":"Bash","tool_input":{"command":"rm -rf build"}}"#;
    as_agent(&s, "helper", &["hook", "waiting-for-input"], dialog);
    as_agent(&s, "helper", &["hook", "waiting-for-input"], dialog);
    let notices = |s: &Sandbox| -> Vec<String> {
        s.transcript("mos")
            .into_iter()
            .filter(|t| t.starts_with("[fleet notice] "))
            .collect()
    };
    wait_for("the notice", || !notices(&s).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        notices(&s),
        [
            "[fleet notice] worker helper is waiting for input at its terminal: permission to run Bash: rm -rf build"
        ]
    );
    s.kill_agent("helper");
    wait_for("the death and the restart told", || notices(&s).len() == 3);
    assert_eq!(notices(&s)[1], "[fleet notice] worker helper died");
    assert_eq!(
        notices(&s)[2],
        "[fleet notice] worker helper was restarted by its restart policy"
    );
}

/// What the orchestrator says in the local room while no `mosaic chat` is open is kept and shown
/// when one opens, once (issue 9 item 8: replies were marked sent and vanished).
#[test]
fn replies_to_the_local_room_wait_for_the_next_mosaic_chat() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    // A message through the API (no chat open): the demo orchestrator answers with `mosaic reply`.
    let r = http_agent()
        .post(format!("{url}/v1/chat"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(serde_json::json!({ "id": "away-1", "text": "while you were away" }))
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("the reply to be kept", || {
        read_opt(&s.state().join("local-room.jsonl")).contains("[demo reply #1]")
    });
    let out = s.run_with_stdin(&["chat", "--linger", "0"], b"");
    let printed = text(&out.stdout);
    assert!(
        printed.contains("(while no `mosaic chat` was open:)"),
        "{printed}"
    );
    assert_eq!(printed.matches("[demo reply #1]").count(), 1, "{printed}");
    // Shown once: the next chat has nothing missed.
    let out = s.run_with_stdin(&["chat", "--linger", "0"], b"");
    assert!(
        !text(&out.stdout).contains("[demo reply #1]"),
        "{}",
        text(&out.stdout)
    );
}

/// `mosaic hook` never hangs its harness, even on a daemon that accepts connections but does
/// not answer (stopped): it gives up, says why, and exits 0.
#[test]
fn a_hook_gives_up_on_a_daemon_that_does_not_answer() {
    let s = Sandbox::new();
    s.init("general");
    let (d, _url, _token) = up(&s);
    let pid = d.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut hook = s
        .command(&["hook", "busy"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = exits_within(&mut hook, 30, "mosaic hook on a stopped daemon");
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert!(status.success());
    assert!(!stderr_of(&mut hook).is_empty(), "it says why");
}

/// A daemon that takes calls but does not answer (stopped: the kernel still accepts its
/// connections) hangs neither `fleet send` nor `fleet status`: send gives up after
/// `MOSAIC_DAEMON_TIMEOUT` and says the text may or may not have been typed (it must not type it
/// itself: one writer per pane), status says the daemon does not answer. Running again, the
/// daemon typed the text it took at most once, and sends work.
#[test]
fn a_stopped_daemon_hangs_neither_send_nor_status() {
    let s = Sandbox::new();
    s.init("general");
    let (d, _url, _token) = up(&s);
    s.ok(&["fleet", "send", "helper", "one"]);
    let pid = d.child.id().to_string();
    let signal = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    signal("-STOP");
    let mut send = s
        .command(&["fleet", "send", "helper", "two"])
        .env("MOSAIC_DAEMON_TIMEOUT", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = exits_within(&mut send, 30, "fleet send through a stopped daemon");
    let mut status = s
        .command(&["fleet", "status"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status_ended = exits_within(&mut status, 30, "fleet status with a stopped daemon");
    signal("-CONT");
    assert!(!sent.success());
    let err = stderr_of(&mut send);
    assert!(
        err.contains("the text may or may not have been typed into helper")
            && err.contains("did not answer within 1 s"),
        "{err}"
    );
    assert!(status_ended.success());
    let mut shown = String::new();
    std::io::Read::read_to_string(&mut status.stdout.take().unwrap(), &mut shown).unwrap();
    assert!(shown.contains("daemon: running, not answering"), "{shown}");
    s.ok(&["fleet", "send", "helper", "three"]);
    wait_for("the send after the daemon runs again", || {
        s.transcript("helper").last().map(String::as_str) == Some("three")
    });
    let got = s.transcript("helper");
    assert!(
        got == ["one", "two", "three"] || got == ["one", "three"],
        "{got:?}"
    );
}

/// The daemon prunes its database of what it handled more than `bridge.history_days` ago when
/// it starts: an old delivered message and the id it dropped repeats by go, a recent one stays
/// (a repeat of it is still dropped), and so does what is still to do.
#[test]
fn the_daemon_prunes_what_it_handled_long_ago_when_it_starts() {
    let s = Sandbox::new();
    s.init("general");
    let chat = |url: &str, token: &str, id: &str| -> String {
        let mut r = http_agent()
            .post(format!("{url}/v1/chat"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(serde_json::json!({ "id": id, "text": format!("message {id}") }))
            .unwrap();
        r.body_mut().read_json::<serde_json::Value>().unwrap()["verdict"]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let db = s.state().join("bridge.db");
    let query = |sql: &str| -> Vec<String> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let (d, url, token) = up(&s);
    assert_eq!(chat(&url, &token, "long-ago"), "queued");
    assert_eq!(chat(&url, &token, "recent"), "queued");
    wait_for("both delivered and answered", || {
        query("SELECT message_id FROM inbox WHERE status = 'delivered'").len() == 2
            && query("SELECT text FROM outbox WHERE status = 'sent'").len() == 2
    });
    drop(d);
    let long_ago = mosaic_bridge::store::now_ms() - 40 * 24 * 60 * 60 * 1000;
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "UPDATE seen SET at = {long_ago} WHERE message_id = 'long-ago';
             UPDATE inbox SET created = {long_ago}, delivered = {long_ago} WHERE message_id = 'long-ago';
             UPDATE outbox SET created = {long_ago};"
        ))
        .unwrap();
    let (_d, url, token) = up(&s);
    // The older of the local room's two replies goes too; the newest stays (the room was
    // posted in).
    wait_for("the old message and reply pruned", || {
        query("SELECT message_id FROM inbox") == ["recent"]
            && query("SELECT text FROM outbox").len() == 1
    });
    assert_eq!(chat(&url, &token, "recent"), "duplicate");
    assert_eq!(chat(&url, &token, "long-ago"), "queued");
}

/// Posts chat message `id` to the local room through the API and waits until the orchestrator
/// got it (its row is `delivered`).
fn chat_delivered(s: &Sandbox, url: &str, token: &str, id: &str, text: &str) {
    let status = http_agent()
        .post(format!("{url}/v1/chat"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(serde_json::json!({ "id": id, "text": text }))
        .unwrap()
        .status();
    assert_eq!(status, 202);
    let db = s.state().join("bridge.db");
    wait_for("the message delivered", || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.query_row(
            "SELECT status FROM inbox WHERE message_id = ?1",
            [id],
            |r| r.get::<_, String>(0),
        )
        .is_ok_and(|status| status == "delivered")
    });
}

/// How many times the local room was told something containing `text`.
fn told_in_local_room(s: &Sandbox, text: &str) -> usize {
    read_opt(&s.state().join("local-room.jsonl"))
        .matches(text)
        .count()
}

/// The orchestrator's final answer (a turn ended without `mosaic reply`) reaches the room once
/// also when the daemon was killed during the turn: that the turn owes an answer is kept in
/// `bridge.db`, not in the dead daemon's memory. (The demo orchestrator after `/quiet 3`
/// thinks 3 s and ends its turn with its answer in its idle hook, which it sends again while
/// the daemon is away, under the same call id.)
#[test]
fn a_final_answer_after_a_daemon_restart_reaches_the_room_once() {
    let s = Sandbox::new();
    s.init("general");
    let (d, url, token) = up(&s);
    s.ok(&["fleet", "send", "mos", "/quiet 3"]);
    chat_delivered(&s, &url, &token, "q1", "what now?");
    drop(d);
    let (_d, url, token) = up(&s);
    wait_for_secs("the final answer in the room", 30, || {
        told_in_local_room(&s, "[demo reply #1]") == 1
    });
    // The next turn's answer comes after it: the first was not posted again meanwhile.
    chat_delivered(&s, &url, &token, "q2", "and then?");
    wait_for_secs("the second answer", 30, || {
        told_in_local_room(&s, "[demo reply #2]") == 1
    });
    assert_eq!(told_in_local_room(&s, "[demo reply #1]"), 1);
}

/// The orchestrator's final answer reported by `mosaic hook` (a real harness's Stop hook)
/// while the daemon is down is kept, and posted once in the room of the turn it answered when
/// the daemon starts; the turn is then answered (a later answer to it is not relayed too).
#[test]
fn the_orchestrators_final_answer_kept_while_the_daemon_is_away_is_posted_once() {
    let s = Sandbox::new();
    s.init("general");
    let (d, url, token) = up(&s);
    // Thinks long: its own answer comes after this test.
    s.ok(&["fleet", "send", "mos", "/quiet 60"]);
    chat_delivered(&s, &url, &token, "q1", "are you there?");
    drop(d);
    let hook = |answer: &str| {
        s.run_as_agent(
            "mos",
            &["hook", "idle"],
            serde_json::json!({ "last_assistant_message": answer })
                .to_string()
                .as_bytes(),
        )
    };
    let kept = hook("the answer, kept");
    assert!(kept.status.success());
    assert!(
        text(&kept.stderr).contains("kept in"),
        "{}",
        text(&kept.stderr)
    );
    let (_d, _url, _token) = up(&s);
    wait_for("the kept answer in the room", || {
        told_in_local_room(&s, "the answer, kept") == 1
    });
    // The turn is answered: another final answer for it (live now) is not relayed.
    assert!(hook("a second answer").status.success());
    assert_eq!(told_in_local_room(&s, "a second answer"), 0);
    assert_eq!(told_in_local_room(&s, "the answer, kept"), 1);
}

/// `POST /v1/commands` answers `ps --json` with the JSON chat gives, not the table.
#[test]
fn the_api_gives_ps_json_as_json() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let mut r = http_agent()
        .post(format!("{url}/v1/commands"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(serde_json::json!({ "line": "ps --json" }))
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.body_mut().read_json().unwrap();
    let output = body["output"].as_str().unwrap();
    let inner = output
        .trim()
        .trim_start_matches("```json")
        .trim_end_matches("```");
    let ps: serde_json::Value =
        serde_json::from_str(inner.trim()).unwrap_or_else(|e| panic!("{e}: {output}"));
    assert_eq!(ps["schema"], mosaic_fleet::PS_SCHEMA);
}

/// Agents started before the daemon (as the quick start does) could not report their start: the
/// daemon sees them ready on their screens, instead of leaving them `starting`.
#[test]
fn agents_started_before_the_daemon_are_seen_ready_on_their_screens() {
    let s = Sandbox::new();
    s.init("general");
    s.ok(&["fleet", "start"]);
    assert_eq!(s.activity("helper").0, "starting");
    let (_d, _url, _token) = up(&s);
    wait_for("the agents ready by their screens", || {
        ["mos", "helper", "scout"]
            .iter()
            .all(|a| s.activity(a).0 == "idle" && s.activity(a).1 == "screen")
    });
}

/// `init` through the API (and so from chat, which parses lines the same way) takes the
/// connector's flags, a typed `init` refuses unknown fields, and `connector: none` removes the
/// connector and its ACL.
#[test]
fn init_over_the_api_takes_connector_flags_and_none_removes_the_acl() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let a = http_agent();
    let auth = format!("Bearer {token}");
    let post = |body: serde_json::Value| {
        let mut r = a
            .post(format!("{url}/v1/commands"))
            .header("Authorization", &auth)
            .send_json(body)
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            r.body_mut().read_json::<serde_json::Value>().unwrap(),
        )
    };
    let dir = s.home().join("testchat");
    let line = format!(
        "init general --connector testchat --testchat-dir {} --target room1 --admin alice",
        dir.display()
    );
    let (status, body) = post(serde_json::json!({ "line": line }));
    assert_eq!(status, 200, "{body}");
    let roster = Roster::load(&s.roster_path()).unwrap();
    assert_eq!(roster.connectors[0].kind, "testchat");
    assert_eq!(
        roster.connectors[0].settings["rooms"],
        serde_yaml_ng::Value::Sequence(vec!["room1".into()])
    );
    assert_eq!(roster.acl.len(), 1, "{:?}", roster.acl);

    let (status, body) = post(
        serde_json::json!({ "command": { "verb": "init", "preset": "general", "conector": "none" } }),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unknown field"),
        "{body}"
    );
    let (status, body) = post(
        serde_json::json!({ "command": { "verb": "init", "preset": "general", "connector": "none" } }),
    );
    assert_eq!(status, 200, "{body}");
    let roster = Roster::load(&s.roster_path()).unwrap();
    assert!(
        roster.connectors.is_empty() && roster.acl.is_empty(),
        "{roster:?}"
    );
}

/// Hardening issue, item 18h: `mosaic chat` in a terminal has a line editor. Arrows move in the
/// line and recall the history, Ctrl-L clears the screen, and no escape code reaches the
/// orchestrator; the history is kept (0600) for the next chat.
#[test]
fn mosaic_chat_in_a_terminal_edits_lines_and_keeps_a_history() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new();
    s.init("general");
    let (_d, _url, _token) = up(&s);
    let chat = Terminal::start(&s, "chat", &["chat"], &[]);
    chat.wait("the greeting", "Talking to the orchestrator");
    // "wrld", to the start, "hello ", to the end, back 3, "o": "hello world".
    chat.keys(&["-l", "wrld"]);
    chat.keys(&["Home"]);
    chat.keys(&["-l", "hello "]);
    chat.keys(&["End", "Left", "Left", "Left"]);
    chat.type_line("o");
    // What the orchestrator received: the edited text exactly, no escape codes.
    let received = || {
        s.transcript("mos")
            .into_iter()
            .filter(|t| t.starts_with("[chat #"))
            .map(|t| {
                t.split_once("] ")
                    .map(|(_, text)| text.to_owned())
                    .unwrap_or(t)
            })
            .collect::<Vec<_>>()
    };
    wait_for("the edited line", || !received().is_empty());
    assert_eq!(received(), ["hello world"]);
    // Up recalls it; sent again as it is.
    chat.keys(&["Up"]);
    chat.keys(&["Enter"]);
    wait_for("the recalled line", || received().len() == 2);
    assert_eq!(received(), ["hello world", "hello world"]);
    chat.keys(&["C-l"]);
    wait_for("a cleared screen", || {
        !chat.screen().contains("Talking to the orchestrator")
    });
    chat.keys(&["C-d"]);
    let history = s.state().join("chat-history");
    wait_for("the history", || read_opt(&history).contains("hello world"));
    assert_eq!(
        std::fs::metadata(&history).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Sends through the daemon reuse one control client per pane (no attach per send); after the
/// agent is restarted (a new program in the same pane) the next send reaches the new program,
/// once, and never the old client's.
#[test]
fn sends_through_the_daemon_reuse_one_client_per_pane_and_follow_a_restart() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, url, token) = up(&s);
    let auth = format!("Bearer {token}");
    let send = |text: &str| {
        let r = http_agent()
            .post(format!("{url}/v1/agents/helper/send"))
            .header("Authorization", &auth)
            .send_json(serde_json::json!({ "text": text }))
            .unwrap();
        assert_eq!(r.status(), 200, "{text}");
    };
    let control_clients_on_helper = || -> usize {
        s.tmux()
            .run(&[
                "list-clients",
                "-F",
                "#{client_control_mode} #{session_name}",
            ])
            .unwrap()
            .lines()
            .filter(|l| *l == "1 helper")
            .count()
    };
    for i in 1..=3 {
        send(&format!("send {i}"));
    }
    wait_for("three sends", || s.transcript("helper").len() == 3);
    assert_eq!(control_clients_on_helper(), 1, "one kept client");
    s.ok(&["fleet", "restart", "helper"]);
    wait_for("helper running again", || {
        s.states()
            .contains(&("helper".to_owned(), "running".to_owned()))
    });
    std::fs::remove_file(s.state().join("agents/helper/demo-transcript.jsonl")).unwrap();
    send("after the restart");
    wait_for("the send after the restart", || {
        s.transcript("helper") == ["after the restart"]
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.transcript("helper"), ["after the restart"], "once");
    assert_eq!(control_clients_on_helper(), 1);
}

/// With the daemon up, `fleet ps` is answered by the daemon (its live roster), which asks tmux
/// through one read-only control client on the orchestrator's session instead of a tmux process
/// each time; the answers stay right when the tmux server dies and when a new one starts, and a
/// client is kept on the new server.
#[test]
fn ps_through_the_daemon_asks_tmux_through_one_kept_client_and_follows_a_new_server() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _url, _token) = up(&s);
    let query_clients = || {
        s.tmux()
            .run(&[
                "list-clients",
                "-F",
                "#{client_control_mode} #{client_readonly} #{session_name}",
            ])
            .map_or(0, |o| o.lines().filter(|l| *l == "1 1 mos").count())
    };
    let all = |state: &str| {
        let states = s.states();
        !states.is_empty() && states.iter().all(|(_, st)| st == state)
    };
    // A client is attached once the orchestrator's session is there (tried again every 5 s).
    wait_for_secs("a kept client answering ps", 30, || {
        all("running") && query_clients() == 1
    });
    for _ in 0..3 {
        assert!(all("running"), "{:?}", s.states());
    }
    assert_eq!(query_clients(), 1, "one kept client answers ps");
    assert_eq!(
        s.agent_row("mos")["attached"],
        false,
        "the daemon's control clients are no person at a terminal"
    );
    let _ = s.tmux().run(&["kill-server"]);
    wait_for("everyone stopped", || all("stopped"));
    s.ok(&["fleet", "start"]);
    wait_for("everyone running again", || all("running"));
    wait_for_secs("a client kept on the new server", 30, || {
        all("running") && query_clients() == 1
    });
}
