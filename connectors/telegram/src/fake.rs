//! A fake Telegram Bot API for tests (feature `test-util`), built from the Bot API documentation
//! (https://core.telegram.org/bots/api): `POST /bot<token>/<method>` with JSON parameters,
//! answers `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":…}`.
//!
//! What it follows: `getUpdates` long polling with offset confirmation (an update is confirmed
//! once a later call names a higher offset), `allowed_updates` kept between calls, and a 409
//! "terminated by other getUpdates request" for a poll another poll replaced; `sendMessage`
//! with MarkdownV2 parsing (reserved characters must be escaped; the text counts after parsing,
//! at most 4096 UTF-16 units), forum topics (`message_thread_id`), `reply_parameters`;
//! `setMessageReaction` (chats can turn reactions off: `REACTION_INVALID`), `sendChatAction`,
//! `setMyCommands` (1-32 lowercase letters, digits and underscores; description 1-256),
//! `getMe` (privacy mode), `getChatMember`, `getWebhookInfo`; the token checked on every call
//! (401 Unauthorized). Failures are injectable per method: flood control (429 with
//! `parameters.retry_after`) and server errors.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The bot's username in the fake.
pub const BOT_USERNAME: &str = "mosaic_test_bot";

/// One Bot API call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method, as named in the URL (`sendMessage`).
    pub method: String,
    /// Its JSON parameters.
    pub params: Value,
}

/// A message the bot sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// Its chat.
    pub chat: i64,
    /// Its message id within the chat.
    pub message_id: i64,
    /// The forum topic it was sent in.
    pub thread: Option<i64>,
    /// The `text` parameter as sent.
    pub text: String,
    /// What users see: the text after entities parsing.
    pub shown: String,
    /// The links Telegram kept, as `(text, url)` (MarkdownV2 only).
    pub links: Vec<(String, String)>,
    /// The message it replies to.
    pub reply_to: Option<i64>,
}

/// A failure the fake answers the next call of a method with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// Flood control: 429 with `parameters.retry_after` seconds.
    RetryAfter(u32),
    /// A server error (500) with a JSON body.
    Server,
    /// A request Telegram never accepts (400 "Bad Request: chat not found").
    Rejected,
}

#[derive(Debug, Clone)]
struct Chat {
    kind: &'static str,
    forum: bool,
    reactions: bool,
    topics: HashSet<i64>,
    next_message: i64,
    messages: HashSet<i64>,
}

#[derive(Default)]
struct State_ {
    token: String,
    privacy: bool,
    admin_in: HashSet<i64>,
    webhook: Option<String>,
    chats: HashMap<i64, Chat>,
    /// Unconfirmed updates, oldest first.
    updates: VecDeque<(i64, Value)>,
    next_update: i64,
    allowed_updates: Option<Vec<String>>,
    /// Bumped by every getUpdates: a waiting poll whose number is no longer current was
    /// replaced by another and answers 409.
    poll_generation: u64,
    calls: Vec<Call>,
    posted: Vec<Posted>,
    reactions: Vec<(i64, i64, String)>,
    actions: Vec<(i64, Option<i64>, String)>,
    failures: HashMap<String, VecDeque<Failure>>,
}

/// A running fake Telegram.
#[derive(Clone)]
pub struct FakeTelegram {
    /// Base URL for the connector's `api_base` (`http://127.0.0.1:PORT`).
    pub base: String,
    state: Arc<Mutex<State_>>,
    changed: Arc<Notify>,
}

type Shared = (Arc<Mutex<State_>>, Arc<Notify>);

