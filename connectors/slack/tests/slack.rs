//! The Slack connector against the fake Slack: the shared compliance suite, Socket Mode (acks,
//! refresh, ghosts, link_disabled), threads, slash commands, filtering, rate limits and history
//! catch-up, all through slack-morphism's real Web API code and a real WebSocket.

use async_trait::async_trait;
use mosaic_connector::compliance::{Platform, context, run_suite};
use mosaic_connector::{Connector, ErrorKind, Health, Inbound, Outbound, ReplyTo};
use mosaic_slack::fake::{APP_TOKEN, BOT_TOKEN, BOT_USER, Failure, FakeSlack};
use mosaic_slack::{SlackConfig, SlackConnector, Timing};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const CHANNEL: &str = "C0123ABCDE";
const OTHER: &str = "C0999ZZZZZ";
const USER: &str = "U0ALICE001";

fn fast() -> Timing {
    Timing {
        ping_interval: Duration::from_millis(100),
        silence_limit: Duration::from_millis(1500),
        hello_timeout: Duration::from_secs(5),
        drain_limit: Duration::from_millis(300),
        ..Timing::default()
    }
}

fn connector_with(fake: &FakeSlack, timing: Timing) -> Arc<SlackConnector> {
    Arc::new(SlackConnector::new(SlackConfig {
        id: "slack".into(),
        bot_token: BOT_TOKEN.into(),
        app_token: APP_TOKEN.into(),
        api_base: Some(fake.api_base.clone()),
        timing,
    }))
}

struct FakePlatform {
    fake: FakeSlack,
    connector: Arc<SlackConnector>,
}

#[async_trait]
impl Platform for FakePlatform {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }
    fn room(&self) -> String {
        CHANNEL.into()
    }
    fn user(&self) -> String {
        USER.into()
    }
    async fn post(&self, room: &str, user: &str, text: &str) -> String {
        format!("{room}:{}", self.fake.message(room, user, text))
    }
    async fn posted(&self, room: &str) -> Vec<String> {
        self.fake.posted(room)
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        let ts = message_id.rsplit(':').next().unwrap();
        self.fake.reacted(room, ts).as_deref() == Some("eyes")
    }
    async fn fail_next_posts(&self, n: usize) {
        self.fake
            .fail_next("chat.postMessage", Failure::Status(500), n);
    }
}

