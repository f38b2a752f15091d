//! The Telegram connector against the fake Bot API: the shared compliance suite, chats and forum
//! topics, `/fleet@bot`, offsets confirmed only up to a kept checkpoint, a second poller, flood
//! control, privacy mode, webhooks and reactions — all through teloxide's real code paths.

use async_trait::async_trait;
use mosaic_connector::compliance::{Platform, context, run_suite};
use mosaic_connector::render::render;
use mosaic_connector::{
    CHECKPOINT_ROOM, Connector, ErrorKind, Health, Inbound, Markdown, Outbound, ReplyTo,
};
use mosaic_telegram::fake::{BOT_USERNAME, Failure, FakeTelegram};
use mosaic_telegram::{TEXT_ONLY, TelegramConfig, TelegramConnector};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const TOKEN: &str = "7012345678:AAHfake-token-for-tests-only_0123456789";
const PRIVATE: i64 = 111_222_333;
const GROUP: i64 = -1_001_847_508_954;
const OTHER_CHAT: i64 = -1_009_999_999_999;
const USER: i64 = 111_222_333;

fn config(fake: &FakeTelegram) -> TelegramConfig {
    TelegramConfig {
        id: "telegram".into(),
        token: TOKEN.into(),
        chats: vec![PRIVATE, GROUP],
        users: vec![USER.to_string()],
        api_base: Some(fake.base.clone()),
        poll: Duration::from_secs(2),
        conflict_grace: Duration::from_secs(3),
    }
}

async fn fake() -> FakeTelegram {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.chat(PRIVATE, "private", false);
    fake.chat(GROUP, "supergroup", true);
    fake.chat(OTHER_CHAT, "supergroup", false);
    fake
}

fn connector(fake: &FakeTelegram) -> Arc<TelegramConnector> {
    Arc::new(TelegramConnector::new(config(fake)).unwrap())
}

struct FakePlatform {
    fake: FakeTelegram,
    connector: Arc<TelegramConnector>,
}

#[async_trait]
impl Platform for FakePlatform {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }
    fn room(&self) -> String {
        GROUP.to_string()
    }
    fn user(&self) -> String {
        USER.to_string()
    }
    async fn post(&self, room: &str, user: &str, text: &str) -> String {
        let chat: i64 = room.parse().unwrap();
        let id = self.fake.message(chat, user.parse().unwrap(), "ann", text);
        format!("{chat}:{id}")
    }
    async fn posted(&self, room: &str) -> Vec<String> {
        let chat: i64 = room.parse().unwrap();
        self.fake
            .posted()
            .into_iter()
            .filter(|p| p.chat == chat)
            .map(|p| p.text)
            .collect()
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        let chat: i64 = room.parse().unwrap();
        let id: i64 = message_id.rsplit(':').next().unwrap().parse().unwrap();
        self.fake
            .reactions()
            .iter()
            .any(|(c, m, e)| *c == chat && *m == id && e == "👀")
    }
    async fn fail_next_posts(&self, n: usize) {
        self.fake.fail_next("sendMessage", n, Failure::Server);
    }
}

#[tokio::test]
async fn the_telegram_connector_is_compliant() {
    let fake = fake().await;
    let platform = FakePlatform {
        connector: connector(&fake),
        fake,
    };
    run_suite(&platform).await;
    // Every batch was confirmed once the bridge side took it.
    let polls: Vec<_> = platform
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "GetUpdates" || c.method == "getUpdates")
        .collect();
    assert!(
        polls
            .iter()
            .all(|c| c.params["allowed_updates"] == serde_json::json!(["message"])),
        "{polls:?}"
    );
}

