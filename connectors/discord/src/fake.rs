//! A fake Discord for tests (feature `test-util`): the REST API and the gateway on 127.0.0.1,
//! enough of both for serenity's real code paths: `GET /gateway`, a websocket gateway (Hello,
//! Identify, READY, heartbeats, RESUME with replay), MESSAGE_CREATE and INTERACTION_CREATE
//! dispatches, channel history, and the REST calls the connector makes, all recorded. Outages are injectable: REST
//! failures (429 with retry-after, 5xx) and dropped gateway connections.

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The application (and bot user) id of the fake.
pub const APP_ID: u64 = 900_000_000_000_000_001;
/// The bot user's id.
pub const BOT_ID: u64 = 900_000_000_000_000_002;

/// One REST call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RestCall {
    /// HTTP method.
    pub method: String,
    /// Path (`/api/v10/channels/1/messages`).
    pub path: String,
    /// JSON body (`Null` when none).
    pub body: Value,
}

enum Outgoing {
    Dispatch(Value),
    Drop,
}

#[derive(Default)]
struct State_ {
    seq: u64,
    /// Every dispatch with its sequence number, for RESUME replay.
    dispatched: Vec<(u64, Value)>,
    /// Messages users deleted (by id): gone from history, unknown as reply targets.
    deleted: Vec<String>,
    connection: Option<mpsc::UnboundedSender<Outgoing>>,
    sessions: u32,
    identifies: Vec<Value>,
    resumes: Vec<Value>,
    calls: Vec<RestCall>,
    failures: VecDeque<(u16, f64)>,
    next_id: u64,
    /// When set, IDENTIFY without these intent bits is closed with 4014 (disallowed intents).
    allowed_intents: Option<u64>,
    /// When set, the only bot token accepted: REST answers others 401 and the gateway closes
    /// their IDENTIFY with 4004 (authentication failed), as Discord does.
    token: Option<String>,
}

/// A running fake Discord.
#[derive(Clone)]
pub struct FakeDiscord {
    /// Base URL for the connector's `api_base` (`http://127.0.0.1:PORT`).
    pub base: String,
    state: Arc<Mutex<State_>>,
}

type Shared = Arc<Mutex<State_>>;

