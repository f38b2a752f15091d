//! Adversarial end-to-end tests of 437edd6 (every CLI call to the daemon gives up after
//! `MOSAIC_DAEMON_TIMEOUT`, 60 s by default; a stopped daemon hangs neither `fleet send`,
//! `fleet status` nor `mosaic reply`) and 69da2d8 (the daemon prunes `bridge.db` of what it
//! handled more than `bridge.history_days` ago, at start and daily, in batches on its own
//! connection).

mod support;
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::api::{Api, spawn_up, up};
use support::*;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Runs `command` to its end (a liveness bound of `secs`, not a measure): its output.
fn finish_within(mut command: Command, secs: u64, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {secs} s\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The bridge's database, opened beside the daemon (it may be writing).
fn db(s: &Sandbox) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(s.state().join("bridge.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn count(s: &Sandbox, sql: &str) -> i64 {
    db(s).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// `bridge.history_days: days` added to the roster (the presets have no `bridge:` section).
fn keep_history_days(s: &Sandbox, days: &str) {
    let roster = read(&s.roster_path());
    assert!(!roster.contains("\nbridge:"), "{roster}");
    std::fs::write(
        s.roster_path(),
        format!("{roster}bridge:\n  history_days: {days}\n"),
    )
    .unwrap();
}

/// The texts the local room was told (what `mosaic chat` shows), oldest first.
fn local_room(s: &Sandbox) -> Vec<String> {
    read_opt(&s.state().join("local-room.jsonl"))
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// How many times the local room was told exactly `text`.
fn told(s: &Sandbox, text: &str) -> usize {
    local_room(s).iter().filter(|t| *t == text).count()
}

/// The texts of the chat messages the orchestrator received.
fn chat_texts(s: &Sandbox) -> Vec<String> {
    s.chats().into_iter().map(|(_, _, t)| t).collect()
}

/// How many "pruned the bridge's database" lines the daemons of this sandbox logged.
fn prunes_logged(s: &Sandbox) -> usize {
    read_opt(&s.dir.path().join("up.log"))
        .matches("pruned the bridge's database")
        .count()
}

/// `/v1/chat`'s verdict for a message of the local room with client id `id`.
fn chat_verdict(api: &Api, id: &str, text: &str) -> String {
    let v = api.ok("/v1/chat", json!({ "id": id, "text": text }));
    v["verdict"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Claim A: client timeouts
// ---------------------------------------------------------------------------------------------

/// Garbage, negative, zero, infinite and NaN `MOSAIC_DAEMON_TIMEOUT` values fall back to the
/// default: `fleet send` through a running daemon works, and each text is typed exactly once.
#[test]
fn garbage_timeouts_fall_back_to_the_default() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _api) = up(&s);
    let values = [
        "abc", "-5", "0", "-0", "inf", "NaN", "", " 2 ", "1s", "0x10",
    ];
    for (i, v) in values.iter().enumerate() {
        let mut c = s.command(&["fleet", "send", "helper", &format!("garbage-{i}")]);
        c.env("MOSAIC_DAEMON_TIMEOUT", v);
        let out = finish_within(
            c,
            30,
            &format!("fleet send with MOSAIC_DAEMON_TIMEOUT={v:?}"),
        );
        assert!(
            out.status.success(),
            "MOSAIC_DAEMON_TIMEOUT={v:?}: {}",
            text(&out.stderr)
        );
    }
    let want: Vec<String> = (0..values.len()).map(|i| format!("garbage-{i}")).collect();
    wait_for("every text typed", || s.transcript("helper") == want);
}

/// Huge `MOSAIC_DAEMON_TIMEOUT` values (someone's "never time out") must not crash the CLI:
/// every call to a running daemon (`fleet send`, `fleet ps`, `fleet status`, `mosaic reply`,
/// even `mosaic hook`, which has its own 2 s limit) must work or fail cleanly, never panic.
#[test]
fn huge_timeouts_do_not_panic() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _api) = up(&s);
    let mut panics = Vec::new();
    for v in ["1e30", "1e19", "18446744073709551616", "1e300"] {
        let calls: [&[&str]; 5] = [
            &["fleet", "send", "helper", "huge"],
            &["fleet", "ps"],
            &["fleet", "status"],
            &["reply", "--room", "local:local", "huge"],
            &["hook", "--agent", "helper", "busy"],
        ];
        for args in calls {
            let mut c = s.command(args);
            c.env("MOSAIC_DAEMON_TIMEOUT", v).env("RUST_BACKTRACE", "0");
            let out = finish_within(c, 30, &format!("mosaic {args:?}"));
            let err = text(&out.stderr);
            if err.contains("panicked") || out.status.code() == Some(101) {
                let why = err
                    .lines()
                    .skip_while(|l| !l.contains("panicked"))
                    .nth(1)
                    .unwrap_or_default();
                panics.push(format!("MOSAIC_DAEMON_TIMEOUT={v} mosaic {args:?}: {why}"));
            }
        }
    }
    assert!(
        panics.is_empty(),
        "the CLI panicked:\n{}",
        panics.join("\n")
    );
}

/// A fractional timeout is honoured through a stopped daemon, and the CLI never types into a
/// pane itself while the daemon holds its lock: three concurrent `fleet send`s fail saying the
/// text may or may not have been typed, nothing reaches the pane while the daemon is stopped,
/// `fleet status` and `fleet verify` say "running, not answering"; running again, each text was
/// typed at most once and sends work.
#[test]
fn sends_through_a_stopped_daemon_are_never_typed_by_the_cli() {
    let s = Sandbox::new();
    s.init("general");
    let (d, _api) = up(&s);
    s.ok(&["fleet", "send", "helper", "before"]);
    wait_for("the first send", || s.transcript("helper") == ["before"]);
    signal(d.pid(), "STOP");
    let sends: Vec<_> = (0..3)
        .map(|i| {
            let mut c = s.command(&["fleet", "send", "helper", &format!("stopped-{i}")]);
            c.env("MOSAIC_DAEMON_TIMEOUT", "0.5")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut errors = Vec::new();
    for child in sends {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut child = child;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "fleet send hangs on a stopped daemon"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{}", text(&out.stdout));
        errors.push(text(&out.stderr));
    }
    let mut status = s.command(&["fleet", "status"]);
    status.env("MOSAIC_DAEMON_TIMEOUT", "garbage");
    let status = finish_within(status, 30, "fleet status with a stopped daemon");
    let verify = finish_within(
        s.command(&["fleet", "verify"]),
        30,
        "fleet verify with a stopped daemon",
    );
    // Still stopped: nothing of the three reached the pane (the CLI did not type them).
    std::thread::sleep(Duration::from_millis(500));
    let while_stopped = s.transcript("helper");
    signal(d.pid(), "CONT");
    for err in &errors {
        assert!(
            err.contains("the text may or may not have been typed into helper")
                && err.contains("did not answer within 0.5 s"),
            "{err}"
        );
    }
    assert!(
        text(&status.stdout).contains("daemon: running, not answering"),
        "{}",
        text(&status.stdout)
    );
    assert!(
        text(&verify.stdout).contains("running, not answering"),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    assert_eq!(
        while_stopped,
        ["before"],
        "text reached the pane while the daemon was stopped: the CLI typed it itself"
    );
    s.ok(&["fleet", "send", "helper", "after"]);
    wait_for("the send after SIGCONT", || {
        s.transcript("helper").contains(&"after".to_owned())
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = s.transcript("helper");
    for i in 0..3 {
        let n = got.iter().filter(|t| **t == format!("stopped-{i}")).count();
        assert!(n <= 1, "stopped-{i} typed {n} times: {got:?}");
    }
}

/// One writer per pane also while the daemon cannot be located: it holds its lock but its
/// `daemon.json` is missing (as while it starts), so `fleet send` fails and types nothing itself;
/// `fleet status` still says the daemon runs.
#[test]
fn a_send_while_the_daemon_cannot_be_located_is_not_typed_by_the_cli() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, _api) = up(&s);
    let info = s.state().join("daemon.json");
    let hidden = s.state().join("daemon.json.hidden");
    std::fs::rename(&info, &hidden).unwrap();
    let mut c = s.command(&["fleet", "send", "helper", "unlocated"]);
    c.env("MOSAIC_DAEMON_TIMEOUT", "1");
    let send = finish_within(c, 30, "fleet send with daemon.json missing");
    let status = finish_within(s.command(&["fleet", "status"]), 30, "fleet status");
    std::thread::sleep(Duration::from_millis(500));
    let typed = s.transcript("helper");
    std::fs::rename(&hidden, &info).unwrap();
    assert!(!send.status.success(), "{}", text(&send.stdout));
    assert!(
        typed.is_empty(),
        "the CLI typed into the pane itself: {typed:?}"
    );
    assert!(
        !text(&status.stdout).contains("daemon: not running"),
        "{}",
        text(&status.stdout)
    );
}

/// The orchestrator's `mosaic reply` through a stopped daemon fails (it does not hang), keeps
/// nothing in the spool (the daemon holds its lock: keeping would post it twice), and after
/// SIGCONT and a restart of the daemon the reply was posted at most once.
#[test]
fn a_reply_through_a_stopped_daemon_fails_and_is_posted_at_most_once() {
    let s = Sandbox::new();
    s.init("general");
    let (d, _api) = up(&s);
    let token = s.agent_env("mos", "MOSAIC_AGENT_TOKEN");
    signal(d.pid(), "STOP");
    let mut reply = s.command(&["reply", "--room", "local:local", "while stopped"]);
    reply
        .env("MOSAIC_AGENT_TOKEN", &token)
        .env("MOSAIC_DAEMON_TIMEOUT", "0.7");
    let out = finish_within(reply, 30, "mosaic reply through a stopped daemon");
    let spooled: Vec<_> = std::fs::read_dir(s.state().join("spool"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    signal(d.pid(), "CONT");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("did not answer within 0.7 s"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !spooled
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "json")),
        "kept in the spool while the daemon holds its lock: {spooled:?}"
    );
    s.ok(&["reply", "--room", "local:local", "after SIGCONT"]);
    wait_for("the later reply posted", || told(&s, "after SIGCONT") == 1);
    drop(d);
    let (_d, _api) = up(&s);
    s.ok(&["reply", "--room", "local:local", "after the restart"]);
    wait_for("the reply after the restart", || {
        told(&s, "after the restart") == 1
    });
    eprintln!(
        "the reply that timed out was posted {} time(s); its error: {}",
        told(&s, "while stopped"),
        text(&out.stderr).trim()
    );
    assert!(
        told(&s, "while stopped") <= 1,
        "posted twice: {:?}",
        local_room(&s)
    );
}

/// A reply waiting on a stopped daemon that is then killed (it never read the reply): the CLI
/// keeps it in the spool (the lock is gone) and the next daemon posts it, exactly once.
#[test]
fn a_reply_waiting_on_a_daemon_killed_meanwhile_is_kept_and_posted_once() {
    let s = Sandbox::new();
    s.init("general");
    let (mut d, _api) = up(&s);
    signal(d.pid(), "STOP");
    let mut reply = s.command(&["reply", "--room", "local:local", "killed meanwhile"]);
    reply
        .env("MOSAIC_DAEMON_TIMEOUT", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = reply.spawn().unwrap();
    // The request is in the stopped daemon's socket buffer.
    std::thread::sleep(Duration::from_millis(700));
    d.kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "mosaic reply still waits");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (_d, _api) = up(&s);
    if out.status.success() {
        wait_for_secs("the kept reply posted", 20, || {
            told(&s, "killed meanwhile") >= 1
        });
    }
    s.ok(&["reply", "--room", "local:local", "marker"]);
    wait_for("the marker", || told(&s, "marker") == 1);
    assert_eq!(
        told(&s, "killed meanwhile"),
        1,
        "the reply (exit {:?}, stderr {}) was posted this many times: {:?}",
        out.status.code(),
        text(&out.stderr),
        local_room(&s)
    );
}

/// `mosaic chat`'s event stream is not cut by `MOSAIC_DAEMON_TIMEOUT`: connected far longer
/// than it, the chat still shows replies posted later and the orchestrator's answer to a line
/// typed later.
#[test]
fn mosaic_chat_outlives_the_daemon_timeout() {
    let s = Sandbox::new();
    s.init("general");
    let (_d, api) = up(&s);
    let mut chat = s
        .command(&["chat"])
        .env("MOSAIC_DAEMON_TIMEOUT", "0.5")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let stdout = chat.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                lines.lock().unwrap().push(l);
            }
        })
    };
    let shown = |needle: &str| lines.lock().unwrap().iter().any(|l| l.contains(needle));
    api.ok(
        "/v1/reply",
        json!({ "text": "early reply", "room": "local:local" }),
    );
    wait_for("the chat to show a reply at once", || shown("early reply"));
    // Six times the timeout.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        chat.try_wait().unwrap().is_none(),
        "mosaic chat exited: {:?}",
        lines.lock().unwrap()
    );
    api.ok(
        "/v1/reply",
        json!({ "text": "late reply", "room": "local:local" }),
    );
    let mut stdin = chat.stdin.take().unwrap();
    writeln!(stdin, "typed late").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(shown("late reply") && shown("[demo reply #1]")) {
        assert!(
            Instant::now() < deadline,
            "mosaic chat, connected longer than MOSAIC_DAEMON_TIMEOUT, showed only: {:?}; the local room was told: {:?}",
            lines.lock().unwrap(),
            local_room(&s)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let _ = chat.kill();
    let _ = chat.wait();
    let _ = reader.join();
}

// ---------------------------------------------------------------------------------------------
// Claim B: pruning
// ---------------------------------------------------------------------------------------------

/// `bridge.history_days` 0, -1, "x" (and more) are refused by `fleet verify` and by `mosaic up`
/// with the roster's line and the field's name; `up` exits without starting.
#[test]
fn bad_history_days_are_refused_with_line_and_field() {
    let s = Sandbox::new();
    s.init("general");
    let original = read(&s.roster_path());
    let line = original.lines().count() + 2;
    for v in ["0", "-1", "x", "1.5", "4294967296", "null"] {
        std::fs::write(s.roster_path(), &original).unwrap();
        keep_history_days(&s, v);
        let at = format!("roster.yaml:{line}:");
        let verify = finish_within(s.command(&["fleet", "verify"]), 30, "fleet verify");
        let shown = format!("{}{}", text(&verify.stdout), text(&verify.stderr));
        assert!(
            !verify.status.success()
                && shown.contains(&at)
                && shown.contains("bridge.history_days"),
            "history_days: {v}: {shown}"
        );
        let mut upc = s.command(&["up", "--listen", "127.0.0.1:0"]);
        upc.env("TESTCHAT_TOKEN", "tc-secret");
        let up_out = finish_within(upc, 30, &format!("mosaic up with history_days: {v}"));
        let err = text(&up_out.stderr);
        assert!(
            !up_out.status.success() && err.contains(&at) && err.contains("bridge.history_days"),
            "history_days: {v}: {err}"
        );
    }
    assert!(
        s.tmux().list_panes().unwrap_or_default().is_empty(),
        "a refused roster started agents"
    );
}

/// With `history_days: 1`: a chat message queued while the orchestrator was stopped, two days
/// ago by the database (aged while the daemon was down). Returns its queue id. The daemon is
/// down on return.
fn a_message_queued_two_days_ago(s: &Sandbox, id: &str, text: &str) -> i64 {
    s.init("general");
    keep_history_days(s, "1");
    let (d, api) = up(s);
    s.ok(&["fleet", "stop", "mos"]);
    let n = api.chat(id, text);
    assert!(n > 0);
    drop(d);
    let aged = mosaic_bridge::store::now_ms() - 2 * DAY_MS;
    let conn = db(s);
    assert_eq!(
        conn.execute(
            "UPDATE inbox SET created = ?1 WHERE id = ?2 AND status = 'queued'",
            rusqlite::params![aged, n],
        )
        .unwrap(),
        1
    );
    assert_eq!(
        conn.execute(
            "UPDATE seen SET at = ?1 WHERE message_id = ?2",
            rusqlite::params![aged, id],
        )
        .unwrap(),
        1
    );
    n
}

/// A message that arrived long ago but was handled (delivered) just now is recent history: the
/// prune must not forget its id, so a repeat of it is still dropped. (The daemon pruned `seen`
/// by when the id arrived, even while its message was still queued: fixed.)
#[test]
fn a_repeat_of_a_message_delivered_just_now_is_dropped() {
    let s = Sandbox::new();
    a_message_queued_two_days_ago(&s, "waited", "waited two days");
    let (_d, api) = up(&s);
    wait_for_secs("the queued message delivered", 30, || {
        chat_texts(&s) == ["waited two days"]
    });
    wait_for("the start's prune", || prunes_logged(&s) == 2);
    let verdict = chat_verdict(&api, "waited", "waited two days");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        verdict,
        "duplicate",
        "a repeat of a message delivered seconds ago was taken again; the orchestrator got: {:?}",
        chat_texts(&s)
    );
}

/// A message delivered just now (it waited two days in the queue) is not pruned by the next
/// daemon's start: the orchestrator can still answer it with `mosaic reply --to N`.
#[test]
fn a_message_delivered_just_now_survives_the_next_prune() {
    let s = Sandbox::new();
    let n = a_message_queued_two_days_ago(&s, "late", "late message");
    let (d, _api) = up(&s);
    wait_for_secs("the queued message delivered", 30, || {
        chat_texts(&s) == ["late message"]
    });
    // Delivered (or, should this daemon's start prune run late, already gone).
    wait_for_secs("marked delivered in the database", 30, || {
        count(
            &s,
            &format!("SELECT COUNT(*) FROM inbox WHERE id = {n} AND status != 'delivered'"),
        ) == 0
    });
    drop(d);
    let (_d, _api) = up(&s);
    wait_for("the start's prune", || prunes_logged(&s) == 3);
    let kept = count(&s, &format!("SELECT COUNT(*) FROM inbox WHERE id = {n}"));
    let reply = s.run(&[
        "reply",
        "--to",
        &n.to_string(),
        "answer to a fresh delivery",
    ]);
    assert!(
        kept == 1 && reply.status.success(),
        "message #{n}, delivered seconds ago, was pruned (rows left: {kept}); mosaic reply --to {n}: {}",
        text(&reply.stderr)
    );
}

/// Aged history seeded while the daemon is down: 60,000 `seen` ids, 3,000 delivered messages,
/// 2,000 sent replies over 10 rooms, all two days old (`history_days: 1`). Returns the id of
/// each room's newest reply, by room.
fn seed_aged_history(s: &Sandbox) -> Vec<(String, i64)> {
    let aged = mosaic_bridge::store::now_ms() - 2 * DAY_MS;
    let mut conn = db(s);
    let tx = conn.transaction().unwrap();
    {
        let mut seen = tx
            .prepare("INSERT INTO seen (connector, message_id, at) VALUES ('testchat', ?1, ?2)")
            .unwrap();
        for i in 0..60_000 {
            seen.execute(rusqlite::params![format!("aged-{i}"), aged])
                .unwrap();
        }
        let mut inbox = tx
            .prepare(
                "INSERT INTO inbox (connector, message_id, room, user, user_name, text, status, created, delivered)
                 VALUES ('testchat', ?1, 'r', 'u', 'U', 'old', 'delivered', ?2, ?2)",
            )
            .unwrap();
        for i in 0..3_000 {
            inbox
                .execute(rusqlite::params![format!("aged-{i}"), aged])
                .unwrap();
        }
        let mut outbox = tx
            .prepare(
                "INSERT INTO outbox (connector, room, text, status, created)
                 VALUES ('testchat', ?1, 'old reply', 'sent', ?2)",
            )
            .unwrap();
        for i in 0..2_000 {
            outbox
                .execute(rusqlite::params![format!("room-{}", i % 10), aged])
                .unwrap();
        }
    }
    let mut newest = Vec::new();
    {
        let mut st = tx
            .prepare("SELECT room, MAX(id) FROM outbox WHERE connector = 'testchat' GROUP BY room ORDER BY room")
            .unwrap();
        for row in st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .unwrap()
        {
            newest.push(row.unwrap());
        }
    }
    tx.commit().unwrap();
    newest
}

/// What must hold of the aged seed once a prune ran: every aged id and message gone, each room's
/// newest reply (`newest`), only, left.
fn assert_aged_history_pruned(s: &Sandbox, newest: &[(String, i64)]) {
    assert_eq!(
        count(
            s,
            "SELECT COUNT(*) FROM seen WHERE message_id LIKE 'aged-%'"
        ),
        0
    );
    assert_eq!(
        count(
            s,
            "SELECT COUNT(*) FROM inbox WHERE message_id LIKE 'aged-%'"
        ),
        0
    );
    let conn = db(s);
    let mut st = conn
        .prepare("SELECT room, id FROM outbox WHERE connector = 'testchat' ORDER BY room, id")
        .unwrap();
    let left: Vec<(String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, newest, "the replies left");
}

/// A burst of chat messages posted while the start's prune of a big aged history runs: every
/// message is delivered exactly once, in order (the one queued long ago first); the aged rows
/// are gone, each room's newest reply stays, and a repeat of a burst message is still dropped.
#[test]
fn a_chat_burst_during_the_prune_is_delivered_once_in_order() {
    let s = Sandbox::new();
    a_message_queued_two_days_ago(&s, "old-queued", "old queued");
    let newest = seed_aged_history(&s);
    let info = s.state().join("daemon.json");
    let _ = std::fs::remove_file(&info);
    let burst: Vec<String> = (0..40).map(|i| format!("burst {i}")).collect();
    std::thread::scope(|scope| {
        let started = scope.spawn(|| up(&s));
        // The API is up before the fleet starts, and the prune starts with the daemon: post
        // while it runs.
        wait_for_secs("the API", DAEMON_START_SECS, || {
            read_opt(&info).contains("\"url\"")
        });
        let v: Value = serde_json::from_str(&read(&info)).unwrap();
        let api = Api {
            url: v["url"].as_str().unwrap().to_owned(),
            auth: format!("Bearer {}", read(&s.state().join("api.token")).trim()),
        };
        for (i, t) in burst.iter().enumerate() {
            assert_eq!(chat_verdict(&api, &format!("burst-{i}"), t), "queued");
        }
        let (d, api) = started.join().unwrap();
        let mut want = vec!["old queued".to_owned()];
        want.extend(burst.iter().cloned());
        wait_for_secs("every message delivered", 60, || {
            chat_texts(&s).len() >= want.len()
        });
        wait_for("the start's prune", || prunes_logged(&s) == 2);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(chat_texts(&s), want);
        assert_eq!(chat_verdict(&api, "burst-0", "burst 0"), "duplicate");
        assert_aged_history_pruned(&s, &newest);
        drop(d);
    });
    assert_eq!(
        db(&s)
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}

/// `kill -9` of the daemon while it prunes a big aged history (60,000 ids), then a new daemon:
/// the database is intact, and nothing still to do is lost or doubled: the messages queued two
/// days ago are delivered once each, an aged held message stays held, an aged pending reply is
/// posted, an unexpired confirmation stays (an expired one goes); the aged rows all go.
#[test]
fn kill9_during_the_prune_loses_nothing_still_to_do() {
    let s = Sandbox::new();
    a_message_queued_two_days_ago(&s, "todo-1", "todo one");
    let aged = mosaic_bridge::store::now_ms() - 2 * DAY_MS;
    {
        let conn = db(&s);
        conn.execute(
            "INSERT INTO inbox (connector, message_id, room, user, user_name, text, status, created, role, nonce)
             SELECT connector, 'todo-2', room, user, user_name, 'todo two', 'queued', ?1, role, 'a1b2c3d4e5f6'
             FROM inbox WHERE message_id = 'todo-1'",
            [aged],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO inbox (connector, message_id, room, user, user_name, text, status, created, role, nonce)
             SELECT connector, 'held-1', room, user, user_name, 'held one', 'held', ?1, role, 'f6e5d4c3b2a1'
             FROM inbox WHERE message_id = 'todo-1'",
            [aged],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO outbox (connector, room, text, status, created) VALUES ('local', 'local', 'pending two days', 'pending', ?1)",
            [aged],
        )
        .unwrap();
        let now = mosaic_bridge::store::now_ms();
        conn.execute(
            "INSERT INTO confirmation (code, connector, user, command, line, expires) VALUES
             ('expired', 'local', 'local', 'stop', '/fleet stop helper', ?1),
             ('live', 'local', 'local', 'stop', '/fleet stop helper', ?2)",
            rusqlite::params![now - 1000, now + DAY_MS],
        )
        .unwrap();
    }
    let newest = seed_aged_history(&s);
    let seeded = count(&s, "SELECT COUNT(*) FROM seen");
    let mut d = spawn_up(&s, &[]);
    // Killed as soon as the prune has started (or after it, when it was too quick to see).
    let watcher = db(&s);
    let deadline = Instant::now() + Duration::from_secs(DAEMON_START_SECS);
    let mut mid_prune = false;
    while Instant::now() < deadline {
        let left: i64 = watcher
            .query_row("SELECT COUNT(*) FROM seen", [], |r| r.get(0))
            .unwrap();
        if left < seeded {
            mid_prune = left > 0 && prunes_logged(&s) == 1;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    d.kill9();
    drop(watcher);
    eprintln!("killed mid-prune: {mid_prune}");
    assert_eq!(
        db(&s)
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
    let before = prunes_logged(&s);
    let (_d, api) = up(&s);
    wait_for("the start's prune", || prunes_logged(&s) > before);
    wait_for("the pending reply posted", || {
        told(&s, "pending two days") >= 1
    });
    let held: i64 = db(&s)
        .query_row(
            "SELECT id FROM inbox WHERE message_id = 'held-1' AND status = 'held'",
            [],
            |r| r.get(0),
        )
        .expect("the aged held message is still held");
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM confirmation WHERE code = 'live'"),
        1
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM confirmation WHERE code = 'expired'"
        ),
        0
    );
    // The held message keeps its place (nothing behind it goes first) until a person drops it.
    assert!(chat_texts(&s).is_empty(), "{:?}", chat_texts(&s));
    api.ok(&format!("/v1/queue/{held}/drop"), json!({}));
    wait_for_secs("the queued messages delivered", 30, || {
        chat_texts(&s).len() >= 2
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(chat_texts(&s), ["todo one", "todo two"]);
    assert_aged_history_pruned(&s, &newest);
    assert_eq!(
        db(&s)
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}