#[async_trait]
impl mosaic_bridge::compliance::BridgedPlatform for FakePlatform {
    fn register(&self) {
        mosaic_connector::registry::register(&mosaic_slack::TYPE);
    }
    fn roster_entry(&self) -> String {
        format!(
            "{{type: slack, channels: [{CHANNEL}], bot_token: {{env: SLACK_BOT_TOKEN}}, app_token: {{env: SLACK_APP_TOKEN}}}}"
        )
    }
    fn stranger(&self) -> String {
        "U0STRANGER".into()
    }
    async fn refuse_next_post(&self, refusal: mosaic_bridge::compliance::Refusal) {
        use mosaic_bridge::compliance::Refusal;
        let failure = match refusal {
            // Slack's Retry-After is whole seconds.
            Refusal::RateLimited(d) => Failure::RateLimited(d.as_secs_f64().ceil() as u64),
            Refusal::Rejected => Failure::Error("channel_not_found"),
        };
        self.fake.fail_next("chat.postMessage", failure, 1);
    }
    async fn post_native(&self, room: &str, user: &str, line: &str) -> Option<String> {
        let args = line.strip_prefix("/fleet")?.trim();
        Some(format!(
            "slash:{}",
            self.fake.slash(room, user, "alice", args)
        ))
    }
    async fn native_answers(&self, _room: &str) -> Vec<String> {
        self.fake
            .responses()
            .into_iter()
            .map(|(_, body)| body["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slack_connector_is_compliant_under_the_bridge() {
    let fake = FakeSlack::start().await;
    let platform = FakePlatform {
        connector: connector_with(&fake, Timing::default()),
        fake,
    };
    mosaic_bridge::compliance::run_bridged_suite(&platform).await;
}

#[tokio::test]
async fn the_slack_connector_is_compliant() {
    let fake = FakeSlack::start().await;
    let platform = FakePlatform {
        connector: connector_with(&fake, Timing::default()),
        fake,
    };
    run_suite(&platform).await;
    // Every envelope (the users' messages, the echoes of the bot's own posts) was acked, fast.
    // (The echo of the last post may still be in flight when the connector stops.)
    let acks = platform.fake.acks();
    assert!(acks.iter().filter(|(_, took)| took.is_some()).count() >= acks.len() - 1);
    for (id, took) in acks {
        if let Some(took) = took {
            assert!(took < Duration::from_secs(3), "{id} acked after {took:?}");
        }
    }
    // The app token opened the socket, the bot token did the rest.
    for call in platform.fake.calls() {
        let want = if call.method == "apps.connections.open" {
            APP_TOKEN
        } else {
            BOT_TOKEN
        };
        assert_eq!(call.token.as_deref(), Some(want), "{}", call.method);
    }
}

struct Running {
    connector: Arc<SlackConnector>,
    rx: mpsc::Receiver<Inbound>,
    health: watch::Receiver<Health>,
    runner: tokio::task::JoinHandle<Result<(), mosaic_connector::ConnectorError>>,
    _stop: watch::Sender<bool>,
}

async fn start(fake: &FakeSlack, timing: Timing, cursors: Vec<(String, String)>) -> Running {
    let connector = connector_with(fake, timing);
    let (tx, rx) = mpsc::channel(64);
    let (ctx, health, stop) = context(tx, cursors);
    let c = connector.clone();
    let runner = tokio::spawn(async move { c.run(ctx).await });
    let r = Running {
        connector,
        rx,
        health,
        runner,
        _stop: stop,
    };
    wait_health(&r, |h| *h == Health::Up).await;
    r
}

async fn wait_health(r: &Running, ok: impl Fn(&Health) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok(&r.health.borrow()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "health: {:?}",
            r.health.borrow()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for(what: &str, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the connector runs")
}

/// Nothing more arrives within `wait`.
async fn quiet(rx: &mut mpsc::Receiver<Inbound>, wait: Duration) {
    if let Ok(Some(ev)) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected event {ev:?}");
    }
}

fn out(room: &str, text: &str, reply_to: Option<ReplyTo>, thread: Option<&str>) -> Outbound {
    Outbound {
        room: room.into(),
        text: text.into(),
        html: None,
        reply_to,
        thread: thread.map(str::to_owned),
        key: "k".into(),
    }
}

#[tokio::test]
async fn a_message_in_a_thread_is_answered_in_that_thread() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    let parent = fake.message(CHANNEL, USER, "let's talk here");
    let first = next(&mut r.rx).await;
    assert_eq!(first.thread, None);
    let reply = fake.reply_in_thread(CHANNEL, USER, "status?", &parent);
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.message_id, format!("{CHANNEL}:{reply}"));
    assert_eq!(ev.thread.as_deref(), Some(parent.as_str()));
    // The bridge answers with the thread: the reply goes into it.
    r.connector
        .send(&out(
            CHANNEL,
            "all green",
            Some(ReplyTo::Message(ev.message_id.clone())),
            ev.thread.as_deref(),
        ))
        .await
        .unwrap();
    // A reply to a top-level message starts a thread under it.
    r.connector
        .send(&out(
            CHANNEL,
            "got it",
            Some(ReplyTo::Message(first.message_id.clone())),
            None,
        ))
        .await
        .unwrap();
    let posts = fake.posts(CHANNEL);
    assert_eq!(posts[0]["thread_ts"], parent.as_str());
    assert_eq!(posts[0]["text"], "all green");
    assert_eq!(posts[1]["thread_ts"], parent.as_str());
    // The bot's own posts come back as events and are dropped.
    quiet(&mut r.rx, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_slash_command_is_acked_at_once_and_answered_through_its_response_url() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    let id = fake.slash(CHANNEL, USER, "alice", "status");
    let ev = next(&mut r.rx).await;
    assert!(ev.native_command);
    assert_eq!(
        (ev.text.as_str(), ev.room.as_str(), ev.user.as_str()),
        ("/fleet status", CHANNEL, USER)
    );
    wait_for("the ack", || {
        fake.acks().iter().all(|(_, took)| took.is_some())
    })
    .await;
    let (_, took) = fake.acks().pop().unwrap();
    assert!(took.unwrap() < Duration::from_secs(3));
    // No reaction for a command; the answer goes to the response URL, in the channel.
    r.connector.ack(&ev.room, &ev.message_id).await.unwrap();
    r.connector
        .send(&out(
            &ev.room,
            "*mos* running",
            Some(ReplyTo::Native(ev.message_id.clone())),
            None,
        ))
        .await
        .unwrap();
    let responses = fake.responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0, id);
    assert_eq!(responses[0].1["text"], "*mos* running");
    assert_eq!(responses[0].1["response_type"], "in_channel");
    assert!(fake.calls_of("reactions.add").is_empty() && fake.posted(CHANNEL).is_empty());

    // A command from a channel that is not bridged still reaches the bridge (which answers that
    // the channel is not bridged) with a response URL to answer through.
    fake.slash(OTHER, USER, "alice", "status");
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.room, OTHER);
    r.connector
        .send(&out(
            OTHER,
            "this channel is not bridged to the fleet",
            Some(ReplyTo::Native(ev.message_id)),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(fake.responses().len(), 2);
    // An answer to a command the connector does not know (lost in a restart) is not retried.
    let err = r
        .connector
        .send(&out(
            CHANNEL,
            "late",
            Some(ReplyTo::Native("slash:gone".into())),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
}

#[tokio::test]
async fn mentions_count_once_and_bots_edits_and_joins_are_dropped() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    let ts = fake.mention(CHANNEL, USER, "hello there");
    let ev = next(&mut r.rx).await;
    assert_eq!(
        (ev.text.as_str(), ev.message_id.clone()),
        ("hello there", format!("{CHANNEL}:{ts}"))
    );
    fake.bot_message(CHANNEL, "beep");
    fake.edit(CHANNEL, USER, &ts, "edited");
    fake.event(serde_json::json!({"type": "message", "subtype": "channel_join", "channel": CHANNEL, "user": USER, "text": "joined", "ts": "1700000999.000100"}));
    fake.event(serde_json::json!({"type": "message", "channel": CHANNEL, "user": BOT_USER, "text": "me", "ts": "1700000999.000200"}));
    // A message in a channel that is not bridged is handed on; the bridge ignores (and audits) it.
    let other = fake.message(OTHER, USER, "elsewhere");
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.message_id, format!("{OTHER}:{other}"));
    quiet(&mut r.rx, Duration::from_millis(300)).await;
    wait_for("every envelope acked", || {
        fake.acks().iter().all(|(_, took)| took.is_some())
    })
    .await;
}

#[tokio::test]
async fn a_rate_limit_reports_slacks_exact_wait() {
    let fake = FakeSlack::start().await;
    let r = start(&fake, fast(), Vec::new()).await;
    fake.fail_next("chat.postMessage", Failure::RateLimited(7), 1);
    let err = r
        .connector
        .send(&out(CHANNEL, "hi", None, None))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::RateLimited {
            retry_after: Duration::from_secs(7)
        }
    );
    fake.fail_next("reactions.add", Failure::RateLimited(3), 1);
    let ts = fake.message(CHANNEL, USER, "x");
    let err = r
        .connector
        .ack(CHANNEL, &format!("{CHANNEL}:{ts}"))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    // Slack's error codes: a channel the bot is not in is fatal, a revoked token is auth, 5xx retryable.
    fake.fail_next("chat.postMessage", Failure::Error("not_in_channel"), 1);
    let err = r
        .connector
        .send(&out(CHANNEL, "hi", None, None))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.to_string().contains("/invite"), "{err}");
    fake.fail_next("chat.postMessage", Failure::Error("token_revoked"), 1);
    let err = r
        .connector
        .send(&out(CHANNEL, "hi", None, None))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    fake.fail_next("chat.postMessage", Failure::Status(503), 1);
    assert!(
        r.connector
            .send(&out(CHANNEL, "hi", None, None))
            .await
            .unwrap_err()
            .is_retryable()
    );
    assert!(fake.posted(CHANNEL).is_empty());
    // already_reacted is success.
    r.connector
        .ack(CHANNEL, &format!("{CHANNEL}:{ts}"))
        .await
        .unwrap();
    r.connector
        .ack(CHANNEL, &format!("{CHANNEL}:{ts}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refresh_opens_the_new_connection_before_the_old_one_closes_and_loses_nothing() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    let mut sent = vec![fake.message(CHANNEL, USER, "before")];
    // Slack warns, and closes the old connection itself 2 s later if the client has not.
    fake.disconnect("refresh_requested", Duration::from_secs(2));
    // Right after the frame, before the new connection is up: still delivered on the old one.
    sent.push(fake.message(CHANNEL, USER, "during"));
    wait_for("the second connection", || fake.opens() == 2).await;
    wait_for("the old connection closed", || {
        fake.timeline().iter().any(|t| t.starts_with("close 1"))
    })
    .await;
    sent.push(fake.message(CHANNEL, USER, "after"));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut r.rx).await);
    }
    quiet(&mut r.rx, Duration::from_millis(500)).await;
    let ids: Vec<String> = got.iter().map(|e| e.message_id.clone()).collect();
    let want: Vec<String> = sent.iter().map(|ts| format!("{CHANNEL}:{ts}")).collect();
    assert_eq!(ids, want, "each once, in order");
    let timeline = fake.timeline();
    let at = |p: &str| {
        timeline
            .iter()
            .position(|t| t.starts_with(p))
            .unwrap_or_else(|| panic!("{p} in {timeline:?}"))
    };
    assert!(at("open 2") < at("close 1"), "{timeline:?}");
    assert_eq!(
        timeline[at("close 1")],
        "close 1 by client",
        "the client closed it after the switch"
    );
    assert_eq!(*r.health.borrow(), Health::Up);
}

