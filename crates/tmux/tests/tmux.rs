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

/// `before_paste` runs after the send's checks and right before the paste: a dialog on the
/// screen stops the send before it (nothing to record), and a refusal types nothing.
#[test]
fn before_paste_runs_after_the_checks_and_a_refusal_types_nothing() {
    let s = ScratchServer::new();
    s.tmux
        .new_session(&spec(
            "gate",
            &["sh", "-c", "echo 'Allow? (y/n)'; exec cat"],
        ))
        .unwrap();
    wait_for("the dialog", || {
        s.tmux.capture("gate", false).unwrap().contains("Allow?")
    });
    let mut c = ControlClient::attach(&s.tmux, "gate", false).unwrap();
    let dialog = SendOptions {
        dialogs: vec!["Allow?".into()],
        ..SendOptions::default()
    };
    let mut called = false;
    let err = c
        .send_text_marked("first", &dialog, |_| {
            called = true;
            true
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::DialogShown);
    assert!(
        !called,
        "a dialog stops the send before the paste is recorded"
    );
    let err = c
        .send_text_marked("refused", &SendOptions::default(), |_| false)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Failed, "{err}");
    let mut loaded_when_called = None;
    c.send_text_marked("typed", &SendOptions::default(), |buffer| {
        // The text is loaded in its buffer before the record, and pasted only after it.
        let loaded = s
            .tmux
            .run(&["list-buffers", "-F", "#{buffer_name}"])
            .unwrap();
        loaded_when_called = Some(loaded.lines().any(|b| b == buffer));
        true
    })
    .unwrap();
    assert_eq!(loaded_when_called, Some(true));
    wait_for("the sent line", || {
        s.tmux.capture("gate", false).unwrap().contains("typed")
    });
    let screen = s.tmux.capture("gate", false).unwrap();
    assert!(
        !screen.contains("first") && !screen.contains("refused"),
        "{screen}"
    );
}

#[test]
fn attach_to_a_missing_session_is_no_session() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("here", &["cat"])).unwrap();
    let err = ControlClient::attach(&s.tmux, "gone", false).err().unwrap();
    assert_eq!(err.kind, ErrorKind::NoSession, "{err}");
}

/// A program that turns on focus reporting (as Claude Code and Codex do) and then echoes.
const FOCUS_CAT: &[&str] = &["sh", "-c", "printf '\\033[?1004hready\\n'; exec cat"];

fn pane_pid(s: &ScratchServer, session: &str) -> u32 {
    let panes = s.tmux.list_panes().unwrap();
    panes.iter().find(|p| p.session == session).unwrap().pid
}

fn wait_dead(s: &ScratchServer, session: &str) {
    wait_for("the pane to die", || {
        s.tmux
            .list_panes()
            .unwrap()
            .iter()
            .any(|p| p.session == session && p.dead)
    });
}

#[test]
fn nothing_is_written_to_a_dead_pane() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("bystander", &["cat"])).unwrap();
    s.tmux.new_session(&spec("agent", FOCUS_CAT)).unwrap();
    let mut client = ControlClient::attach(&s.tmux, "agent", false).unwrap();
    assert!(!client.pane_dead());
    std::process::Command::new("kill")
        .args(["-9", &pane_pid(&s, "agent").to_string()])
        .status()
        .unwrap();
    wait_dead(&s, "agent");
    let err = client
        .send_text("hello", &SendOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PaneDead, "{err}");
    assert_eq!(client.press_enter().unwrap_err().kind, ErrorKind::PaneDead);
    drop(client);
    // The server and the other agent are untouched.
    let panes = s.tmux.list_panes().unwrap();
    assert!(panes.iter().any(|p| p.session == "bystander" && !p.dead));
    assert!(panes.iter().any(|p| p.session == "agent" && p.dead));
}

/// tmux 3.5a can crash when a pane is respawned under an attached control client: a respawn
/// detaches control clients first; the session, its pane and the server stay.
#[test]
fn respawn_restarts_in_the_same_pane_and_detaches_control_clients_first() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("bystander", &["cat"])).unwrap();
    s.tmux.new_session(&spec("agent", FOCUS_CAT)).unwrap();
    let mut client = ControlClient::attach(&s.tmux, "agent", false).unwrap();
    let pane = client.pane().to_owned();
    let first = pane_pid(&s, "agent");
    let first_incarnation = client.incarnation().to_owned();
    assert!(
        first_incarnation.ends_with(&format!("/{pane}/{first}")),
        "{first_incarnation}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut again = spec(
        "agent",
        &["sh", "-c", "echo \"again $MOSAIC_TEST $PWD\"; exec cat"],
    );
    again.env = vec![("MOSAIC_TEST".into(), "two".into())];
    again.workdir = Some(dir.path().to_owned());
    s.tmux.respawn_pane(&again).unwrap();
    assert_ne!(pane_pid(&s, "agent"), first, "a new program");
    // The control client was detached: its stream ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.next_output(deadline) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the control client was not detached"),
            Err(_) => break,
        }
    }
    // A new client finds the same pane, with the new program (its env and workdir) in it.
    let mut client = ControlClient::attach(&s.tmux, "agent", false).unwrap();
    assert_eq!(client.pane(), pane);
    assert_ne!(
        client.incarnation(),
        first_incarnation,
        "input typed into the old program is gone with it: another incarnation"
    );
    wait_for("the new program's output", || {
        let screen = s.tmux.capture("agent", false).unwrap();
        screen.contains("again two") && screen.contains(&dir.path().display().to_string())
    });
    let report = client
        .send_text("still here", &SendOptions::default())
        .unwrap();
    assert_eq!(report.enter_presses, 1);
    assert!(
        s.tmux
            .list_panes()
            .unwrap()
            .iter()
            .any(|p| p.session == "bystander")
    );
}