#[async_trait]
impl mosaic_bridge::compliance::BridgedPlatform for FakePlatform {
    fn register(&self) {
        mosaic_connector::registry::register(&mosaic_telegram::TYPE);
    }
    fn roster_entry(&self) -> String {
        format!("{{type: telegram, chats: ['{GROUP}'], token: {{env: TELEGRAM_BOT_TOKEN}}}}")
    }
    fn stranger(&self) -> String {
        "999000999".into()
    }
    async fn refuse_next_post(&self, refusal: mosaic_bridge::compliance::Refusal) {
        use mosaic_bridge::compliance::Refusal;
        let failure = match refusal {
            // Telegram's waits are whole seconds.
            Refusal::RateLimited(d) => Failure::RetryAfter(d.as_secs_f64().ceil() as u32),
            Refusal::Rejected => Failure::Rejected,
        };
        self.fake.fail_next("sendMessage", 1, failure);
    }
    async fn post_native(&self, _room: &str, _user: &str, _line: &str) -> Option<String> {
        None // `/fleet` is typed text on Telegram
    }
    async fn native_answers(&self, _room: &str) -> Vec<String> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telegram_connector_is_compliant_under_the_bridge() {
    let fake = fake().await;
    let platform = FakePlatform {
        connector: connector(&fake),
        fake,
    };
    mosaic_bridge::compliance::run_bridged_suite(&platform).await;
}

struct Running {
    rx: mpsc::Receiver<Inbound>,
    health: watch::Receiver<Health>,
    _stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<Result<(), mosaic_connector::ConnectorError>>,
}

fn run(c: &Arc<TelegramConnector>, cursors: Vec<(String, String)>) -> Running {
    let (tx, rx) = mpsc::channel(64);
    let (ctx, health, stop) = context(tx, cursors);
    let runner = c.clone();
    let done = tokio::spawn(async move { runner.run(ctx).await });
    Running {
        rx,
        health,
        _stop: stop,
        done,
    }
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn up(r: &Running) {
    let h = r.health.clone();
    until("the connector to be up", || *h.borrow() == Health::Up).await;
}

/// Waits until the connector has polled longer than its conflict grace: another poller is then
/// the newcomer.
async fn established(r: &Running) {
    up(r).await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("open")
}

async fn nothing_more(rx: &mut mpsc::Receiver<Inbound>) {
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await {
        panic!("unexpected event {ev:?}");
    }
}

fn out(room: i64, text: &str) -> Outbound {
    Outbound {
        room: room.to_string(),
        text: text.into(),
        html: None,
        reply_to: None,
        thread: None,
        key: "k".into(),
    }
}

#[tokio::test]
async fn commands_for_this_bot_topics_files_and_strangers_chats() {
    let fake = fake().await;
    let topic = fake.topic(GROUP);
    let c = connector(&fake);
    let mut r = run(&c, Vec::new());
    up(&r).await;
    // `/fleet` is registered in every bridged chat, with the grammar's verbs.
    let registered: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method.eq_ignore_ascii_case("setMyCommands"))
        .collect();
    assert_eq!(registered.len(), 2, "{registered:?}");
    for (call, chat) in registered.iter().zip([PRIVATE, GROUP]) {
        assert_eq!(call.params["commands"][0]["command"], "fleet");
        assert!(
            call.params["commands"][0]["description"]
                .as_str()
                .unwrap()
                .contains("status")
        );
        assert_eq!(call.params["scope"]["type"], "chat");
        assert_eq!(call.params["scope"]["chat_id"], chat);
    }

    // `/fleet@ThisBot` is the command; `/fleet@OtherBot` is not ours.
    fake.message(
        GROUP,
        USER,
        "ann",
        &format!("/fleet@{} status", BOT_USERNAME.to_uppercase()),
    );
    fake.message(GROUP, USER, "ann", "/fleet@other_bot status");
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.text, "/fleet status");
    assert_eq!(ev.room, GROUP.to_string());
    assert_eq!(ev.user, USER.to_string());
    assert_eq!(ev.user_name, "@ann");
    assert_eq!(ev.thread, None);
    assert!(!ev.native_command);