impl FakeTelegram {
    /// Starts the fake for the bot with `token` on 127.0.0.1 on a free port (call from a tokio
    /// runtime). Privacy mode is off, no webhook is set.
    pub async fn start(token: &str) -> FakeTelegram {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State_ {
            token: token.to_owned(),
            next_update: 700_000_000,
            ..Default::default()
        }));
        let changed = Arc::new(Notify::new());
        let app = Router::new()
            .route("/{bot}/{method}", axum::routing::post(handle).get(handle))
            .with_state((state.clone(), changed.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeTelegram {
            base,
            state,
            changed,
        }
    }

    /// The bot's user id (the token's part before the colon).
    pub fn bot_id(&self) -> i64 {
        let s = self.state.lock().unwrap();
        s.token
            .split(':')
            .next()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0)
    }

    /// Adds a chat: `kind` is `private` (id = the user's id), `group` or `supergroup`; a forum
    /// supergroup has topics.
    pub fn chat(&self, id: i64, kind: &'static str, forum: bool) {
        self.state.lock().unwrap().chats.insert(
            id,
            Chat {
                kind,
                forum,
                reactions: true,
                topics: HashSet::new(),
                next_message: 1,
                messages: HashSet::new(),
            },
        );
    }

    /// Creates a topic in a forum chat; returns its id (the id of its creation message).
    pub fn topic(&self, chat: i64) -> i64 {
        let mut s = self.state.lock().unwrap();
        let c = s.chats.get_mut(&chat).expect("a known chat");
        let id = next_message(c);
        c.topics.insert(id);
        id
    }

    /// Turns group privacy mode on or off (getMe's `can_read_all_group_messages`).
    pub fn set_privacy(&self, on: bool) {
        self.state.lock().unwrap().privacy = on;
    }

    /// Makes the bot an admin of `chat`.
    pub fn make_admin(&self, chat: i64) {
        self.state.lock().unwrap().admin_in.insert(chat);
    }

    /// Sets a webhook (getUpdates then answers 409).
    pub fn set_webhook(&self, url: &str) {
        self.state.lock().unwrap().webhook = Some(url.to_owned());
    }

    /// Turns reactions off in `chat` (its admins allow none).
    pub fn disable_reactions(&self, chat: i64) {
        if let Some(c) = self.state.lock().unwrap().chats.get_mut(&chat) {
            c.reactions = false;
        }
    }

    /// The next `n` calls of `method` fail with `failure`.
    pub fn fail_next(&self, method: &str, n: usize, failure: Failure) {
        self.state
            .lock()
            .unwrap()
            .failures
            .entry(method.to_ascii_lowercase())
            .or_default()
            .extend(std::iter::repeat_n(failure, n));
    }

    /// Another program calls getUpdates: the poll waiting now is answered 409.
    pub fn rival_poll(&self) {
        self.state.lock().unwrap().poll_generation += 1;
        self.changed.notify_waiters();
    }

    /// Makes the next update's id `id` (Telegram picks update ids at random after a
    /// week without updates, so the next id can be lower than the last one).
    pub fn set_next_update_id(&self, id: i64) {
        self.state.lock().unwrap().next_update = id - 1;
    }

    /// Queues a raw update exactly as given (for malformed or unusual updates).
    pub fn raw_update(&self, id: i64, update: Value) {
        self.state.lock().unwrap().updates.push_back((id, update));
        self.changed.notify_waiters();
    }

    fn push_update(&self, message: Value) -> i64 {
        let mut s = self.state.lock().unwrap();
        s.next_update += 1;
        let id = s.next_update;
        s.updates
            .push_back((id, json!({ "update_id": id, "message": message })));
        drop(s);
        self.changed.notify_waiters();
        id
    }

    fn user_message(
        &self,
        chat: i64,
        topic: Option<i64>,
        user: i64,
        username: &str,
        content: Value,
    ) -> i64 {
        let (id, chat_json, reply_to) = {
            let mut s = self.state.lock().unwrap();
            let c = s.chats.get_mut(&chat).expect("a known chat");
            let id = next_message(c);
            (id, chat_json(chat, c), topic)
        };
        let mut message = json!({
            "message_id": id, "date": 1767225600, "chat": chat_json,
            "from": {"id": user, "is_bot": false, "first_name": username, "username": username},
        });
        if let Some(topic) = reply_to {
            message["message_thread_id"] = json!(topic);
            message["is_topic_message"] = json!(true);
            message["reply_to_message"] = json!({
                "message_id": topic, "message_thread_id": topic, "date": 1767225500,
                "chat": message["chat"].clone(),
                "forum_topic_created": {"name": "work", "icon_color": 7322096}
            });
        }
        for (k, v) in content.as_object().expect("an object") {
            message[k] = v.clone();
        }
        self.push_update(message);
        id
    }

    /// A user (not a bot) says `text` in `chat`; returns the message id.
    pub fn message(&self, chat: i64, user: i64, username: &str, text: &str) -> i64 {
        self.user_message(chat, None, user, username, text_content(text))
    }

    /// A user says `text` in topic `topic` of the forum `chat`; returns the message id.
    pub fn topic_message(
        &self,
        chat: i64,
        topic: i64,
        user: i64,
        username: &str,
        text: &str,
    ) -> i64 {
        self.user_message(chat, Some(topic), user, username, text_content(text))
    }

    /// A user sends a photo with `caption`; returns the message id.
    pub fn photo(&self, chat: i64, user: i64, username: &str, caption: &str) -> i64 {
        self.user_message(
            chat,
            None,
            user,
            username,
            json!({
                "photo": [{"file_id": "AgACAgQAAx0", "file_unique_id": "AQAD", "width": 90, "height": 90, "file_size": 1200}],
                "caption": caption
            }),
        )
    }

    /// Another bot says `text` in `chat`.
    pub fn bot_message(&self, chat: i64, bot: i64, text: &str) -> i64 {
        let id = self.user_message(chat, None, bot, "otherbot", text_content(text));
        let mut s = self.state.lock().unwrap();
        if let Some((_, u)) = s.updates.back_mut() {
            u["message"]["from"]["is_bot"] = json!(true);
        }
        id
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Every message the bot sent, oldest first.
    pub fn posted(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }

    /// Every `(chat, message, emoji)` the bot reacted with.
    pub fn reactions(&self) -> Vec<(i64, i64, String)> {
        self.state.lock().unwrap().reactions.clone()
    }

    /// Every `(chat, action)` the bot showed.
    pub fn actions(&self) -> Vec<(i64, String)> {
        let s = self.state.lock().unwrap();
        s.actions.iter().map(|(c, _, a)| (*c, a.clone())).collect()
    }

    /// Every `(chat, forum topic, action)` the bot showed.
    pub fn actions_in_threads(&self) -> Vec<(i64, Option<i64>, String)> {
        self.state.lock().unwrap().actions.clone()
    }

    /// Updates not confirmed yet.
    pub fn unconfirmed(&self) -> usize {
        self.state.lock().unwrap().updates.len()
    }
}

