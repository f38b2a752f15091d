//! A fake Slack for tests (feature `test-util`), on 127.0.0.1, built from Slack's published
//! wire formats: the Web API methods the connector calls (`POST`/`GET /api/METHOD`, JSON or
//! form bodies, the token as `Authorization: Bearer` or a `token` parameter, HTTP 200 with
//! `{"ok": false, "error": CODE}` on failure, HTTP 429 with `Retry-After`), slash commands'
//! `response_url`s, and Socket Mode: `apps.connections.open` (app token only) hands out a
//! `ws://` URL whose socket says `hello`, carries envelopes, expects an ack for each (events
//! not acked within 3 s are sent again with `retry_attempt` and `retry_reason: "timeout"`),
//! sends `disconnect` frames and pings on command. Every call, ack and connection is recorded.
//!
//! Model choices where Slack's docs say nothing: an event is delivered on the newest open
//! connection that was not asked to leave (or, when there is none, on one that was); with no
//! connection at all it is not delivered (the message stays in history). Thread replies are not
//! part of `conversations.history`, as on Slack.

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The bot token the fake accepts for the Web API.
pub const BOT_TOKEN: &str = "xoxb-1111111111-2222222222-faketokenfortestsonly";
/// The app-level token the fake accepts for `apps.connections.open`.
pub const APP_TOKEN: &str = "xapp-1-A0FAKEAPP-3333333333-faketokenfortestsonly";
/// The bot's user id.
pub const BOT_USER: &str = "U0MOSAICBOT";
/// The bot's bot id.
pub const BOT_ID: &str = "B0MOSAICBOT";
/// The workspace id.
pub const TEAM: &str = "T0FAKETEAM";
/// The app id.
pub const APP_ID: &str = "A0FAKEAPP";
/// How long Slack waits for an envelope's ack before sending it again.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);

/// One Web API call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method (`chat.postMessage`).
    pub method: String,
    /// The token it carried.
    pub token: Option<String>,
    /// Its parameters (query, form or JSON body, merged), as JSON.
    pub params: Value,
    /// Whether it was answered `ok`.
    pub ok: bool,
}

/// A refusal the fake gives instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429 with `Retry-After` in seconds and `{"ok":false,"error":"ratelimited"}`.
    RateLimited(u64),
    /// An HTTP status (5xx) with no Slack body.
    Status(u16),
    /// HTTP 200 with `{"ok": false, "error": CODE}`.
    Error(&'static str),
}

/// A connection event, in order: `open N`, `close N by client`, `close N by slack`.
pub type Timeline = Vec<String>;

enum Outgoing {
    Text(String),
    /// Go silent: no frame out, no frame read (so no pong), socket kept open.
    Ghost,
    Close,
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Outgoing>,
    leaving: bool,
    ghost: bool,
}

struct Envelope {
    id: String,
    frame: Value,
    sent: Instant,
    acked: Option<Instant>,
    attempts: u32,
    retry: bool,
}

#[derive(Default)]
struct State_ {
    calls: Vec<Call>,
    /// Messages per channel, oldest first.
    history: HashMap<String, Vec<Value>>,
    clock: u64,
    failures: HashMap<String, VecDeque<Failure>>,
    conns: Vec<Conn>,
    conn_seq: u64,
    tickets: Vec<String>,
    timeline: Timeline,
    envelopes: Vec<Envelope>,
    /// Posts to response URLs: (command id, body).
    responses: Vec<(String, Value)>,
    response_uses: HashMap<String, u32>,
    /// `num_connections` reported on top of the fake's own (another program on the app token).
    other_connections: u64,
}

type Shared = Arc<Mutex<State_>>;

/// A running fake Slack.
#[derive(Clone)]
pub struct FakeSlack {
    /// The Web API base for the connector (`http://127.0.0.1:PORT/api`).
    pub api_base: String,
    base: String,
    state: Shared,
}

impl FakeSlack {
    /// Starts the fake on a free port of 127.0.0.1 (call from a tokio runtime); it pings each
    /// connection every 5 s.
    pub async fn start() -> FakeSlack {
        Self::start_with_pings(Duration::from_secs(5)).await
    }