    // A topic is a thread; the answer goes into it, replying to the message.
    let id = fake.topic_message(GROUP, topic, USER, "ann", "build it");
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.message_id, format!("{GROUP}:{id}"));
    assert_eq!(ev.thread, Some(topic.to_string()));
    let answer = Outbound {
        thread: ev.thread.clone(),
        reply_to: Some(ReplyTo::Message(ev.message_id.clone())),
        ..out(GROUP, "on it")
    };
    let sent = c.send(&answer).await.unwrap();
    let posted = fake.posted().pop().unwrap();
    assert_eq!(sent, format!("{GROUP}:{}", posted.message_id));
    assert_eq!(
        (posted.thread, posted.reply_to, posted.shown.as_str()),
        (Some(topic), Some(id), "on it")
    );

    // Files get the text-only note and never reach the bridge; bots and other chats are ignored.
    let photo = fake.photo(PRIVATE, USER, "ann", "see this");
    fake.bot_message(GROUP, 5_000_000, "I am a bot");
    fake.message(OTHER_CHAT, USER, "ann", "not bridged");
    nothing_more(&mut r.rx).await;
    until("the text-only note", || {
        fake.posted()
            .iter()
            .any(|p| p.chat == PRIVATE && p.text == TEXT_ONLY && p.reply_to == Some(photo))
    })
    .await;
    assert!(fake.posted().iter().all(|p| p.chat != OTHER_CHAT));

    // `/start` in the private chat is the help.
    fake.message(PRIVATE, USER, "ann", "/start");
    assert_eq!(next(&mut r.rx).await.text, "/fleet help");

    // Typing shows in the chat, and in a topic when the message came from one.
    c.typing(&GROUP.to_string(), None).await.unwrap();
    assert!(fake.actions().contains(&(GROUP, "typing".into())));
    c.typing(&GROUP.to_string(), Some(&topic.to_string()))
        .await
        .unwrap();
    assert!(
        fake.actions_in_threads()
            .contains(&(GROUP, Some(topic), "typing".into())),
        "{:?}",
        fake.actions_in_threads()
    );
    r.done.abort();
}

#[tokio::test]
async fn replies_rendered_for_markdown_v2_are_accepted_and_read_as_written() {
    let fake = fake().await;
    let c = connector(&fake);
    let tricky = "Done. **Tests** pass (3/3) - see `src/a_b.rs` and [the PR](https://x.y/p?a=1_2).\n\n- item #1 + {x} = y!\n> quoted |pipe| ~tilde~ _under_\n\n```rust\nlet s = \"a`b\\\\c\";\n```";
    let rendered = render(tricky, Markdown::TelegramV2);
    c.send(&out(GROUP, &rendered.text)).await.unwrap();
    let posted = fake.posted().pop().unwrap();
    assert_eq!(
        posted.text, rendered.text,
        "sent as MarkdownV2, not the fallback"
    );
    for piece in [
        "Done.",
        "Tests",
        "(3/3)",
        "src/a_b.rs",
        "the PR",
        "#1 + {x} = y!",
        "let s = \"a`b\\\\c\";",
    ] {
        assert!(
            posted.shown.contains(piece),
            "{piece:?} in {:?}",
            posted.shown
        );
    }
    // A text that is not valid MarkdownV2 is still delivered, as plain text.
    c.send(&out(GROUP, "1. raw text!")).await.unwrap();
    let last = fake.posted().pop().unwrap();
    assert_eq!(last.shown, "1. raw text!");
    // A reply of 4,096 characters that are two UTF-16 units each is sent in parts that fit.
    let emoji = "😀".repeat(4096);
    c.send(&out(GROUP, &emoji)).await.unwrap();
    let parts: Vec<_> = fake.posted().into_iter().skip(2).collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts.iter().map(|p| p.shown.clone()).collect::<String>(),
        emoji
    );
}

