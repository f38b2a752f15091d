#![recursion_limit = "256"]
//! The Matrix connector against a real Synapse (private, on 127.0.0.1): the shared compliance
//! suite, threads and replies, invitations, encrypted rooms with a second matrix-sdk client as
//! the human, and undecryptable messages reported.

use async_trait::async_trait;
use mosaic_connector::compliance::{Platform, context, run_suite};
use mosaic_connector::{Connector, Health, Inbound, Outbound, ReplyTo};
use mosaic_matrix::synapse::{FaultProxy, Person, Synapse};
use mosaic_matrix::{Login, MatrixConfig, MatrixConnector, TEXT_ONLY};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !ok().await {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bot(
    synapse: &Synapse,
    homeserver: &str,
    rooms: &[&str],
    inviters: &[String],
) -> (Arc<MatrixConnector>, String, tempfile::TempDir) {
    let (user, password) = synapse.user("mosaic");
    let dir = tempfile::tempdir().unwrap();
    let connector = Arc::new(MatrixConnector::new(MatrixConfig {
        id: "matrix".into(),
        homeserver: homeserver.to_owned(),
        user: user.clone(),
        login: Login::Password(password),
        rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        inviters: inviters.to_vec(),
        dir: dir.path().join("connectors/matrix"),
    }));
    (connector, user, dir)
}

struct Running {
    rx: mpsc::Receiver<Inbound>,
    health: watch::Receiver<Health>,
    _stop: watch::Sender<bool>,
}

fn run(c: &Arc<MatrixConnector>) -> Running {
    let (tx, rx) = mpsc::channel(64);
    let (ctx, health, stop) = context(tx, Vec::new());
    let runner = c.clone();
    tokio::spawn(async move { runner.run(ctx).await });
    Running {
        rx,
        health,
        _stop: stop,
    }
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .expect("open")
}

struct MatrixPlatform {
    connector: Arc<MatrixConnector>,
    human: Person,
    bot: String,
    room: String,
    proxy: FaultProxy,
}

#[async_trait]
impl Platform for MatrixPlatform {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }
    fn room(&self) -> String {
        self.room.clone()
    }
    fn user(&self) -> String {
        self.human.user_id()
    }
    async fn post(&self, room: &str, _user: &str, text: &str) -> String {
        self.human.say(room, text).await
    }
    async fn posted(&self, room: &str) -> Vec<String> {
        // What the bot said has reached the human's client once its sync saw it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.human
            .seen_from(room, &self.bot)
            .into_iter()
            .filter(|s| s.reacts_to.is_none())
            .map(|s| s.body)
            .collect()
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        for _ in 0..100 {
            if self
                .human
                .seen_from(room, &self.bot)
                .iter()
                .any(|s| s.reacts_to.as_deref() == Some(message_id) && s.body == "👀")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
    async fn fail_next_posts(&self, n: usize) {
        self.proxy.fail_next_sends(n as u32);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_connector_is_compliant_on_a_real_homeserver() {
    let synapse = Synapse::start();
    let proxy = FaultProxy::start(&synapse.url).await;
    let human = Person::login(&synapse, "ann").await;
    let (connector, bot_user, _dir) = bot(&synapse, &proxy.url, &[], &[human.user_id()]);
    let room = human.create_room(false, &[&bot_user]).await;
    // The bot's rooms are known only now: build it again with the room.
    let connector = Arc::new(MatrixConnector::new(MatrixConfig {
        rooms: vec![room.clone()],
        ..connector.config().clone()
    }));
    let platform = MatrixPlatform {
        connector,
        human,
        bot: bot_user,
        room,
        proxy,
    };
    run_suite(&platform).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_replies_invitations_and_files_in_a_plain_room() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let mallory = Person::login(&synapse, "mallory").await;
    let (bot_user, _) = (format!("@mosaic:{}", synapse.server_name), ());
    let room = ann.create_room(false, &[&bot_user]).await;
    let strangers_room = mallory.create_room(false, &[&bot_user]).await;
    let (connector, _, _dir) = bot(
        &synapse,
        &synapse.url,
        &[&room, &strangers_room],
        &[ann.user_id()],
    );
    let mut r = run(&connector);
    until("the bot joined ann's room", async || {
        *r.health.borrow() == Health::Up
            || matches!(&*r.health.borrow(), Health::Degraded(d) if d.contains(&strangers_room) && !d.contains(&room))
    })
    .await;
    // A stranger's invitation, even to a bridged room, is not accepted.
    let Health::Degraded(why) = r.health.borrow().clone() else {
        panic!("the stranger's room is missing: {:?}", r.health.borrow())
    };
    assert!(
        why.contains("invite it from an account in the acl"),
        "{why}"
    );

    // A message, then one in a thread: the thread is the root event.
    let first = ann.say(&room, "!fleet status").await;
    let ev = next(&mut r.rx).await;
    assert_eq!(
        (
            ev.message_id.as_str(),
            ev.text.as_str(),
            ev.user.as_str(),
            ev.thread.as_deref()
        ),
        (
            first.as_str(),
            "!fleet status",
            ann.user_id().as_str(),
            None
        )
    );
    let in_thread = ann
        .say_raw(
            &room,
            json!({"msgtype": "m.text", "body": "in the thread", "m.relates_to": {"rel_type": "m.thread", "event_id": first, "is_falling_back": true, "m.in_reply_to": {"event_id": first}}}),
        )
        .await;
    let ev = next(&mut r.rx).await;
    assert_eq!(ev.thread.as_deref(), Some(first.as_str()));
    assert_eq!(ev.text, "in the thread");
    // The answer goes into the thread, replying to the message, with its HTML.
    connector
        .send(&Outbound {
            room: room.clone(),
            text: "done".into(),
            html: Some("<b>done</b>".into()),
            reply_to: Some(ReplyTo::Message(in_thread.clone())),
            thread: Some(first.clone()),
            key: "k1".into(),
        })
        .await
        .unwrap();
    until("the threaded answer", async || {
        ann.seen_from(&room, &bot_user)
            .iter()
            .any(|s| s.body == "done")
    })
    .await;
    let answer = ann
        .seen_from(&room, &bot_user)
        .into_iter()
        .find(|s| s.body == "done")
        .unwrap();
    assert_eq!(answer.thread.as_deref(), Some(first.as_str()));
    assert_eq!(answer.reply_to.as_deref(), Some(in_thread.as_str()));
    assert_eq!(answer.html.as_deref(), Some("<b>done</b>"));
    // The same key is the same transaction: a retried send posts nothing new.
    connector
        .send(&Outbound {
            room: room.clone(),
            text: "done".into(),
            html: None,
            reply_to: None,
            thread: None,
            key: "k1".into(),
        })
        .await
        .unwrap();
    // A reply's quoted fallback is not part of the text; an edit and a notice are not messages.
    ann.say_raw(
        &room,
        json!({"msgtype": "m.text", "body": "> <@mosaic:localhost> done\n\nthanks", "m.relates_to": {"m.in_reply_to": {"event_id": answer.event_id}}}),
    )
    .await;
    assert_eq!(next(&mut r.rx).await.text, "thanks");
    ann.say_raw(&room, json!({"msgtype": "m.notice", "body": "a notice"}))
        .await;
    ann.say_raw(&room, json!({"msgtype": "m.text", "body": "* edited", "m.new_content": {"msgtype": "m.text", "body": "edited"}, "m.relates_to": {"rel_type": "m.replace", "event_id": first}})).await;
    // A file gets the text-only note and never reaches the bridge.
    let file = ann
        .say_raw(
            &room,
            json!({"msgtype": "m.file", "body": "notes.txt", "url": "mxc://localhost/abc"}),
        )
        .await;
    until("the text-only note", async || {
        ann.seen_from(&room, &bot_user)
            .iter()
            .any(|s| s.body == TEXT_ONLY && s.reply_to.as_deref() == Some(file.as_str()))
    })
    .await;
    ann.say(&room, "last").await;
    assert_eq!(next(&mut r.rx).await.text, "last", "nothing in between");
    assert_eq!(
        ann.seen_from(&room, &bot_user)
            .iter()
            .filter(|s| s.body == "done")
            .count(),
        1,
        "a retried transaction is not posted twice"
    );
    // Typing shows.
    connector.typing(&room, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_room_works_both_ways_and_an_undecryptable_message_is_reported() {
    let synapse = Synapse::start();
    let ann = Person::login(&synapse, "ann").await;
    let bot_user = format!("@mosaic:{}", synapse.server_name);
    let room = ann.create_room(true, &[&bot_user]).await;
    let (connector, _, _dir) = bot(&synapse, &synapse.url, &[&room], &[ann.user_id()]);
    let mut r = run(&connector);
    until("up", async || *r.health.borrow() == Health::Up).await;
    // Ann's client must see the bot's membership and device before it encrypts for it.
    until("ann sees the bot's device", async || {
        ann.knows_devices_of(&bot_user).await
    })
    .await;
    let id = ann.say(&room, "secret plans").await;
    let ev = next(&mut r.rx).await;
    assert_eq!(
        (ev.message_id.as_str(), ev.text.as_str()),
        (id.as_str(), "secret plans")
    );
    connector
        .send(&Outbound {
            room: room.clone(),
            text: "encrypted answer".into(),
            html: None,
            reply_to: Some(ReplyTo::Message(id.clone())),
            thread: None,
            key: "e1".into(),
        })
        .await
        .unwrap();
    until("ann decrypts the answer", async || {
        ann.seen_from(&room, &bot_user)
            .iter()
            .any(|s| s.body == "encrypted answer")
    })
    .await;

    // A message encrypted with a session the bot never received: reported, not green.
    let token = ann.client.access_token().unwrap();
    let url = format!(
        "{}/_matrix/client/v3/rooms/{}/send/m.room.encrypted/broken1",
        synapse.url, room
    );
    let body = json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg", "device_id": "NOTADEVICE", "sender_key": "Xjmc3Fi3hQvH4kK6/8fuVB1MF9B7x7Cfe2y6jN0XvDU", "session_id": "unknownsession0000000000000000000000000000000"});
    tokio::task::spawn_blocking(move || {
        ureq::put(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(body)
            .unwrap();
    })
    .await
    .unwrap();
    until(
        "health shows the decryption failure",
        async || matches!(&*r.health.borrow(), Health::Degraded(d) if d.contains("cannot decrypt")),
    )
    .await;
    until("the room is told", async || {
        ann.seen_from(&room, &bot_user)
            .iter()
            .any(|s| s.body.contains("I cannot decrypt the message"))
    })
    .await;
    // A message that decrypts again clears it.
    ann.say(&room, "readable again").await;
    assert_eq!(next(&mut r.rx).await.text, "readable again");
    until("up again", async || *r.health.borrow() == Health::Up).await;
}