#[tokio::test]
async fn a_ghost_connection_is_detected_and_replaced() {
    // The fake's own pings are rare, so only our pings and their pongs keep a socket alive.
    let fake = FakeSlack::start_with_pings(Duration::from_secs(60)).await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    fake.message(CHANNEL, USER, "one");
    next(&mut r.rx).await;
    // Pongs keep an idle connection alive well past the silence limit.
    tokio::time::sleep(fast().silence_limit * 2).await;
    assert_eq!(
        (fake.opens(), r.health.borrow().clone()),
        (1, Health::Up),
        "{:?}",
        fake.timeline()
    );
    // The socket stays open but goes silent: no pong, no frame.
    fake.ghost();
    wait_for("a replacement connection", || {
        fake.opens() == 2 && fake.live_connections() == 1
    })
    .await;
    wait_health(&r, |h| *h == Health::Up).await;
    let ts = fake.message(CHANNEL, USER, "two");
    assert_eq!(next(&mut r.rx).await.message_id, format!("{CHANNEL}:{ts}"));
    quiet(&mut r.rx, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_ghost_that_cannot_be_replaced_takes_health_out_of_up_and_ends_the_run() {
    let fake = FakeSlack::start_with_pings(Duration::from_secs(60)).await;
    let r = start(&fake, fast(), Vec::new()).await;
    // apps.connections.open fails from now on (every attempt, so a replacement the connector
    // opened on its own under load cannot take the failure): the ghost is noticed, health
    // leaves Up.
    fake.fail_next("apps.connections.open", Failure::Status(503), 1000);
    fake.ghost();
    wait_health(&r, |h| *h != Health::Up).await;
    // The connector gives up on this run (the bridge restarts it with backoff).
    let result = tokio::time::timeout(Duration::from_secs(10), r.runner)
        .await
        .unwrap()
        .unwrap();
    assert!(result.unwrap_err().is_retryable());
}

#[tokio::test]
async fn link_disabled_stops_the_connector_instead_of_reconnecting() {
    let fake = FakeSlack::start().await;
    let r = start(&fake, fast(), Vec::new()).await;
    fake.disconnect("link_disabled", Duration::from_secs(5));
    let result = tokio::time::timeout(Duration::from_secs(5), r.runner)
        .await
        .unwrap()
        .unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.to_string().contains("Socket Mode"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.opens(), 1, "no reconnect");
}

#[tokio::test]
async fn wrong_tokens_are_auth_errors() {
    let fake = FakeSlack::start().await;
    for (bot, app) in [
        ("xoxb-wrong-token-123456", APP_TOKEN),
        (BOT_TOKEN, BOT_TOKEN),
    ] {
        let c = SlackConnector::new(SlackConfig {
            id: "slack".into(),
            bot_token: bot.into(),
            app_token: app.into(),
            api_base: Some(fake.api_base.clone()),
            timing: fast(),
        });
        let (tx, _rx) = mpsc::channel(4);
        let (ctx, health, _stop) = context(tx, Vec::new());
        let err = tokio::time::timeout(Duration::from_secs(5), c.run(ctx))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "{err}");
        assert!(matches!(&*health.borrow(), Health::Down(_)));
    }
}

#[tokio::test]
async fn messages_missed_while_away_are_caught_up_from_history_once() {
    let fake = FakeSlack::start().await;
    let seen = fake.message_unseen(CHANNEL, USER, "seen before the crash");
    let missed: Vec<String> = (0..3)
        .map(|i| fake.message_unseen(CHANNEL, USER, &format!("missed {i}")))
        .collect();
    // Another room with a cursor and nothing new; a bot's post in between is skipped.
    fake.bot_message(CHANNEL, "a bot meanwhile");
    let cursors = vec![
        (CHANNEL.to_owned(), format!("{CHANNEL}:{seen}")),
        (OTHER.to_owned(), format!("{OTHER}:1700000000.000001")),
    ];
    let mut r = start(&fake, fast(), cursors).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut r.rx).await);
    }
    let texts: Vec<&str> = got.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["missed 0", "missed 1", "missed 2"]);
    assert_eq!(got[2].message_id, format!("{CHANNEL}:{}", missed[2]));
    let live = fake.message(CHANNEL, USER, "live again");
    assert_eq!(
        next(&mut r.rx).await.message_id,
        format!("{CHANNEL}:{live}")
    );
    quiet(&mut r.rx, Duration::from_millis(300)).await;
    let history = fake.calls_of("conversations.history");
    assert_eq!(history[0].params["oldest"], seen.as_str());
}