#[test]
fn killing_a_session_detaches_its_clients_and_spares_the_server() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("bystander", &["cat"])).unwrap();
    s.tmux.new_session(&spec("agent", FOCUS_CAT)).unwrap();
    let mut client = ControlClient::attach(&s.tmux, "agent", false).unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pane_pid(&s, "agent").to_string()])
        .status()
        .unwrap();
    wait_dead(&s, "agent");
    s.tmux.kill_session("agent").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.next_output(deadline) {
            Err(_) => break, // detached
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the client is still attached"),
        }
    }
    let panes = s.tmux.list_panes().unwrap();
    assert_eq!(panes.len(), 1, "{panes:?}");
    assert_eq!(panes[0].session, "bystander");
}

/// tmux 3.5a crashes (SIGSEGV, every session lost) when a control client that has not finished
/// identifying gets a notification, such as a session being created or killed (upstream tmux PR
/// #4980); a client leaving (a control client detaching) is such a notification too. Attaches,
/// detaches and session changes take turns (`Tmux::topology_turn`), so however they interleave,
/// from threads here or other processes, the server survives.
#[test]
fn control_clients_attaching_while_sessions_come_and_go_never_crash_the_server() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("agent", FOCUS_CAT)).unwrap();
    let server_pid = s.tmux.run(&["display-message", "-p", "#{pid}"]).unwrap();
    std::thread::scope(|scope| {
        for t in 0..2 {
            let tmux = &s.tmux;
            scope.spawn(move || {
                for i in 0..40 {
                    let name = format!("churn-{t}-{i}");
                    tmux.new_session(&spec(&name, &["cat"])).unwrap();
                    tmux.kill_session(&name).unwrap();
                }
            });
        }
        for _ in 0..2 {
            let tmux = &s.tmux;
            scope.spawn(move || {
                for _ in 0..40 {
                    let client = ControlClient::attach(tmux, "agent", false).unwrap();
                    drop(client);
                }
            });
        }
    });
    assert_eq!(
        s.tmux.run(&["display-message", "-p", "#{pid}"]).unwrap(),
        server_pid,
        "the same server, alive"
    );
}

/// Every paste sets and deletes a paste buffer, which tmux 3.5a announces to every control
/// client, one still identifying included (SIGSEGV: upstream PR #4980): pastes into one pane
/// while control clients attach to another never crash the server (seen as the whole fleet
/// lost when `fleet send` to a worker ran during a chat burst to the orchestrator).
#[test]
fn pastes_while_control_clients_attach_never_crash_the_server() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("busy", &["cat"])).unwrap();
    s.tmux.new_session(&spec("idle", &["cat"])).unwrap();
    let server_pid = s.tmux.run(&["display-message", "-p", "#{pid}"]).unwrap();
    let opts = SendOptions {
        submit_attempts: 1,
        ..SendOptions::default()
    };
    std::thread::scope(|scope| {
        let tmux = &s.tmux;
        let opts = &opts;
        scope.spawn(move || {
            let mut client = ControlClient::attach(tmux, "busy", false).unwrap();
            for i in 0..300 {
                client.send_text(&format!("paste {i}"), opts).unwrap();
            }
        });
        for t in 0..2 {
            scope.spawn(move || {
                for i in 0..60 {
                    // As `fleet send` does: attach, paste once, go.
                    let mut client = ControlClient::attach(tmux, "idle", false).unwrap();
                    client.send_text(&format!("send {t}-{i}"), opts).unwrap();
                }
            });
        }
    });
    assert_eq!(
        s.tmux.run(&["display-message", "-p", "#{pid}"]).unwrap(),
        server_pid,
        "the same server, alive"
    );
}

/// A waker ends a wakeable wait for output at once, from another thread; a wake that arrives
/// during another wait (a command's reply) is kept for the next wakeable wait, never lost.
#[test]
fn a_waker_ends_a_wait_for_output_and_is_never_lost() {
    let s = ScratchServer::new();
    s.tmux.new_session(&spec("agent", &["cat"])).unwrap();
    let mut client = ControlClient::attach(&s.tmux, "agent", false).unwrap();
    let waker = client.waker();
    let far = Instant::now() + Duration::from_secs(60);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        waker.wake();
    });
    assert_eq!(client.next_output_or_wake(far).unwrap(), None);
    assert!(
        Instant::now() < far - Duration::from_secs(30),
        "woken, not timed out"
    );
    t.join().unwrap();
    // Woken while a command runs: the next wakeable wait ends at once; a plain wait ignores it.
    client.waker().wake();
    client.screen().unwrap();
    assert_eq!(
        client
            .next_output(Instant::now() + Duration::from_millis(100))
            .unwrap(),
        None
    );
    assert_eq!(client.next_output_or_wake(far).unwrap(), None);
    assert!(Instant::now() < far - Duration::from_secs(30));
}
