//! The connector registry, proven with a connector that lives only in its own folder
//! (`connectors/testchat`, test support), one registration line and a cargo feature: init (its
//! flags, its questions, its checks), verify (its secrets), the ACL and the daemon all pick it
//! up from its descriptor.

mod support;
use mosaic_testchat::{post, posted};
use std::process::Stdio;
use support::*;

fn init_testchat(s: &Sandbox, dir: &str) -> String {
    init_testchat_rooms(s, dir, &["lobby"])
}

fn init_testchat_rooms(s: &Sandbox, dir: &str, rooms: &[&str]) -> String {
    let mut args = vec!["--preset", "general", "--connector", "testchat"];
    args.extend(["--testchat-dir", dir, "--admin", "ann"]);
    for room in rooms {
        args.extend(["--target", room]);
    }
    s.ok(&s.init_args(&args))
}

#[test]
fn init_offers_the_connectors_own_flags_asks_its_questions_and_checks_its_answers() {
    let s = Sandbox::new();
    let help = s.ok(&["fleet", "init", "--help"]);
    assert!(
        help.contains("--testchat-dir <DIR>") && help.contains("[testchat]"),
        "{help}"
    );
    assert!(help.contains("--guild <ID>"), "{help}");
    // Without a terminal, a missing answer names the connector's own flag.
    let err = s.fails(&s.init_args(&["--preset", "general", "--connector", "testchat"]));
    assert!(err.contains("pass --testchat-dir DIR"), "{err}");
    // The connector's checks run before anything is written.
    let err = s.fails(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "testchat",
        "--testchat-dir",
        "relative/dir",
        "--target",
        "lobby",
    ]));
    assert!(
        err.contains("the testchat answers are not valid; nothing was written")
            && err.contains("dir: \"relative/dir\" must be an absolute path"),
        "{err}"
    );
    assert!(!s.roster_path().exists());
    let err = s.fails(&s.init_args(&["--preset", "general", "--connector", "telegrm"]));
    assert!(
        err.contains("unknown connector type \"telegrm\" for --connector; this build of mosaic has: none, discord")
            && err.contains("testchat"),
        "{err}"
    );
    // A good answer: the entry has the type's settings, the secret by reference.
    let platform = tempfile::tempdir().unwrap();
    let dir = platform.path().display().to_string();
    init_testchat(&s, &dir);
    let roster = read(&s.roster_path());
    assert!(
        roster.contains("type: testchat")
            && roster.contains(&format!("dir: {dir}"))
            && roster.contains("env: TESTCHAT_TOKEN")
            && roster.contains("connector: testchat"),
        "{roster}"
    );
    assert!(
        s.ok(&["fleet", "status"])
            .contains("chat: testchat (1 room)")
    );
}

#[test]
fn verify_checks_the_connectors_secret_with_its_own_rules() {
    let s = Sandbox::new();
    let platform = tempfile::tempdir().unwrap();
    init_testchat(&s, &platform.path().display().to_string());
    let verify = |token: Option<&str>| {
        let mut c = s.command(&["fleet", "verify"]);
        match token {
            Some(t) => c.env("TESTCHAT_TOKEN", t),
            None => c.env_remove("TESTCHAT_TOKEN"),
        };
        let out = c.output().unwrap();
        (out.status.success(), text(&out.stdout))
    };
    let (ok, report) = verify(None);
    assert!(!ok);
    assert!(
        report.contains(
            "FAIL  connector 0 (testchat) token: environment variable TESTCHAT_TOKEN is not set"
        ),
        "{report}"
    );
    let (_, report) = verify(Some("not-a-testchat-token"));
    assert!(
        report.contains("FAIL  connector 0 (testchat) token: environment variable TESTCHAT_TOKEN does not hold a testchat token"),
        "{report}"
    );
    assert!(!report.contains("not-a-testchat-token"), "never the secret");
    let (_, report) = verify(Some("tc-good"));
    assert!(
        report.contains(
            "ok    connector 0 (testchat) token: environment variable TESTCHAT_TOKEN is set"
        ),
        "{report}"
    );
}

#[test]
fn the_daemon_builds_the_connector_and_the_acl_keys_its_rooms_by_instance_id() {
    let s = Sandbox::new();
    let platform = testchat_fleet(&s);
    let dir = platform.path();
    let _up = up_testchat(&s);
    // The admin (acl `connector: testchat`) talks to the orchestrator; its reply comes back in
    // the same room through the connector.
    post(dir, "lobby", "ann", "hello from testchat");
    wait_for_secs("the orchestrator's reply in the room", 30, || {
        posted(dir, "lobby")
            .iter()
            .any(|t| t.starts_with("[demo reply #1]"))
    });
    assert!(
        s.transcript("mos")
            .iter()
            .any(|l| l.contains("hello from testchat")),
        "{:?}",
        s.transcript("mos")
    );
    // A stranger is refused and audited; a room that is not bridged is ignored.
    stranger_and_wrong_room_are_audited(&s, dir);
    assert!(
        !s.transcript("mos")
            .iter()
            .any(|l| l.contains("let me in") || l.contains("wrong room")),
        "{:?}",
        s.transcript("mos")
    );
    // The daemon reports the connector's health under its instance id.
    let status = s.ok(&["fleet", "status"]);
    assert!(status.contains("testchat up"), "{status}");
}