    /// Starts the fake, pinging each connection every `ping`.
    pub async fn start_with_pings(ping: Duration) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state: Shared = Arc::new(Mutex::new(State_ {
            clock: 1_700_000_000_000_000,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/api/{method}", axum::routing::any(api))
            .route("/link/", axum::routing::get(link))
            .route("/commands/{id}", axum::routing::post(command_response))
            .with_state((state.clone(), base.clone(), ping));
        tokio::spawn(async move { axum::serve(listener, app).await });
        tokio::spawn(redeliver(Arc::downgrade(&state)));
        FakeSlack {
            api_base: format!("{base}/api"),
            base,
            state,
        }
    }

    fn next_ts(&self) -> String {
        next_ts(&mut self.state.lock().unwrap())
    }

    /// A user posts `text` in `channel`; returns the message's `ts`.
    pub fn message(&self, channel: &str, user: &str, text: &str) -> String {
        self.user_message(channel, user, text, None, true)
    }

    /// A user replies `text` in the thread `thread_ts` of `channel`; returns the reply's `ts`.
    pub fn reply_in_thread(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread_ts: &str,
    ) -> String {
        self.user_message(channel, user, text, Some(thread_ts), true)
    }

    /// A user posts `text` while no program is connected: it is in history only.
    pub fn message_unseen(&self, channel: &str, user: &str, text: &str) -> String {
        self.user_message(channel, user, text, None, false)
    }

    fn user_message(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread: Option<&str>,
        push: bool,
    ) -> String {
        let ts = self.next_ts();
        let mut message =
            json!({ "type": "message", "user": user, "text": text, "ts": ts, "team": TEAM });
        if let Some(t) = thread {
            message["thread_ts"] = json!(t);
        }
        self.store(channel, &message);
        if push {
            let mut event = message.clone();
            event["channel"] = json!(channel);
            event["channel_type"] = json!(channel_type(channel));
            event["event_ts"] = json!(ts);
            self.event(event);
        }
        ts
    }

    /// A user mentions the bot (`<@BOT> text`) in `channel`: Slack sends both an `app_mention`
    /// and a `message` event for it. Returns the `ts`.
    pub fn mention(&self, channel: &str, user: &str, text: &str) -> String {
        let ts = self.next_ts();
        let text = format!("<@{BOT_USER}> {text}");
        let message =
            json!({ "type": "message", "user": user, "text": text, "ts": ts, "team": TEAM });
        self.store(channel, &message);
        let mut event = message.clone();
        event["channel"] = json!(channel);
        event["event_ts"] = json!(ts);
        event["type"] = json!("app_mention");
        self.event(event.clone());
        event["type"] = json!("message");
        event["channel_type"] = json!(channel_type(channel));
        self.event(event);
        ts
    }

    /// Another app's bot posts `text` in `channel`.
    pub fn bot_message(&self, channel: &str, text: &str) -> String {
        let ts = self.next_ts();
        let message = json!({ "type": "message", "subtype": "bot_message", "bot_id": "B0OTHERBOT", "text": text, "ts": ts });
        self.store(channel, &message);
        let mut event = message;
        event["channel"] = json!(channel);
        self.event(event);
        ts
    }

    /// A user edits message `ts` of `channel` (a `message_changed` event).
    pub fn edit(&self, channel: &str, user: &str, ts: &str, text: &str) {
        let now = self.next_ts();
        self.event(json!({
            "type": "message", "subtype": "message_changed", "hidden": true, "channel": channel, "ts": now,
            "message": { "type": "message", "user": user, "text": text, "ts": ts, "edited": { "user": user, "ts": now } },
            "previous_message": { "type": "message", "user": user, "ts": ts }
        }));
    }

    fn store(&self, channel: &str, message: &Value) {
        self.state
            .lock()
            .unwrap()
            .history
            .entry(channel.to_owned())
            .or_default()
            .push(message.clone());
    }

    /// Sends an `events_api` envelope carrying `event`; returns its envelope id.
    pub fn event(&self, event: Value) -> String {
        let mut s = self.state.lock().unwrap();
        let n = s.envelopes.len() + 1;
        let envelope_id = format!("env-{n:06}");
        let frame = json!({
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": {
                "token": "verification-token", "team_id": TEAM, "api_app_id": APP_ID,
                "event": event, "type": "event_callback", "event_id": format!("Ev{n:08}"),
                "event_time": 1_700_000_000 + n, "authorizations": [{ "team_id": TEAM, "user_id": BOT_USER, "is_bot": true }]
            }
        });
        send_envelope(&mut s, &envelope_id, frame, true);
        envelope_id
    }

    /// A user runs `/fleet TEXT` in `channel`; returns the command's id (its response URL is
    /// `…/commands/ID`).
    pub fn slash(&self, channel: &str, user: &str, user_name: &str, text: &str) -> String {
        let mut s = self.state.lock().unwrap();
        let n = s.envelopes.len() + 1;
        let id = format!("cmd{n}");
        let envelope_id = format!("env-{n:06}");
        let frame = json!({
            "envelope_id": envelope_id,
            "type": "slash_commands",
            "accepts_response_payload": true,
            "payload": {
                "token": "verification-token", "team_id": TEAM, "team_domain": "fake",
                "channel_id": channel, "channel_name": "general", "user_id": user, "user_name": user_name,
                "command": "/fleet", "text": text, "api_app_id": APP_ID, "is_enterprise_install": "false",
                "response_url": format!("{}/commands/{id}", self.base), "trigger_id": format!("{n}.1234.abcd")
            }
        });
        send_envelope(&mut s, &envelope_id, frame, false);
        id
    }

    /// Sends `{"type":"disconnect","reason":REASON}` on the newest connection, which is then
    /// leaving (Slack closes it itself after `close_after`, if the client has not).
    pub fn disconnect(&self, reason: &str, close_after: Duration) {
        let (tx, id) = {
            let mut s = self.state.lock().unwrap();
            let Some(c) = s.conns.iter_mut().rev().find(|c| !c.leaving && !c.ghost) else {
                return;
            };
            c.leaving = true;
            (c.tx.clone(), c.id)
        };
        let frame = json!({ "type": "disconnect", "reason": reason, "debug_info": { "host": format!("wss-{id}.fake") } });
        let _ = tx.send(Outgoing::Text(frame.to_string()));
        tokio::spawn(async move {
            tokio::time::sleep(close_after).await;
            let _ = tx.send(Outgoing::Close);
        });
    }

    /// Makes the newest connection a ghost: open, but nothing is sent on it any more and nothing
    /// read from it (pings go unanswered).
    pub fn ghost(&self) {
        let mut s = self.state.lock().unwrap();
        if let Some(c) = s.conns.iter_mut().rev().find(|c| !c.ghost) {
            c.ghost = true;
            let _ = c.tx.send(Outgoing::Ghost);
        }
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        for c in &self.state.lock().unwrap().conns {
            let _ = c.tx.send(Outgoing::Close);
        }
    }

    /// Reports `n` more connections in `hello` than the fake has (another program on the token).
    pub fn other_connections(&self, n: u64) {
        self.state.lock().unwrap().other_connections = n;
    }

    /// The next `n` calls of `method` fail with `failure`.
    pub fn fail_next(&self, method: &str, failure: Failure, n: usize) {
        self.state
            .lock()
            .unwrap()
            .failures
            .entry(method.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(failure, n));
    }

    /// Every Web API call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The successful calls of `method`.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.ok)
            .collect()
    }

