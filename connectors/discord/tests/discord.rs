//! The Discord connector against the fake Discord: the shared compliance suite, slash commands,
//! intents, rate limits and a dropped gateway — all through serenity's real code paths.

use async_trait::async_trait;
use mosaic_connector::compliance::{Platform, context, run_suite};
use mosaic_connector::{Connector, ErrorKind, Outbound, ReplyTo};
use mosaic_discord::fake::FakeDiscord;
use mosaic_discord::{DiscordConfig, DiscordConnector};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const GUILD: u64 = 1112631390438166618;
const CHANNEL: u64 = 1517622518662434996;
const USER: u64 = 1_200_000_000_000_000_001;
const TOKEN: &str = "MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.fake-token-for-tests-only_0123456789";

fn connector(fake: &FakeDiscord) -> Arc<DiscordConnector> {
    Arc::new(DiscordConnector::new(DiscordConfig {
        id: "discord".into(),
        token: TOKEN.into(),
        guild: GUILD,
        api_base: Some(fake.base.clone()),
    }))
}

struct FakePlatform {
    fake: FakeDiscord,
    connector: Arc<DiscordConnector>,
}

#[async_trait]
impl Platform for FakePlatform {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }
    fn room(&self) -> String {
        CHANNEL.to_string()
    }
    fn user(&self) -> String {
        USER.to_string()
    }
    async fn post(&self, room: &str, user: &str, text: &str) -> String {
        self.fake
            .message(
                GUILD,
                room.parse().unwrap(),
                user.parse().unwrap(),
                "alice",
                false,
                text,
            )
            .to_string()
    }
    async fn posted(&self, room: &str) -> Vec<String> {
        self.fake.posted(room.parse().unwrap())
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        let prefix = format!("/api/v10/channels/{room}/messages/{message_id}/reactions/");
        self.fake
            .calls()
            .iter()
            .any(|c| c.method == "PUT" && c.path.starts_with(&prefix))
    }
    async fn fail_next_posts(&self, n: usize) {
        self.fake.fail_next_posts(n, 500, 0.0);
    }
}

#[tokio::test]
async fn the_discord_connector_is_compliant() {
    let fake = FakeDiscord::start().await;
    let platform = FakePlatform {
        connector: connector(&fake),
        fake,
    };
    run_suite(&platform).await;
    // The minimal intents: guild messages and message content, nothing more.
    assert_eq!(
        platform.fake.identified_intents(),
        Some((1 << 9) | (1 << 15))
    );
}

async fn next(rx: &mut mpsc::Receiver<mosaic_connector::Inbound>) -> mosaic_connector::Inbound {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event")
        .expect("open")
}