fn next_message(chat: &mut Chat) -> i64 {
    let id = chat.next_message;
    chat.next_message += 1;
    chat.messages.insert(id);
    id
}

fn text_content(text: &str) -> Value {
    let mut content = json!({ "text": text });
    // A leading command is a bot_command entity (offsets in UTF-16 units).
    if text.starts_with('/') {
        let word = text.split(char::is_whitespace).next().unwrap_or("");
        content["entities"] =
            json!([{"type": "bot_command", "offset": 0, "length": word.encode_utf16().count()}]);
    }
    content
}

fn chat_json(id: i64, chat: &Chat) -> Value {
    match chat.kind {
        "private" => json!({"id": id, "type": "private", "first_name": "Ann", "username": "ann"}),
        kind => {
            let mut c = json!({"id": id, "type": kind, "title": "ops"});
            if chat.forum {
                c["is_forum"] = json!(true);
            }
            c
        }
    }
}

fn reply(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

fn error(code: u16, description: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"ok": false, "error_code": code, "description": description})),
    )
        .into_response()
}

fn bad_request(description: &str) -> Response {
    error(400, &format!("Bad Request: {description}"))
}

async fn handle(
    State((state, changed)): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return bad_request("invalid JSON"),
        }
    };
    let method_key = method.to_ascii_lowercase();
    {
        let mut s = state.lock().unwrap();
        if bot.strip_prefix("bot") != Some(s.token.as_str()) {
            return error(401, "Unauthorized");
        }
        s.calls.push(Call {
            method: method.clone(),
            params: params.clone(),
        });
        if let Some(failure) = s
            .failures
            .get_mut(&method_key)
            .and_then(VecDeque::pop_front)
        {
            return match failure {
                Failure::RetryAfter(secs) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({
                        "ok": false, "error_code": 429,
                        "description": format!("Too Many Requests: retry after {secs}"),
                        "parameters": {"retry_after": secs}
                    })),
                )
                    .into_response(),
                Failure::Server => error(500, "Internal Server Error"),
                Failure::Rejected => bad_request("chat not found"),
            };
        }
    }
    match method_key.as_str() {
        "getupdates" => get_updates(&state, &changed, &params).await,
        _ => {
            let mut s = state.lock().unwrap();
            call(&mut s, &method_key, &params)
        }
    }
}