// ---------------------------------------------------------------------------------------------
// Adversarial tests (branch adv-slack): each one is a claim of the connector that does not hold.
// ---------------------------------------------------------------------------------------------

/// Slack sends `&`, `<` and `>` in a message's text as `&amp;`, `&lt;` and `&gt;` ("All text in
/// Slack uses the same system of escaping", api.slack.com/reference/surfaces/formatting#escaping),
/// slash-command text included. The orchestrator must see what the user typed, not the entities
/// (a coding agent told `a -&gt; b &amp;&amp; c` runs something else).
#[tokio::test]
async fn adv_incoming_text_is_unescaped_to_what_the_user_typed() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    // What Slack delivers when the user types: run `a -> b && c` if x < 3
    fake.event(serde_json::json!({
        "type": "message", "channel": CHANNEL, "channel_type": "channel", "user": USER,
        "text": "run `a -&gt; b &amp;&amp; c` if x &lt; 3", "ts": "1700000500.000100",
        "event_ts": "1700000500.000100", "team": "T0FAKETEAM"
    }));
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.text, "run `a -> b && c` if x < 3");
    // The same for a slash command's text (`should_escape: false` only leaves @names/#channels
    // unresolved; &, <, > are still entities).
    fake.slash(
        CHANNEL,
        USER,
        "alice",
        "send coder fix x &lt; y &amp;&amp; z",
    );
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.text, "/fleet send coder fix x < y && z");
}

