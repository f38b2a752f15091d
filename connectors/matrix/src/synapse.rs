//! TEST SUPPORT (feature `test-util`): a private Synapse on 127.0.0.1 for tests, made with
//! `deploy/matrix/homeserver.sh` (the recipe users run), SQLite in a temp dir, shared-secret
//! registration. The homeserver dies with the test process.

use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::events::reaction::OriginalSyncReactionEvent;
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, Relation, RoomMessageEventContent,
};
use matrix_sdk::ruma::{OwnedUserId, RoomId};
use matrix_sdk::{Client, Room};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running (or stopped) private Synapse.
pub struct Synapse {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its server name (`localhost`).
    pub server_name: String,
    dir: tempfile::TempDir,
    keeper: Option<Keeper>,
}

/// The thread that owns the Synapse process: the process is started with a parent-death
/// signal, which fires when the *thread* that started it ends, so that thread lives as long
/// as the homeserver should.
struct Keeper {
    stop: mpsc::Sender<()>,
    done: std::thread::JoinHandle<()>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/matrix/homeserver.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Synapse {
    /// Installs Synapse if needed (a minute, once per machine), writes a homeserver in a temp
    /// dir and starts it.
    pub fn start() -> Synapse {
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        let out = Command::new("bash")
            .arg(script())
            .args(["init"])
            .arg(dir.path())
            .args(["--port", &port.to_string(), "--for-tests"])
            .output()
            .expect("homeserver.sh runs");
        assert!(
            out.status.success(),
            "homeserver.sh init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut synapse = Synapse {
            url: format!("http://127.0.0.1:{port}"),
            server_name: "localhost".into(),
            dir,
            keeper: None,
        };
        synapse.resume();
        synapse
    }

    /// Starts the homeserver again after [`Synapse::stop`] (same data, same port).
    pub fn resume(&mut self) {
        assert!(self.keeper.is_none(), "already running");
        let (stop, stopped) = mpsc::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<()>();
        let dir = self.dir.path().to_owned();
        let done = std::thread::spawn(move || {
            let mut child: Child = Command::new("setpriv")
                .args(["--pdeathsig", "KILL", "--", "bash"])
                .arg(script())
                .arg("run")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("synapse starts");
            let _ = ready.send(());
            let _ = stopped.recv();
            let _ = child.kill();
            let _ = child.wait();
        });
        let _ = is_ready.recv();
        self.keeper = Some(Keeper { stop, done });
        let deadline = Instant::now() + Duration::from_secs(120);
        let versions = format!("{}/_matrix/client/versions", self.url);
        while ureq::get(&versions).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "synapse did not answer within 120 s; see {}",
                self.dir.path().join("homeserver.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the homeserver (kill), keeping its data.
    pub fn stop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.stop.send(());
            let _ = keeper.done.join();
        }
        // `run` execs Synapse under bash: wait until the port is free.
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.trim_start_matches("http://").to_owned();
        while std::net::TcpStream::connect(&addr).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Registers `name` (not an admin) and returns `(user id, password)`.
    pub fn user(&self, name: &str) -> (String, String) {
        let out = Command::new("bash")
            .arg(script())
            .arg("user")
            .arg(self.dir.path())
            .arg(name)
            .output()
            .expect("homeserver.sh runs");
        assert!(
            out.status.success(),
            "registering {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let password = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (format!("@{name}:{}", self.server_name), password)
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A proxy in front of a homeserver that passes every request through, except the message
/// sends it is told to fail (with 500, as a homeserver in trouble answers).
#[derive(Clone)]
pub struct FaultProxy {
    /// Its base URL, for the client under test.
    pub url: String,
    failures: std::sync::Arc<std::sync::Mutex<u32>>,
}

impl FaultProxy {
    /// A proxy to `upstream` on 127.0.0.1 on a free port (call from a tokio runtime).
    pub async fn start(upstream: &str) -> FaultProxy {
        use axum::body::{Body, to_bytes};
        use axum::extract::{Request, State};
        use axum::response::{IntoResponse, Response};
        type Shared = (
            String,
            reqwest::Client,
            std::sync::Arc<std::sync::Mutex<u32>>,
        );
        async fn pass(State((upstream, http, failures)): State<Shared>, req: Request) -> Response {
            let (parts, body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            if parts.method == axum::http::Method::PUT && path.contains("/send/m.room.message/") {
                let mut left = failures.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(serde_json::json!({"errcode": "M_UNKNOWN", "error": "injected failure"})),
                    )
                        .into_response();
                }
            }
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                return axum::http::StatusCode::BAD_REQUEST.into_response();
            };
            let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
                .unwrap_or(reqwest::Method::GET);
            let mut request = http
                .request(method, format!("{upstream}{path}"))
                .body(bytes.to_vec());
            for name in ["authorization", "content-type"] {
                if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
                    request = request.header(name, v);
                }
            }
            match request.send().await {
                Ok(response) => {
                    let status = axum::http::StatusCode::from_u16(response.status().as_u16())
                        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                    let body = response.bytes().await.unwrap_or_default();
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
                }
                Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let failures = std::sync::Arc::new(std::sync::Mutex::new(0));
        let app = axum::Router::new().fallback(pass).with_state((
            upstream.to_owned(),
            reqwest::Client::new(),
            failures.clone(),
        ));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultProxy { url, failures }
    }

    /// The next `n` message sends fail with 500.
    pub fn fail_next_sends(&self, n: u32) {
        *self.failures.lock().unwrap() += n;
    }
}

/// What a person's client saw in a room.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The room.
    pub room: String,
    /// Who said it.
    pub sender: String,
    /// Its event id.
    pub event_id: String,
    /// The plain body (for a reaction: its key).
    pub body: String,
    /// The HTML form, if any.
    pub html: Option<String>,
    /// The thread it is in.
    pub thread: Option<String>,
    /// What it replies to.
    pub reply_to: Option<String>,
    /// For a reaction: the event it reacts to.
    pub reacts_to: Option<String>,
}

/// A person on the homeserver, with their own matrix-sdk client (so encrypted rooms are real),
/// who sees what is said in their rooms.
pub struct Person {
    /// Their client.
    pub client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Person {
    /// Registers `name` and logs in; their client syncs in the background from now on.
    pub async fn login(synapse: &Synapse, name: &str) -> Person {
        let (user, password) = synapse.user(name);
        let client = Client::builder()
            .homeserver_url(&synapse.url)
            .build()
            .await
            .unwrap();
        client
            .matrix_auth()
            .login_username(&user, &password)
            .initial_device_display_name("human")
            .send()
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        {
            let seen = seen.clone();
            client.add_event_handler(move |ev: OriginalSyncRoomMessageEvent, room: Room| {
                let seen = seen.clone();
                async move {
                    let (thread, reply_to) = match &ev.content.relates_to {
                        Some(Relation::Thread(t)) => (
                            Some(t.event_id.to_string()),
                            t.in_reply_to.as_ref().map(|r| r.event_id.to_string()),
                        ),
                        Some(Relation::Reply(in_reply_to)) => {
                            (None, Some(in_reply_to.in_reply_to.event_id.to_string()))
                        }
                        _ => (None, None),
                    };
                    let html = match &ev.content.msgtype {
                        MessageType::Text(t) => t.formatted.as_ref().map(|f| f.body.clone()),
                        _ => None,
                    };
                    seen.lock().unwrap().push(Seen {
                        room: room.room_id().to_string(),
                        sender: ev.sender.to_string(),
                        event_id: ev.event_id.to_string(),
                        body: ev.content.body().to_owned(),
                        html,
                        thread,
                        reply_to,
                        reacts_to: None,
                    });
                }
            });
        }
        {
            let seen = seen.clone();
            client.add_event_handler(move |ev: OriginalSyncReactionEvent, room: Room| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(Seen {
                        room: room.room_id().to_string(),
                        sender: ev.sender.to_string(),
                        event_id: ev.event_id.to_string(),
                        body: ev.content.relates_to.key.clone(),
                        html: None,
                        thread: None,
                        reply_to: None,
                        reacts_to: Some(ev.content.relates_to.event_id.to_string()),
                    });
                }
            });
        }
        client.sync_once(SyncSettings::default()).await.unwrap();
        let syncing = client.clone();
        // Like a real client, keep syncing through homeserver outages.
        tokio::spawn(async move {
            loop {
                let _ = syncing.sync(SyncSettings::default()).await;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        Person { client, seen }
    }

    /// Their user id.
    pub fn user_id(&self) -> String {
        self.client.user_id().unwrap().to_string()
    }

    /// A new room (encrypted or not) with `invite` invited.
    pub async fn create_room(&self, encrypted: bool, invite: &[&str]) -> String {
        let mut request = matrix_sdk::ruma::api::client::room::create_room::v3::Request::new();
        request.invite = invite
            .iter()
            .map(|u| OwnedUserId::try_from(*u).unwrap())
            .collect();
        if encrypted {
            request.initial_state = vec![
                matrix_sdk::ruma::serde::Raw::from_json_string(
                    r#"{"type":"m.room.encryption","state_key":"","content":{"algorithm":"m.megolm.v1.aes-sha2"}}"#.into(),
                )
                .unwrap(),
            ];
        }
        let room = self.client.create_room(request).await.unwrap();
        room.room_id().to_string()
    }

    /// ADVERSARIAL TEST SUPPORT: a new public, unencrypted room carrying the alias
    /// `#ALIAS_LOCALPART:SERVER` (what a stranger squatting an alias would make).
    pub async fn create_public_room_with_alias(&self, alias_localpart: &str) -> String {
        use matrix_sdk::ruma::api::client::room::Visibility;
        use matrix_sdk::ruma::api::client::room::create_room::v3::{Request, RoomPreset};
        let mut request = Request::new();
        request.room_alias_name = Some(alias_localpart.to_owned());
        request.name = Some(format!("squatted {alias_localpart}"));
        request.preset = Some(RoomPreset::PublicChat);
        request.visibility = Visibility::Private;
        let room = self.client.create_room(request).await.unwrap();
        room.room_id().to_string()
    }

    /// One of their rooms.
    pub fn room(&self, room: &str) -> Room {
        self.client
            .get_room(&RoomId::parse(room).unwrap())
            .expect("the human is in the room")
    }

    /// Says `body` in `room`; returns the event id.
    pub async fn say(&self, room: &str, body: &str) -> String {
        let r = self.room(room);
        r.send(RoomMessageEventContent::text_plain(body))
            .await
            .unwrap()
            .response
            .event_id
            .to_string()
    }

    /// Sends raw message content; returns the event id.
    pub async fn say_raw(&self, room: &str, content: serde_json::Value) -> String {
        self.room(room)
            .send_raw("m.room.message", content)
            .await
            .unwrap()
            .response
            .event_id
            .to_string()
    }

    /// Invites `user` to `room`.
    pub async fn invite(&self, room: &str, user: &str) {
        self.room(room)
            .invite_user_by_id(&OwnedUserId::try_from(user).unwrap())
            .await
            .unwrap();
    }

    /// Joins `room` once invited; `false` while the invitation has not arrived.
    pub async fn join(&self, room: &str) -> bool {
        match self.client.get_room(&RoomId::parse(room).unwrap()) {
            Some(r) => r.join().await.is_ok(),
            None => false,
        }
    }

    /// The room this person is invited to (and not yet in) whose name is `name`, if any.
    pub fn invited_to(&self, name: &str) -> Option<String> {
        self.client
            .invited_rooms()
            .into_iter()
            .find(|room| room.name().as_deref() == Some(name))
            .map(|room| room.room_id().to_string())
    }

    /// `user`'s membership in `room` (`join`, `invite`, …) as this person's client knows it.
    pub async fn membership(&self, room: &str, user: &str) -> Option<String> {
        self.room(room)
            .get_member_no_sync(&OwnedUserId::try_from(user).unwrap())
            .await
            .ok()
            .flatten()
            .map(|m| m.membership().to_string())
    }

    /// Whether this person's client knows a device of `user` (it encrypts for known devices).
    pub async fn knows_devices_of(&self, user: &str) -> bool {
        self.client
            .encryption()
            .get_user_devices(&OwnedUserId::try_from(user).unwrap())
            .await
            .map(|d| d.devices().count() > 0)
            .unwrap_or(false)
    }

    /// What `sender` said in `room`, oldest first.
    pub fn seen_from(&self, room: &str, sender: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.room == room && s.sender == sender)
            .cloned()
            .collect()
    }
}
