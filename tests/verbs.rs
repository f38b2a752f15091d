//! The observing and setup verbs: status, logs (and --follow), attach, verify --json, install.

mod support;
use mosaic_tmux::{ScratchServer, SessionSpec};
use std::io::Read;
use std::process::Stdio;
use support::*;

#[test]
fn status_summarizes_the_fleet_on_one_screen() {
    let s = Sandbox::new();
    s.init("general");
    s.ok(&["fleet", "start", "mos", "helper"]);
    let out = s.ok(&["fleet", "status"]);
    assert!(
        out.starts_with(&format!(
            "fleet \"fleet\" (tmux -L {}, comms tmux): 3 agents, 2 running, 0 dead, 1 stopped",
            s.socket
        )),
        "{out}"
    );
    assert!(
        out.contains("○ scout") && out.contains("mosaic fleet start scout"),
        "{out}"
    );
    assert!(out.contains("chat: no connector"), "{out}");
    assert!(
        out.contains("daemon: not running (start it with `mosaic up`)"),
        "{out}"
    );
}

#[test]
fn logs_print_the_scrollback_and_follow_streams_live_output() {
    let s = Sandbox::new();
    s.init("general");
    s.ok(&["fleet", "start", "mos"]);
    s.ok(&["fleet", "send", "mos", "first message"]);
    wait_for("the reply", || s.screen("mos").contains("[demo reply #1]"));
    let logs = s.ok(&["fleet", "logs", "mos"]);
    assert!(
        logs.contains("mosaic demo agent \"mos\"")
            && logs.contains("[demo reply #1] received 13 chars"),
        "{logs}"
    );

    let mut follow = s
        .command(&["fleet", "logs", "mos", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        stdout.read_to_string(&mut all).unwrap();
        all
    });
    // Give the follower a moment to attach, then make the agent print.
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.ok(&["fleet", "send", "mos", "second message"]);
    wait_for("the second reply", || {
        s.screen("mos").contains("[demo reply #2]")
    });
    s.ok(&["fleet", "stop", "mos"]);
    assert!(
        follow.wait().unwrap().success(),
        "follow ends when the agent stops"
    );
    let streamed = reader.join().unwrap();
    assert!(
        streamed.contains("[demo reply #2] received 14 chars"),
        "{streamed:?}"
    );
    assert!(
        !streamed.contains("[demo reply #1]"),
        "only live output is streamed"
    );
}

#[test]
fn attach_puts_a_real_terminal_in_the_agent_session() {
    let s = Sandbox::new();
    s.init("general");
    s.ok(&["fleet", "start", "mos"]);
    // An outer terminal: a pane on another private tmux server runs `mosaic fleet attach`.
    let outer = ScratchServer::new();
    outer
        .tmux
        .new_session(&SessionSpec {
            name: "term".into(),
            fleet: "outer".into(),
            workdir: None,
            env: s
                .env()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .chain([("TERM".to_owned(), "xterm".to_owned())])
                .collect(),
            argv: vec![MOSAIC.into(), "fleet".into(), "attach".into(), "mos".into()],
            size: (150, 40),
        })
        .unwrap();
    let seen = || outer.tmux.capture("term", false).unwrap_or_default();
    wait_for("the agent's screen in the outer terminal", || {
        seen().contains("mosaic demo agent \"mos\"")
    });
    // Typing in the attached terminal reaches the agent ("butting in").
    outer
        .tmux
        .run(&["send-keys", "-t", "=term:", "-l", "typed by hand"])
        .unwrap();
    outer
        .tmux
        .run(&["send-keys", "-t", "=term:", "Enter"])
        .unwrap();
    wait_for("the agent to take it", || {
        s.transcript("mos") == ["typed by hand"]
    });
    assert!(s.ps()["agents"][0]["attached"].as_bool().unwrap());
    // Without a terminal, attach refuses and points at logs.
    assert!(
        s.fails(&["fleet", "attach", "mos"])
            .contains("attach needs a terminal")
    );
}

#[test]
fn verify_json_lists_each_finding_with_a_fix() {
    let s = Sandbox::new();
    s.init("general");
    let out = s.run(&["fleet", "verify", "--json"]);
    assert!(
        out.status.success(),
        "stopped agents are a warning, not a failure"
    );
    let checks: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let scout = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == "session scout")
        .unwrap();
    assert_eq!(scout["level"], "warn");
    assert_eq!(scout["hint"], "mosaic fleet start scout");
    // A broken roster fails verify with its positions.
    std::fs::write(
        s.roster_path(),
        read(&s.roster_path()).replace("runtime: demo", "runtime: nope"),
    )
    .unwrap();
    let out = s.run(&["fleet", "verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("agents[0].runtime: unknown runtime \"nope\""),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn install_prepares_dirs_and_completions() {
    let s = Sandbox::new();
    let completions = s.dir.path().join("completions");
    let out = s.ok(&[
        "fleet",
        "install",
        "--completions-dir",
        completions.to_str().unwrap(),
    ]);
    assert!(out.contains("works"), "{out}");
    assert!(s.config().join("presets").is_dir() && s.state().is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(s.config()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let bash = read(&completions.join("mosaic"));
    assert!(bash.contains("fleet") && bash.contains("demo-agent"));
    assert!(completions.join("_mosaic").exists() && completions.join("mosaic.fish").exists());
    assert!(out.contains("next: `mosaic fleet init`"));
    let unit = read(&s.home().join(".config/systemd/user/mosaic.service"));
    assert!(unit.contains(&format!("ExecStart={MOSAIC} up")), "{unit}");
    assert!(
        unit.contains(&format!(
            "Environment=MOSAIC_CONFIG={}",
            s.config().display()
        )),
        "{unit}"
    );
}

/// Runs `mosaic ARGS` with its standard output a pipe whose reader is already gone; returns
/// its exit status and standard error.
fn with_reader_gone(s: &Sandbox, args: &str) -> (String, String) {
    let err = s.dir.path().join("stderr");
    let script = format!(
        "(sleep 0.3; exec \"$0\" {args}) 2>\"$1\" | (exec 0<&-; sleep 1); echo ${{PIPESTATUS[0]}}"
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script, MOSAIC, &err.display().to_string()])
        .envs(s.env())
        .env_remove("TMUX")
        .output()
        .unwrap();
    (text(&out.stdout).trim().to_owned(), read(&err))
}

#[test]
fn a_reader_that_goes_away_is_not_a_panic() {
    let s = Sandbox::new();
    s.init("general");
    for args in [
        "completions bash",
        "completions zsh",
        "fleet status",
        "fleet ps --json",
        "fleet presets",
    ] {
        let (status, err) = with_reader_gone(&s, args);
        assert_eq!(
            status, "141",
            "{args}: exits like a tool killed by SIGPIPE: {err}"
        );
        assert!(err.is_empty(), "{args}: nothing on stderr, no panic: {err}");
    }
}