/// A URL typed in Slack arrives wrapped as `<https://…>` (or `<https://…|label>`); other
/// mentions as `<@U…>`. The orchestrator (and `!fleet send`) get Slack's markup instead of the
/// URL the user typed.
#[tokio::test]
async fn adv_incoming_links_are_given_as_typed_not_as_slack_markup() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    fake.event(serde_json::json!({
        "type": "message", "channel": CHANNEL, "channel_type": "channel", "user": USER,
        "text": "review <https://github.com/o/r/pull/7> please", "ts": "1700000500.000200",
        "event_ts": "1700000500.000200", "team": "T0FAKETEAM"
    }));
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.text, "review https://github.com/o/r/pull/7 please");
}

/// A 429 (or a 5xx) on `conversations.history` during the catch-up after a restart: the missed
/// messages are only logged as unreadable and never delivered (nothing retries the catch-up).
#[tokio::test]
async fn adv_a_rate_limited_catch_up_still_delivers_the_missed_messages() {
    let fake = FakeSlack::start().await;
    let seen = fake.message_unseen(CHANNEL, USER, "taken before the crash");
    let missed = fake.message_unseen(CHANNEL, USER, "written while mosaic was down");
    fake.fail_next("conversations.history", Failure::RateLimited(1), 1);
    let mut r = start(
        &fake,
        fast(),
        vec![(CHANNEL.to_owned(), format!("{CHANNEL}:{seen}"))],
    )
    .await;
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.message_id, format!("{CHANNEL}:{missed}"));
}

