//! Mosaic on Matrix end to end: `mosaic up` (the real daemon and matrix-sdk) against a private
//! Synapse, real tmux and the demo agent as the orchestrator, with matrix-sdk clients as people.
#![recursion_limit = "256"]

mod support;
use mosaic_matrix::synapse::{Person, Synapse};
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
    secret: String,
}

impl Drop for Mos {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn start_daemon(s: &Sandbox, bot_password: &str) -> Child {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    s.command(&["up", "--listen", "127.0.0.1:0"])
        .env("MATRIX_PASSWORD", bot_password)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Ann (the admin) with a plain and an encrypted room, the bot invited to both, the general
/// fleet bridged to them, and `mosaic up`.
fn mos() -> Mos {
    let synapse = Synapse::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (bot_user, bot_password) = synapse.user("mosaic");
    let ann = rt.block_on(Person::login(&synapse, "ann"));
    let plain = rt.block_on(ann.create_room(false, &[&bot_user]));
    let secret = rt.block_on(ann.create_room(true, &[&bot_user]));
    let s = Sandbox::new();
    let out = s.ok(&s.init_args(&[
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
        "--target",
        &secret,
        "--admin",
        &ann.user_id(),
    ]));
    assert!(out.contains("type: matrix"), "{out}");
    assert!(!read(&s.roster_path()).contains(&bot_password));
    let daemon = start_daemon(&s, &bot_password);
    let m = Mos {
        s,
        synapse,
        bot_password,
        daemon,
        rt,
        ann,
        plain,
        secret,
    };
    wait_for_secs("the daemon", DAEMON_START_SECS, || {
        read_opt(&m.s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    wait_for_secs("the bot in both rooms", 60, || m.connector_state() == "up");
    m
}

impl Mos {
    fn bot(&self) -> String {
        format!("@mosaic:{}", self.synapse.server_name)
    }

    /// The connector's state as `fleet status --json` shows it.
    fn connector_state(&self) -> String {
        let out = self
            .s
            .command(&["fleet", "verify"])
            .env("MATRIX_PASSWORD", &self.bot_password)
            .output()
            .unwrap();
        let report = text(&out.stdout);
        if report.contains("ok    connector matrix: connected") {
            "up".into()
        } else {
            report
        }
    }

    fn said(&self) -> Vec<String> {
        self.s
            .transcript("mos")
            .iter()
            .map(|t| t.rsplit("] ").next().unwrap().to_owned())
            .collect()
    }

    fn bot_said(&self, room: &str) -> Vec<mosaic_matrix::synapse::Seen> {
        self.ann.seen_from(room, &self.bot())
    }
}

#[test]
fn the_orchestrator_answers_in_plain_and_encrypted_rooms_and_strangers_get_nothing() {
    let m = mos();
    let id =
        m.rt.block_on(m.ann.say(&m.plain, "hello, status of the build?"));
    wait_for("the message in the pane", || m.said().len() == 1);
    assert_eq!(
        nonce_masked(m.s.transcript("mos")),
        [format!(
            "[chat #1:NONCE from {} (admin) on matrix/{}] hello, status of the build?",
            m.ann.user_id(),
            m.plain
        )]
    );
    wait_for("the 👀 reaction", || {
        m.bot_said(&m.plain)
            .iter()
            .any(|s| s.reacts_to.as_deref() == Some(id.as_str()) && s.body == "👀")
    });
    wait_for("the answer", || {
        m.bot_said(&m.plain).iter().any(|s| {
            s.body.starts_with("[demo reply #1]") && s.reply_to.as_deref() == Some(id.as_str())
        })
    });

    // The encrypted room: the bot decrypts, the orchestrator answers, Ann decrypts the answer.
    wait_for("Ann's client knows the bot's devices", || {
        m.rt.block_on(m.ann.knows_devices_of(&m.bot()))
    });
    let id = m.rt.block_on(m.ann.say(&m.secret, "the secret plan"));
    wait_for("the encrypted message in the pane", || m.said().len() == 2);
    assert_eq!(m.said()[1], "the secret plan");
    wait_for("the encrypted answer", || {
        m.bot_said(&m.secret).iter().any(|s| {
            s.body.starts_with("[demo reply #2]") && s.reply_to.as_deref() == Some(id.as_str())
        })
    });

    // `!fleet status` from the admin: the table, as HTML with a plain body.
    m.rt.block_on(m.ann.say(&m.plain, "!fleet status"));
    wait_for("the status table", || {
        m.bot_said(&m.plain)
            .iter()
            .any(|s| s.body.contains("mos") && s.body.contains("orchestrator") && s.html.is_some())
    });

    // A stranger in the room is refused and audited; their invitation is not accepted.
    let mallory = m.rt.block_on(Person::login(&m.synapse, "mallory"));
    m.rt.block_on(m.ann.invite(&m.plain, &mallory.user_id()));
    wait_for("mallory joins", || m.rt.block_on(mallory.join(&m.plain)));
    let before = m.said().len();
    m.rt.block_on(mallory.say(&m.plain, "let me in"));
    let audit = || read_opt(&m.s.state().join("audit.jsonl"));
    wait_for("the audit", || audit().contains(&mallory.user_id()));
    assert!(
        audit().contains("refused: user not in the acl"),
        "{}",
        audit()
    );
    let mallorys = m.rt.block_on(mallory.create_room(false, &[&m.bot()]));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(m.said().len(), before, "the stranger reached nobody");
    let bot_rooms = m.rt.block_on(mallory.membership(&mallorys, &m.bot()));
    assert_eq!(
        bot_rooms.as_deref(),
        Some("invite"),
        "the invitation stays pending"
    );
}

#[test]
fn a_crash_and_a_homeserver_outage_lose_nothing_and_double_nothing() {
    let mut m = mos();
    m.rt.block_on(m.ann.say(&m.plain, "before the crash"));
    wait_for("the first message", || m.said().len() == 1);
    // The daemon dies without a goodbye; Ann keeps talking meanwhile, in both rooms.
    let _ = m.daemon.kill();
    let _ = m.daemon.wait();
    m.rt.block_on(m.ann.say(&m.plain, "while it was down 1"));
    m.rt.block_on(m.ann.say(&m.secret, "while it was down 2"));
    m.daemon = start_daemon(&m.s, &m.bot_password);
    wait_for_secs("the missed messages", 60, || m.said().len() == 3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        m.said(),
        [
            "before the crash",
            "while it was down 1",
            "while it was down 2"
        ],
        "each once, in order"
    );

    // The homeserver goes away: the outage shows; a reply made meanwhile is posted once after.
    m.synapse.stop();
    wait_for_secs("the outage in verify", 90, || m.connector_state() != "up");
    let report = m.connector_state();
    assert!(report.contains("connector matrix"), "{report}");
    m.s.ok(&[
        "reply",
        "--room",
        &format!("matrix:{}", m.plain),
        "during the outage",
    ]);
    m.synapse.resume();
    wait_for_secs("the connector back up", 90, || m.connector_state() == "up");
    m.rt.block_on(m.ann.say(&m.plain, "after the outage"));
    wait_for_secs("the message after the outage", 60, || m.said().len() == 4);
    wait_for_secs("the kept reply", 60, || {
        m.bot_said(&m.plain)
            .iter()
            .any(|s| s.body == "during the outage")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        m.bot_said(&m.plain)
            .iter()
            .filter(|s| s.body == "during the outage")
            .count(),
        1
    );
    assert_eq!(m.said()[3], "after the outage");
}

/// Comms through Matrix (R16), switched live both ways and with messages in flight: whatever the
/// mode, every message reaches the worker's pane once, in order, and no agent restarts; in
/// matrix mode what the fleet says to the worker (the owner's and the orchestrator's messages)
/// and what it answers is posted in the worker's own encrypted room, which Ann is invited to,
/// and which a restarted daemon finds again rather than making a second.
#[test]
fn comms_switch_live_between_tmux_and_matrix_and_every_message_arrives_once() {
    let mut m = mos();
    let pids = |m: &Mos| (m.s.pid("mos"), m.s.pid("helper"));
    let before = pids(&m);
    let helper_said = |m: &Mos| {
        m.s.transcript("helper")
            .iter()
            .map(|t| t.to_owned())
            .collect::<Vec<_>>()
    };
    let mut sent: Vec<String> = Vec::new();
    fn send(m: &Mos, sent: &mut Vec<String>, text: &str) {
        m.s.ok(&["fleet", "send", "helper", text]);
        sent.push(text.to_owned());
    }

    send(&m, &mut sent, "t1 in tmux mode");
    assert!(m.s.ok(&["fleet", "comms"]).contains("comms is tmux"));
    let out = m.s.ok(&["fleet", "comms", "matrix"]);
    assert!(out.contains("comms switched to matrix"), "{out}");
    assert!(m.s.ok(&["fleet", "status"]).contains("comms matrix"));
    send(&m, &mut sent, "m1 from the owner");

    // Every agent's room is made at the switch, with Ann (the acl's user) invited.
    let mut room = None;
    wait_for_secs("the invitations to the agents' rooms", 60, || {
        room = m.ann.invited_to("mosaic: helper");
        room.is_some() && m.ann.invited_to("mosaic: mos").is_some()
    });
    let room = room.unwrap();
    wait_for("Ann joins helper's room", || {
        m.rt.block_on(m.ann.join(&room))
    });

    // Agent to agent: the orchestrator sends with its own token, as its tools do.
    let orchestrator = m.s.agent_env("mos", "MOSAIC_AGENT_TOKEN");
    let out =
        m.s.command(&["fleet", "send", "helper", "m2 from the orchestrator"])
            .env("MOSAIC_AGENT_TOKEN", &orchestrator)
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    sent.push("m2 from the orchestrator".into());
    let in_room =
        |m: &Mos| -> Vec<String> { m.bot_said(&room).into_iter().map(|s| s.body).collect() };
    wait_for_secs(
        "the orchestrator's message and helper's answer in its room",
        60,
        || {
            let said = in_room(&m);
            said.contains(&"mos → helper:\n\nm2 from the orchestrator".to_owned())
                && said
                    .iter()
                    .any(|b| b.starts_with("helper: [demo reply #3]"))
        },
    );

    // Back to tmux from chat: the admin's command, answered in the room.
    m.rt.block_on(m.ann.say(&m.plain, "!fleet comms tmux"));
    wait_for("the switch answered", || {
        m.bot_said(&m.plain)
            .iter()
            .any(|s| s.body.contains("comms switched to tmux"))
    });
    send(&m, &mut sent, "t2 in tmux mode");
    wait_for("the room told of the switch", || {
        in_room(&m)
            .iter()
            .any(|b| b.starts_with("comms: tmux from now on"))
    });

    // Messages in flight while the mode flips back and forth.
    std::thread::scope(|scope| {
        let s = &m.s;
        scope.spawn(move || {
            for mode in ["matrix", "tmux", "matrix", "tmux", "matrix"] {
                s.ok(&["fleet", "comms", mode]);
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        for i in 1..=12 {
            send(&m, &mut sent, &format!("s{i} while switching"));
        }
    });
    wait_for("every message in helper's pane", || {
        helper_said(&m).len() == sent.len()
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(helper_said(&m), sent, "each once, in order");
    assert_eq!(pids(&m), before, "no agent restarted");

    // What the room shows of it: no message twice, in the order sent, only what was sent.
    std::thread::sleep(Duration::from_secs(3));
    // Each message before its answer.
    let room_now = in_room(&m);
    for (i, body) in room_now.iter().enumerate() {
        if let Some((_, t)) = body.split_once(" → helper:\n\n") {
            let answered_before = room_now[..i]
                .iter()
                .any(|b| b.starts_with("helper: [demo reply") && b.ends_with(&format!(": {t}")));
            assert!(!answered_before, "{t:?} after its answer: {room_now:#?}");
        }
    }
    let posted: Vec<String> = in_room(&m)
        .into_iter()
        .filter_map(|b| b.split_once(" → helper:\n\n").map(|(_, t)| t.to_owned()))
        .collect();
    let mut rest = sent.iter();
    for p in &posted {
        assert!(
            rest.any(|s| s == p),
            "posted once each, in order: {posted:?} (sent {sent:?})"
        );
    }
    assert!(
        !posted.iter().any(|p| p.contains("tmux mode")),
        "{posted:?}"
    );

    // The daemon dies; the next one posts in the same room (no second invitation).
    assert!(m.s.ok(&["fleet", "comms"]).contains("comms is matrix"));
    let _ = m.daemon.kill();
    let _ = m.daemon.wait();
    m.daemon = start_daemon(&m.s, &m.bot_password);
    wait_for_secs("the daemon back", DAEMON_START_SECS, || {
        read_opt(&m.s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    wait_for_secs("the bot back", 60, || m.connector_state() == "up");
    send(&m, &mut sent, "after the restart");
    wait_for_secs("the post after the restart", 60, || {
        in_room(&m).contains(&"owner → helper:\n\nafter the restart".to_owned())
    });
    assert_eq!(
        m.ann.invited_to("mosaic: helper"),
        None,
        "one room per agent"
    );
}

/// A worker's final answer that ends its turn while the daemon is away (its harness's Stop hook
/// runs `mosaic hook`, which never holds its harness up) is kept and posted in its room once
/// the daemon is back; a copy of a hook the daemon had already taken (same call id: its caller
/// never heard back) is not posted again; a hook without an answer is not kept.
#[test]
fn a_workers_answer_while_the_daemon_is_away_is_posted_once_when_it_is_back() {
    let mut m = mos();
    assert!(
        m.s.ok(&["fleet", "comms", "matrix"])
            .contains("comms switched to matrix")
    );
    let mut room = None;
    wait_for_secs("the invitation to helper's room", 60, || {
        room = m.ann.invited_to("mosaic: helper");
        room.is_some()
    });
    let room = room.unwrap();
    wait_for("Ann joins helper's room", || {
        m.rt.block_on(m.ann.join(&room))
    });
    // As the harness runs it: helper's own token, the payload on stdin.
    let hook = |m: &Mos, event: &str, payload: &str| {
        let out =
            m.s.run_as_agent("helper", &["hook", event], payload.as_bytes());
        assert!(out.status.success(), "a hook never fails its harness");
        text(&out.stderr)
    };
    let answers = |m: &Mos| -> Vec<String> {
        m.bot_said(&room)
            .into_iter()
            .map(|s| s.body)
            .filter(|b| b.starts_with("helper: "))
            .collect()
    };
    let taken = r#"{"last_assistant_message": "taken before the crash", "mosaic_hook_call": "c1"}"#;
    assert_eq!(hook(&m, "idle", taken), "");
    wait_for_secs("the answer posted", 60, || {
        answers(&m) == ["helper: taken before the crash"]
    });

    let _ = m.daemon.kill();
    let _ = m.daemon.wait();
    let said = hook(&m, "idle", taken);
    assert!(said.contains("the final answer is kept in"), "{said}");
    let said = hook(
        &m,
        "idle",
        r#"{"last_assistant_message": "said while the daemon was away"}"#,
    );
    assert!(said.contains("the final answer is kept in"), "{said}");
    let said = hook(&m, "busy", "");
    assert!(!said.contains("kept"), "nothing to keep: {said}");
    let spool = m.s.state().join("spool/hooks");
    let kept = || std::fs::read_dir(&spool).map_or(0, |d| d.count());
    assert_eq!(kept(), 2);

    m.daemon = start_daemon(&m.s, &m.bot_password);
    wait_for_secs("the daemon back", DAEMON_START_SECS, || {
        read_opt(&m.s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    wait_for_secs("the kept answer posted", 90, || answers(&m).len() == 2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        answers(&m),
        [
            "helper: taken before the crash",
            "helper: said while the daemon was away"
        ],
        "each once"
    );
    assert_eq!(kept(), 0, "the spool is let go");
}