async fn get_updates(state: &Arc<Mutex<State_>>, changed: &Notify, params: &Value) -> Response {
    let timeout = params["timeout"].as_u64().unwrap_or(0).min(50);
    let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let generation = {
        let mut s = state.lock().unwrap();
        if s.webhook.is_some() {
            return error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            );
        }
        if let Some(offset) = params["offset"].as_i64() {
            if offset < 0 {
                let keep = offset.unsigned_abs() as usize;
                let drop = s.updates.len().saturating_sub(keep);
                s.updates.drain(..drop);
            } else {
                s.updates.retain(|(id, _)| *id >= offset);
            }
        }
        if let Some(allowed) = params["allowed_updates"].as_array() {
            s.allowed_updates = Some(
                allowed
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
            );
        }
        s.poll_generation += 1;
        s.poll_generation
    };
    changed.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = changed.notified();
        {
            let s = state.lock().unwrap();
            if s.poll_generation != generation {
                return error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                );
            }
            let allowed = |u: &Value| match &s.allowed_updates {
                Some(list) if !list.is_empty() => {
                    list.iter().any(|kind| u.get(kind.as_str()).is_some())
                }
                _ => true,
            };
            // Telegram returns only updates numbered from the offset on, also those that
            // arrive while the poll waits.
            let from = params["offset"]
                .as_i64()
                .filter(|o| *o >= 0)
                .unwrap_or(i64::MIN);
            let ready: Vec<Value> = s
                .updates
                .iter()
                .filter(|(id, u)| *id >= from && allowed(u))
                .take(limit)
                .map(|(_, u)| u.clone())
                .collect();
            if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                return reply(Value::Array(ready));
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

fn call(s: &mut State_, method: &str, p: &Value) -> Response {
    let bot_id: i64 = s
        .token
        .split(':')
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let bot_user =
        json!({"id": bot_id, "is_bot": true, "first_name": "Mosaic", "username": BOT_USERNAME});
    match method {
        "getme" => {
            let mut me = bot_user;
            me["can_join_groups"] = json!(true);
            me["can_read_all_group_messages"] = json!(!s.privacy);
            me["supports_inline_queries"] = json!(false);
            me["can_connect_to_business"] = json!(false);
            me["has_main_web_app"] = json!(false);
            reply(me)
        }
        "getwebhookinfo" => reply(json!({
            "url": s.webhook.clone().unwrap_or_default(),
            "has_custom_certificate": false,
            "pending_update_count": s.updates.len(),
        })),
        "deletewebhook" => {
            s.webhook = None;
            reply(json!(true))
        }
        "setmycommands" => {
            let Some(commands) = p["commands"].as_array() else {
                return bad_request("parameter \"commands\" is required");
            };
            if commands.len() > 100 {
                return bad_request("too many commands");
            }
            for c in commands {
                let name = c["command"].as_str().unwrap_or("");
                let ok_name = (1..=32).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !ok_name {
                    return bad_request("BOT_COMMAND_INVALID");
                }
                let description = c["description"].as_str().unwrap_or("");
                if !(1..=256).contains(&description.chars().count()) {
                    return bad_request("BOT_COMMAND_DESCRIPTION_INVALID");
                }
            }
            if let Some(chat) = p["scope"]["chat_id"].as_i64()
                && !s.chats.contains_key(&chat)
            {
                return bad_request("chat not found");
            }
            reply(json!(true))
        }
        "getchatmember" => {
            let chat = p["chat_id"].as_i64().unwrap_or(0);
            if !s.chats.contains_key(&chat) {
                return bad_request("chat not found");
            }
            let user = json!({"id": p["user_id"], "is_bot": true, "first_name": "Mosaic", "username": BOT_USERNAME});
            if s.admin_in.contains(&chat) {
                reply(json!({
                    "status": "administrator", "user": user, "can_be_edited": false,
                    "is_anonymous": false, "can_manage_chat": true, "can_delete_messages": false,
                    "can_manage_video_chats": false, "can_restrict_members": false,
                    "can_promote_members": false, "can_change_info": false,
                    "can_invite_users": true, "can_post_stories": false, "can_edit_stories": false,
                    "can_delete_stories": false, "can_pin_messages": false, "can_manage_topics": false
                }))
            } else {
                reply(json!({"status": "member", "user": user}))
            }
        }
        "sendchataction" => {
            let chat = p["chat_id"].as_i64().unwrap_or(0);
            let Some(c) = s.chats.get(&chat) else {
                return bad_request("chat not found");
            };
            let thread = p["message_thread_id"].as_i64();
            if let Some(t) = thread
                && !(c.forum && c.topics.contains(&t))
            {
                return bad_request("message thread not found");
            }
            let action = p["action"].as_str().unwrap_or("");
            const ACTIONS: [&str; 10] = [
                "typing",
                "upload_photo",
                "record_video",
                "upload_video",
                "record_voice",
                "upload_voice",
                "upload_document",
                "choose_sticker",
                "find_location",
                "record_video_note",
            ];
            if !ACTIONS.contains(&action) {
                return bad_request("wrong parameter action in request");
            }
            s.actions.push((chat, thread, action.to_owned()));
            reply(json!(true))
        }
        "setmessagereaction" => {
            let chat = p["chat_id"].as_i64().unwrap_or(0);
            let message = p["message_id"].as_i64().unwrap_or(0);
            let Some(c) = s.chats.get(&chat) else {
                return bad_request("chat not found");
            };
            if !c.messages.contains(&message) {
                return bad_request("message to react not found");
            }
            let emoji = p["reaction"][0]["emoji"].as_str().unwrap_or("").to_owned();
            if !c.reactions || !["👀", "👍", "👌", "🤝", "✍"].contains(&emoji.as_str()) {
                return bad_request("REACTION_INVALID");
            }
            s.reactions.push((chat, message, emoji));
            reply(json!(true))
        }
        "sendmessage" => send_message(s, p, bot_user),
        _ => error(404, "Not Found"),
    }
}