/// The catch-up runs in the forwarder, in line with live events, and no Web API call has a
/// timeout: one `conversations.history` request that never answers (a keep-alive connection a
/// NAT dropped) holds every later live event forever, though each was acked to Slack, so a crash
/// meanwhile loses them from the socket too.
#[tokio::test]
async fn adv_a_hung_history_read_does_not_stall_live_messages_forever() {
    let fake = FakeSlack::start().await;
    let seen = fake.message_unseen(CHANNEL, USER, "taken before the crash");
    fake.fail_next("conversations.history", Failure::Hang, 1);
    let mut r = start(
        &fake,
        fast(),
        vec![(CHANNEL.to_owned(), format!("{CHANNEL}:{seen}"))],
    )
    .await;
    let live = fake.message(CHANNEL, USER, "live, after the reconnect");
    let ev = tokio::time::timeout(Duration::from_secs(40), r.rx.recv())
        .await
        .expect("a live message within 40 s, whatever a history read does")
        .unwrap();
    assert_eq!(ev.message_id, format!("{CHANNEL}:{live}"));
}

/// A ghost is detected, but the replacement's `apps.connections.open` never answers (the same
/// middlebox that silenced the socket also black-holes the pooled HTTPS connection). There is
/// no timeout on it and `opening` stays true, so the connector sits `degraded` forever: no new
/// connection, no error for the bridge to restart it on.
#[tokio::test]
async fn adv_a_ghost_whose_replacement_open_hangs_is_not_stuck_forever() {
    let fake = FakeSlack::start_with_pings(Duration::from_secs(60)).await;
    let r = start(&fake, fast(), Vec::new()).await;
    fake.fail_next("apps.connections.open", Failure::Hang, 1);
    fake.ghost();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let replaced = fake.opens() == 2 && fake.live_connections() == 1;
        if replaced || r.runner.is_finished() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "40 s after the ghost: no new connection and the run has not ended (health {:?})",
            r.health.borrow()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A thread reply written while mosaic was down is lost: thread replies are not in
/// `conversations.history` and the catch-up never reads `conversations.replies`. (The guide
/// admits it; the claim "no loss across a kill -9, including a thread reply" does not hold.)
#[tokio::test]
async fn adv_a_thread_reply_written_while_down_is_caught_up() {
    let fake = FakeSlack::start().await;
    let parent = fake.message_unseen(CHANNEL, USER, "let's talk in a thread");
    let reply = fake.reply_in_thread_unseen(CHANNEL, USER, "status?", &parent);
    let mut r = start(
        &fake,
        fast(),
        vec![(CHANNEL.to_owned(), format!("{CHANNEL}:{parent}"))],
    )
    .await;
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.message_id, format!("{CHANNEL}:{reply}"));
}

/// `SlackConfig` derives `Debug` with both tokens in clear: any `{:?}` of it (a log line, a
/// panic message, a test failure) prints the xoxb- and xapp- tokens.
#[test]
fn adv_the_config_debug_output_hides_the_tokens() {
    let config = SlackConfig {
        id: "slack".into(),
        bot_token: BOT_TOKEN.into(),
        app_token: APP_TOKEN.into(),
        api_base: None,
        timing: Timing::default(),
    };
    let shown = format!("{config:?}");
    assert!(
        !shown.contains(BOT_TOKEN) && !shown.contains(APP_TOKEN),
        "{shown}"
    );
}

