//! Mos on Slack end to end: `mosaic up` (the real daemon, the Slack connector's Socket Mode
//! client and slack-morphism) against the fake Slack, real tmux and the demo agent as Mos.

mod support;
use mosaic_slack::fake::{APP_TOKEN, BOT_TOKEN, FakeSlack};
use std::process::{Child, Stdio};
use std::time::Duration;
use support::*;

const CHANNEL: &str = "C0123ABCDE";
const OTHER: &str = "C0999ZZZZZ";
const ADMIN: &str = "U0ADMIN001";
const VIEWER: &str = "U0VIEWER01";
const STRANGER: &str = "U0STRANGER";

struct Mos {
    s: Sandbox,
    fake: FakeSlack,
    daemon: Child,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Mos {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// `mosaic up` for the sandbox, talking to the fake Slack.
fn start_daemon(s: &Sandbox, fake: &FakeSlack) -> Child {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    s.command(&["up", "--listen", "127.0.0.1:0"])
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_APP_TOKEN", APP_TOKEN)
        .env("MOSAIC_SLACK_API_BASE", &fake.api_base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A fleet whose orchestrator Mos answers in one Slack channel, and `mosaic up` against a fake
/// Slack.
fn mos() -> Mos {
    let s = Sandbox::new();
    let out = s.ok(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "slack",
        "--target",
        CHANNEL,
        "--admin",
        ADMIN,
    ]));
    assert!(
        out.contains("type: slack") && out.contains(CHANNEL),
        "{out}"
    );
    let roster = read(&s.roster_path());
    assert!(
        roster.contains("env: SLACK_BOT_TOKEN") && roster.contains("env: SLACK_APP_TOKEN"),
        "{roster}"
    );
    let roster = roster.replace(
        "acl:\n",
        &format!("acl:\n- connector: slack\n  user: {VIEWER}\n  role: viewer\n"),
    );
    std::fs::write(s.roster_path(), roster).unwrap();
    let verify = |bot: &str, app: &str| {
        let out = s
            .command(&["fleet", "verify"])
            .env("SLACK_BOT_TOKEN", bot)
            .env("SLACK_APP_TOKEN", app)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let good = verify(BOT_TOKEN, APP_TOKEN);
    assert!(
        good.contains("ok    connector 0 (slack) bot_token")
            && good.contains("ok    connector 0 (slack) app_token"),
        "{good}"
    );
    // The two tokens swapped: each is named, with where to find the right one.
    let swapped = verify(APP_TOKEN, BOT_TOKEN);
    assert!(
        swapped.contains("does not hold a bot token (xoxb-…)")
            && swapped.contains("does not hold an app-level token (xapp-…)")
            && swapped.contains("App-Level Tokens"),
        "{swapped}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeSlack::start());
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
    wait_for("the Socket Mode connection", || {
        m.fake.live_connections() == 1
    });
    m
}

fn audit(m: &Mos) -> String {
    read_opt(&m.s.state().join("audit.jsonl"))
}

#[test]
fn mos_answers_in_a_thread_and_slash_commands_are_answered() {
    let m = mos();
    // A message from the admin reaches Mos's pane once and is acknowledged with 👀.
    let ts = m
        .fake
        .message(CHANNEL, ADMIN, "hello Mos, status of the build?");
    wait_for("the message in Mos's pane", || {
        !m.s.transcript("mos").is_empty()
    });
    assert_eq!(
        nonce_masked(m.s.transcript("mos")),
        [format!(
            "[chat #1:NONCE from {ADMIN} (admin) on slack/{CHANNEL}] hello Mos, status of the build?"
        )]
    );
    wait_for("the reaction", || {
        m.fake.reacted(CHANNEL, &ts).as_deref() == Some("eyes")
    });
    // Mos (the demo agent) answers with `mosaic reply`: in a thread under the message.
    wait_for("Mos's answer", || {
        m.fake
            .posted(CHANNEL)
            .iter()
            .any(|t| t.starts_with("[demo reply #1]"))
    });
    let answer = m
        .fake
        .posts(CHANNEL)
        .into_iter()
        .find(|p| p["text"].as_str().unwrap().starts_with("[demo reply #1]"))
        .unwrap();
    assert_eq!(answer["thread_ts"], ts.as_str(), "{answer}");

    // `/fleet status` as a slash command: answered through its response_url, in the channel.
    let id = m.fake.slash(CHANNEL, VIEWER, "watcher", "status");
    wait_for("the slash answer", || {
        m.fake.responses().iter().any(|(r, _)| *r == id)
    });
    let (_, body) = m
        .fake
        .responses()
        .into_iter()
        .find(|(r, _)| *r == id)
        .unwrap();
    let table = body["text"].as_str().unwrap();
    assert!(
        table.contains("mos") && table.contains("orchestrator") && table.contains("running"),
        "{table}"
    );
    assert_eq!(body["response_type"], "in_channel");

    // A viewer cannot add agents (typed `!fleet` in a message, answered in its thread).
    let add = m
        .fake
        .message(CHANNEL, VIEWER, "!fleet add intruder --runtime demo");
    wait_for("the refusal", || {
        m.fake.posts(CHANNEL).iter().any(|p| {
            p["text"]
                .as_str()
                .unwrap()
                .contains("refused: `add` needs role admin")
                && p["thread_ts"] == add.as_str()
        })
    });

    // Strangers, other channels and bots get nothing; the stranger is audited.
    let before = (m.s.transcript("mos").len(), m.fake.posted(CHANNEL).len());
    m.fake.message(CHANNEL, STRANGER, "let me in");
    m.fake.message(OTHER, ADMIN, "wrong channel");
    m.fake.bot_message(CHANNEL, "beep");
    wait_for("the audit", || {
        audit(&m).contains(STRANGER) && audit(&m).contains(&format!("\"room\":\"{OTHER}\""))
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        (m.s.transcript("mos").len(), m.fake.posted(CHANNEL).len()),
        before
    );
    // A stranger's slash command is answered with a refusal, not left hanging.
    let id = m.fake.slash(CHANNEL, STRANGER, "stranger", "status");
    wait_for("the refusal answer", || {
        m.fake.responses().iter().any(|(r, b)| {
            *r == id
                && b["text"]
                    .as_str()
                    .unwrap()
                    .contains("not allowed to command this fleet")
        })
    });
    // `/fleet` in a channel that is not bridged is answered too.
    let id = m.fake.slash(OTHER, ADMIN, "owner", "status");
    wait_for("the not-bridged answer", || {
        m.fake.responses().iter().any(|(r, b)| {
            *r == id
                && b["text"]
                    .as_str()
                    .unwrap()
                    .contains("not bridged to the fleet")
        })
    });
    let audit = audit(&m);
    assert!(
        audit.contains(&format!("\"user\":\"{STRANGER}\""))
            && audit.contains("refused: user not in the acl")
            && audit.contains("ignored: room not bridged"),
        "{audit}"
    );
    // Every envelope was acked within Slack's 3 seconds.
    for (envelope, took) in m.fake.acks() {
        let took = took.unwrap_or_else(|| panic!("{envelope} not acked"));
        assert!(took < Duration::from_secs(3), "{envelope}: {took:?}");
    }
}

#[test]
fn a_message_sent_while_the_daemon_was_down_is_delivered_once_after_restart() {
    let mut m = mos();
    m.fake.message(CHANNEL, ADMIN, "before the crash");
    wait_for("the first message", || m.s.transcript("mos").len() == 1);
    // The daemon dies without a chance to say goodbye; people keep talking meanwhile, and
    // Slack has no connection to push the events to.
    let _ = m.daemon.kill();
    let _ = m.daemon.wait();
    wait_for("the socket to close", || m.fake.live_connections() == 0);
    m.fake.message(CHANNEL, ADMIN, "while it was down 1");
    m.fake.message(CHANNEL, ADMIN, "while it was down 2");
    m.daemon = start_daemon(&m.s, &m.fake);
    wait_for_secs("the missed messages", 30, || {
        m.s.transcript("mos").len() >= 3
    });
    m.fake.message(CHANNEL, ADMIN, "after the restart");
    wait_for("the live message", || m.s.transcript("mos").len() >= 4);
    std::thread::sleep(Duration::from_millis(800));
    let got: Vec<String> =
        m.s.transcript("mos")
            .iter()
            .map(|t| t.rsplit("] ").next().unwrap().to_owned())
            .collect();
    assert_eq!(
        got,
        [
            "before the crash",
            "while it was down 1",
            "while it was down 2",
            "after the restart"
        ],
        "each once, in order"
    );
    assert_eq!(m.fake.opens(), 2);
    assert!(!m.fake.calls_of("conversations.history").is_empty());
}