fn send_message(s: &mut State_, p: &Value, bot_user: Value) -> Response {
    let chat_id = p["chat_id"].as_i64().unwrap_or(0);
    let Some(chat) = s.chats.get(&chat_id).cloned() else {
        return bad_request("chat not found");
    };
    let thread = p["message_thread_id"].as_i64();
    if let Some(t) = thread
        && !(chat.forum && chat.topics.contains(&t))
    {
        return bad_request("message thread not found");
    }
    let reply_to = p["reply_parameters"]["message_id"].as_i64();
    let allow_missing = p["reply_parameters"]["allow_sending_without_reply"]
        .as_bool()
        .unwrap_or(false);
    let reply_to = match reply_to {
        Some(r) if !chat.messages.contains(&r) => {
            if !allow_missing {
                return bad_request("message to be replied not found");
            }
            None
        }
        other => other,
    };
    let text = p["text"].as_str().unwrap_or("").to_owned();
    let (shown, links) = match p["parse_mode"].as_str() {
        Some("MarkdownV2") => match parse_markdown_v2_entities(&text) {
            Ok(parsed) => (parsed.text, parsed.links),
            Err(why) => return bad_request(&format!("can't parse entities: {why}")),
        },
        Some("HTML") | Some("Markdown") => (text.clone(), Vec::new()),
        Some(other) => return bad_request(&format!("unsupported parse_mode {other}")),
        None => (text.clone(), Vec::new()),
    };
    if shown.trim().is_empty() {
        return bad_request("message text is empty");
    }
    if shown.encode_utf16().count() > 4096 {
        return bad_request("message is too long");
    }
    let c = s.chats.get_mut(&chat_id).expect("checked");
    let id = next_message(c);
    s.posted.push(Posted {
        chat: chat_id,
        message_id: id,
        thread,
        text,
        shown: shown.clone(),
        links,
        reply_to,
    });
    let mut message = json!({
        "message_id": id, "date": 1767225600, "chat": chat_json(chat_id, &chat),
        "from": bot_user, "text": shown,
    });
    if let Some(t) = thread {
        message["message_thread_id"] = json!(t);
        message["is_topic_message"] = json!(true);
    }
    reply(message)
}

/// The text users see of a MarkdownV2 message, or why Telegram refuses it.
pub fn parse_markdown_v2(text: &str) -> Result<String, String> {
    parse_markdown_v2_entities(text).map(|p| p.text)
}

/// What Telegram makes of a MarkdownV2 text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// What users see: the text without markup and escapes.
    pub text: String,
    /// The links Telegram keeps, as `(text, url)`; a link whose URL Telegram refuses (not an
    /// absolute http(s) or tg link) is dropped, its text kept as plain text.
    pub links: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    Pre,
    TextUrl,
    CustomEmoji,
    BlockQuote,
}

struct OpenEntity {
    kind: Kind,
    /// Where its marker is (a char index into the text).
    marker: usize,
    /// Where its text begins in the output (a byte index).
    begin: usize,
}