#[tokio::test]
async fn updates_are_confirmed_only_after_the_checkpoint_and_a_restart_resumes_from_it() {
    let fake = fake().await;
    let c = connector(&fake);
    let mut r = run(&c, Vec::new());
    up(&r).await;
    fake.message(GROUP, USER, "ann", "one");
    assert_eq!(next(&mut r.rx).await.text, "one");
    // The next poll names the offset after it: Telegram forgets the update.
    until("the update confirmed", || fake.unconfirmed() == 0).await;
    r.done.abort();
    let _ = r.done.await;

    // A new connector resumes from a checkpoint: its first poll names that offset.
    let first_update = {
        let calls = fake.calls();
        calls
            .iter()
            .filter_map(|c| c.params["offset"].as_i64())
            .max()
            .unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let before = fake.calls().len();
    let c2 = connector(&fake);
    let r2 = run(
        &c2,
        vec![(
            CHECKPOINT_ROOM.into(),
            format!("{} {first_update} {now}", fake.bot_id()),
        )],
    );
    up(&r2).await;
    until("a poll", || {
        fake.calls()[before..]
            .iter()
            .any(|c| c.method.eq_ignore_ascii_case("getUpdates"))
    })
    .await;
    let poll = fake.calls()[before..]
        .iter()
        .find(|c| c.method.eq_ignore_ascii_case("getUpdates"))
        .cloned()
        .unwrap();
    assert_eq!(poll.params["offset"], first_update);
    r2.done.abort();
}

#[tokio::test]
async fn a_second_poller_of_the_same_bot_is_refused_and_the_first_keeps_it() {
    let fake = fake().await;
    let first = connector(&fake);
    let mut r1 = run(&first, Vec::new());
    established(&r1).await;
    fake.message(GROUP, USER, "ann", "before");
    assert_eq!(next(&mut r1.rx).await.text, "before");

    let second = connector(&fake);
    let r2 = run(&second, Vec::new());
    let err = tokio::time::timeout(Duration::from_secs(15), r2.done)
        .await
        .expect("the second connector stops")
        .unwrap()
        .expect_err("the second connector is refused");
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(
        err.to_string().contains("another program polls this bot"),
        "{err}"
    );
    assert!(
        matches!(&*r2.health.borrow(), Health::Down(d) if d.contains("another program polls this bot"))
    );
    // The first one still serves.
    fake.message(GROUP, USER, "ann", "after");
    assert_eq!(next(&mut r1.rx).await.text, "after");
    r1.done.abort();
}

#[tokio::test]
async fn a_poller_that_never_gives_up_stops_the_connector_after_the_grace() {
    let fake = fake().await;
    let c = connector(&fake);
    let r = run(&c, Vec::new());
    established(&r).await;
    let rival = {
        let fake = fake.clone();
        tokio::spawn(async move {
            loop {
                fake.rival_poll();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let h = r.health.clone();
    until("the fight shown", || {
        matches!(&*h.borrow(), Health::Degraded(d) if d.contains("another program polls this bot"))
    })
    .await;
    let err = tokio::time::timeout(Duration::from_secs(15), r.done)
        .await
        .expect("the connector gives up")
        .unwrap()
        .expect_err("an error");
    rival.abort();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.to_string().contains("another program polls this bot"));
    assert!(!err.to_string().contains(TOKEN), "the token never shows");
}

#[tokio::test]
async fn a_passing_rival_poll_is_won_back() {
    let fake = fake().await;
    let c = connector(&fake);
    let mut r = run(&c, Vec::new());
    established(&r).await;
    fake.message(GROUP, USER, "ann", "one");
    next(&mut r.rx).await;
    fake.rival_poll();
    fake.message(GROUP, USER, "ann", "two");
    assert_eq!(next(&mut r.rx).await.text, "two");
    up(&r).await;
    r.done.abort();
}

#[tokio::test]
async fn flood_control_waits_are_honoured() {
    let fake = fake().await;
    let c = connector(&fake);
    fake.fail_next("sendMessage", 1, Failure::RetryAfter(7));
    let err = c.send(&out(GROUP, "hi")).await.expect_err("429");
    assert_eq!(
        err.kind,
        ErrorKind::RateLimited {
            retry_after: Duration::from_secs(7)
        }
    );
    assert!(fake.posted().is_empty());
    c.send(&out(GROUP, "hi")).await.unwrap();
    // A 429 on getUpdates: the connector waits and goes on.
    fake.fail_next("getUpdates", 1, Failure::RetryAfter(1));
    let mut r = run(&c, Vec::new());
    fake.message(GROUP, USER, "ann", "after the flood");
    assert_eq!(next(&mut r.rx).await.text, "after the flood");
    r.done.abort();
}

#[tokio::test]
async fn group_privacy_is_explained_unless_the_bot_is_admin() {
    let fake = fake().await;
    fake.set_privacy(true);
    let c = connector(&fake);
    let r = run(&c, Vec::new());
    let h = r.health.clone();
    until("degraded", || matches!(&*h.borrow(), Health::Degraded(_))).await;
    let Health::Degraded(why) = h.borrow().clone() else {
        unreachable!()
    };
    assert!(
        why.contains("group privacy is on")
            && why.contains(&GROUP.to_string())
            && why.contains("/setprivacy"),
        "{why}"
    );
    assert!(
        !why.contains(&PRIVATE.to_string()),
        "private chats see everything: {why}"
    );
    r.done.abort();

    fake.make_admin(GROUP);
    let r = run(&connector(&fake), Vec::new());
    up(&r).await;
    r.done.abort();
}

#[tokio::test]
async fn a_webhook_or_a_refused_token_stops_with_the_reason() {
    let fake = fake().await;
    fake.set_webhook("https://example.org/hook");
    let r = run(&connector(&fake), Vec::new());
    let err = r.done.await.unwrap().expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(
        err.to_string().contains("webhook") && err.to_string().contains("deleteWebhook"),
        "{err}"
    );

    let fake = self::fake().await;
    let mut cfg = config(&fake);
    cfg.token = "7012345678:AAHsome-other-token-that-is-wrong_01234".into();
    let r = run(&Arc::new(TelegramConnector::new(cfg).unwrap()), Vec::new());
    let err = r.done.await.unwrap().expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(!err.to_string().contains("AAHsome-other-token"), "{err}");
}

#[tokio::test]
async fn the_ack_is_a_reaction_or_a_short_reply_where_reactions_are_off() {
    let fake = fake().await;
    let c = connector(&fake);
    let id = fake.message(GROUP, USER, "ann", "hi");
    c.ack(&GROUP.to_string(), &format!("{GROUP}:{id}"))
        .await
        .unwrap();
    assert_eq!(fake.reactions(), vec![(GROUP, id, "👀".to_owned())]);
    fake.disable_reactions(PRIVATE);
    let id = fake.message(PRIVATE, USER, "ann", "hi");
    c.ack(&PRIVATE.to_string(), &format!("{PRIVATE}:{id}"))
        .await
        .unwrap();
    let posted = fake.posted().pop().unwrap();
    assert_eq!((posted.chat, posted.reply_to), (PRIVATE, Some(id)));
}

// ---------------------------------------------------------------------------------------------
// Adversarial tests (branch adv-telegram): each one shows a way the connector, the renderer or the
// fake departs from Telegram's documented behaviour. They fail on df604ce.
// ---------------------------------------------------------------------------------------------

mod adversarial {
    use super::*;
    use mosaic_connector::registry::ConnectorConfig;
    use mosaic_connector::{Cursors, Handoff, HealthReporter, InboundSink, RunContext, Shutdown};
    use mosaic_telegram::TelegramSettings;
    use mosaic_telegram::fake::parse_markdown_v2;

    /// Bot API, Update: "If there are no new updates for at least a week, then identifier of the
    /// next update will be chosen randomly instead of sequentially." A daemon that ran through a
    /// quiet week still polls with the offset of the last batch, higher than the new random id, and
    /// getUpdates with an offset higher than an update's id confirms (drops) it.
    #[tokio::test]
    async fn after_a_quiet_week_the_next_message_is_not_swallowed() {
        let fake = fake().await;
        let c = connector(&fake);
        let mut r = run(&c, Vec::new());
        up(&r).await;
        fake.message(GROUP, USER, "ann", "before the quiet week");
        assert_eq!(next(&mut r.rx).await.text, "before the quiet week");
        until("the update confirmed", || fake.unconfirmed() == 0).await;
        // A week later Telegram numbers the next update at random (here: lower).
        fake.set_next_update_id(12_345);
        fake.message(GROUP, USER, "ann", "after the quiet week");
        let got = tokio::time::timeout(Duration::from_secs(8), r.rx.recv()).await;
        assert!(
            matches!(&got, Ok(Some(ev)) if ev.text == "after the quiet week"),
            "the first message after a quiet week was confirmed away unseen: {got:?} (unconfirmed now: {})",
            fake.unconfirmed()
        );
        r.done.abort();
    }

    /// The checkpoint is kept per connector id, not per bot: after the roster's token is changed to
    /// another bot (same entry id), the old bot's offset is higher than the new bot's update ids
    /// and the first poll confirms (drops) the new bot's pending messages.
    #[tokio::test]
    async fn a_checkpoint_of_another_bot_does_not_swallow_messages() {
        let fake = fake().await; // this bot's update ids are around 700,000,000
        fake.message(GROUP, USER, "ann", "sent while mosaic was down");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // The checkpoint the previous bot (same roster id) left an hour ago.
        let old_bot = vec![(CHECKPOINT_ROOM.into(), format!("912345678 {}", now - 3600))];
        let c = connector(&fake);
        let mut r = run(&c, old_bot);
        let got = tokio::time::timeout(Duration::from_secs(8), r.rx.recv()).await;
        assert!(
            matches!(&got, Ok(Some(ev)) if ev.text == "sent while mosaic was down"),
            "the new bot's pending message was dropped by the old bot's offset: {got:?}"
        );
        r.done.abort();
    }

    fn settings(chats: &[&str]) -> TelegramSettings {
        serde_json::from_value(serde_json::json!({
            "chats": chats,
            "token": {"env": "TELEGRAM_BOT_TOKEN"}
        }))
        .unwrap()
    }

    /// `"+111222333"`, `"0111222333"` and `"-0100123"` parse as i64, so `validate` accepts them,
    /// but the connector reports the room as `111222333` and the bridge compares room strings
    /// (`Acl::room_allowed`): every message of that chat is "ignored: room not bridged".
    #[tokio::test]
    async fn chat_ids_the_bridge_could_never_match_are_refused_by_validate() {
        for id in ["+111222333", "0111222333", "-0100123"] {
            let problems = settings(&[id]).validate();
            assert!(
                !problems.is_empty(),
                "{id:?} passes validation, but the connector names the chat {:?}",
                id.parse::<i64>().unwrap().to_string()
            );
        }
        // The same holds for user ids in the acl (compared as strings too).
        assert!(
            TelegramSettings::check_user_id("+111222333").is_err(),
            "the acl would hold +111222333 while messages come from 111222333"
        );
    }

    /// A run context whose bridge refuses the first `refusals` checkpoints (a message failed to
    /// store, e.g. the disk is full) and keeps the later ones.
    fn refusing_context(
        refusals: usize,
    ) -> (
        RunContext,
        mpsc::Receiver<Inbound>,
        watch::Sender<bool>,
        watch::Receiver<Health>,
    ) {
        let (tx, rx) = mpsc::channel(64);
        let (health, health_rx) = HealthReporter::new();
        let (stop, shutdown) = Shutdown::new();
        let (sink, mut handoffs) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut left = refusals;
            while let Some(handoff) = handoffs.recv().await {
                match handoff {
                    Handoff::Message(m) => {
                        let _ = tx.send(m).await;
                    }
                    Handoff::Checkpoint { committed, .. } => {
                        let keep = left == 0;
                        left = left.saturating_sub(1);
                        let _ = committed.send(keep);
                    }
                }
            }
        });
        let ctx = RunContext {
            inbound: InboundSink::new(sink),
            cursors: Cursors::fixed(Vec::new()),
            health,
            shutdown,
        };
        (ctx, rx, stop, health_rx)
    }

    /// When the bridge cannot store a batch, the connector fetches it again every second; a photo
    /// in that batch is answered with the text-only note on every fetch, so the user gets the same
    /// note again and again (once a second for as long as the store fails).
    #[tokio::test]
    async fn a_file_is_answered_once_even_when_its_batch_is_fetched_again() {
        let fake = fake().await;
        let c = connector(&fake);
        let (ctx, _rx, _stop, _health) = refusing_context(3);
        let runner = c.clone();
        let done = tokio::spawn(async move { runner.run(ctx).await });
        let photo = fake.photo(GROUP, USER, "ann", "");
        until("the batch taken", || fake.unconfirmed() == 0).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let notes = fake
            .posted()
            .iter()
            .filter(|p| p.text == TEXT_ONLY && p.reply_to == Some(photo))
            .count();
        assert_eq!(notes, 1, "the text-only note was sent {notes} times");
        done.abort();
    }

    /// The text-only note is the connector's own answer, sent before the bridge's ACL check: a
    /// stranger's photo must get no answer at all (deny by default), as their text gets none.
    #[tokio::test]
    async fn a_strangers_file_gets_no_note() {
        let fake = fake().await;
        let c = connector(&fake);
        let mut r = run(&c, Vec::new());
        up(&r).await;
        const STRANGER: i64 = 999_000_999;
        let photo = fake.photo(GROUP, STRANGER, "eve", "");
        fake.message(GROUP, USER, "ann", "after the photo");
        assert_eq!(next(&mut r.rx).await.text, "after the photo");
        until("both confirmed", || fake.unconfirmed() == 0).await;
        assert!(
            fake.posted().iter().all(|p| p.reply_to != Some(photo)),
            "a stranger was answered: {:?}",
            fake.posted()
        );
        r.done.abort();
    }

    /// A bare `/help` in a group can be meant for any bot there: only `/help@ThisBot` or a
    /// private chat's `/help` is the fleet's help.
    #[tokio::test]
    async fn a_bare_help_in_a_group_is_not_the_fleets_help() {
        let fake = fake().await;
        let c = connector(&fake);
        let mut r = run(&c, Vec::new());
        up(&r).await;
        fake.message(GROUP, USER, "ann", "/help");
        assert_eq!(next(&mut r.rx).await.text, "/help");
        fake.message(GROUP, USER, "ann", &format!("/help@{BOT_USERNAME}"));
        assert_eq!(next(&mut r.rx).await.text, "/fleet help");
        fake.message(PRIVATE, USER, "ann", "/help");
        assert_eq!(next(&mut r.rx).await.text, "/fleet help");
        r.done.abort();
    }

    /// Update ids are u32 in teloxide and the next offset is `id + 1` as i32: an update numbered
    /// 2147483647 (a valid Bot API integer; ids are random after a quiet week) makes the poll loop
    /// panic in debug builds (debug_assert in `UpdateId::as_offset`) and wrap to a negative offset
    /// in release builds (a negative offset makes Telegram forget all but the last updates).
    #[tokio::test]
    async fn the_highest_update_id_neither_panics_nor_wraps() {
        let fake = fake().await;
        let c = connector(&fake);
        let mut r = run(&c, Vec::new());
        up(&r).await;
        let id = i32::MAX as i64;
        fake.raw_update(
            id,
            serde_json::json!({"update_id": id, "message": {
                "message_id": 77, "date": 1767225600,
                "chat": {"id": GROUP, "type": "supergroup", "title": "ops", "is_forum": true},
                "from": {"id": USER, "is_bot": false, "first_name": "ann", "username": "ann"},
                "text": "top of the range"}}),
        );
        assert_eq!(next(&mut r.rx).await.text, "top of the range");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !r.done.is_finished(),
            "the connector stopped: {:?}",
            r.done.await
        );
        let offsets: Vec<_> = fake
            .calls()
            .iter()
            .filter_map(|c| c.params["offset"].as_i64())
            .collect();
        assert!(
            offsets.iter().all(|o| *o >= 0),
            "negative offset sent: {offsets:?}"
        );
        r.done.abort();
    }

    /// An update teloxide cannot read (a kind or shape it does not know) still moves the offset
    /// on, and the next message arrives. (This one holds.)
    #[tokio::test]
    async fn an_unreadable_update_does_not_block_the_ones_after_it() {
        let fake = fake().await;
        let c = connector(&fake);
        let mut r = run(&c, Vec::new());
        up(&r).await;
        fake.raw_update(
            600_000_000,
            serde_json::json!({"update_id": 600_000_000, "message": {"chat": "not a chat", "text": 5}}),
        );
        fake.message(GROUP, USER, "ann", "after the odd one");
        assert_eq!(next(&mut r.rx).await.text, "after the odd one");
        until("both confirmed", || fake.unconfirmed() == 0).await;
        r.done.abort();
    }

    // ---- Is the fake's MarkdownV2 parser Telegram's? (tdlib td/telegram/MessageEntity.cpp,
    // `parse_markdown_v2`, which the Bot API server runs.) ----

    /// tdlib: a `>` at the start of a line while a blockquote is open is skipped (`type = Size`),
    /// so `>>` is accepted (Telegram has no nested quotes, it flattens them). The fake refuses
    /// it, so nested quotes from the renderer fall back to plain text in tests only.
    #[test]
    fn fake_markdown_v2_accepts_a_doubled_quote_marker_like_telegram() {
        assert_eq!(parse_markdown_v2(">> nested").as_deref(), Ok(" nested"));
    }

    /// tdlib: `\` is not a reserved character; only `\` + a character 1..=126 is an escape, so a
    /// trailing `\` or `\` before a non-ASCII character is plain text. The fake refuses both.
    #[test]
    fn fake_markdown_v2_takes_a_lone_backslash_as_text_like_telegram() {
        assert_eq!(parse_markdown_v2("path C:\\").as_deref(), Ok("path C:\\"));
        assert_eq!(parse_markdown_v2("\\é").as_deref(), Ok("\\é"));
    }

    /// tdlib: after ```` ``` ```` and an optional language (any characters up to a space or
    /// backtick), one newline is skipped. The fake keeps it when there is no language, so `shown`
    /// differs from what users see.
    #[test]
    fn fake_markdown_v2_skips_the_newline_after_a_bare_fence_like_telegram() {
        assert_eq!(
            parse_markdown_v2("```\nlet x;\n```").as_deref(),
            Ok("let x;\n")
        );
    }

    /// tdlib: inside a blockquote, a newline not followed by `>` ends the quote, and an entity
    /// still open there is an error ("Can't find end of Bold entity"). The fake accepts it, so
    /// it would pass renderer output Telegram refuses.
    #[test]
    fn fake_markdown_v2_refuses_an_entity_open_across_the_end_of_a_quote_like_telegram() {
        assert!(parse_markdown_v2(">*quoted\nnot quoted*").is_err());
    }

    /// tdlib: a link whose URL `LinkManager::get_checked_link` refuses (a relative path, a host
    /// without a dot) loses its entity (`skip_entity`), its text stays as plain text.
    #[test]
    fn fake_markdown_v2_drops_a_link_telegram_refuses_and_keeps_its_text() {
        use mosaic_telegram::fake::parse_markdown_v2_entities;
        let parsed =
            parse_markdown_v2_entities("[lib](src/lib\\.rs) [x](https://x\\.org/a)").unwrap();
        assert_eq!(parsed.text, "lib x");
        assert_eq!(
            parsed.links,
            vec![("x".to_owned(), "https://x.org/a".to_owned())]
        );
    }

    /// Replies of the shapes models write render to MarkdownV2 that Telegram's parser accepts
    /// (quotes with lists, code and blank lines; nested and adjacent styles; every kind of link).
    #[test]
    fn typical_replies_render_to_markdown_v2_telegram_accepts() {
        let samples = [
            "## **Summary**\n\n- *_fixed_* the `parse()` bug\n- see [the parser](crates/x/src/parse.rs)\n",
            "> **Note**\n> spans\n> lines\n>\n> - a\n> - b\n>\n> ```rust\n> let x = 1;\n> ```\n> after the code\n\nOutside.",
            "> outer\n>> inner\n\n> again",
            "*a*_b_ **c****d** ~~e~~~~f~~ [x](https://x.org/a_(b)) <https://y.org> <me@x.org> [local](http://localhost:3000)",
            "1. one\n   ```\n   code\n   ```\n2. two\n   > quoted in a list",
            "# Title\n\n---\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        ];
        for sample in samples {
            let rendered = render(sample, Markdown::TelegramV2);
            let parsed = parse_markdown_v2(&rendered.text);
            assert!(
                parsed.is_ok(),
                "{sample:?} rendered as {:?}: {parsed:?}",
                rendered.text
            );
        }
    }

    // ---- The renderer, through the fake (whose parsing agrees with tdlib for these). ----

    /// A code block inside a block quote: the renderer prefixes the closing fence with `> `, which
    /// is inside the `pre` entity, so the code shows a stray `> ` line (Telegram reads everything
    /// up to the closing ``` as code).
    #[tokio::test]
    async fn a_quoted_code_block_shows_only_its_code() {
        let fake = fake().await;
        let c = connector(&fake);
        let rendered = render(
            "> see:\n>\n> ```\n> let x = 1;\n> ```",
            Markdown::TelegramV2,
        );
        c.send(&out(GROUP, &rendered.text)).await.unwrap();
        let posted = fake.posted().pop().unwrap();
        assert_eq!(posted.text, rendered.text, "sent as MarkdownV2");
        assert!(
            !posted.shown.contains("> "),
            "stray quote marker in the code: {:?} (sent {:?})",
            posted.shown,
            posted.text
        );
    }

    /// tdlib drops a text_url entity whose URL is not a valid absolute link
    /// (`LinkManager::get_checked_link` fails: `skip_entity = true`), so a relative link (models
    /// often link files: `[lib.rs](src/lib.rs)`) shows only its text and the path is lost. The
    /// plain renderer keeps it as "text (url)".
    #[test]
    fn a_relative_link_keeps_its_target_visible() {
        let rendered = render(
            "changed [the parser](crates/x/src/parse.rs)",
            Markdown::TelegramV2,
        );
        let shown = parse_markdown_v2(&rendered.text).unwrap();
        assert!(
            shown.contains("crates/x/src/parse.rs"),
            "the link target is lost: {:?} -> {shown:?}",
            rendered.text
        );
    }
}