    /// The messages the bot posted in `channel` (chat.postMessage parameters), oldest first.
    pub fn posts(&self, channel: &str) -> Vec<Value> {
        self.calls_of("chat.postMessage")
            .into_iter()
            .map(|c| c.params)
            .filter(|p| p["channel"] == channel)
            .collect()
    }

    /// The texts the bot posted in `channel`, oldest first.
    pub fn posted(&self, channel: &str) -> Vec<String> {
        self.posts(channel)
            .iter()
            .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Whether the bot reacted to message `ts` of `channel` (with any emoji).
    pub fn reacted(&self, channel: &str, ts: &str) -> Option<String> {
        self.calls_of("reactions.add")
            .into_iter()
            .find(|c| c.params["channel"] == channel && c.params["timestamp"] == ts)
            .map(|c| c.params["name"].as_str().unwrap_or_default().to_owned())
    }

    /// Posts to response URLs, as `(command id, body)`.
    pub fn responses(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().responses.clone()
    }

    /// Each envelope sent with how long its ack took (`None`: not acked).
    pub fn acks(&self) -> Vec<(String, Option<Duration>)> {
        self.state
            .lock()
            .unwrap()
            .envelopes
            .iter()
            .map(|e| (e.id.clone(), e.acked.map(|a| a - e.sent)))
            .collect()
    }

    /// How many times `apps.connections.open` succeeded.
    pub fn opens(&self) -> usize {
        self.calls_of("apps.connections.open").len()
    }

    /// The connections' opens and closes, in order.
    pub fn timeline(&self) -> Timeline {
        self.state.lock().unwrap().timeline.clone()
    }

    /// How many connections are open and not ghosts.
    pub fn live_connections(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .conns
            .iter()
            .filter(|c| !c.ghost)
            .count()
    }
}

fn next_ts(s: &mut State_) -> String {
    s.clock += 100;
    format!("{}.{:06}", s.clock / 1_000_000, s.clock % 1_000_000)
}

fn channel_type(channel: &str) -> &'static str {
    match channel.as_bytes().first() {
        Some(b'D') => "im",
        Some(b'G') => "group",
        _ => "channel",
    }
}