/// A MarkdownV2 text parsed as the Bot API server parses it (tdlib's `parse_markdown_v2`, in
/// `td/telegram/MessageEntity.cpp`): `\` before a character 1-126 escapes it, and is plain text
/// otherwise; outside `pre` and `code` the characters `_ * [ ] ( ) ~ ` > # + - = | { } . !` are
/// reserved, inside them only `` ` ``; `>` at the start of a line opens a block quote (a
/// further `>` in an open quote is skipped, as Telegram flattens nested quotes), and a newline
/// not followed by `>` closes it, refusing an entity still open there; after ```` ``` ```` and
/// an optional language one newline is skipped; a link keeps its entity only when its URL is
/// valid; an empty entity is dropped.
pub fn parse_markdown_v2_entities(text: &str) -> Result<Parsed, String> {
    use Kind::*;
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let byte_offset = |i: usize| {
        chars[..i.min(chars.len())]
            .iter()
            .map(|c| c.len_utf8())
            .sum::<usize>()
    };
    let reserved = |c: char| {
        format!("Character '{c}' is reserved and must be escaped with the preceding '\\'")
    };
    let no_end = |e: &OpenEntity| {
        format!(
            "Can't find end of {:?} entity at byte offset {}",
            e.kind,
            byte_offset(e.marker)
        )
    };
    let mut out = String::new();
    let mut links = Vec::new();
    let mut open: Vec<OpenEntity> = Vec::new();
    let mut have_quote = false;
    let mut can_start_quote = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && (1..=126).contains(&(at(i + 1) as u32)) {
            let n = chars[i + 1];
            out.push(n);
            if n != '\r' {
                can_start_quote = n == '\n';
            }
            i += 2;
            continue;
        }
        let in_code = matches!(open.last().map(|e| e.kind), Some(Code | Pre));
        let is_reserved = if in_code {
            c == '`'
        } else {
            "_*[]()~`>#+-=|{}.!\n".contains(c)
        };
        if !is_reserved {
            out.push(c);
            if c != '\r' {
                can_start_quote = false;
            }
            i += 1;
            continue;
        }
        let ends = match open.last() {
            None => false,
            Some(_) if have_quote && c == '\n' && at(i + 1) != '>' => true,
            Some(e) => match e.kind {
                Bold => c == '*',
                Italic => c == '_' && at(i + 1) != '_',
                Underline => c == '_' && at(i + 1) == '_',
                Strikethrough => c == '~',
                Spoiler => c == '|' && at(i + 1) == '|',
                Code => c == '`',
                Pre => c == '`' && at(i + 1) == '`' && at(i + 2) == '`',
                TextUrl | CustomEmoji => c == ']',
                BlockQuote => false,
            },
        };
        if !ends {
            let marker = i;
            let kind = match c {
                '_' if at(i + 1) == '_' => {
                    i += 2;
                    Underline
                }
                '_' => {
                    i += 1;
                    Italic
                }
                '*' => {
                    i += 1;
                    Bold
                }
                '~' => {
                    i += 1;
                    Strikethrough
                }
                '|' if at(i + 1) == '|' => {
                    i += 2;
                    Spoiler
                }
                '[' => {
                    i += 1;
                    TextUrl
                }
                '!' if at(i + 1) == '[' => {
                    i += 2;
                    CustomEmoji
                }
                '`' if at(i + 1) == '`' && at(i + 2) == '`' => {
                    i += 3;
                    // A language: up to a space or a backtick, if the text goes on after it.
                    let mut end = i;
                    while end < chars.len() && !is_space(chars[end]) && chars[end] != '`' {
                        end += 1;
                    }
                    if end != i && end < chars.len() && chars[end] != '`' {
                        i = end;
                    }
                    // One newline (\n, \r, \r\n or \n\r) after the fence is skipped.
                    if matches!(at(i), '\n' | '\r') {
                        if matches!(at(i + 1), '\n' | '\r') && at(i) != at(i + 1) {
                            i += 2;
                        } else {
                            i += 1;
                        }
                    }
                    Pre
                }
                '`' => {
                    i += 1;
                    Code
                }
                '\n' => {
                    out.push('\n');
                    can_start_quote = true;
                    i += 1;
                    continue;
                }
                '>' if can_start_quote => {
                    i += 1;
                    if have_quote {
                        continue; // `>>`: Telegram has one level of quotes
                    }
                    have_quote = true;
                    BlockQuote
                }
                _ => return Err(reserved(c)),
            };
            open.push(OpenEntity {
                kind,
                marker,
                begin: out.len(),
            });
            continue;
        }
        let mut top = open.pop().expect("an open entity ends");
        if c == '\n' && top.kind != BlockQuote {
            // Only an expandable quote's `||` may stand right before the newline that ends it.
            let expandable = top.kind == Spoiler
                && (top.marker + 2 == i || (top.marker + 3 == i && out.ends_with('\r')));
            if !expandable {
                return Err(no_end(&top));
            }
            top = open.pop().expect("a quote is open");
            if top.kind != BlockQuote {
                return Err(no_end(&top));
            }
        }
        match top.kind {
            Bold | Italic | Code | Strikethrough => i += 1,
            Underline | Spoiler => i += 2,
            Pre => i += 3,
            TextUrl | CustomEmoji => {
                let shown = out[top.begin..].to_owned();
                let url = if at(i + 1) == '(' {
                    i += 2;
                    let start = i;
                    let mut url = String::new();
                    while i < chars.len() && chars[i] != ')' {
                        if chars[i] == '\\' && (1..=126).contains(&(at(i + 1) as u32)) {
                            url.push(chars[i + 1]);
                            i += 2;
                        } else {
                            url.push(chars[i]);
                            i += 1;
                        }
                    }
                    if i >= chars.len() {
                        return Err(format!(
                            "Can't find end of a URL at byte offset {}",
                            byte_offset(start)
                        ));
                    }
                    i += 1;
                    url
                } else if top.kind == CustomEmoji {
                    return Err("Custom emoji entity must contain a tg://emoji URL".into());
                } else {
                    i += 1;
                    shown.clone() // `[text]` alone: the text is the URL
                };
                if top.kind == CustomEmoji {
                    if !url.starts_with("tg://emoji?id=") {
                        return Err("Custom emoji URL must have an emoji identifier".into());
                    }
                } else if !shown.is_empty() && link_is_valid(&url) {
                    links.push((shown, url));
                }
            }
            BlockQuote => {
                have_quote = false;
                out.push('\n');
                can_start_quote = true;
                i += 1;
            }
        }
    }
    if have_quote {
        if let Some(top) = open.last()
            && top.kind == Spoiler
            && top.marker + 2 == chars.len()
        {
            open.pop(); // an expandable quote's `||` at the very end
        }
        if open.last().map(|e| e.kind) == Some(BlockQuote) {
            open.pop();
        }
    }
    if let Some(e) = open.last() {
        return Err(no_end(e));
    }
    Ok(Parsed { text: out, links })
}

