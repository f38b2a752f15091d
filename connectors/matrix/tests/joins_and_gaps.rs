#![recursion_limit = "256"]
//! The Matrix connector at its edges, against a real Synapse: history from before the bot
//! joined, invitations answered later, gaps longer than one sync, a lost store, health right
//! after a restart (each test names the claim of docs/connectors/matrix.md it holds to).

use mosaic_connector::{
    CHECKPOINT_ROOM, Connector, Cursors, Handoff, Health, HealthReporter, Inbound, InboundSink,
    RunContext, Shutdown,
};
use mosaic_matrix::synapse::{Person, Synapse};
use mosaic_matrix::{Login, MatrixConfig, MatrixConnector, TEXT_ONLY};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

async fn until(what: &str, ok: impl AsyncFnMut() -> bool) {
    until_within(30, what, ok).await
}

async fn until_within(secs: u64, what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bot's account and where its state lives (kept across connector restarts).
struct Bot {
    user: String,
    password: String,
    dir: tempfile::TempDir,
}

impl Bot {
    fn register(synapse: &Synapse) -> Bot {
        let (user, password) = synapse.user("mosaic");
        Bot {
            user,
            password,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("connectors/matrix")
    }

    fn connector(&self, synapse: &Synapse, rooms: &[&str], acl: &[String]) -> Arc<MatrixConnector> {
        Arc::new(MatrixConnector::new(MatrixConfig {
            id: "matrix".into(),
            homeserver: synapse.url.clone(),
            user: self.user.clone(),
            login: Login::Password(self.password.clone()),
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            inviters: acl.to_vec(),
            dir: self.state(),
        }))
    }
}

/// A connector run with a bridge stand-in that keeps the checkpoints it is given (and can
/// refuse some, as the bridge does when a message could not be stored).
struct Run {
    rx: mpsc::Receiver<Inbound>,
    health: watch::Receiver<Health>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    checkpoint: Arc<Mutex<Option<String>>>,
    checkpoints: Arc<AtomicU32>,
    refuse: Arc<AtomicU32>,
}

fn run(c: &Arc<MatrixConnector>, checkpoint: Option<String>) -> Run {
    let (tx, rx) = mpsc::channel(1024);
    let (health, health_rx) = HealthReporter::new();
    let (stop, shutdown) = Shutdown::new();
    let (sink, mut handoffs) = mpsc::channel(64);
    let kept = Arc::new(Mutex::new(checkpoint.clone()));
    let count = Arc::new(AtomicU32::new(0));
    let refuse = Arc::new(AtomicU32::new(0));
    {
        let (kept, count, refuse) = (kept.clone(), count.clone(), refuse.clone());
        tokio::spawn(async move {
            while let Some(handoff) = handoffs.recv().await {
                match handoff {
                    Handoff::Message(m) => {
                        let _ = tx.send(m).await;
                    }
                    Handoff::Checkpoint { value, committed } => {
                        if refuse
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                        {
                            let _ = committed.send(false);
                            continue;
                        }
                        *kept.lock().unwrap() = Some(value);
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = committed.send(true);
                    }
                }
            }
        });
    }
    let points = checkpoint
        .map(|c| vec![(CHECKPOINT_ROOM.to_owned(), c)])
        .unwrap_or_default();
    let ctx = RunContext {
        inbound: InboundSink::new(sink),
        cursors: Cursors::fixed(points),
        health,
        shutdown,
    };
    let runner = c.clone();
    let task = tokio::spawn(async move {
        let _ = runner.run(ctx).await;
    });
    Run {
        rx,
        health: health_rx,
        stop,
        task,
        checkpoint: kept,
        checkpoints: count,
        refuse,
    }
}

impl Run {
    /// Waits until the connector has kept `n` more checkpoints (each is one finished `/sync`).
    async fn syncs(&self, n: u32) {
        let start = self.checkpoints.load(Ordering::SeqCst);
        until("the connector's syncs", async || {
            self.checkpoints.load(Ordering::SeqCst) >= start + n
        })
        .await;
    }

    /// Stops the run; returns its last kept checkpoint.
    async fn stop(self) -> Option<String> {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        self.checkpoint.lock().unwrap().clone()
    }

    fn health(&self) -> Health {
        self.health.borrow().clone()
    }
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .expect("open")
}

/// Claim: "the first sync only sets the starting point; what was said before the bot came is
/// not answered". But a room the bot joins *later* (an invitation accepted by the running bot,
/// the usual order in the guide: create the room, talk, invite the bot) comes in the next sync
/// with its recent history (history visibility `shared`, Synapse's and Element's default), and
/// the connector hands all of it to the orchestrator as new messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_said_before_the_bot_joined_is_not_passed_on() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot = Bot::register(&synapse);
    let room = ann.create_room(false, &[]).await;
    ann.say(
        &room,
        "!fleet add old-worker (said an hour before the bot came)",
    )
    .await;
    ann.say(&room, "chatter before the bot was invited").await;
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, None);
    r.syncs(1).await;
    ann.invite(&room, &bot.user).await;
    until("the bot joined", async || r.health() == Health::Up).await;
    ann.say(&room, "said after the bot joined").await;
    let first = next(&mut r.rx).await;
    assert_eq!(
        first.text, "said after the bot joined",
        "history from before the bot joined was passed on as a new message"
    );
}

