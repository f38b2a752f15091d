//! ADVERSARIAL tests of `comms: matrix`, written by an independent tester to break it: the real
//! daemon against a private Synapse, real tmux and the demo agents, as in tests/matrix.rs. Each
//! test's comment says what it found on the first implementation (DEFECT: since fixed; HELD:
//! the claim held) and what is expected.
#![recursion_limit = "256"]

mod support;
use mosaic_matrix::synapse::{Person, Synapse};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;
use support::*;

struct Mos {
    s: Sandbox,
    synapse: Synapse,
    bot_password: String,
    daemon: Child,
    rt: tokio::runtime::Runtime,
    ann: Person,
    plain: String,
    /// Extra people of the ACL (name, person), in the plain room.
    others: Vec<Person>,
    log: PathBuf,
}

impl Drop for Mos {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn start_daemon(s: &Sandbox, bot_password: &str, log: &PathBuf) -> Child {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    s.command(&["up", "--listen", "127.0.0.1:0"])
        .env("MATRIX_PASSWORD", bot_password)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap()
}

/// Appends ACL entries (matrix user, role) to the roster file.
fn add_acl(s: &Sandbox, entries: &[(String, &str)]) {
    let text = read(&s.roster_path());
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let acl = doc
        .get_mut("acl")
        .and_then(|a| a.as_sequence_mut())
        .expect("an acl list");
    for (user, role) in entries {
        let mut m = serde_yaml_ng::Mapping::new();
        m.insert("connector".into(), "matrix".into());
        m.insert("user".into(), user.as_str().into());
        m.insert("role".into(), (*role).into());
        acl.push(serde_yaml_ng::Value::Mapping(m));
    }
    std::fs::write(s.roster_path(), serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
}

/// Removes `user`'s ACL entries from the roster file.
fn remove_acl(s: &Sandbox, user: &str) {
    let text = read(&s.roster_path());
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let acl = doc
        .get_mut("acl")
        .and_then(|a| a.as_sequence_mut())
        .expect("an acl list");
    acl.retain(|e| e.get("user").and_then(|u| u.as_str()) != Some(user));
    std::fs::write(s.roster_path(), serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
}

/// Ann (admin) with a plain room, the bot in it, `others` (name, role) in the plain room and the
/// ACL, the general fleet, and `mosaic up`.
fn mos_with(others: &[(&str, &str)]) -> Mos {
    let synapse = Synapse::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (bot_user, bot_password) = synapse.user("mosaic");
    let ann = rt.block_on(Person::login(&synapse, "ann"));
    let people: Vec<Person> = others
        .iter()
        .map(|(n, _)| rt.block_on(Person::login(&synapse, n)))
        .collect();
    let mut invite: Vec<String> = vec![bot_user.clone()];
    invite.extend(people.iter().map(|p| p.user_id()));
    let invite_refs: Vec<&str> = invite.iter().map(String::as_str).collect();
    let plain = rt.block_on(ann.create_room(false, &invite_refs));
    for p in &people {
        wait_for("a person joins the plain room", || {
            rt.block_on(p.join(&plain))
        });
    }
    let s = Sandbox::new();
    s.ok(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "matrix",
        "--homeserver",
        &synapse.url,
        "--bot-user",
        &bot_user,
        "--target",
        &plain,
        "--admin",
        &ann.user_id(),
    ]));
    if !others.is_empty() {
        let entries: Vec<(String, &str)> = people
            .iter()
            .zip(others)
            .map(|(p, (_, role))| (p.user_id(), *role))
            .collect();
        add_acl(&s, &entries);
    }
    let log = s.home().join("daemon.log");
    let daemon = start_daemon(&s, &bot_password, &log);
    let m = Mos {
        s,
        synapse,
        bot_password,
        daemon,
        rt,
        ann,
        plain,
        others: people,
        log,
    };
    m.wait_daemon();
    m
}

impl Mos {
    fn bot(&self) -> String {
        format!("@mosaic:{}", self.synapse.server_name)
    }