/// tdlib's `is_space`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\0' | '\u{b}' | '\u{c}')
}

/// Whether Telegram keeps a link to `url` (tdlib's `LinkManager::get_checked_link`, roughly):
/// a `tg:`, `ton:` or `tonsite:` link with a plain host, or an http(s) URL, with or without its
/// scheme, whose host has a dot (or is an IPv6 address). Relative paths are refused.
fn link_is_valid(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    for scheme in ["tg:", "ton:", "tonsite:"] {
        if let Some(rest) = lower.strip_prefix(scheme) {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            return !host.is_empty()
                && host.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || c == '-'
                        || c == '_'
                        || (scheme == "tonsite:" && c == '.')
                });
        }
    }
    let rest = match lower.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some(_) => return false,
        None => &lower,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.starts_with('[') {
        return host.contains(']');
    }
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return false,
        None => host,
    };
    host.contains('.')
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%'))
}

#[cfg(test)]
mod tests {
    use super::parse_markdown_v2 as parse;

    #[test]
    fn markdown_v2_follows_the_documented_escaping() {
        assert_eq!(
            parse(r"done\. *bold* _it_ `a.b`").unwrap(),
            "done. bold it a.b"
        );
        assert!(
            parse("done.")
                .unwrap_err()
                .contains("Character '.' is reserved")
        );
        assert!(
            parse("*open")
                .unwrap_err()
                .contains("Can't find end of Bold")
        );
        assert_eq!(
            parse("```rust\nfn x() -> i32 { 1 }\n```").unwrap(),
            "fn x() -> i32 { 1 }\n"
        );
        assert_eq!(parse(r"[a link](https://x.y/a_(b\))").unwrap(), "a link");
        assert_eq!(parse(">quoted\nline").unwrap(), "quoted\nline");
        assert!(parse("a > b").is_err());
        assert_eq!(parse(r"\\ \_ \*").unwrap(), r"\ _ *");
    }
}