/// Slack's `internal_error` and `fatal_error` say "It's possible some aspect of the operation
/// succeeded before the error was raised" (chat.postMessage's error table), yet both are mapped
/// to Retryable and the outbox sends again: the answer is posted twice. (The design notes'
/// remedy, the outbox key in `metadata` looked up in recent history before a retry, is not
/// there.)
#[tokio::test]
async fn adv_a_post_that_slack_stored_before_internal_error_is_not_posted_twice() {
    let fake = FakeSlack::start().await;
    let r = start(&fake, fast(), Vec::new()).await;
    fake.fail_next(
        "chat.postMessage",
        Failure::ErrorAfterEffect("internal_error"),
        1,
    );
    let message = out(CHANNEL, "the build is green", None, None);
    // The bridge's outbox: send until it is not retryable.
    for _ in 0..3 {
        match r.connector.send(&message).await {
            Ok(_) => break,
            Err(e) if e.is_retryable() => continue,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(fake.posted(CHANNEL), ["the build is green"], "posted once");
}

// ---------------------------------------------------------------------------------------------
// The fixes of the adversarial findings that had no test.
// ---------------------------------------------------------------------------------------------

/// A proxy's 502 page is not carried whole into the error (and so into health and status).
#[tokio::test]
async fn a_long_error_page_is_cut_before_it_reaches_health() {
    let fake = FakeSlack::start().await;
    let r = start(&fake, fast(), Vec::new()).await;
    fake.fail_next("chat.postMessage", Failure::Page(502), 1);
    let err = r
        .connector
        .send(&out(CHANNEL, "hi", None, None))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().chars().count() < 300, "{err}");
    assert!(fake.posted(CHANNEL).is_empty());
}

/// A socket whose frames still come in (Slack's pings) but that no longer takes ours (no pong,
/// so no ack reaches Slack either) is a ghost too.
#[tokio::test]
async fn a_connection_deaf_to_our_pings_is_replaced() {
    let fake = FakeSlack::start_with_pings(Duration::from_millis(100)).await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    fake.deafen();
    wait_for("a replacement connection", || fake.opens() == 2).await;
    wait_health(&r, |h| *h == Health::Up).await;
    let ts = fake.message(CHANNEL, USER, "on the new connection");
    assert_eq!(next(&mut r.rx).await.message_id, format!("{CHANNEL}:{ts}"));
}

/// The answer to `/fleet` in a channel that is not bridged, or from someone the ACL does not
/// name, is shown only to them; the others' answers are in the channel.
#[tokio::test]
async fn a_slash_command_refusal_is_ephemeral() {
    let fake = FakeSlack::start().await;
    let connector = Arc::new(
        SlackConnector::new(SlackConfig {
            id: "slack".into(),
            bot_token: BOT_TOKEN.into(),
            app_token: APP_TOKEN.into(),
            api_base: Some(fake.api_base.clone()),
            timing: fast(),
        })
        .with_access(vec![CHANNEL.into()], vec![USER.into()]),
    );
    let (tx, mut rx) = mpsc::channel(16);
    let (ctx, health, _stop) = context(tx, Vec::new());
    let c = connector.clone();
    tokio::spawn(async move { c.run(ctx).await });
    let mut health = health;
    health.wait_for(|h| *h == Health::Up).await.unwrap();
    for (room, user, want) in [
        (CHANNEL, USER, "in_channel"),
        (OTHER, USER, "ephemeral"),
        (CHANNEL, "U0STRANGER", "ephemeral"),
    ] {
        fake.slash(room, user, "someone", "status");
        let ev = next(&mut rx).await;
        connector
            .send(&out(
                room,
                "an answer",
                Some(ReplyTo::Native(ev.message_id)),
                None,
            ))
            .await
            .unwrap();
        let (_, body) = fake.responses().pop().unwrap();
        assert_eq!(body["response_type"], want, "{room} {user}");
    }
}

/// A threaded post Slack stored before answering `fatal_error` is found among the thread's
/// replies (by its outbox key in `metadata`), not posted again.
#[tokio::test]
async fn a_threaded_post_stored_before_an_error_is_not_posted_twice() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    let parent = fake.message(CHANNEL, USER, "build it");
    next(&mut r.rx).await;
    fake.fail_next(
        "chat.postMessage",
        Failure::ErrorAfterEffect("fatal_error"),
        1,
    );
    let mut message = out(CHANNEL, "built", None, Some(&parent));
    message.key = "outbox-42".into();
    let id = r.connector.send(&message).await.unwrap();
    assert_eq!(fake.posted(CHANNEL), ["built"]);
    let post = &fake.posts(CHANNEL)[0];
    assert_eq!(post["metadata"]["event_type"], "mosaic_reply");
    assert_eq!(post["metadata"]["event_payload"]["key"], "outbox-42");
    assert!(id.starts_with(&format!("{CHANNEL}:")));
    // A failure that did not take effect is still reported, for the outbox to retry.
    fake.fail_next("chat.postMessage", Failure::Error("internal_error"), 1);
    let mut other = out(CHANNEL, "again", None, Some(&parent));
    other.key = "outbox-43".into();
    assert!(r.connector.send(&other).await.unwrap_err().is_retryable());
}