/// The same in an encrypted room: every message from before the join is undecryptable (no
/// room key was ever shared with the bot's device), so the bot posts one "I cannot decrypt"
/// notice per old message and goes degraded, though nothing is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_history_from_before_the_join_is_not_reported_as_undecryptable() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot = Bot::register(&synapse);
    let room = ann.create_room(true, &[]).await;
    for i in 0..3 {
        ann.say(&room, &format!("encrypted talk {i} before the bot came"))
            .await;
    }
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, None);
    r.syncs(1).await;
    ann.invite(&room, &bot.user).await;
    until("ann sees the bot's device", async || {
        ann.knows_devices_of(&bot.user).await
            && ann.membership(&room, &bot.user).await.as_deref() == Some("join")
    })
    .await;
    ann.say(&room, "after the join").await;
    assert_eq!(next(&mut r.rx).await.text, "after the join");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let notices: Vec<String> = ann
        .seen_from(&room, &bot.user)
        .into_iter()
        .map(|s| s.body)
        .filter(|b| b.contains("I cannot decrypt"))
        .collect();
    assert!(
        notices.is_empty(),
        "{} 'cannot decrypt' notice(s) for messages from before the bot joined: {notices:?}",
        notices.len()
    );
    assert_eq!(r.health(), Health::Up);
}

/// Claim (docs: "After changing the ACL, restart `mosaic up` for invitations to follow it";
/// the health says "invite it from an account in the acl"): an invitation that was left
/// pending — the room not yet in `rooms:`, or the inviter not yet in the ACL — is never
/// looked at again: the connector only reads the invitations of the current `/sync` response,
/// and an incremental sync from the kept checkpoint does not repeat them. Inviting again
/// does not help either (Synapse answers an identical invite with the existing event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_invitation_is_joined_once_the_room_is_configured() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot = Bot::register(&synapse);
    // Running, with no room yet.
    let connector = bot.connector(&synapse, &[], &[ann.user_id()]);
    let r = run(&connector, None);
    r.syncs(1).await;
    let room = ann.create_room(false, &[&bot.user]).await;
    // The invitation is seen (and, the room not bridged, left pending).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let checkpoint = r.stop().await;
    drop(connector);
    // The operator adds the room to the roster and restarts mosaic.
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, checkpoint);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What the health message says to do (Synapse may refuse or ignore a repeated invite).
    let _ = ann
        .room(&room)
        .invite_user_by_id(&matrix_sdk_user(&bot.user))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(45), async {
        while r.health() != Health::Up {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(
        r.health(),
        Health::Up,
        "the pending invitation to the now bridged room was never joined"
    );
    ann.say(&room, "hello").await;
    assert_eq!(next(&mut r.rx).await.text, "hello");
}

/// Claim: "Messages sent while mosaic was down arrive once, in order, when it is back." More
/// than 100 messages in a room while down make the resumed `/sync` timeline `limited`: the
/// connector logs a warning and drops all but the last 100 (no health, no word in the room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_a_hundred_messages_while_down_all_arrive() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot = Bot::register(&synapse);
    let room = ann.create_room(false, &[&bot.user]).await;
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, None);
    until("up", async || r.health() == Health::Up).await;
    ann.say(&room, "before").await;
    assert_eq!(next(&mut r.rx).await.text, "before");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checkpoint = r.stop().await;
    drop(connector);
    const N: usize = 130;
    for i in 0..N {
        ann.say(&room, &format!("m{i}")).await;
    }
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, checkpoint);
    ann.say(&room, "end").await;
    let mut got = Vec::new();
    loop {
        let ev = next(&mut r.rx).await;
        if ev.text == "end" {
            break;
        }
        if ev.text.starts_with('m') {
            got.push(ev.text);
        }
    }
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(
        got.len(),
        N,
        "lost {} message(s) said while the bot was down; first seen: {:?}",
        N - got.len(),
        got.first()
    );
    assert_eq!(got, want);
}