    fn wait_daemon(&self) {
        wait_for_secs("the daemon", DAEMON_START_SECS, || {
            read_opt(&self.s.state().join("daemon.json")).contains(r#""fleet":"started""#)
        });
        wait_for_secs("the bot connected", 60, || self.connector_up());
    }

    fn connector_up(&self) -> bool {
        let out = self
            .s
            .command(&["fleet", "verify"])
            .env("MATRIX_PASSWORD", &self.bot_password)
            .output()
            .unwrap();
        text(&out.stdout).contains("ok    connector matrix: connected")
    }

    fn restart_daemon(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        self.daemon = start_daemon(&self.s, &self.bot_password, &self.log);
    }

    fn bodies(&self, who: &Person, room: &str) -> Vec<String> {
        who.seen_from(room, &self.bot())
            .into_iter()
            .map(|s| s.body)
            .collect()
    }

    /// Waits for Ann's invitation to agent `agent`'s room, joins it, returns it.
    fn ann_joins_agent_room(&self, agent: &str) -> String {
        let mut room = None;
        let name = format!("mosaic: {agent}");
        wait_for_secs(&format!("Ann invited to {name}"), 60, || {
            room = self.ann.invited_to(&name);
            room.is_some()
        });
        let room = room.unwrap();
        wait_for("Ann joins", || self.rt.block_on(self.ann.join(&room)));
        room
    }

    fn pane(&self, agent: &str) -> Vec<String> {
        self.s
            .transcript(agent)
            .iter()
            .map(|t| t.to_owned())
            .collect()
    }

    /// The daemon's outbox, one row per line: `id|room|status|attempts|last_error|text` (the
    /// text's newlines shown as ⏎), read with the same SQLite the daemon uses.
    fn outbox(&self) -> String {
        let db = rusqlite::Connection::open(self.s.state().join("bridge.db")).unwrap();
        let mut stmt = db
            .prepare("SELECT id, room, status, attempts, coalesce(last_error, ''), text FROM outbox ORDER BY id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}|{}|{}|{}|{}|{}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?.replace('\n', "⏎")
                ))
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    fn audit(&self) -> String {
        read_opt(&self.s.state().join("audit.jsonl"))
    }
}

/// DEFECT: the agent's room is found by its alias alone. A stranger (not in the ACL) who
/// creates `#mosaic.mosaic.helper:SERVER` first (any user may create any free alias) gets the
/// bot to join their public room and receives everything the fleet says to helper.
/// Expected: the bot uses only a room it made (or checks the room's creator / its own power
/// level, or refuses a room it did not make) — never posts fleet traffic to a stranger's room.
#[test]
fn adv_a_stranger_squatting_the_old_agent_room_alias_gets_no_fleet_traffic() {
    let m = mos_with(&[]);
    let mallory = m.rt.block_on(Person::login(&m.synapse, "mallory"));
    let squat =
        m.rt.block_on(mallory.create_public_room_with_alias("mosaic.mosaic.helper"));
    let out = m.s.ok(&["fleet", "comms", "matrix"]);
    assert!(out.contains("comms switched to matrix"), "{out}");
    m.s.ok(&[
        "fleet",
        "send",
        "helper",
        "the staging db password is hunter2",
    ]);
    wait_for_secs("helper's traffic posted somewhere", 60, || {
        m.ann.invited_to("mosaic: helper").is_some() || !m.bodies(&mallory, &squat).is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let leaked = m.bodies(&mallory, &squat);
    let bot_in_squat = m.rt.block_on(mallory.membership(&squat, &m.bot()));
    assert!(
        leaked.is_empty(),
        "the stranger's room got the fleet's traffic (bot membership {bot_in_squat:?}): {leaked:#?}"
    );
}

/// DEFECT: what `fleet send` types into the pane is posted through the markdown renderer, so
/// the room does not show it literally: the plain body loses `**`, backticks and link syntax,
/// and raw HTML in the text goes into `formatted_body` as live markup (a link that shows one
/// text and points elsewhere). Expected: the room shows exactly what the agent was sent.
#[test]
fn adv_sent_text_is_posted_literally_in_the_agent_room() {
    let m = mos_with(&[]);
    m.s.ok(&["fleet", "comms", "matrix"]);
    let room = m.ann_joins_agent_room("helper");
    wait_for_secs("the switch posted", 60, || {
        m.bodies(&m.ann, &room)
            .iter()
            .any(|b| b.starts_with("comms: matrix from now on"))
    });
    let texts = [
        "run **only** the `rm -rf build/*` step, see [docs](https://good.example)",
        r#"click <a href="https://evil.example/steal">https://good.example/docs</a> <font color="red">URGENT</font>"#,
    ];
    for t in texts {
        m.s.ok(&["fleet", "send", "helper", t]);
    }
    wait_for("both in the pane", || m.pane("helper").len() == 2);
    assert_eq!(m.pane("helper"), texts, "the pane gets the text literally");
    let seen = || {
        m.ann
            .seen_from(&room, &m.bot())
            .into_iter()
            .filter(|s| s.body.starts_with("owner → helper:"))
            .collect::<Vec<_>>()
    };
    wait_for_secs("both posted", 60, || seen().len() == 2);
    let mut problems = Vec::new();
    for (t, s) in texts.iter().zip(seen()) {
        let want = format!("owner → helper:\n\n{t}");
        if s.body != want {
            problems.push(format!("body {:?}, sent {want:?}", s.body));
        }
        if let Some(html) = &s.html
            && (html.contains("<a href=\"https://evil") || html.contains("<font"))
        {
            problems.push(format!("raw html from the text is live markup: {html:?}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// DEFECT: the ACL's users invited to new agent rooms are those of the ACL when the daemon
/// started. A user removed from the ACL while the daemon runs (the daemon follows the ACL live:
/// their commands are refused) is still invited to every agent room made afterwards, and a
/// user added meanwhile is not. Expected: the invitations follow the ACL in use.
#[test]
fn adv_agent_rooms_invite_the_acl_in_use() {
    let m = mos_with(&[("bob", "admin")]);
    let bob = &m.others[0];
    let carol = m.rt.block_on(Person::login(&m.synapse, "carol"));
    // Bob leaves the ACL, Carol joins it, while the daemon runs.
    remove_acl(&m.s, &bob.user_id());
    add_acl(&m.s, &[(carol.user_id(), "viewer")]);
    wait_for_secs("the daemon refuses Bob", 30, || {
        m.rt.block_on(bob.say(&m.plain, "!fleet status"));
        std::thread::sleep(Duration::from_secs(2));
        m.audit().contains("refused: user not in the acl")
    });
    m.s.ok(&["fleet", "comms", "matrix"]);
    m.ann_joins_agent_room("helper");
    std::thread::sleep(Duration::from_secs(4));
    let mut problems = Vec::new();
    if bob.invited_to("mosaic: helper").is_some() {
        problems.push("Bob (removed from the acl) was invited to helper's room");
    }
    if carol.invited_to("mosaic: helper").is_none() {
        problems.push("Carol (added to the acl) was not invited to helper's room");
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// HELD: a hand edit of roster.yaml to `comms: matrix` while the daemon runs switches it; while
/// the homeserver is down sends still reach the pane, the daemon is killed -9 with posts
/// pending and started again (homeserver still down); once it is back every post arrives once,
/// in order, and every message is in the pane once.
#[test]
fn adv_hand_edit_switch_outage_and_kill9_with_posts_pending() {
    let mut m = mos_with(&[]);
    let roster = read(&m.s.roster_path());
    let edited = if roster.contains("comms: tmux") {
        roster.replace("comms: tmux", "comms: matrix")
    } else {
        format!("{roster}comms: matrix\n")
    };
    std::fs::write(m.s.roster_path(), edited).unwrap();
    let room = m.ann_joins_agent_room("helper");
    assert!(m.s.ok(&["fleet", "comms"]).contains("comms is matrix"));
    m.s.ok(&["fleet", "send", "helper", "o0 before the outage"]);
    wait_for_secs("o0 posted", 60, || {
        m.bodies(&m.ann, &room)
            .contains(&"owner → helper:\n\no0 before the outage".to_owned())
    });
    m.synapse.stop();
    let mut sent = vec!["o0 before the outage".to_owned()];
    for t in ["o1 during the outage", "o2 during the outage"] {
        m.s.ok(&["fleet", "send", "helper", t]);
        sent.push(t.into());
    }
    wait_for("o1, o2 in the pane during the outage", || {
        m.pane("helper").len() == 3
    });
    // Killed right after the daemon took helper's answer to o2 (its Stop hook), before the
    // hook's caller heard back: the caller sends it again to the new daemon, which must not post
    // it twice (the hook's call id is kept with the post, in one transaction).
    wait_for("helper's answer to o2 kept for posting", || {
        rusqlite::Connection::open_with_flags(
            m.s.state().join("bridge.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|db| {
            db.query_row(
                "SELECT COUNT(*) FROM outbox WHERE text LIKE 'helper: [demo reply #3]%'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .is_ok_and(|n| n == 1)
    });
    // Killed with the posts pending; started again while the homeserver is still down.
    m.restart_daemon();
    wait_for_secs("the daemon back", DAEMON_START_SECS, || {
        read_opt(&m.s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    m.s.ok(&["fleet", "send", "helper", "o3 after the restart"]);
    sent.push("o3 after the restart".into());
    wait_for("o3 in the pane", || m.pane("helper").len() == 4);
    m.synapse.resume();
    wait_for_secs("the bot back", 90, || m.connector_up());
    let posted = || -> Vec<String> {
        m.bodies(&m.ann, &room)
            .into_iter()
            .filter_map(|b| b.strip_prefix("owner → helper:\n\n").map(str::to_owned))
            .collect()
    };
    wait_for_secs("all four posted", 90, || posted().len() >= 4);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(posted(), sent, "each post once, in order");
    assert_eq!(m.pane("helper"), sent, "each message once in the pane");
    let answers = m
        .bodies(&m.ann, &room)
        .into_iter()
        .filter(|b| b.starts_with("helper: [demo reply"))
        .count();
    assert_eq!(answers, 4, "{:#?}", m.bodies(&m.ann, &room));
    assert!(
        !m.bodies(&m.ann, &room)
            .iter()
            .any(|b| b.contains("not delivered")),
        "{:#?}",
        m.bodies(&m.ann, &room)
    );
}

/// HELD: unknown agent (no room, clear error), stopped agent ("(not delivered …)" after the
/// post), an agent added after the switch (its room made when first used), a worker's death as
/// a `[fleet notice]` in the orchestrator's room, and no secret in any room or the daemon log.
#[test]
fn adv_unknown_stopped_and_late_agents_notices_and_no_secrets() {
    let m = mos_with(&[]);
    m.s.ok(&["fleet", "comms", "matrix"]);
    let helper_room = m.ann_joins_agent_room("helper");
    let mos_room = m.ann_joins_agent_room("mos");
    let scout_room = m.ann_joins_agent_room("scout");

    // Secrets: the bot's password, the agents' tokens, the API token.
    let mut secrets = vec![m.bot_password.clone()];
    for a in ["mos", "helper", "scout"] {
        let t = m.s.agent_env(a, "MOSAIC_AGENT_TOKEN");
        if let Some((_, secret)) = t.split_once(':') {
            secrets.push(secret.to_owned());
        }
    }
    let err = m.s.fails(&["fleet", "send", "nobody", "hello?"]);
    assert!(err.contains("nobody"), "a clear error: {err}");

    m.s.ok(&["fleet", "stop", "helper"]);
    let err = m.s.fails(&["fleet", "send", "helper", "are you there"]);
    wait_for_secs("the post and the failure in helper's room", 60, || {
        let b = m.bodies(&m.ann, &helper_room);
        let i = b
            .iter()
            .position(|x| x == "owner → helper:\n\nare you there");
        let j = b
            .iter()
            .position(|x| x.starts_with("(not delivered to helper:"));
        matches!((i, j), (Some(i), Some(j)) if i < j)
    });
    let b = m.bodies(&m.ann, &helper_room);
    assert_eq!(
        b.iter()
            .filter(|x| x.starts_with("(not delivered to helper:"))
            .count(),
        1,
        "{b:#?} (cli said {err})"
    );

    m.s.ok(&["fleet", "add", "late", "--runtime", "demo"]);
    m.s.ok(&["fleet", "send", "late", "welcome aboard"]);
    let late_room = m.ann_joins_agent_room("late");
    wait_for_secs("late's answer in its room", 60, || {
        m.bodies(&m.ann, &late_room)
            .iter()
            .any(|b| b.starts_with("late: [demo reply"))
    });

    m.s.kill_agent("scout");
    wait_for_secs("the notice in the orchestrator's room", 60, || {
        m.bodies(&m.ann, &mos_room)
            .iter()
            .any(|b| b.starts_with("[fleet notice]") && b.contains("scout"))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        m.ann.invited_to("mosaic: nobody").is_none(),
        "no room for an unknown name"
    );

    let api = read_opt(&m.s.state().join("api.token")).trim().to_owned();
    if !api.is_empty() {
        secrets.push(api);
    }
    let mut all = String::new();
    for r in [&helper_room, &mos_room, &scout_room, &late_room, &m.plain] {
        for b in m.bodies(&m.ann, r) {
            all.push_str(&b);
            all.push('\n');
        }
    }
    let log = read_opt(&m.log);
    for sec in &secrets {
        assert!(!sec.is_empty());
        assert!(!all.contains(sec.as_str()), "a secret in a room");
        assert!(!log.contains(sec.as_str()), "a secret in the daemon's log");
    }
}

/// HELD: a viewer and an operator cannot switch comms from chat (refused, audited, roster
/// unchanged); a viewer may show it.
#[test]
fn adv_viewer_and_operator_cannot_switch_comms_from_chat() {
    let m = mos_with(&[("vic", "viewer"), ("opal", "operator")]);
    let (vic, opal) = (&m.others[0], &m.others[1]);
    let before = read(&m.s.roster_path());
    m.rt.block_on(vic.say(&m.plain, "!fleet comms matrix"));
    m.rt.block_on(opal.say(&m.plain, "/fleet comms matrix"));
    m.rt.block_on(vic.say(&m.plain, "!fleet comms"));
    wait_for_secs("the answers", 60, || {
        let b = m.bodies(&m.ann, &m.plain);
        b.iter().any(|x| x.contains("comms is tmux"))
            && b.iter()
                .filter(|x| x.to_lowercase().contains("admin"))
                .count()
                >= 2
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(read(&m.s.roster_path()), before, "nothing written");
    assert!(m.s.ok(&["fleet", "comms"]).contains("comms is tmux"));
    let audit = m.audit();
    for p in [vic, opal] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&p.user_id()) && l.contains("comms matrix")),
            "{audit}"
        );
    }
    assert!(m.ann.invited_to("mosaic: helper").is_none(), "no room made");
}

/// HELD: `fleet comms matrix` with no matrix connector: a clear error and nothing written,
/// with and without a daemon running.
#[test]
fn adv_comms_matrix_without_a_matrix_connector_is_refused() {
    let s = Sandbox::new();
    s.init("general");
    let before = read(&s.roster_path());
    let err = s.fails(&["fleet", "comms", "matrix"]);
    assert!(err.contains("matrix"), "{err}");
    assert_eq!(read(&s.roster_path()), before);
    let _up = Up(s
        .command(&["up", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    wait_for_secs("the daemon", DAEMON_START_SECS, || {
        read_opt(&s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    let err2 = s.fails(&["fleet", "comms", "matrix"]);
    assert!(err2.contains("needs a connector of type matrix"), "{err2}");
    assert_eq!(read(&s.roster_path()), before);
    assert!(s.ok(&["fleet", "comms"]).contains("comms is tmux"));
}

/// DEFECT: a switch to matrix and back to tmux before the outbox has made the agents' rooms
/// (here: the homeserver is down meanwhile; a slow homeserver does the same): the rooms are made and say "comms: matrix from now on", but the switch
/// back is told only in rooms this run had already used, so nothing in them ever says tmux —
/// they claim to carry the traffic while nothing more is posted. Expected: every room that says
/// "matrix from now on" later says "tmux from now on" when the mode goes back.
#[test]
fn adv_a_quick_switch_back_to_tmux_is_told_in_every_room_told_matrix() {
    let mut m = mos_with(&[]);
    // The homeserver is away, so the rooms cannot be made before the switch back.
    m.synapse.stop();
    m.s.ok(&["fleet", "comms", "matrix"]);
    std::thread::sleep(Duration::from_secs(3)); // the daemon's watcher sees it (1 s poll)
    m.s.ok(&["fleet", "comms", "tmux"]);
    std::thread::sleep(Duration::from_secs(3));
    m.synapse.resume();
    let room = m.ann_joins_agent_room("helper");
    m.s.ok(&["fleet", "send", "helper", "t1 in tmux mode"]);
    wait_for("t1 in the pane", || m.pane("helper").len() == 1);
    wait_for_secs("the switch post", 60, || {
        m.bodies(&m.ann, &room)
            .iter()
            .any(|b| b.starts_with("comms: matrix from now on"))
    });
    std::thread::sleep(Duration::from_secs(5));
    let b = m.bodies(&m.ann, &room);
    let last = b.iter().rev().find(|x| x.starts_with("comms: "));
    assert!(
        last.is_some_and(|l| l.starts_with("comms: tmux")),
        "the room's last word on the mode is {last:?} while the mode is tmux: {b:#?}"
    );
}

/// HELD: a text under the split limit (16,000 characters) whose event is over
/// Matrix's 64 KiB once its HTML form travels with it: 15,000 `&` are 15 KB of body and 75 KB of
/// `&amp;` in `formatted_body`. Expected: it is posted (split smaller, or without HTML), and the
/// posts after it are not held up.
#[test]
fn adv_long_text_of_html_special_chars_is_posted_whole() {
    let m = mos_with(&[]);
    m.s.ok(&["fleet", "comms", "matrix"]);
    let room = m.ann_joins_agent_room("helper");
    let big = "&".repeat(15_000);
    m.s.ok(&["fleet", "send", "helper", &big]);
    m.s.ok(&["fleet", "send", "helper", "after the big one"]);
    wait_for_secs("both in the pane", 60, || m.pane("helper").len() == 2);
    wait_for_secs("the post after the big one", 60, || {
        m.bodies(&m.ann, &room)
            .contains(&"owner → helper:\n\nafter the big one".to_owned())
    });
    std::thread::sleep(Duration::from_secs(2));
    let posted: String = m
        .bodies(&m.ann, &room)
        .into_iter()
        .filter(|b| !b.starts_with("helper:"))
        .collect();
    assert_eq!(
        posted.matches('&').count(),
        15_000,
        "the long text is not (wholly) in the room; outbox:\n{}\nthe daemon's log says: {}",
        m.outbox(),
        read_opt(&m.log)
            .lines()
            .filter(|l| l.contains("giving up") || l.contains("retrying"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// DEFECT: `fleet comms matrix` while no daemon runs (the CLI writes the roster),
/// then `mosaic up`: the switch is never told and no agent room is made until traffic comes.
/// Expected (as a live switch does): every agent's room made, "comms: matrix from now on".
#[test]
fn adv_a_switch_while_the_daemon_is_down_is_told_when_it_starts() {
    let mut m = mos_with(&[]);
    let _ = m.daemon.kill();
    let _ = m.daemon.wait();
    let out = m.s.ok(&["fleet", "comms", "matrix"]);
    assert!(out.contains("matrix"), "{out}");
    m.restart_daemon();
    m.wait_daemon();
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        m.ann.invited_to("mosaic: helper").is_some() && m.ann.invited_to("mosaic: mos").is_some(),
        "no agent room made after a switch made while the daemon was down"
    );
}

/// DEFECT (intermittent, first implementation): under concurrent sends (three CLI threads)
/// the tester saw the outbox stop with most posts pending. Expected: every post is sent, once
/// each, and each sender's messages in the order it sent them (between senders racing, the
/// room's order and the pane's may differ: each message is posted just before it waits for the
/// pane).
#[test]
fn adv_concurrent_sends_are_all_posted_once_in_each_senders_order() {
    let m = mos_with(&[]);
    m.s.ok(&["fleet", "comms", "matrix"]);
    m.ann_joins_agent_room("helper");
    std::thread::scope(|scope| {
        for t in ["a", "b", "c"] {
            let s = &m.s;
            scope.spawn(move || {
                for i in 1..=6 {
                    s.ok(&["fleet", "send", "helper", &format!("{t}{i}")]);
                }
            });
        }
    });
    wait_for_secs("all in the pane", 60, || m.pane("helper").len() == 18);
    let posted = || -> Vec<String> {
        m.outbox()
            .lines()
            .filter(|l| l.contains("|sent|"))
            .filter_map(|l| l.rsplit('|').next())
            .filter_map(|t| {
                t.strip_prefix("owner → helper:⏎```⏎")
                    .and_then(|t| t.strip_suffix("⏎```"))
                    .map(str::to_owned)
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while posted().len() != 18 || m.outbox().contains("|pending|") {
        if std::time::Instant::now() > deadline {
            let log = read_opt(&m.log);
            let ours: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("mosaic_bridge") || l.contains("Sent e"))
                .collect();
            panic!(
                "not every post sent:\n{}\n{}",
                m.outbox(),
                ours[ours.len().saturating_sub(40)..].join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let posted = posted();
    let mut once = posted.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), 18, "each once: {posted:?}");
    for sender in ["a", "b", "c"] {
        let mine: Vec<&String> = posted.iter().filter(|p| p.starts_with(sender)).collect();
        let expected: Vec<String> = (1..=6).map(|i| format!("{sender}{i}")).collect();
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "{sender}'s order"
        );
    }
}