async fn started(
    fake: &FakeDiscord,
) -> (
    Arc<DiscordConnector>,
    mpsc::Receiver<mosaic_connector::Inbound>,
) {
    let c = connector(fake);
    let (tx, rx) = mpsc::channel(64);
    let runner = c.clone();
    let (ctx, health, stop) = context(tx, Vec::new());
    tokio::spawn(async move {
        let _stop = stop; // dropped with the test's runtime: the connector stops
        runner.run(ctx).await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while *health.borrow() != mosaic_connector::Health::Up {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connected: {:?}",
            health.borrow()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (c, rx)
}

#[tokio::test]
async fn fleet_is_registered_for_the_guild_and_interactions_are_deferred_then_followed_up() {
    let fake = FakeDiscord::start().await;
    let (c, mut rx) = started(&fake).await;
    let registration = fake
        .calls()
        .into_iter()
        .find(|c| c.method == "PUT" && c.path.ends_with(&format!("/guilds/{GUILD}/commands")))
        .expect("registered");
    let fleet = &registration.body[0];
    assert_eq!(fleet["name"], "fleet");
    let subs: Vec<&str> = fleet["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        subs.contains(&"status") && subs.contains(&"add") && subs.contains(&"remove"),
        "{subs:?}"
    );
    let add = fleet["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "add")
        .unwrap();
    assert!(
        add["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "runtime" && o["required"] == true)
    );

    let id = fake.slash(
        GUILD,
        CHANNEL,
        USER,
        "alice",
        "add",
        &[
            ("name", "w2".into()),
            ("runtime", "demo".into()),
            ("no-start", true.into()),
        ],
    );
    let ev = next(&mut rx).await;
    assert_eq!(ev.text, "/fleet add w2 --runtime demo --no-start");
    assert_eq!(ev.message_id, format!("i{id}"));
    assert!(
        fake.calls().iter().any(|c| c.path
            == format!("/api/v10/interactions/{id}/itoken-{id}/callback")
            && c.body["type"] == 5),
        "deferred"
    );
    let reply = Outbound {
        room: CHANNEL.to_string(),
        text: "added w2".into(),
        html: None,
        reply_to: Some(ReplyTo::Native(ev.message_id.clone())),
        thread: None,
        key: "k1".into(),
    };
    c.send(&reply).await.unwrap();
    assert_eq!(
        fake.followups(),
        [(format!("itoken-{id}"), "added w2".to_owned())]
    );
    c.ack(&ev.room, &ev.message_id)
        .await
        .expect("acking an interaction is a no-op");
}

#[tokio::test]
async fn bots_itself_and_other_guilds_are_not_forwarded() {
    let fake = FakeDiscord::start().await;
    let (_c, mut rx) = started(&fake).await;
    fake.message(
        GUILD,
        CHANNEL,
        mosaic_discord::fake::BOT_ID,
        "mos",
        true,
        "my own message",
    );
    fake.message(GUILD, CHANNEL, 77, "otherbot", true, "beep");
    fake.message(42, CHANNEL, USER, "alice", false, "from another guild");
    fake.message(GUILD, 555, USER, "alice", false, "another channel");
    // Another channel of the guild reaches the bridge (which ignores and audits it); the rest do not.
    assert_eq!(next(&mut rx).await.text, "another channel");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
}

fn hi_in_the_channel() -> Outbound {
    Outbound {
        room: CHANNEL.to_string(),
        text: "hi".into(),
        html: None,
        reply_to: None,
        thread: None,
        key: "k".into(),
    }
}

#[tokio::test]
async fn a_429_is_a_rate_limit_to_retry_after_a_delay() {
    let fake = FakeDiscord::start().await;
    let c = connector(&fake);
    let out = hi_in_the_channel();
    // Discord's wait, exactly: short, and longer than any default.
    for wait in [0.25, 7.5] {
        fake.fail_next_posts(1, 429, wait);
        let err = c.send(&out).await.unwrap_err();
        let ErrorKind::RateLimited { retry_after } = err.kind else {
            panic!("{err}")
        };
        assert_eq!(retry_after, Duration::from_secs_f64(wait), "{err}");
    }
    assert!(fake.posted(CHANNEL).is_empty());
    c.send(&out).await.unwrap();
    assert_eq!(fake.posted(CHANNEL), ["hi"]);
}

#[tokio::test]
async fn a_server_error_is_retryable() {
    let fake = FakeDiscord::start().await;
    let c = connector(&fake);
    fake.fail_next_posts(1, 502, 0.0);
    let out = hi_in_the_channel();
    assert_eq!(c.send(&out).await.unwrap_err().kind, ErrorKind::Retryable);
}

#[tokio::test]
async fn a_dropped_gateway_resumes_and_loses_nothing() {
    let fake = FakeDiscord::start().await;
    let (_c, mut rx) = started(&fake).await;
    fake.message(GUILD, CHANNEL, USER, "alice", false, "before");
    assert_eq!(next(&mut rx).await.text, "before");
    fake.drop_gateway();
    // Sent while the connection is down: replayed on RESUME.
    fake.message(GUILD, CHANNEL, USER, "alice", false, "during");
    assert_eq!(next(&mut rx).await.text, "during");
    fake.message(GUILD, CHANNEL, USER, "alice", false, "after");
    assert_eq!(next(&mut rx).await.text, "after");
    let (identifies, resumes) = fake.sessions();
    assert_eq!((identifies, resumes), (1, 1), "resumed, not re-identified");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "nothing twice"
    );
}

#[tokio::test]
async fn a_refused_intent_is_named() {
    let fake = FakeDiscord::start().await;
    fake.require_intents(1 << 20); // an intent the connector does not ask for
    let c = connector(&fake);
    let (tx, _rx) = mpsc::channel(4);
    let (ctx, _health, _stop) = context(tx, Vec::new());
    let err = tokio::time::timeout(Duration::from_secs(10), c.run(ctx))
        .await
        .expect("fails fast")
        .unwrap_err();
    assert!(err.to_string().contains("MESSAGE CONTENT"), "{err}");
    assert_eq!(err.kind, ErrorKind::Auth);
}

const STRANGER: u64 = 1_200_000_000_000_000_099;

#[async_trait]
impl mosaic_bridge::compliance::BridgedPlatform for FakePlatform {
    fn register(&self) {
        mosaic_connector::registry::register(&mosaic_discord::TYPE);
    }
    fn roster_entry(&self) -> String {
        format!(
            "{{type: discord, guild: '{GUILD}', channels: ['{CHANNEL}'], token: {{env: DISCORD_TOKEN}}}}"
        )
    }
    fn stranger(&self) -> String {
        STRANGER.to_string()
    }
    async fn refuse_next_post(&self, refusal: mosaic_bridge::compliance::Refusal) {
        use mosaic_bridge::compliance::Refusal;
        match refusal {
            Refusal::RateLimited(d) => self.fake.fail_next_posts(1, 429, d.as_secs_f64()),
            Refusal::Rejected => self.fake.fail_next_posts(1, 400, 0.0),
        }
    }
    async fn post_native(&self, room: &str, user: &str, line: &str) -> Option<String> {
        let sub = line.strip_prefix("/fleet ")?.trim();
        let id = self.fake.slash(
            GUILD,
            room.parse().unwrap(),
            user.parse().unwrap(),
            "alice",
            sub,
            &[],
        );
        Some(format!("i{id}"))
    }
    async fn native_answers(&self, _room: &str) -> Vec<String> {
        self.fake
            .followups()
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discord_connector_is_compliant_under_the_bridge() {
    let fake = FakeDiscord::start().await;
    let platform = FakePlatform {
        connector: connector(&fake),
        fake,
    };
    mosaic_bridge::compliance::run_bridged_suite(&platform).await;
}

#[tokio::test]
async fn a_reply_to_a_deleted_message_is_still_posted() {
    let fake = FakeDiscord::start().await;
    let (c, mut rx) = started(&fake).await;
    let id = fake.message(GUILD, CHANNEL, USER, "alice", false, "question");
    let ev = next(&mut rx).await;
    fake.delete_message(id);
    let reply = Outbound {
        reply_to: Some(ReplyTo::Message(ev.message_id.clone())),
        ..hi_in_the_channel()
    };
    c.send(&reply).await.expect("posted as a plain message");
    assert_eq!(fake.posted(CHANNEL), ["hi"]);
    let call = fake
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.method == "POST")
        .unwrap();
    assert_eq!(call.body["message_reference"]["fail_if_not_exists"], false);
}

#[tokio::test]
async fn after_a_fresh_session_more_than_a_page_of_missed_messages_is_fetched() {
    let fake = FakeDiscord::start().await;
    // Said before the connector connects (the bridge was down): 150, more than one page.
    let first = fake.message(
        GUILD,
        CHANNEL,
        USER,
        "alice",
        false,
        "seen before the restart",
    );
    for i in 0..150 {
        fake.message(GUILD, CHANNEL, USER, "alice", false, &format!("missed {i}"));
    }
    let c = connector(&fake);
    let (tx, mut rx) = mpsc::channel(512);
    let (ctx, _health, _stop) = context(tx, vec![(CHANNEL.to_string(), first.to_string())]);
    let runner = c.clone();
    tokio::spawn(async move { runner.run(ctx).await });
    for i in 0..150 {
        assert_eq!(
            next(&mut rx).await.text,
            format!("missed {i}"),
            "in order, none lost"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "nothing twice"
    );
}