/// Sends `frame` on the connection events go to; records it (to be sent again if `retry` and
/// not acked in time).
fn send_envelope(s: &mut State_, id: &str, frame: Value, retry: bool) {
    deliver(s, &frame);
    s.envelopes.push(Envelope {
        id: id.to_owned(),
        frame,
        sent: Instant::now(),
        acked: None,
        attempts: 0,
        retry,
    });
}

fn deliver(s: &State_, frame: &Value) -> bool {
    let target = s
        .conns
        .iter()
        .rev()
        .find(|c| !c.ghost && !c.leaving)
        .or_else(|| s.conns.iter().rev().find(|c| !c.ghost));
    target.is_some_and(|c| c.tx.send(Outgoing::Text(frame.to_string())).is_ok())
}

/// Sends unacked `events_api` envelopes again after [`ACK_TIMEOUT`], at most 3 times.
async fn redeliver(state: std::sync::Weak<Mutex<State_>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(state) = state.upgrade() else { return };
        let mut s = state.lock().unwrap();
        let due: Vec<usize> = s
            .envelopes
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.retry && e.acked.is_none() && e.attempts < 3 && e.sent.elapsed() >= ACK_TIMEOUT
            })
            .map(|(i, _)| i)
            .collect();
        for i in due {
            let mut frame = s.envelopes[i].frame.clone();
            let attempt = s.envelopes[i].attempts + 1;
            frame["retry_attempt"] = json!(attempt);
            frame["retry_reason"] = json!("timeout");
            deliver(&s, &frame);
            let e = &mut s.envelopes[i];
            e.attempts = attempt;
            e.sent = Instant::now();
        }
    }
}

type AppState = (Shared, String, Duration);

fn failure_response(f: Failure) -> Response {
    match f {
        Failure::RateLimited(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("retry-after", secs.to_string()),
                ("content-type", "application/json".into()),
            ],
            json!({ "ok": false, "error": "ratelimited" }).to_string(),
        )
            .into_response(),
        Failure::Status(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "upstream trouble",
        )
            .into_response(),
        Failure::Error(code) => slack_json(json!({ "ok": false, "error": code })),
    }
}

