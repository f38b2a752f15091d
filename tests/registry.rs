//! The connector registry, proven with a connector that lives only in its own folder
//! (`connectors/testchat`, test support), one registration line and a cargo feature: init (its
//! flags, its questions, its checks), verify (its secrets), the ACL and the daemon all pick it
//! up from its descriptor.

mod support;
use mosaic_testchat::{post, posted};
use std::process::{Child, Stdio};
use support::*;

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn init_testchat(s: &Sandbox, dir: &str) -> String {
    s.ok(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "testchat",
        "--testchat-dir",
        dir,
        "--target",
        "lobby",
        "--admin",
        "ann",
    ]))
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
    let platform = tempfile::tempdir().unwrap();
    let dir = platform.path();
    init_testchat(&s, &dir.display().to_string());
    std::fs::write(dir.join("token"), "tc-secret\n").unwrap();
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    let _up = Up(s
        .command(&["up", "--listen", "127.0.0.1:0"])
        .env("TESTCHAT_TOKEN", "tc-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    wait_for("the daemon to listen", || {
        read_opt(&s.state().join("daemon.json")).contains("url")
    });
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
    post(dir, "lobby", "bob", "let me in");
    post(dir, "elsewhere", "ann", "wrong room");
    wait_for("both audited", || {
        let audit = read_opt(&s.state().join("audit.jsonl"));
        audit.contains("refused: user not in the acl")
            && audit.contains("ignored: room not bridged")
    });
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

fn read_opt(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_pending_confirmation_survives_a_daemon_restart() {
    let s = Sandbox::new();
    let platform = tempfile::tempdir().unwrap();
    let dir = platform.path();
    init_testchat(&s, &dir.display().to_string());
    std::fs::write(dir.join("token"), "tc-secret\n").unwrap();
    let up = || {
        let _ = std::fs::remove_file(s.state().join("daemon.json"));
        let up = Up(s
            .command(&["up", "--listen", "127.0.0.1:0"])
            .env("TESTCHAT_TOKEN", "tc-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap());
        wait_for("the daemon to listen", || {
            read_opt(&s.state().join("daemon.json")).contains("url")
        });
        up
    };
    let first = up();
    post(dir, "lobby", "ann", "/fleet remove helper");
    wait_for_secs("the confirmation request", 30, || {
        posted(dir, "lobby")
            .iter()
            .any(|t| t.contains("/fleet confirm "))
    });
    let ask = posted(dir, "lobby")
        .into_iter()
        .find(|t| t.contains("/fleet confirm "))
        .unwrap();
    let code: String = ask
        .split("/fleet confirm ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
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
