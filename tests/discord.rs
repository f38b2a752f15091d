//! "Mos on Discord" end to end: `mosaic up` (the real daemon and serenity) against the fake
//! Discord, the Mos profile, real tmux and the demo agent as Mos.

mod support;
use mosaic_discord::fake::{BOT_ID, FakeDiscord};
use std::process::{Child, Stdio};
use std::time::Duration;
use support::*;

const GUILD: u64 = 1112631390438166618;
const CHANNEL: u64 = 1517622518662434996;
const ADMIN: u64 = 1_200_000_000_000_000_001;
const VIEWER: u64 = 1_200_000_000_000_000_002;
const STRANGER: u64 = 1_200_000_000_000_000_003;
const TOKEN: &str = "MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.fake-token-for-tests-only_0123456789";

struct Mos {
    s: Sandbox,
    fake: FakeDiscord,
    daemon: Child,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Mos {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn mos() -> Mos {
    let m = mos_with(|_| {});
    wait_for("/fleet registered for the guild", || {
        m.fake
            .calls()
            .iter()
            .any(|c| c.method == "PUT" && c.path.ends_with(&format!("/guilds/{GUILD}/commands")))
    });
    m
}

/// `mosaic up` for the sandbox, talking to the fake Discord.
fn start_daemon(s: &Sandbox, fake: &FakeDiscord) -> Child {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    s.command(&["up", "--listen", "127.0.0.1:0"])
        .env("DISCORD_TOKEN", TOKEN)
        .env("MOSAIC_DISCORD_API_BASE", &fake.base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The Mos profile and `mosaic up` against a fake Discord prepared by `prepare`.
fn mos_with(prepare: impl FnOnce(&FakeDiscord)) -> Mos {
    let s = Sandbox::new();
    let out = s.ok(&s.init_args(&["--profile", "mos-discord", "--admin", &ADMIN.to_string()]));
    assert!(
        out.contains("type: discord") && out.contains("1517622518662434996"),
        "{out}"
    );
    let mut roster = read(&s.roster_path());
    roster = roster.replace(
        "acl:\n",
        &format!("acl:\n- connector: discord\n  user: '{VIEWER}'\n  role: viewer\n"),
    );
    std::fs::write(s.roster_path(), roster).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeDiscord::start());
    prepare(&fake);
    let verify = s
        .command(&["fleet", "verify"])
        .env("DISCORD_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        text(&verify.stdout).contains("ok    connector 0 (discord) token"),
        "{}",
        text(&verify.stdout)
    );
    let bad = s
        .command(&["fleet", "verify"])
        .env("DISCORD_TOKEN", "not-a-token")
        .output()
        .unwrap();
    assert!(
        text(&bad.stdout).contains("does not hold a Discord bot token"),
        "{}",
        text(&bad.stdout)
    );
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

#[test]
fn mos_answers_in_the_channel() {
    let m = mos();
    // A message from the admin reaches Mos's pane once and is acknowledged with a reaction.
    let id = m.fake.message(
        GUILD,
        CHANNEL,
        ADMIN,
        "owner",
        false,
        "hello Mos, status of the build?",
    );
    wait_for("the message in Mos's pane", || {
        !m.s.transcript("mos").is_empty()
    });
    assert_eq!(
        nonce_masked(m.s.transcript("mos")),
        [
            "[chat #1:NONCE from owner (admin) on discord/1517622518662434996] hello Mos, status of the build?"
        ]
    );
    wait_for("the reaction", || {
        m.fake.calls().iter().any(|c| {
            c.method == "PUT"
                && c.path.starts_with(&format!(
                    "/api/v10/channels/{CHANNEL}/messages/{id}/reactions/"
                ))
        })
    });
    wait_for("typing while Mos works", || {
        m.fake
            .calls()
            .iter()
            .any(|c| c.path == format!("/api/v10/channels/{CHANNEL}/typing"))
    });
    // Mos (the demo agent) answers with `mosaic reply`: it arrives in the channel.
    wait_for("Mos's answer", || {
        m.fake
            .posted(CHANNEL)
            .iter()
            .any(|t| t.starts_with("[demo reply #1]"))
    });

    // A 5,000-character reply arrives as three messages, in order.
    let long: String = (0..100)
        .map(|i| format!("{i:04} {}\n", "y".repeat(44)))
        .collect();
    let out = m.s.run_with_stdin(&["reply", "-"], long.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("three parts", || {
        m.fake
            .posted(CHANNEL)
            .iter()
            .filter(|t| t.starts_with('0'))
            .count()
            >= 3
    });
    let parts: Vec<String> = m
        .fake
        .posted(CHANNEL)
        .into_iter()
        .filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p.chars().count() <= 2000));
    assert_eq!(parts.join("\n"), long.trim_end());

    // `/fleet status` as a slash command: deferred at once, then a follow-up with the table.
    let interaction = m
        .fake
        .slash(GUILD, CHANNEL, VIEWER, "watcher", "status", &[]);
    wait_for("the follow-up", || !m.fake.followups().is_empty());
    let callback = m
        .fake
        .calls()
        .into_iter()
        .find(|c| {
            c.path
                .starts_with(&format!("/api/v10/interactions/{interaction}/"))
        })
        .unwrap();
    assert_eq!(callback.body["type"], 5, "deferred");
    let (token, table) = m.fake.followups().remove(0);
    assert_eq!(token, format!("itoken-{interaction}"));
    assert!(
        table.contains("mos") && table.contains("orchestrator") && table.contains("running"),
        "{table}"
    );

    // `!fleet` in a plain message works too, and a viewer cannot add agents.
    m.fake.message(
        GUILD,
        CHANNEL,
        VIEWER,
        "watcher",
        false,
        "!fleet add intruder --runtime demo",
    );
    wait_for("the refusal", || {
        m.fake
            .posted(CHANNEL)
            .iter()
            .any(|t| t.contains("refused: `add` needs role admin"))
    });

    // Strangers, other channels, other guilds and bots get nothing.
    let before = (m.s.transcript("mos").len(), m.fake.posted(CHANNEL).len());
    m.fake
        .message(GUILD, CHANNEL, STRANGER, "stranger", false, "let me in");
    m.fake
        .message(GUILD, 42, ADMIN, "owner", false, "wrong channel");
    m.fake
        .message(7, CHANNEL, ADMIN, "owner", false, "wrong guild");
    m.fake.message(GUILD, CHANNEL, 99, "somebot", true, "beep");
    m.fake
        .message(GUILD, CHANNEL, BOT_ID, "mos", true, "my own words");
    let audit = || read(&m.s.state().join("audit.jsonl"));
    wait_for("the audit", || {
        m.s.state().join("audit.jsonl").exists() && audit().contains(&STRANGER.to_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        (m.s.transcript("mos").len(), m.fake.posted(CHANNEL).len()),
        before
    );
    // A stranger's slash command is answered with a refusal (Discord would show "thinking…" forever).
    m.fake
        .slash(GUILD, CHANNEL, STRANGER, "stranger", "status", &[]);
    wait_for("the refusal follow-up", || {
        m.fake
            .followups()
            .iter()
            .any(|(_, t)| t.contains("not allowed to command this fleet"))
    });
    let audit = audit();
    assert!(
        audit.contains(&format!("\"user\":\"{STRANGER}\""))
            && audit.contains("refused: user not in the acl"),
        "{audit}"
    );
    // `/fleet` in a channel of the guild that is not bridged is answered too, not left
    // "thinking" for 15 minutes.
    m.fake.slash(GUILD, 555, ADMIN, "admin", "status", &[]);
    wait_for("the not-bridged follow-up", || {
        m.fake
            .followups()
            .iter()
            .any(|(_, t)| t.contains("not bridged to the fleet"))
    });
    assert!(
        audit.contains("\"room\":\"42\"") && audit.contains("ignored: room not bridged"),
        "{audit}"
    );
}

#[test]
fn outages_lose_nothing_and_double_nothing() {
    let m = mos();
    // REST 429: the reply is retried after the delay and posted once.
    m.fake.fail_next_posts(1, 429, 0.25);
    m.s.ok(&[
        "reply",
        "--room",
        &format!("discord:{CHANNEL}"),
        "after a rate limit",
    ]);
    wait_for_secs("the retried reply", 20, || {
        m.fake
            .posted(CHANNEL)
            .contains(&"after a rate limit".to_owned())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        m.fake
            .posted(CHANNEL)
            .iter()
            .filter(|t| *t == "after a rate limit")
            .count(),
        1
    );

    // The gateway drops; a message sent meanwhile arrives once after the resume.
    m.fake
        .message(GUILD, CHANNEL, ADMIN, "owner", false, "before the drop");
    wait_for("the first message", || m.s.transcript("mos").len() == 1);
    m.fake.drop_gateway();
    m.fake
        .message(GUILD, CHANNEL, ADMIN, "owner", false, "during the drop");
    wait_for_secs("the resumed message", 20, || {
        m.s.transcript("mos").len() == 2
    });
    m.fake
        .message(GUILD, CHANNEL, ADMIN, "owner", false, "after the drop");
    wait_for("the last message", || m.s.transcript("mos").len() == 3);
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<String> =
        m.s.transcript("mos")
            .iter()
            .map(|t| t.rsplit("] ").next().unwrap().to_owned())
            .collect();
    assert_eq!(
        got,
        ["before the drop", "during the drop", "after the drop"]
    );
    assert_eq!(m.fake.sessions(), (1, 1), "resumed, not re-identified");
}

#[test]
fn verify_names_the_intent_the_gateway_refused() {
    let m = mos_with(|fake| fake.require_intents(1 << 20));
    wait_for("the connector to give up", || {
        let out =
            m.s.command(&["fleet", "verify"])
                .env("DISCORD_TOKEN", TOKEN)
                .output()
                .unwrap();
        text(&out.stdout).contains("FAIL  connector discord: down")
    });
    let out =
        m.s.command(&["fleet", "verify"])
            .env("DISCORD_TOKEN", TOKEN)
            .output()
            .unwrap();
    assert!(!out.status.success());
    let report = text(&out.stdout);
    assert!(
        report.contains("MESSAGE CONTENT privileged intent"),
        "{report}"
    );
    assert!(report.contains("docs/connectors/discord.md"), "{report}");
}

/// Hardening issue, item 18e: a bot token Discord refuses (reset, or another bot's) does not
/// leave the connector "starting" in silence: verify and status say it was refused and what to do.
#[test]
fn a_refused_token_is_reported_by_verify_and_status() {
    let m = mos_with(|fake| {
        fake.only_token("MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.the-token-after-a-reset_0123456789")
    });
    let verify = || {
        m.s.command(&["fleet", "verify"])
            .env("DISCORD_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    wait_for("the connector to give up", || {
        text(&verify().stdout).contains("FAIL  connector discord: down")
    });
    let out = verify();
    assert!(!out.status.success());
    let report = text(&out.stdout);
    assert!(
        report.contains("the bot token is wrong or was reset"),
        "{report}"
    );
    let status = m.s.ok(&["fleet", "status"]);
    assert!(
        status.contains("discord") && status.contains("the bot token is wrong or was reset"),
        "{status}"
    );
}

#[test]
fn messages_sent_while_the_daemon_was_down_are_fetched_once_it_is_back() {
    let mut m = mos();
    m.fake
        .message(GUILD, CHANNEL, ADMIN, "owner", false, "before the crash");
    wait_for("the first message", || m.s.transcript("mos").len() == 1);
    // The daemon dies without a chance to say goodbye; people keep talking meanwhile.
    let _ = m.daemon.kill();
    let _ = m.daemon.wait();
    m.fake
        .message(GUILD, CHANNEL, ADMIN, "owner", false, "while it was down 1");
    m.fake
        .message(GUILD, CHANNEL, ADMIN, "owner", false, "while it was down 2");
    m.daemon = start_daemon(&m.s, &m.fake);
    wait_for_secs("the missed messages", 20, || {
        m.s.transcript("mos").len() == 3
    });
    std::thread::sleep(Duration::from_millis(500));
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
            "while it was down 2"
        ],
        "each once, in order"
    );
    assert_eq!(
        m.fake.sessions().0,
        2,
        "a new session, so the history was fetched"
    );
}

/// The daemon's event stream (`GET /v1/events`), one JSON event per item, read on a thread.
fn event_stream(s: &Sandbox) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let info: serde_json::Value =
        serde_json::from_str(&read(&s.state().join("daemon.json"))).unwrap();
    let url = format!("{}/v1/events", info["url"].as_str().unwrap());
    let token = read(&s.state().join("api.token"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent
        .get(&url)
        .header("Authorization", format!("Bearer {}", token.trim()))
        .call()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(event) = serde_json::from_str(data.trim())
                && tx.send(event).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Waits (10 s at most) for an event of type `kind`.
fn next_event(
    events: &std::sync::mpsc::Receiver<serde_json::Value>,
    kind: &str,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left) {
            Ok(e) if e["type"] == kind => return e,
            Ok(_) => {}
            Err(_) => panic!("timed out waiting for a {kind} event"),
        }
    }
}

/// Runs `/fleet status` as `user`; returns the follow-up text.
fn slash_status(m: &Mos, user: u64) -> String {
    let id = m.fake.slash(GUILD, CHANNEL, user, "someone", "status", &[]);
    let token = format!("itoken-{id}");
    wait_for("the follow-up", || {
        m.fake.followups().iter().any(|(t, _)| *t == token)
    });
    m.fake
        .followups()
        .into_iter()
        .find(|(t, _)| *t == token)
        .unwrap()
        .1
}

#[test]
fn the_running_daemon_follows_hand_edits_of_the_acl() {
    let m = mos();
    assert!(slash_status(&m, STRANGER).contains("not allowed to command this fleet"));
    let events = event_stream(&m.s);

    // The owner lets the stranger watch, by hand, while the daemon runs.
    let entry = format!("acl:\n- connector: discord\n  user: '{STRANGER}'\n  role: viewer\n");
    let good = read(&m.s.roster_path()).replacen("acl:\n", &entry, 1);
    std::fs::write(m.s.roster_path(), &good).unwrap();
    let changed = next_event(&events, "roster_changed");
    assert_eq!(
        changed["agents"],
        serde_json::json!(["mos", "coder", "reviewer"])
    );
    let table = slash_status(&m, STRANGER);
    assert!(table.contains("orchestrator"), "{table}");

    // An invalid edit (that would also drop the stranger) is reported where it is wrong, and the
    // last good roster stays in use.
    let broken = good
        .replacen(&entry, "acl:\n", 1)
        .replace("- name: mos\n", "- name: Mos\n");
    let line = broken.lines().position(|l| l == "- name: Mos").unwrap() + 1;
    std::fs::write(m.s.roster_path(), &broken).unwrap();
    let invalid = next_event(&events, "roster_invalid");
    let at = format!("{}:{line}:", m.s.roster_path().display());
    assert!(
        invalid["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with(&at)),
        "{invalid} should point at {at}"
    );
    let answer = slash_status(&m, STRANGER);
    assert!(!answer.contains("not allowed"), "{answer}");
}