fn slack_json(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The parameters of a call: the query string, then a form or JSON body.
fn params(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Map<String, Value> {
    let mut out: Map<String, Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
            out.extend(m);
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            out.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    out
}

async fn api(
    State((state, base, _)): State<AppState>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = params(&query, &headers, &body);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| {
            params
                .remove("token")
                .and_then(|t| t.as_str().map(str::to_owned))
        });
    let mut s = state.lock().unwrap();
    let mut call = Call {
        method: method.clone(),
        token: token.clone(),
        params: Value::Object(params.clone()),
        ok: false,
    };
    if let Some(f) = s.failures.get_mut(&method).and_then(VecDeque::pop_front) {
        s.calls.push(call);
        return failure_response(f);
    }
    let wanted = if method == "apps.connections.open" {
        APP_TOKEN
    } else {
        BOT_TOKEN
    };
    let refusal = match token.as_deref() {
        None => Some("not_authed"),
        Some(t) if t == wanted => None,
        Some(t) if t.starts_with("xapp-") || t.starts_with("xoxb-") && wanted == APP_TOKEN => {
            Some("not_allowed_token_type")
        }
        Some(_) => Some("invalid_auth"),
    };
    if let Some(code) = refusal {
        s.calls.push(call);
        return slack_json(json!({ "ok": false, "error": code }));
    }
    let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
    let answer = match method.as_str() {
        "auth.test" => Ok(json!({
            "url": "https://fake.slack.com/", "team": "Fake", "user": "mosaic",
            "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false
        })),
        "apps.connections.open" => {
            let ticket = format!("t{}", s.tickets.len() + 1);
            s.tickets.push(ticket.clone());
            let ws = base.replacen("http://", "ws://", 1);
            Ok(json!({ "url": format!("{ws}/link/?ticket={ticket}&app_id={APP_ID}") }))
        }
        "chat.postMessage" => match (text("channel"), text("text")) {
            (None, _) => Err("channel_not_found"),
            (_, None) => Err("no_text"),
            (Some(c), _) if !c.starts_with(['C', 'G', 'D']) => Err("channel_not_found"),
            (Some(channel), Some(t)) if t.chars().count() > 40_000 => {
                let _ = channel;
                Err("msg_too_long")
            }
            (Some(channel), Some(t)) => {
                let ts = next_ts(&mut s);
                let mut message = json!({ "type": "message", "subtype": "bot_message", "text": t, "ts": ts,
                    "user": BOT_USER, "bot_id": BOT_ID, "team": TEAM });
                if let Some(thread) = text("thread_ts") {
                    message["thread_ts"] = json!(thread);
                }
                s.history
                    .entry(channel.clone())
                    .or_default()
                    .push(message.clone());
                // Slack echoes the bot's own post as an event.
                let mut event = message.clone();
                event["channel"] = json!(channel);
                let n = s.envelopes.len() + 1;
                let envelope_id = format!("env-{n:06}");
                let frame = json!({ "envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": false,
                    "payload": { "team_id": TEAM, "api_app_id": APP_ID, "event": event, "type": "event_callback",
                                 "event_id": format!("Ev{n:08}"), "event_time": 1_700_000_000 + n } });
                send_envelope(&mut s, &envelope_id, frame, true);
                Ok(json!({ "channel": channel, "ts": ts, "message": message }))
            }
        },
        "reactions.add" => {
            let (channel, ts, name) = (text("channel"), text("timestamp"), text("name"));
            let exists = match (&channel, &ts) {
                (Some(c), Some(ts)) => s
                    .history
                    .get(c)
                    .is_some_and(|h| h.iter().any(|m| m["ts"] == ts.as_str())),
                _ => false,
            };
            let again = s.calls.iter().any(|c| {
                c.ok && c.method == "reactions.add"
                    && c.params["channel"].as_str() == channel.as_deref()
                    && c.params["timestamp"].as_str() == ts.as_deref()
                    && c.params["name"].as_str() == name.as_deref()
            });
            if name.is_none() {
                Err("invalid_name")
            } else if !exists {
                Err("message_not_found")
            } else if again {
                Err("already_reacted")
            } else {
                Ok(json!({}))
            }
        }
        "conversations.history" => match text("channel") {
            None => Err("channel_not_found"),
            Some(channel) => {
                let key = |ts: &str| ts.replace('.', "").parse::<u128>().unwrap_or(0);
                let oldest = text("oldest").map(|t| key(&t)).unwrap_or(0);
                let inclusive = text("inclusive").as_deref() == Some("true")
                    || params.get("inclusive") == Some(&Value::Bool(true));
                let limit = text("limit")
                    .and_then(|l| l.parse::<usize>().ok())
                    .or_else(|| {
                        params
                            .get("limit")
                            .and_then(Value::as_u64)
                            .map(|l| l as usize)
                    })
                    .unwrap_or(100)
                    .clamp(1, 999);
                let skip = text("cursor")
                    .and_then(|c| c.strip_prefix("page:").and_then(|n| n.parse().ok()))
                    .unwrap_or(0usize);
                let mut all: Vec<Value> = s
                    .history
                    .get(&channel)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    // Thread replies are not in a channel's history.
                    .filter(|m| m["thread_ts"].is_null() || m["thread_ts"] == m["ts"])
                    .filter(|m| {
                        let k = key(m["ts"].as_str().unwrap_or("0"));
                        k > oldest || inclusive && k == oldest
                    })
                    .collect();
                all.reverse(); // newest first
                let page: Vec<Value> = all.iter().skip(skip).take(limit).cloned().collect();
                let more = skip + page.len() < all.len();
                let next = if more {
                    format!("page:{}", skip + page.len())
                } else {
                    String::new()
                };
                Ok(json!({ "messages": page, "has_more": more, "pin_count": 0,
                           "response_metadata": { "next_cursor": next } }))
            }
        },
        _ => Err("unknown_method"),
    };
    match answer {
        Ok(mut body) => {
            call.ok = true;
            s.calls.push(call);
            body["ok"] = json!(true);
            slack_json(body)
        }
        Err(code) => {
            s.calls.push(call);
            slack_json(json!({ "ok": false, "error": code }))
        }
    }
}

/// A slash command's `response_url`: JSON `{text, response_type, …}`, 5 uses.
async fn command_response(
    State((state, _, _)): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let uses = s.response_uses.entry(id.clone()).or_default();
    *uses += 1;
    if *uses > 5 {
        return (StatusCode::NOT_FOUND, "used_url").into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    if body["text"].as_str().is_none_or(str::is_empty) && body["blocks"].is_null() {
        return (StatusCode::BAD_REQUEST, "no_text").into_response();
    }
    s.responses.push((id, body));
    (StatusCode::OK, "ok").into_response()
}

async fn link(
    State((state, _, ping)): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let valid = query
        .get("ticket")
        .is_some_and(|t| state.lock().unwrap().tickets.contains(t));
    if !valid {
        return (StatusCode::UNAUTHORIZED, "invalid ticket").into_response();
    }
    ws.on_upgrade(move |socket| serve_socket(socket, state, ping))
}

async fn serve_socket(mut socket: WebSocket, state: Shared, ping: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, hello) = {
        let mut s = state.lock().unwrap();
        s.conn_seq += 1;
        let id = s.conn_seq;
        s.conns.push(Conn {
            id,
            tx,
            leaving: false,
            ghost: false,
        });
        s.timeline.push(format!("open {id}"));
        let n = s.conns.iter().filter(|c| !c.ghost).count() as u64 + s.other_connections;
        let hello = json!({ "type": "hello", "num_connections": n, "connection_info": { "app_id": APP_ID },
            "debug_info": { "host": format!("applink-{id}.fake"), "build_number": 1, "approximate_connection_time": 18060 } });
        (id, hello)
    };
    let _ = socket.send(WsMessage::Text(hello.to_string().into())).await;
    let mut pings = tokio::time::interval(ping);
    pings.tick().await;
    let closed_by = loop {
        tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    let Ok(ack) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    if let Some(envelope) = ack["envelope_id"].as_str() {
                        let mut s = state.lock().unwrap();
                        if let Some(e) = s.envelopes.iter_mut().find(|e| e.id == envelope) {
                            e.acked.get_or_insert_with(Instant::now);
                        }
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break "client",
                Some(Ok(_)) => {} // pings are answered by the socket itself
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if socket.send(WsMessage::Text(text.into())).await.is_err() {
                        break "client";
                    }
                }
                Some(Outgoing::Ghost) => {
                    // Silent from now on, but open: wait for Close without reading.
                    loop {
                        match rx.recv().await {
                            Some(Outgoing::Close) | None => break,
                            Some(_) => {}
                        }
                    }
                    break "slack";
                }
                Some(Outgoing::Close) | None => {
                    let _ = socket.send(WsMessage::Close(None)).await;
                    break "slack";
                }
            },
            _ = pings.tick() => {
                if socket.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                    break "client";
                }
            }
        }
    };
    let mut s = state.lock().unwrap();
    s.conns.retain(|c| c.id != id);
    s.timeline.push(format!("close {id} by {closed_by}"));
}