/// A reply in a thread the connector saw earlier (its parent older than the room's point) that
/// was never delivered is read back from the thread after a reconnect.
#[tokio::test]
async fn a_reply_missed_in_a_remembered_thread_is_caught_up_after_a_reconnect() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    let parent = fake.message(CHANNEL, USER, "a thread");
    next(&mut r.rx).await;
    fake.reply_in_thread(CHANNEL, USER, "first reply", &parent);
    next(&mut r.rx).await;
    fake.message(CHANNEL, USER, "later, at top level");
    next(&mut r.rx).await;
    let lost = fake.reply_in_thread_unseen(CHANNEL, USER, "lost reply", &parent);
    fake.close_all();
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.message_id, format!("{CHANNEL}:{lost}"));
    assert_eq!(ev.thread.as_deref(), Some(parent.as_str()));
    quiet(&mut r.rx, Duration::from_millis(300)).await;
}

/// The connector's own mark (its checkpoint) is where a room is read from when the bridge has
/// no cursor there (every message since was refused, say a stranger's).
#[tokio::test]
async fn the_checkpoint_mark_is_where_catch_up_starts() {
    let fake = FakeSlack::start().await;
    let stranger = fake.message_unseen(CHANNEL, "U0STRANGER", "not for the fleet");
    let missed = fake.message_unseen(CHANNEL, USER, "written while down");
    let checkpoint = serde_json::json!({ "rooms": { CHANNEL: stranger } }).to_string();
    let mut r = start(
        &fake,
        fast(),
        vec![(mosaic_connector::CHECKPOINT_ROOM.to_owned(), checkpoint)],
    )
    .await;
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.message_id, format!("{CHANNEL}:{missed}"));
    quiet(&mut r.rx, Duration::from_millis(300)).await;
}

/// `&`, `<` and `>` typed by a user come back as typed through the fake's escaping.
#[tokio::test]
async fn what_a_user_types_arrives_as_typed() {
    let fake = FakeSlack::start().await;
    let mut r = start(&fake, fast(), Vec::new()).await;
    fake.message(CHANNEL, USER, "if a < b && c > d then <ok>");
    assert_eq!(next(&mut r.rx).await.text, "if a < b && c > d then <ok>");
}

/// A catch-up that meets 5xx answers is tried again (with backoff) until it reads the room, and
/// live messages are not held back meanwhile.
#[tokio::test]
async fn a_catch_up_meeting_server_errors_is_retried_and_live_messages_flow_meanwhile() {
    let fake = FakeSlack::start().await;
    let seen = fake.message_unseen(CHANNEL, USER, "taken before the crash");
    let missed = fake.message_unseen(CHANNEL, USER, "written while down");
    fake.fail_next("conversations.history", Failure::Status(503), 2);
    let mut r = start(
        &fake,
        fast(),
        vec![(CHANNEL.to_owned(), format!("{CHANNEL}:{seen}"))],
    )
    .await;
    let live = fake.message(CHANNEL, USER, "live");
    assert_eq!(
        next(&mut r.rx).await.message_id,
        format!("{CHANNEL}:{live}")
    );
    assert_eq!(
        next(&mut r.rx).await.message_id,
        format!("{CHANNEL}:{missed}")
    );
    quiet(&mut r.rx, Duration::from_millis(300)).await;
    let history = fake.calls_of("conversations.history");
    assert_eq!(
        history[0].params["oldest"],
        seen.as_str(),
        "the same point again"
    );
}