impl FakeDiscord {
    /// Starts the fake on 127.0.0.1 on a free port (call from a tokio runtime).
    pub async fn start() -> FakeDiscord {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Shared = Arc::new(Mutex::new(State_ {
            next_id: 1_300_000_000_000_000_000,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/gateway", axum::routing::get(upgrade))
            .fallback(handle)
            .with_state((state.clone(), base.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeDiscord { base, state }
    }

    fn snowflake(&self) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        s.next_id
    }

    fn dispatch(&self, kind: &str, data: Value) {
        let mut s = self.state.lock().unwrap();
        s.seq += 1;
        let seq = s.seq;
        let payload = json!({ "op": 0, "s": seq, "t": kind, "d": data });
        s.dispatched.push((seq, payload.clone()));
        if let Some(conn) = &s.connection {
            let _ = conn.send(Outgoing::Dispatch(payload));
        }
    }

    /// A user posts `text` in `channel` of `guild`; returns the message id.
    pub fn message(
        &self,
        guild: u64,
        channel: u64,
        user: u64,
        username: &str,
        bot: bool,
        text: &str,
    ) -> u64 {
        let id = self.snowflake();
        self.dispatch(
            "MESSAGE_CREATE",
            json!({
                "id": id.to_string(), "channel_id": channel.to_string(), "guild_id": guild.to_string(),
                "author": user_json(user, username, bot), "content": text,
                "timestamp": "2026-11-24T09:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
                "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": false, "type": 0
            }),
        );
        id
    }

    /// A user runs `/fleet SUB` with `options` (`name -> string or bool`) in `channel`; returns
    /// the interaction id.
    pub fn slash(
        &self,
        guild: u64,
        channel: u64,
        user: u64,
        username: &str,
        sub: &str,
        options: &[(&str, Value)],
    ) -> u64 {
        let id = self.snowflake();
        let opts: Vec<Value> = options
            .iter()
            .map(|(n, v)| json!({ "name": n, "type": if v.is_boolean() { 5 } else { 3 }, "value": v }))
            .collect();
        self.dispatch(
            "INTERACTION_CREATE",
            json!({
                "id": id.to_string(), "application_id": APP_ID.to_string(), "type": 2,
                "data": { "id": "1000", "name": "fleet", "type": 1, "options": [{ "name": sub, "type": 1, "options": opts }] },
                "guild_id": guild.to_string(), "channel_id": channel.to_string(),
                "member": { "user": user_json(user, username, false), "roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00",
                            "deaf": false, "mute": false, "flags": 0, "permissions": "0" },
                "token": format!("itoken-{id}"), "version": 1, "locale": "en-US", "entitlements": [],
                "attachment_size_limit": 8388608, "app_permissions": "0"
            }),
        );
        id
    }

    /// A user deletes message `id`.
    pub fn delete_message(&self, id: u64) {
        self.state.lock().unwrap().deleted.push(id.to_string());
    }

    /// Drops the gateway connection abruptly (the client should resume).
    pub fn drop_gateway(&self) {
        let conn = self.state.lock().unwrap().connection.take();
        if let Some(c) = conn {
            let _ = c.send(Outgoing::Drop);
        }
    }

    /// The next `n` REST posts of messages fail with `status` (429 carries `retry_after` seconds).
    pub fn fail_next_posts(&self, n: usize, status: u16, retry_after: f64) {
        self.state
            .lock()
            .unwrap()
            .failures
            .extend(std::iter::repeat_n((status, retry_after), n));
    }

    /// Refuse IDENTIFY (close 4014) unless the intents include `bits`.
    pub fn require_intents(&self, bits: u64) {
        self.state.lock().unwrap().allowed_intents = Some(bits);
    }

    /// Accept only the bot token `token` (any other is refused, as a reset token would be).
    pub fn only_token(&self, token: &str) {
        self.state.lock().unwrap().token = Some(token.to_owned());
    }

    /// Every REST call so far.
    pub fn calls(&self) -> Vec<RestCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Texts of messages the bot posted in `channel` (not counting refused attempts).
    pub fn posted(&self, channel: u64) -> Vec<String> {
        let path = format!("/api/v10/channels/{channel}/messages");
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST" && c.path == path && c.body["__status"].is_null())
            .filter_map(|c| c.body["content"].as_str().map(str::to_owned))
            .collect()
    }

    /// Follow-up texts posted for interaction tokens.
    pub fn followups(&self) -> Vec<(String, String)> {
        self.calls()
            .into_iter()
            .filter(|c| {
                c.method == "POST"
                    && c.path.starts_with("/api/v10/webhooks/")
                    && c.body["__status"].is_null()
            })
            .map(|c| {
                (
                    c.path.rsplit('/').next().unwrap_or_default().to_owned(),
                    c.body["content"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// How many IDENTIFYs and RESUMEs the gateway got.
    pub fn sessions(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.identifies.len(), s.resumes.len())
    }

    /// The intents of the last IDENTIFY.
    pub fn identified_intents(&self) -> Option<u64> {
        self.state
            .lock()
            .unwrap()
            .identifies
            .last()
            .and_then(|i| i["intents"].as_u64())
    }
}

fn user_json(id: u64, name: &str, bot: bool) -> Value {
    json!({ "id": id.to_string(), "username": name, "discriminator": "0", "global_name": null, "avatar": null, "bot": bot })
}

fn message_json(id: u64, channel: &str, content: &str) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel, "author": user_json(BOT_ID, "mos", true), "content": content,
        "timestamp": "2026-11-24T09:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0
    })
}

async fn upgrade(State((state, base)): State<(Shared, String)>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| gateway(socket, state, base))
}

async fn handle(State((state, base)): State<(Shared, String)>, request: Request) -> Response {
    let expected = state.lock().unwrap().token.clone();
    // Get Gateway is the one route that needs no token (Discord's docs).
    let open_route = request.uri().path() == "/api/v10/gateway";
    if let Some(token) = expected.filter(|_| !open_route) {
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if given != format!("Bot {token}") {
            // Discord's answer to a bad token.
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "message": "401: Unauthorized", "code": 0 })),
            )
                .into_response();
        }
    }
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let param = |key: &str| -> Option<u64> {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    let after = param("after").unwrap_or(0);
    // Discord: `limit` 1-100, default 50.
    let limit = param("limit").unwrap_or(50).clamp(1, 100) as usize;
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let ws_url = format!("{}/gateway", base.replace("http://", "ws://"));
    let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    let posts_message = method == "POST"
        && ((parts.len() == 3 && parts[0] == "channels" && parts[2] == "messages")
            || parts[0] == "webhooks");
    let failure = if posts_message {
        state.lock().unwrap().failures.pop_front()
    } else {
        None
    };
    if let Some((status, retry_after)) = failure {
        if let Value::Object(map) = &mut body {
            map.insert("__status".into(), json!(status));
        }
        state
            .lock()
            .unwrap()
            .calls
            .push(RestCall { method, path, body });
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let error = if status == 429 {
            // Discord's rate limit response: no `code` (it is only there "for some limits").
            json!({ "message": "You are being rate limited.", "retry_after": retry_after, "global": false })
        } else {
            json!({ "message": "Internal Server Error", "code": 0 })
        };
        let mut response = (code, axum::Json(error)).into_response();
        if status == 429 {
            // The header is whole seconds (HTTP's Retry-After); the body has the precise wait.
            response.headers_mut().insert(
                "retry-after",
                retry_after.ceil().to_string().parse().expect("header"),
            );
        }
        return response;
    }
    state.lock().unwrap().calls.push(RestCall {
        method: method.clone(),
        path: path.clone(),
        body: body.clone(),
    });
    let next_id = || {
        let mut s = state.lock().unwrap();
        s.next_id += 1;
        s.next_id
    };
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["gateway"]) => axum::Json(json!({ "url": ws_url })).into_response(),
        ("GET", ["gateway", "bot"]) => axum::Json(json!({
            "url": ws_url, "shards": 1,
            "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 }
        }))
        .into_response(),
        // Channel history, newest first, as Discord answers it (without guild_id).
        // With `after`: the `limit` messages right after it, answered newest first.
        ("GET", ["channels", channel, "messages"]) => {
            let s = state.lock().unwrap();
            let mut history: Vec<Value> = s
                .dispatched
                .iter()
                .filter(|(_, p)| p["t"] == "MESSAGE_CREATE" && p["d"]["channel_id"] == *channel)
                .filter(|(_, p)| !s.deleted.iter().any(|d| p["d"]["id"] == *d))
                .map(|(_, p)| {
                    let mut m = p["d"].clone();
                    m.as_object_mut().expect("an object").remove("guild_id");
                    m
                })
                .filter(|m| m["id"].as_str().and_then(|id| id.parse::<u64>().ok()).is_some_and(|id| id > after))
                .take(limit)
                .collect();
            history.reverse();
            axum::Json(Value::Array(history)).into_response()
        }
        ("POST", ["channels", channel, "messages"]) => {
            // A reply to a message that is not there is refused unless the request says
            // `fail_if_not_exists: false` (then it is posted as a plain message).
            let reference = &body["message_reference"];
            if let Some(id) = reference["message_id"].as_str() {
                let mut s = state.lock().unwrap();
                let known = s.dispatched.iter().any(|(_, p)| p["t"] == "MESSAGE_CREATE" && p["d"]["id"] == id)
                    && !s.deleted.iter().any(|d| d == id);
                if !known && reference["fail_if_not_exists"] != json!(false) {
                    if let Some(call) = s.calls.last_mut() {
                        call.body["__status"] = json!(400);
                    }
                    let error = json!({
                        "message": "Invalid Form Body", "code": 50035,
                        "errors": { "message_reference": { "_errors": [{ "code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message" }] } }
                    });
                    return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
                }
            }
            axum::Json(message_json(next_id(), channel, body["content"].as_str().unwrap_or_default())).into_response()
        }
        ("PUT", ["channels", _, "messages", _, "reactions", _, "@me"]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["channels", _, "typing"]) => StatusCode::NO_CONTENT.into_response(),
        ("PUT", ["applications", app, "guilds", guild, "commands"]) => {
            let commands: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut c| {
                    c["id"] = json!(next_id().to_string());
                    c["application_id"] = json!(app);
                    c["guild_id"] = json!(guild);
                    c["version"] = json!("1");
                    c["type"] = c.get("type").cloned().unwrap_or(json!(1));
                    c["default_member_permissions"] = Value::Null;
                    c
                })
                .collect();
            axum::Json(Value::Array(commands)).into_response()
        }
        ("POST", ["interactions", _, _, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["webhooks", _, _]) => axum::Json(message_json(next_id(), "1", body["content"].as_str().unwrap_or_default())).into_response(),
        _ => (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "404: Not Found", "code": 0 }))).into_response(),
    }
}

