//! Mosaic on Telegram end to end: `mosaic up` (the real daemon and teloxide) against the fake
//! Bot API, real tmux and the demo agent as the orchestrator.

mod support;
use mosaic_telegram::fake::{BOT_USERNAME, Failure, FakeTelegram};
use mosaic_telegram::{TEXT_ONLY, TelegramConfig, TelegramConnector};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const TOKEN: &str = "7012345678:AAHfake-token-for-tests-only_0123456789";
const GROUP: i64 = -1_001_847_508_954;
const PRIVATE: i64 = 111_000_001;
const ADMIN: i64 = 111_000_001;
const VIEWER: i64 = 111_000_002;
const STRANGER: i64 = 111_000_003;
const NOT_BRIDGED: i64 = -1_002_222_222_222;

struct Mos {
    s: Sandbox,
    fake: FakeTelegram,
    daemon: Child,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Mos {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// `mosaic up` for the sandbox, talking to the fake Telegram.
fn start_daemon(s: &Sandbox, fake: &FakeTelegram) -> Child {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    s.command(&["up", "--listen", "127.0.0.1:0"])
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("MOSAIC_TELEGRAM_API_BASE", &fake.base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The general fleet (mos and two helpers) bridged to a private chat and a forum group, with the fake prepared by
/// `prepare` before the daemon starts.
fn mos_with(prepare: impl FnOnce(&FakeTelegram, &tokio::runtime::Runtime)) -> Mos {
    let s = Sandbox::new();
    let out = s.ok(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "telegram",
        "--target",
        &PRIVATE.to_string(),
        "--target",
        &GROUP.to_string(),
        "--admin",
        &ADMIN.to_string(),
    ]));
    assert!(
        out.contains("type: telegram") && out.contains(&GROUP.to_string()),
        "{out}"
    );
    let mut roster = read(&s.roster_path());
    roster = roster.replace(
        "acl:\n",
        &format!("acl:\n- connector: telegram\n  user: '{VIEWER}'\n  role: viewer\n"),
    );
    std::fs::write(s.roster_path(), roster).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeTelegram::start(TOKEN));
    fake.chat(PRIVATE, "private", false);
    fake.chat(GROUP, "supergroup", true);
    fake.chat(NOT_BRIDGED, "supergroup", false);
    let verify = s
        .command(&["fleet", "verify"])
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        text(&verify.stdout).contains("ok    connector 0 (telegram) token"),
        "{}",
        text(&verify.stdout)
    );
    let bad = s
        .command(&["fleet", "verify"])
        .env("TELEGRAM_BOT_TOKEN", "not-a-token")
        .output()
        .unwrap();
    assert!(
        text(&bad.stdout).contains("does not hold a Telegram bot token"),
        "{}",
        text(&bad.stdout)
    );
    prepare(&fake, &rt);
    let daemon = start_daemon(&s, &fake);
    let m = Mos {
        s,
        fake,
        daemon,
        _rt: rt,
    };
    wait_for_secs("the daemon", DAEMON_START_SECS, || {
        read_opt(&m.s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    m
}

fn mos() -> Mos {
    let m = mos_with(|_, _| {});
    wait_for("the first poll", || {
        m.fake
            .calls()
            .iter()
            .any(|c| c.method.eq_ignore_ascii_case("getUpdates"))
    });
    m
}

/// What the orchestrator's pane received, without the envelopes.
fn said(m: &Mos) -> Vec<String> {
    m.s.transcript("mos")
        .iter()
        .map(|t| t.rsplit("] ").next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_orchestrator_answers_in_the_chat_and_its_topics() {
    let m = mos();
    // A message from the admin reaches the orchestrator's pane once and is acknowledged.
    let id = m
        .fake
        .message(GROUP, ADMIN, "owner", "hello, status of the build?");
    wait_for("the message in the pane", || {
        !m.s.transcript("mos").is_empty()
    });
    assert_eq!(
        nonce_masked(m.s.transcript("mos")),
        [format!(
            "[chat #1:NONCE from @owner (admin) on telegram/{GROUP}] hello, status of the build?"
        )]
    );
    wait_for("the reaction", || {
        m.fake.reactions().contains(&(GROUP, id, "👀".into()))
    });
    wait_for("typing while the orchestrator works", || {
        m.fake.actions().contains(&(GROUP, "typing".into()))
    });
    // The demo orchestrator answers with `mosaic reply`: in the chat, replying to the message.
    wait_for("the answer", || {
        m.fake
            .posted()
            .iter()
            .any(|p| p.shown.starts_with("[demo reply #1]"))
    });
    let answer = m
        .fake
        .posted()
        .into_iter()
        .find(|p| p.shown.starts_with("[demo reply #1]"))
        .unwrap();
    assert_eq!((answer.chat, answer.reply_to), (GROUP, Some(id)));

    // In a forum topic the answer goes into the topic.
    let topic = m.fake.topic(GROUP);
    let id = m
        .fake
        .topic_message(GROUP, topic, ADMIN, "owner", "work in the topic");
    wait_for("the topic's answer", || {
        m.fake
            .posted()
            .iter()
            .any(|p| p.shown.starts_with("[demo reply #2]"))
    });
    let answer = m
        .fake
        .posted()
        .into_iter()
        .find(|p| p.shown.starts_with("[demo reply #2]"))
        .unwrap();
    assert_eq!(
        (answer.thread, answer.reply_to),
        (Some(topic), Some(id)),
        "{answer:?}"
    );
    // "typing" showed in the topic too (not in General).
    wait_for("typing in the topic", || {
        m.fake
            .actions_in_threads()
            .contains(&(GROUP, Some(topic), "typing".into()))
    });

    // `/fleet@bot status` from a viewer: the table, rendered for MarkdownV2 and accepted as such.
    m.fake.message(
        GROUP,
        VIEWER,
        "watcher",
        &format!("/fleet@{BOT_USERNAME} status"),
    );
    wait_for("the status table", || {
        m.fake.posted().iter().any(|p| {
            p.shown.contains("mos")
                && p.shown.contains("orchestrator")
                && p.shown.contains("running")
        })
    });
    let sends = m
        .fake
        .calls()
        .iter()
        .filter(|c| c.method.eq_ignore_ascii_case("sendMessage"))
        .count();
    assert_eq!(
        sends,
        m.fake.posted().len(),
        "every reply was accepted at the first try (no MarkdownV2 refused)"
    );
    // A viewer cannot add agents; a command for another bot is not ours.
    m.fake.message(
        GROUP,
        VIEWER,
        "watcher",
        "/fleet add intruder --runtime demo",
    );
    m.fake
        .message(GROUP, ADMIN, "owner", "/fleet@other_bot stop");
    wait_for("the refusal", || {
        m.fake.posted().iter().any(|p| {
            p.shown.contains("refused: add needs role admin")
                || p.shown.contains("refused: `add` needs role admin")
        })
    });

    // Strangers, chats that are not bridged and files reach nobody; files are answered.
    let before = said(&m).len();
    m.fake.message(GROUP, STRANGER, "stranger", "let me in");
    m.fake.message(NOT_BRIDGED, ADMIN, "owner", "wrong chat");
    let photo = m.fake.photo(PRIVATE, ADMIN, "owner", "a screenshot");
    let audit = || read_opt(&m.s.state().join("audit.jsonl"));
    wait_for("the audit", || audit().contains(&STRANGER.to_string()));
    wait_for("the text-only note", || {
        m.fake
            .posted()
            .iter()
            .any(|p| p.chat == PRIVATE && p.text == TEXT_ONLY && p.reply_to == Some(photo))
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(said(&m).len(), before);
    assert!(m.fake.posted().iter().all(|p| p.chat != NOT_BRIDGED));
    assert!(
        audit().contains(&format!("\"user\":\"{STRANGER}\""))
            && audit().contains("refused: user not in the acl"),
        "{}",
        audit()
    );
}

#[test]
fn a_crash_loses_nothing_and_doubles_nothing() {
    let mut m = mos();
    m.fake.message(GROUP, ADMIN, "owner", "before the crash");
    wait_for("the first message", || said(&m).len() == 1);
    // Flood control on the reply: retried after Telegram's wait, posted once.
    m.fake.fail_next("sendMessage", 1, Failure::RetryAfter(1));
    m.s.ok(&[
        "reply",
        "--room",
        &format!("telegram:{GROUP}"),
        "after flood control",
    ]);
    wait_for_secs("the retried reply", 20, || {
        m.fake
            .posted()
            .iter()
            .any(|p| p.shown == "after flood control")
    });
    // The daemon dies without a goodbye; people keep talking meanwhile.
    let _ = m.daemon.kill();
    let _ = m.daemon.wait();
    m.fake.message(GROUP, ADMIN, "owner", "while it was down 1");
    m.fake
        .message(PRIVATE, ADMIN, "owner", "while it was down 2");
    let calls_before = m.fake.calls().len();
    m.daemon = start_daemon(&m.s, &m.fake);
    wait_for_secs("the missed messages", 30, || said(&m).len() == 3);
    // The restarted daemon resumed from its checkpoint in the state database.
    let first_poll = m.fake.calls()[calls_before..]
        .iter()
        .find(|c| c.method.eq_ignore_ascii_case("getUpdates"))
        .cloned()
        .unwrap();
    assert!(
        first_poll.params["offset"].as_i64().is_some(),
        "{first_poll:?}"
    );
    m.fake.message(GROUP, ADMIN, "owner", "after the restart");
    wait_for("the last message", || said(&m).len() == 4);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        said(&m),
        [
            "before the crash",
            "while it was down 1",
            "while it was down 2",
            "after the restart"
        ],
        "each once, in order"
    );
    assert_eq!(
        m.fake
            .posted()
            .iter()
            .filter(|p| p.shown == "after flood control")
            .count(),
        1
    );
    wait_for("every update confirmed", || m.fake.unconfirmed() == 0);
}

#[test]
fn another_program_polling_the_bot_is_reported_by_status_and_verify() {
    // Another program has polled the bot for a while when mosaic starts.
    let m = mos_with(|fake, rt| {
        let rival = Arc::new(
            TelegramConnector::new(TelegramConfig {
                id: "rival".into(),
                token: TOKEN.into(),
                chats: vec![GROUP],
                users: Vec::new(),
                api_base: Some(fake.base.clone()),
                poll: Duration::from_secs(2),
                conflict_grace: Duration::from_secs(1),
            })
            .unwrap(),
        );
        rt.spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let (ctx, _health, stop) = mosaic_connector::compliance::context(tx, Vec::new());
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let _stop = stop;
            use mosaic_connector::Connector;
            let _ = rival.run(ctx).await;
        });
        std::thread::sleep(Duration::from_millis(1500));
    });
    let verify = || {
        m.s.command(&["fleet", "verify"])
            .env("TELEGRAM_BOT_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    wait_for_secs("the connector to give up", 60, || {
        text(&verify().stdout).contains("FAIL  connector telegram: down")
    });
    let report = text(&verify().stdout);
    assert!(
        report.contains("another program polls this bot"),
        "{report}"
    );
    assert!(!report.contains(TOKEN), "{report}");
    let status = m.s.ok(&["fleet", "status"]);
    assert!(
        status.contains("telegram") && status.contains("another program polls this bot"),
        "{status}"
    );
}

#[test]
fn group_privacy_is_explained_by_verify() {
    let m = mos_with(|fake, _| fake.set_privacy(true));
    let verify = || {
        m.s.command(&["fleet", "verify"])
            .env("TELEGRAM_BOT_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    wait_for_secs("the privacy warning", 30, || {
        text(&verify().stdout).contains("group privacy is on")
    });
    let report = text(&verify().stdout);
    assert!(
        report.contains("/setprivacy") && report.contains(&GROUP.to_string()),
        "{report}"
    );
    // Commands addressed to the bot still work meanwhile.
    m.fake
        .message(GROUP, ADMIN, "owner", &format!("/fleet@{BOT_USERNAME} ps"));
    wait_for("the ps table", || {
        m.fake
            .posted()
            .iter()
            .any(|p| p.shown.contains("orchestrator"))
    });
}