/// A sync whose checkpoint the bridge refuses is fetched again (claim 7); the text-only note
/// must not be posted once per replay. (Passes here; the note is still sent without a stable
/// transaction id, so a kill -9 between the note and the checkpoint would repeat it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_sync_does_not_post_the_text_only_note_twice() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot = Bot::register(&synapse);
    let room = ann.create_room(false, &[&bot.user]).await;
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, None);
    until("up", async || r.health() == Health::Up).await;
    // The next two checkpoints are refused (a store hiccup in the bridge).
    r.refuse.store(2, Ordering::SeqCst);
    ann.say_raw(
        &room,
        json!({"msgtype": "m.file", "body": "notes.txt", "url": "mxc://localhost/abc"}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    ann.say(&room, "after").await;
    loop {
        if next(&mut r.rx).await.text == "after" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let notes = ann
        .seen_from(&room, &bot.user)
        .iter()
        .filter(|s| s.body == TEXT_ONLY)
        .count();
    assert_eq!(notes, 1, "the text-only note was posted {notes} times");
}

/// Claim 4 / docs: "Deleting that directory makes the bot log in again as a new device". Only
/// the store deleted (a disk cleanup, a restore from a backup without it) while
/// `session.json` stays: the connector restores the old device id with a brand-new crypto
/// store (new identity keys under the old device id). Observed: as with the whole dir deleted,
/// the empty store resumes with an incremental sync and the bot believes it is in no room
/// (degraded, sends fail). Beyond that, reusing a device id with new keys breaks E2E (people's
/// clients keep the old keys). Fix: a missing store means a fresh login (drop session.json).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_messages_still_arrive_after_the_store_is_deleted() {
    encrypted_messages_arrive_after_losing(|bot| {
        std::fs::remove_dir_all(bot.state().join("store")).unwrap();
        assert!(bot.state().join("session.json").exists());
    })
    .await;
}

/// Docs: "Deleting that directory makes the bot log in again as a new device". It does, but the
/// new, empty store then resumed from the bridge's checkpoint with an *incremental* sync, which
/// carries no room state: the SDK did not know the bot is joined, health said "the bot is not
/// in !room: invite it" (it is), and `send` failed as fatal ("not in room"). Fixed: each run's
/// first sync brings full state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_messages_arrive_on_a_new_device_after_the_state_dir_is_deleted() {
    encrypted_messages_arrive_after_losing(|bot| std::fs::remove_dir_all(bot.state()).unwrap())
        .await;
}

/// Ann talks with the bot in an encrypted room; the bot is stopped, `lose` deletes some of its
/// state, the bot starts again from the bridge's checkpoint: Ann's next encrypted message
/// reaches it.
async fn encrypted_messages_arrive_after_losing(lose: impl FnOnce(&Bot)) {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot = Bot::register(&synapse);
    let room = ann.create_room(true, &[&bot.user]).await;
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, None);
    until("up", async || r.health() == Health::Up).await;
    until("ann sees the bot's device", async || {
        ann.knows_devices_of(&bot.user).await
    })
    .await;
    ann.say(&room, "one").await;
    assert_eq!(next(&mut r.rx).await.text, "one");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checkpoint = r.stop().await;
    drop(connector);
    lose(&bot);
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let mut r = run(&connector, checkpoint);
    until_within(45, "up after the restart", async || {
        r.health() == Health::Up
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ann.say(&room, "two").await;
    let ev = tokio::time::timeout(Duration::from_secs(20), r.rx.recv()).await;
    let health = r.health();
    assert_eq!(
        ev.ok().flatten().map(|e| e.text).as_deref(),
        Some("two"),
        "ann's encrypted message did not reach the bot (health: {health:?})"
    );
}

fn matrix_sdk_user(user: &str) -> matrix_sdk::ruma::OwnedUserId {
    matrix_sdk::ruma::OwnedUserId::try_from(user).unwrap()
}

/// After a restart (or a reconnect after an outage) the health stays `Starting` until the first
/// `/sync` returns, which in a quiet room is the full 30 s long poll: `status` shows nothing
/// useful meanwhile, and a reconnect after an outage is not shown as up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_of_a_resumed_run_is_known_before_the_long_poll_ends() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot = Bot::register(&synapse);
    let room = ann.create_room(false, &[&bot.user]).await;
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let r = run(&connector, None);
    until("up", async || r.health() == Health::Up).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checkpoint = r.stop().await;
    drop(connector);
    let connector = bot.connector(&synapse, &[&room], &[ann.user_id()]);
    let r = run(&connector, checkpoint);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        r.health(),
        Health::Up,
        "10 s after a restart in a quiet room"
    );
}
