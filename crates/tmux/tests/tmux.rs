//! The driver against a real tmux server on a private socket.

use mosaic_tmux::{ControlClient, ErrorKind, ScratchServer, SendOptions, SessionSpec};
use std::time::{Duration, Instant};

fn spec(name: &str, argv: &[&str]) -> SessionSpec {
    SessionSpec {
        name: name.into(),
        fleet: "t".into(),
        workdir: None,
        env: vec![("MOSAIC_TEST".into(), "1".into())],
        argv: argv.iter().map(|s| s.to_string()).collect(),
        size: (120, 40),
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_server_lists_nothing() {
    let s = ScratchServer::new();
    assert_eq!(s.tmux.list_panes().unwrap(), vec![]);
    assert_eq!(
        s.tmux.capture("nope", false).unwrap_err().kind,
        ErrorKind::NoServer
    );
}

#[test]
fn sessions_are_listed_in_one_call_and_dead_panes_remain() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("alpha", &["cat"])).unwrap();
    s.tmux
        .new_session(&spec("beta", &["sh", "-c", "exit 3"]))
        .unwrap();
    wait_for("beta to die", || {
        s.tmux
            .list_panes()
            .unwrap()
            .iter()
            .any(|p| p.session == "beta" && p.dead)
    });
    let panes = s.tmux.list_panes().unwrap();
    let alpha = panes.iter().find(|p| p.session == "alpha").unwrap();
    assert!(!alpha.dead);
    assert!(alpha.pid > 0);
    assert_eq!(alpha.fleet, "t");
    let beta = panes.iter().find(|p| p.session == "beta").unwrap();
    // tmux records the status when it reaps the process, which on a loaded machine can come
    // after the pane is seen dead (or, in tmux 3.3a, not at all); when known it is right.
    assert!(
        matches!(beta.dead_status, Some(3) | None),
        "{:?}",
        beta.dead_status
    );
    s.tmux.kill_session("beta").unwrap();
    s.tmux.kill_session("beta").unwrap();
    assert_eq!(s.tmux.list_panes().unwrap().len(), 1);
}

#[test]
fn exact_targets_do_not_match_prefixes() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("abc", &["cat"])).unwrap();
    s.tmux.kill_session("ab").unwrap();
    assert_eq!(
        s.tmux.list_panes().unwrap().len(),
        1,
        "killing `ab` left `abc` alone"
    );
    assert_eq!(
        ControlClient::attach(&s.tmux, "ab", false)
            .err()
            .unwrap()
            .kind,
        ErrorKind::NoSession
    );
}

#[test]
fn send_text_submits_once_and_is_confirmed_by_output() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("echo", &["cat"])).unwrap();
    let mut c = ControlClient::attach(&s.tmux, "echo", false).unwrap();
    assert!(c.pane().starts_with('%'));
    let text = "hello ; kill-server $HOME #{pane_id} \"q\" 'x' ~/y";
    let report = c.send_text(text, &SendOptions::default()).unwrap();
    assert!(report.echoed);
    assert_eq!(report.enter_presses, 1);
    drop(c);
    // cat echoes the typed line (tty echo) and prints it back once submitted: two copies, no more.
    wait_for("cat's reply", || {
        s.tmux.capture("echo", false).unwrap().matches(text).count() == 2
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        s.tmux.capture("echo", false).unwrap().matches(text).count(),
        2
    );
    assert_eq!(
        s.tmux.list_panes().unwrap().len(),
        1,
        "the server survived `; kill-server`"
    );
}

#[test]
fn attach_to_a_missing_session_is_no_session() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("here", &["cat"])).unwrap();
    let err = ControlClient::attach(&s.tmux, "gone", false).err().unwrap();
    assert_eq!(err.kind, ErrorKind::NoSession, "{err}");
}