/// A stranger in the bridged room and the admin in another room: both audited (refused,
/// ignored).
fn stranger_and_wrong_room_are_audited(s: &Sandbox, dir: &std::path::Path) {
    post(dir, "lobby", "bob", "let me in");
    post(dir, "elsewhere", "ann", "wrong room");
    wait_for("both audited", || {
        let audit = read_opt(&s.state().join("audit.jsonl"));
        audit.contains("refused: user not in the acl")
            && audit.contains("ignored: room not bridged")
    });
}

/// A testchat platform directory (its token file holds `tc-secret`) and a fleet bridged to its
/// `lobby`, `ann` admin.
fn testchat_fleet(s: &Sandbox) -> tempfile::TempDir {
    let platform = tempfile::tempdir().unwrap();
    init_testchat(s, &platform.path().display().to_string());
    std::fs::write(platform.path().join("token"), "tc-secret\n").unwrap();
    platform
}

/// `mosaic up` for the sandbox with the testchat token in its environment, once it listens.
fn up_testchat(s: &Sandbox) -> Up {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    let up = Up(s
        .command(&["up", "--listen", "127.0.0.1:0"])
        .env("TESTCHAT_TOKEN", "tc-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    wait_for_secs("the daemon to listen", DAEMON_START_SECS, || {
        read_opt(&s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    up
}

#[test]
fn a_pending_confirmation_survives_a_daemon_restart() {
    let s = Sandbox::new();
    let platform = testchat_fleet(&s);
    let dir = platform.path();
    let up = || up_testchat(&s);
    let first = up();
    post(dir, "lobby", "ann", "/fleet remove helper");
    let code = confirmation_code(dir, "lobby");
    drop(first);
    let _second = up();
    post(dir, "lobby", "ann", &format!("/fleet confirm {code}"));
    wait_for_secs("the confirmed removal", 30, || {
        !read_opt(&s.roster_path()).contains("name: helper")
    });
    assert!(
        !posted(dir, "lobby")
            .iter()
            .any(|t| t.contains("no such confirmation")),
        "{:?}",
        posted(dir, "lobby")
    );
}

#[test]
fn the_daemons_json_log_at_the_highest_verbosity_never_shows_the_connectors_token() {
    let s = Sandbox::new();
    let platform = tempfile::tempdir().unwrap();
    let dir = platform.path();
    init_testchat(&s, &dir.display().to_string());
    let secret = format!("tc-hush-{}", std::process::id());
    std::fs::write(dir.join("token"), format!("{secret}\n")).unwrap();
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    let log_path = dir.join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut up = Up(s
        .command(&[
            "up",
            "--listen",
            "127.0.0.1:0",
            "-vv",
            "--log-format",
            "json",
        ])
        .env("TESTCHAT_TOKEN", &secret)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap());
    wait_for_secs("the daemon to listen", DAEMON_START_SECS, || {
        read_opt(&s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    // Talk, a reply whose first post fails (logged, retried), a stranger and a wrong room.
    std::fs::write(dir.join("fail-next-post"), "").unwrap();
    post(dir, "lobby", "ann", "hello from testchat");
    wait_for_secs("the orchestrator's reply in the room", 30, || {
        posted(dir, "lobby")
            .iter()
            .any(|t| t.starts_with("[demo reply #1]"))
    });
    stranger_and_wrong_room_are_audited(&s, dir);
    // A clean stop logs the shutdown too.
    std::process::Command::new("kill")
        .args(["-TERM", &up.0.id().to_string()])
        .status()
        .unwrap();
    wait_for("the daemon to stop", || up.0.try_wait().unwrap().is_some());
    let stderr = read_opt(&log_path);
    assert!(!stderr.contains(&secret), "the token leaked:\n{stderr}");
    assert!(
        !stderr.contains("hello from testchat"),
        "message text in the log:\n{stderr}"
    );
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let has = |level: &str, message: &str, fields: &[(&str, serde_json::Value)]| {
        lines.iter().any(|l| {
            l["level"] == level
                && l["fields"]["message"] == message
                && fields.iter().all(|(k, v)| l["fields"][k] == *v)
        })
    };
    type Fields<'a> = &'a [(&'a str, serde_json::Value)];
    let expected: [(&str, &str, Fields); 5] = [
        ("INFO", "daemon started", &[]),
        (
            "INFO",
            "connector state changed",
            &[("connector", "testchat".into()), ("state", "up".into())],
        ),
        (
            "DEBUG",
            "sending a message failed; retrying",
            &[("outbox_id", 1.into())],
        ),
        (
            "INFO",
            "delivered a chat message",
            &[("agent", "mos".into()), ("connector", "testchat".into())],
        ),
        ("INFO", "daemon stopped", &[]),
    ];
    for (level, message, fields) in expected {
        assert!(has(level, message, fields), "{level} {message}: {stderr}");
    }
    assert!(stderr.contains("testchat: 503"), "{stderr}");
}

/// Hardening issue, item 1: two rooms writing back to back; each answer lands in the room of the
/// message it answers (the orchestrator answers `--to N`), never in the other room.
#[test]
fn answers_land_in_the_room_of_the_message_they_answer() {
    let s = Sandbox::new();
    let platform = tempfile::tempdir().unwrap();
    let dir = platform.path();
    init_testchat_rooms(&s, &dir.display().to_string(), &["lobby", "annex"]);
    std::fs::write(dir.join("token"), "tc-secret\n").unwrap();
    let _up = up_testchat(&s);
    for i in 0..6 {
        post(dir, "lobby", "ann", &format!("lobby says {i}"));
        post(dir, "annex", "ann", &format!("annex says {i}"));
    }
    let replies = |room: &str| -> Vec<String> {
        posted(dir, room)
            .into_iter()
            .filter(|t| t.starts_with("[demo reply #"))
            .collect()
    };
    wait_for_secs("12 answers", 60, || {
        replies("lobby").len() + replies("annex").len() >= 12
    });
    for (room, other) in [("lobby", "annex"), ("annex", "lobby")] {
        let got = replies(room);
        assert_eq!(got.len(), 6, "{room}: {got:?}");
        assert!(
            got.iter().all(|t| t.contains(&format!("testchat/{room}]"))
                && !t.contains(&format!("testchat/{other}]"))),
            "an answer in the wrong room: {room}: {got:?}"
        );
    }
}

/// Hardening issue, item 8: `mosaic reply` while the daemon is down keeps the reply; the daemon
/// posts it when it starts.
#[test]
fn a_reply_while_the_daemon_is_down_is_kept_and_posted_when_it_starts() {
    let s = Sandbox::new();
    let platform = testchat_fleet(&s);
    let dir = platform.path();
    let out = s.run(&[
        "reply",
        "--room",
        "testchat:lobby",
        "said while the daemon was down",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the reply is kept"),
        "{}",
        text(&out.stderr)
    );
    let _up = up_testchat(&s);
    wait_for_secs("the kept reply in the room", 30, || {
        posted(dir, "lobby")
            .iter()
            .any(|t| t == "said while the daemon was down")
    });
    assert!(
        std::fs::read_dir(s.state().join("spool"))
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| e.path().is_dir()),
        "the spool is empty once posted"
    );
}

/// A reply kept while the daemon is down goes to the room of the message it answers; one to a
/// message that was never received is refused at once (it used to fail at the next start).
#[test]
fn a_kept_reply_to_a_message_goes_to_its_room_and_an_unknown_one_is_refused_at_once() {
    let s = Sandbox::new();
    let platform = tempfile::tempdir().unwrap();
    let dir = platform.path();
    init_testchat_rooms(&s, &dir.display().to_string(), &["lobby", "annex"]);
    std::fs::write(dir.join("token"), "tc-secret\n").unwrap();
    let first = up_testchat(&s);
    post(dir, "annex", "ann", "answer me later");
    wait_for_secs("the demo's answer", 30, || {
        posted(dir, "annex")
            .iter()
            .any(|t| t.starts_with("[demo reply #1"))
    });
    drop(first);
    let out = s.run(&["reply", "--to", "999", "to nothing"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("there is no chat message #999"),
        "{}",
        text(&out.stderr)
    );
    let out = s.run(&["reply", "--room", "bogus:x", "to nowhere"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("\"bogus:x\" is not a bridged room"),
        "{}",
        text(&out.stderr)
    );
    let out = s.run(&["reply", "--to", "1", "the late answer"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kept = std::fs::read_dir(s.state().join("spool"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(kept, 1, "only the answerable reply is kept");
    let _second = up_testchat(&s);
    wait_for_secs("the kept reply in its room", 30, || {
        posted(dir, "annex").iter().any(|t| t == "the late answer")
    });
    assert!(!posted(dir, "lobby").iter().any(|t| t == "the late answer"));
}

/// `/fleet init` from chat is tried as a dry run before the confirmation: a wrong answer is
/// said at once (it used to be said only after `/fleet confirm`), and the confirmation shows
/// what would change.
#[test]
fn a_chat_init_is_checked_before_it_asks_for_confirmation() {
    let s = Sandbox::new();
    let platform = testchat_fleet(&s);
    let dir = platform.path();
    let _up = up_testchat(&s);
    post(dir, "lobby", "ann", "/fleet init general --guild 5");
    wait_for("the answer", || {
        posted(dir, "lobby")
            .iter()
            .any(|t| t.contains("--guild is not a question of the testchat connector"))
    });
    assert!(
        !posted(dir, "lobby")
            .iter()
            .any(|t| t.contains("/fleet confirm ")),
        "no confirmation for a command that cannot run"
    );
    post(dir, "lobby", "ann", "/fleet init coding");
    wait_for("the confirmation with the plan", || {
        posted(dir, "lobby")
            .iter()
            .any(|t| t.contains("/fleet confirm ") && t.contains("coder-1"))
    });
}