async fn gateway(mut socket: WebSocket, state: Shared, base: String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    state.lock().unwrap().connection = Some(tx);
    let hello = json!({ "op": 10, "d": { "heartbeat_interval": 45000 } });
    if socket
        .send(WsMessage::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outgoing::Dispatch(p)) => {
                    if socket.send(WsMessage::Text(p.to_string().into())).await.is_err() {
                        return;
                    }
                }
                // Dropping the socket without a close frame: an abrupt disconnect.
                Some(Outgoing::Drop) | None => return,
            },
            incoming = socket.recv() => {
                let Some(Ok(WsMessage::Text(text))) = incoming else {
                    match incoming {
                        Some(Ok(_)) => continue,
                        _ => return,
                    }
                };
                let Ok(msg) = serde_json::from_str::<Value>(&text) else { continue };
                match msg["op"].as_u64() {
                    Some(1) => {
                        let _ = socket.send(WsMessage::Text(json!({ "op": 11 }).to_string().into())).await;
                    }
                    Some(2) => {
                        let intents = msg["d"]["intents"].as_u64().unwrap_or(0);
                        let (refuse, bad_token) = {
                            let mut s = state.lock().unwrap();
                            s.identifies.push(msg["d"].clone());
                            let given = msg["d"]["token"].as_str().unwrap_or_default();
                            (
                                s.allowed_intents.is_some_and(|need| intents & need != need),
                                s.token.as_ref().is_some_and(|t| given.trim_start_matches("Bot ") != t),
                            )
                        };
                        if bad_token {
                            let frame = axum::extract::ws::CloseFrame { code: 4004, reason: "Authentication failed.".into() };
                            let _ = socket.send(WsMessage::Close(Some(frame))).await;
                            return;
                        }
                        if refuse {
                            let frame = axum::extract::ws::CloseFrame { code: 4014, reason: "Disallowed intent(s).".into() };
                            let _ = socket.send(WsMessage::Close(Some(frame))).await;
                            return;
                        }
                        let session = {
                            let mut s = state.lock().unwrap();
                            s.sessions += 1;
                            s.sessions
                        };
                        let ready = json!({
                            "v": 10, "user": user_json(BOT_ID, "mos", true), "guilds": [],
                            "session_id": format!("session-{session}"),
                            "resume_gateway_url": format!("{}/gateway", base.replace("http://", "ws://")),
                            "shard": [0, 1], "application": { "id": APP_ID.to_string(), "flags": 0 }
                        });
                        let payload = {
                            let mut s = state.lock().unwrap();
                            s.seq += 1;
                            json!({ "op": 0, "s": s.seq, "t": "READY", "d": ready })
                        };
                        if socket.send(WsMessage::Text(payload.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                    Some(6) => {
                        let from = msg["d"]["seq"].as_u64().unwrap_or(0);
                        let replay: Vec<Value> = {
                            let mut s = state.lock().unwrap();
                            s.resumes.push(msg["d"].clone());
                            s.dispatched.iter().filter(|(seq, _)| *seq > from).map(|(_, p)| p.clone()).collect()
                        };
                        for p in replay {
                            if socket.send(WsMessage::Text(p.to_string().into())).await.is_err() {
                                return;
                            }
                        }
                        let resumed = {
                            let mut s = state.lock().unwrap();
                            s.seq += 1;
                            json!({ "op": 0, "s": s.seq, "t": "RESUMED", "d": {} })
                        };
                        let _ = socket.send(WsMessage::Text(resumed.to_string().into())).await;
                    }
                    _ => {}
                }
            }
        }
    }
}
