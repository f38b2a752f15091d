//! The Matrix connector: matrix-sdk with its SQLite store (session, device, crypto), so the bot
//! keeps its own device and end-to-end keys across restarts; rooms on your homeserver bridged to
//! the orchestrator, `!fleet` and `/fleet`, replies as HTML with a plain body in threads and as
//! replies, 👀 as the acknowledgement, typing notices, invitations joined only from the ACL's
//! users to configured rooms, and undecryptable messages reported (health is not green while
//! decryption fails).
//!
//! **Exactly once.** The connector syncs with its own loop: after each `/sync` it hands the new
//! messages to the bridge, then the sync token as its checkpoint; the next `/sync` starts from
//! it only once the bridge kept it. A crash anywhere makes the homeserver send the same events
//! again, and the bridge drops those it already has (by event id).

// matrix-sdk's futures are deep.
#![recursion_limit = "256"]

#[cfg(feature = "test-util")]
pub mod synapse;

use async_trait::async_trait;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::deserialized_responses::{TimelineEvent, TimelineEventKind};
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::room::create_room::{self, v3::RoomPreset};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedTransactionId, RoomId, UserId};
use matrix_sdk::{Client, Room, RoomState};
use mosaic_connector::registry::{BuildContext, ConnectorConfig, Question, QuestionKind, Typed};
use mosaic_connector::{
    Capabilities, Connector, ConnectorError, Cursors, ErrorKind, Health, HealthReporter, Inbound,
    InboundSink, Markdown, Outbound, RunContext,
};
use mosaic_roster::{SecretRef, SettingProblem};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest reply sent as one message, in characters (Matrix limits an event to 64 KiB, and
/// the HTML form travels with the plain body).
pub const MAX_MESSAGE_LEN: usize = 16_000;
/// The reaction that acknowledges a received message.
pub const ACK_EMOJI: &str = "👀";
/// How long one `/sync` waits for news.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// What a user who sends a file, image or voice message is told.
pub const TEXT_ONLY: &str = "mosaic passes only text to the orchestrator: type or paste it as a message (files, images and voice messages are not forwarded).";

/// The Matrix connector type, registered by the binary.
pub static TYPE: Typed<MatrixSettings> = Typed::new();

/// A Matrix entry of the roster (`type: matrix`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSettings {
    /// The homeserver's URL (`https://matrix.example.org`, `http://127.0.0.1:8008`).
    pub homeserver: String,
    /// The bot's user id (`@mosaic:example.org`).
    pub user: String,
    /// Room ids (`!abc:example.org`) the orchestrator listens and answers in.
    pub rooms: Vec<String>,
    /// Where the bot's password is (to log in once; the session is kept in the state dir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// Where an access token of the bot is, instead of a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<SecretRef>,
}

impl ConnectorConfig for MatrixSettings {
    const TYPE: &'static str = "matrix";
    const SUMMARY: &'static str =
        "Matrix (a bot account on your homeserver, encrypted rooms too; matrix-sdk)";

    fn questions() -> Vec<Question> {
        vec![
            Question {
                field: "homeserver",
                flag: "homeserver",
                value_name: "URL",
                prompt: "Matrix homeserver URL",
                kind: QuestionKind::Text {
                    default: Some("http://127.0.0.1:8008"),
                },
            },
            Question {
                field: "user",
                flag: "bot-user",
                value_name: "ID",
                prompt: "The bot's Matrix user id (@mosaic:example.org)",
                kind: QuestionKind::Text { default: None },
            },
            Question {
                field: "rooms",
                flag: "target",
                value_name: "ID",
                prompt: "Matrix room ids (!abc:example.org)",
                kind: QuestionKind::List,
            },
            Question {
                field: "password",
                flag: "secret-env",
                value_name: "VAR",
                prompt: "Matrix bot password",
                kind: QuestionKind::Secret {
                    default_env: "MATRIX_PASSWORD",
                    file_flag: Some("secret-file"),
                },
            },
        ]
    }

    fn rooms(&self) -> (&'static str, Vec<String>) {
        ("rooms", self.rooms.clone())
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut out = Vec::new();
        if let Some(p) = &self.password {
            out.push(("password", p));
        }
        if let Some(t) = &self.access_token {
            out.push(("access_token", t));
        }
        out
    }

    fn check_user_id(user: &str) -> Result<(), String> {
        if is_user_id(user) {
            return Ok(());
        }
        Err(format!(
            "a Matrix user id looks like @name:example.org, not {}",
            mosaic_roster::redact::shown(user)
        ))
    }

    fn validate(&self) -> Vec<SettingProblem> {
        let mut out = Vec::new();
        if !(self.homeserver.starts_with("https://") || self.homeserver.starts_with("http://")) {
            out.push(SettingProblem::new(
                "homeserver",
                format!(
                    "the homeserver is a URL like https://matrix.example.org, not {}",
                    mosaic_roster::redact::shown(&self.homeserver)
                ),
            ));
        }
        if !is_user_id(&self.user) {
            out.push(SettingProblem::new(
                "user",
                format!(
                    "the bot's user id looks like @mosaic:example.org, not {}",
                    mosaic_roster::redact::shown(&self.user)
                ),
            ));
        }
        for (j, room) in self.rooms.iter().enumerate() {
            if RoomId::parse(room).is_err() {
                out.push(SettingProblem::new(
                    format!("rooms[{j}]"),
                    format!(
                        "a Matrix room id looks like !abc123:example.org (Element: Room settings > Advanced), not {}",
                        mosaic_roster::redact::shown(room)
                    ),
                ));
            }
        }
        match (&self.password, &self.access_token) {
            (None, None) => out.push(SettingProblem::new(
                "password",
                "give the bot's password (password: {env: MATRIX_PASSWORD}) or an access token (access_token: {env: MATRIX_ACCESS_TOKEN})",
            )),
            (Some(_), Some(_)) => out.push(SettingProblem::new(
                "access_token",
                "give either password or access_token, not both",
            )),
            _ => {}
        }
        out
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let login = match (&self.password, &self.access_token) {
            (Some(p), _) => Login::Password(p.resolve().map_err(|e| {
                ConnectorError::new(ErrorKind::Auth, format!("matrix password: {e}"))
            })?),
            (None, Some(t)) => Login::AccessToken(t.resolve().map_err(|e| {
                ConnectorError::new(ErrorKind::Auth, format!("matrix access token: {e}"))
            })?),
            (None, None) => {
                return Err(ConnectorError::new(
                    ErrorKind::Auth,
                    "matrix: neither a password nor an access token is configured",
                ));
            }
        };
        Ok(Arc::new(MatrixConnector::new(MatrixConfig {
            id: ctx.id.to_owned(),
            homeserver: self.homeserver.clone(),
            user: self.user.clone(),
            login,
            rooms: self.rooms.clone(),
            inviters: ctx.users.to_vec(),
            dir: ctx.own_dir(),
        })))
    }
}

fn is_user_id(user: &str) -> bool {
    UserId::parse(user).is_ok()
}

/// How the bot logs in the first time.
#[derive(Clone)]
pub enum Login {
    /// With its password.
    Password(String),
    /// With an access token made elsewhere.
    AccessToken(String),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Login::Password(_) => "Login::Password(…)",
            Login::AccessToken(_) => "Login::AccessToken(…)",
        })
    }
}

/// What the connector needs.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
    /// The instance id (the roster entry's `id`, by default `matrix`).
    pub id: String,
    /// The homeserver URL.
    pub homeserver: String,
    /// The bot's user id.
    pub user: String,
    /// The first login.
    pub login: Login,
    /// The bridged room ids.
    pub rooms: Vec<String>,
    /// Users whose invitations (to bridged rooms) the bot accepts, when it starts (the bridge
    /// keeps them current: [`Connector::users_changed`]).
    pub inviters: Vec<String>,
    /// Where the session and the store live (mode 0700).
    pub dir: PathBuf,
}

/// The Matrix connector.
pub struct MatrixConnector {
    config: MatrixConfig,
    client: Mutex<Option<Client>>,
    /// Rooms where a message could not be decrypted lately, with why (health is degraded while
    /// any is listed).
    undecryptable: Mutex<Vec<(String, String)>>,
    /// Invitations already logged as not accepted.
    refused_invites: Mutex<std::collections::HashSet<String>>,
    /// The ACL's users of this connector, as the roster in use has them: whose invitations
    /// are accepted, who is invited to agents' rooms.
    inviters: Mutex<Vec<String>>,
}

impl MatrixConnector {
    /// A connector for `config` (nothing connects until [`Connector::run`]).
    pub fn new(config: MatrixConfig) -> MatrixConnector {
        MatrixConnector {
            client: Mutex::new(None),
            undecryptable: Mutex::new(Vec::new()),
            refused_invites: Mutex::new(Default::default()),
            inviters: Mutex::new(config.inviters.clone()),
            config,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &MatrixConfig {
        &self.config
    }

    fn session_path(&self) -> PathBuf {
        self.config.dir.join("session.json")
    }

    fn store_path(&self) -> PathBuf {
        self.config.dir.join("store")
    }

    /// A client logged in as the bot: the kept session and store when there are, else a fresh
    /// login (and a fresh store, since a store belongs to one device).
    async fn connect(&self) -> Result<Client, ConnectorError> {
        make_private_dir(&self.config.dir)?;
        // A session without its store would reuse the device id with new keys, which other
        // people's clients refuse: log in afresh instead.
        let kept = read_session(&self.session_path()).filter(|_| self.store_path().exists());
        if let Some(session) = kept {
            let client = self.client_with_store().await?;
            match client.restore_session(session).await {
                Ok(()) => match client.whoami().await {
                    Ok(_) => return Ok(client),
                    Err(e) if http_status(&e) == Some(401) => {
                        tracing::warn!(connector = %self.config.id, "matrix: the kept session was logged out; logging in again");
                    }
                    Err(e) => return Err(classify_http(e)),
                },
                Err(e) => {
                    tracing::warn!(connector = %self.config.id, error = %e, "matrix: cannot restore the kept session; logging in again");
                }
            }
            drop(client);
            let _ = std::fs::remove_file(self.session_path());
            let _ = std::fs::remove_dir_all(self.store_path());
        } else {
            let _ = std::fs::remove_dir_all(self.store_path());
        }
        let client = self.client_with_store().await?;
        let session = match &self.config.login {
            Login::Password(password) => {
                let response = client
                    .matrix_auth()
                    .login_username(&self.config.user, password)
                    .initial_device_display_name("mosaic")
                    .send()
                    .await
                    .map_err(classify)?;
                MatrixSession::from(&response)
            }
            Login::AccessToken(token) => {
                let probe = Client::builder()
                    .homeserver_url(&self.config.homeserver)
                    .build()
                    .await
                    .map_err(|e| fatal(format!("matrix: {e}")))?;
                let session = MatrixSession {
                    meta: matrix_sdk::SessionMeta {
                        user_id: UserId::parse(&self.config.user)
                            .map_err(|e| fatal(format!("matrix: {e}")))?,
                        device_id: "UNKNOWN".into(),
                    },
                    tokens: matrix_sdk::authentication::SessionTokens {
                        access_token: token.clone(),
                        refresh_token: None,
                    },
                };
                probe
                    .restore_session(session.clone())
                    .await
                    .map_err(classify)?;
                let me = probe.whoami().await.map_err(classify_http)?;
                let device_id = me.device_id.ok_or_else(|| {
                    fatal("matrix: the access token has no device; make one with a password login")
                })?;
                MatrixSession {
                    meta: matrix_sdk::SessionMeta {
                        user_id: me.user_id,
                        device_id,
                    },
                    ..session
                }
            }
        };
        if matches!(self.config.login, Login::AccessToken(_)) {
            client
                .restore_session(session.clone())
                .await
                .map_err(classify)?;
        }
        write_session(&self.session_path(), &session)?;
        Ok(client)
    }

    async fn client_with_store(&self) -> Result<Client, ConnectorError> {
        Client::builder()
            .homeserver_url(&self.config.homeserver)
            .sqlite_store(self.store_path(), None)
            // The bridge retries (its outbox, the connector loop), with the platform's waits.
            .request_config(RequestConfig::new().disable_retry())
            .build()
            .await
            .map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Retryable,
                    format!("matrix: cannot reach {}: {e}", self.config.homeserver),
                )
            })
    }

    fn client(&self) -> Result<Client, ConnectorError> {
        self.client
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| ConnectorError::new(ErrorKind::Retryable, "matrix: not connected yet"))
    }

    fn room(&self, room: &str) -> Result<Room, ConnectorError> {
        let id = RoomId::parse(room).map_err(|_| {
            fatal(format!(
                "matrix: {} is not a room id",
                mosaic_roster::redact::shown(room)
            ))
        })?;
        self.client()?.get_room(&id).ok_or_else(|| {
            fatal(format!(
                "matrix: the bot is not in room {room}: invite it (from a user in the acl)"
            ))
        })
    }

    /// Joins the bridged rooms the ACL's users invited the bot to (every pending invitation,
    /// each sync, so a room added to the roster later is joined after a restart); declines
    /// nothing (an invitation from anyone else stays pending and is logged once).
    async fn answer_invites(&self, client: &Client) {
        for room in client.invited_rooms() {
            let room_id = room.room_id().to_owned();
            let bridged = self.config.rooms.iter().any(|r| r == room_id.as_str());
            let inviter = match room.invite_details().await {
                Ok(invite) => invite.inviter_id.to_string(),
                Err(_) => continue,
            };
            let trusted = self.inviters.lock().unwrap().contains(&inviter);
            if bridged && trusted {
                if let Err(e) = room.join().await {
                    tracing::warn!(connector = %self.config.id, room = %room_id, error = %e, "matrix: cannot join a room");
                }
            } else if self
                .refused_invites
                .lock()
                .unwrap()
                .insert(room_id.to_string())
            {
                tracing::info!(connector = %self.config.id, room = %room_id, inviter, bridged, "matrix: an invitation was not accepted (only the acl's users' invitations to bridged rooms are)");
            }
        }
    }

    /// The message of a timeline event as the bridge sees it, or what to do instead.
    fn read(&self, room: &str, event: &TimelineEvent, me: &str) -> Read {
        let raw = match &event.kind {
            TimelineEventKind::UnableToDecrypt { event, utd_info } => {
                let sender = event
                    .get_field::<String>("sender")
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                if sender == me {
                    return Read::Skip;
                }
                let event_id = event
                    .get_field::<String>("event_id")
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                return Read::Undecryptable {
                    event_id,
                    sender,
                    why: format!("{:?}", utd_info.reason),
                };
            }
            TimelineEventKind::Decrypted(d) => d.event.json().get(),
            TimelineEventKind::PlainText { event } => event.json().get(),
        };
        let Ok(value) = serde_json::from_str::<Value>(raw) else {
            return Read::Skip;
        };
        if value["type"] != "m.room.message" || value["sender"] == me {
            return Read::Skip;
        }
        let content = &value["content"];
        let relates = &content["m.relates_to"];
        if relates["rel_type"] == "m.replace" {
            return Read::Skip; // an edit
        }
        let (Some(event_id), Some(sender)) = (value["event_id"].as_str(), value["sender"].as_str())
        else {
            return Read::Skip;
        };
        match content["msgtype"].as_str() {
            Some("m.text") | Some("m.emote") => {}
            Some("m.notice") | None => return Read::Skip, // bots speak in notices
            Some(_) => {
                return Read::Media {
                    event_id: event_id.to_owned(),
                };
            }
        }
        let body = content["body"].as_str().unwrap_or_default();
        let body = if relates["m.in_reply_to"].is_object() {
            strip_reply_fallback(body)
        } else {
            body.to_owned()
        };
        let thread = (relates["rel_type"] == "m.thread")
            .then(|| relates["event_id"].as_str().map(str::to_owned))
            .flatten();
        Read::Message(Inbound {
            connector: self.config.id.clone(),
            message_id: event_id.to_owned(),
            room: room.to_owned(),
            user: sender.to_owned(),
            user_name: sender.to_owned(),
            text: body,
            thread,
            native_command: false,
        })
    }

    fn set_health(&self, health: &HealthReporter, client: &Client) {
        let undecryptable = self.undecryptable.lock().unwrap();
        let missing: Vec<&str> = self
            .config
            .rooms
            .iter()
            .filter(|r| {
                RoomId::parse(r.as_str())
                    .ok()
                    .and_then(|id| client.get_room(&id))
                    .is_none_or(|room| room.state() != RoomState::Joined)
            })
            .map(String::as_str)
            .collect();
        health.set(match undecryptable.last() {
            None if missing.is_empty() => Health::Up,
            None => Health::Degraded(format!(
                "the bot is not in {}: invite it from an account in the acl (it joins then)",
                missing.join(", ")
            )),
            Some((room, why)) => Health::Degraded(format!(
                "cannot decrypt messages in {} room(s), last in {room}: {why} (see docs/connectors/matrix.md: verify the bot's device, or share the room keys with it)",
                undecryptable.len()
            )),
        });
    }

    async fn sync_loop(
        &self,
        client: &Client,
        inbound: &InboundSink,
        health: &HealthReporter,
        cursors: &Cursors,
        mut token: Option<String>,
    ) -> Result<(), ConnectorError> {
        let me = client.user_id().map(|u| u.to_string()).unwrap_or_default();
        // The first sync of a run returns at once (health is known at once) and brings every
        // room's full state (a fresh store knows no rooms otherwise).
        let mut first_of_run = true;
        loop {
            let first_ever = token.is_none();
            let mut settings = SyncSettings::default()
                .timeout(if first_of_run {
                    Duration::ZERO
                } else {
                    SYNC_TIMEOUT
                })
                .full_state(first_of_run)
                .filter(timeline_filter().into());
            if let Some(t) = &token {
                settings = settings.token(t.clone());
            }
            let response = match client.sync_once(settings).await {
                Ok(response) => response,
                Err(e) => {
                    let e = classify(e);
                    // The device was logged out (from Element, by an admin): with a password,
                    // log in again as a new device on the next run.
                    if e.kind == ErrorKind::Auth && matches!(self.config.login, Login::Password(_))
                    {
                        *self.client.lock().unwrap() = None;
                        let _ = std::fs::remove_file(self.session_path());
                        return Err(ConnectorError::new(
                            ErrorKind::Retryable,
                            format!("{e} (the bot's session was logged out; logging in again)"),
                        ));
                    }
                    return Err(e);
                }
            };
            first_of_run = false;
            self.answer_invites(client).await;
            // The first sync ever only sets the starting point: what was said before the bot
            // came is not the orchestrator's to answer.
            if !first_ever {
                let mut events: Vec<(String, TimelineEvent)> = Vec::new();
                for (id, update) in &response.rooms.joined {
                    if !self.config.rooms.iter().any(|r| r == id.as_str()) {
                        continue;
                    }
                    let mut timeline = update.timeline.events.clone();
                    if update.timeline.limited {
                        // More was said than one sync brings: page back to where the bridge
                        // stopped in this room.
                        let stop = cursors
                            .current()
                            .into_iter()
                            .find(|(room, _)| room == id.as_str())
                            .map(|(_, event)| event);
                        let mut older = self
                            .history(client, id, update.timeline.prev_batch.clone(), stop)
                            .await;
                        older.append(&mut timeline);
                        timeline = older;
                    }
                    events.extend(
                        after_own_join(timeline, &me)
                            .into_iter()
                            .map(|e| (id.to_string(), e)),
                    );
                }
                // Rooms come keyed by id: put their events back in the order they were sent
                // (a stable sort keeps each room's own order among equal times).
                events.sort_by_key(|(_, e)| e.timestamp.map(|t| t.get()));
                for (room_id, event) in &events {
                    match self.read(room_id, event, &me) {
                        Read::Message(message) => {
                            self.undecryptable
                                .lock()
                                .unwrap()
                                .retain(|(r, _)| r != room_id);
                            if inbound.send(message).await.is_err() {
                                return Ok(());
                            }
                        }
                        Read::Undecryptable {
                            event_id,
                            sender,
                            why,
                        } => {
                            self.report_undecryptable(room_id, &event_id, &sender, &why)
                                .await;
                        }
                        Read::Media { event_id } => {
                            self.answer_text_only(room_id, &event_id).await;
                        }
                        Read::Skip => {}
                    }
                }
            }
            self.set_health(health, client);
            match inbound.checkpoint(response.next_batch.clone()).await {
                Ok(true) => token = Some(response.next_batch),
                // A message was not stored: sync again from the last kept point.
                Ok(false) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(_) => return Ok(()),
            }
        }
    }

    /// The events of `room` before the sync's `from` token, oldest first, back to the event
    /// `stop` (not included) or the bot's own join, at most [`HISTORY_PAGES`] pages.
    async fn history(
        &self,
        client: &Client,
        room: &RoomId,
        from: Option<String>,
        stop: Option<String>,
    ) -> Vec<TimelineEvent> {
        let Some(room_handle) = client.get_room(room) else {
            return Vec::new();
        };
        let me = client.user_id().map(|u| u.to_string()).unwrap_or_default();
        let mut older: Vec<TimelineEvent> = Vec::new(); // newest first while paging
        let mut from = from;
        for _ in 0..HISTORY_PAGES {
            let Some(token) = from.take() else { break };
            let mut options = MessagesOptions::backward().from(Some(token.as_str()));
            options.limit = TIMELINE_LIMIT.into();
            let page = match room_handle.messages(options).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(connector = %self.config.id, room = %room, error = %e, "matrix: cannot read the room's history; older messages are not passed on");
                    break;
                }
            };
            for event in page.chunk {
                let id = event.event_id().map(|e| e.to_string());
                if id.is_some() && id == stop {
                    return older.into_iter().rev().collect();
                }
                let joined_here = is_own_join(&event, &me);
                older.push(event);
                if joined_here {
                    return older.into_iter().rev().collect();
                }
            }
            from = page.end;
        }
        if from.is_some() {
            tracing::warn!(connector = %self.config.id, room = %room, "matrix: more than {} events since the last sync; the older ones are not passed on", HISTORY_PAGES * TIMELINE_LIMIT as usize);
        }
        older.into_iter().rev().collect()
    }

    async fn report_undecryptable(&self, room: &str, event_id: &str, sender: &str, why: &str) {
        tracing::warn!(connector = %self.config.id, room, sender, why, "matrix: cannot decrypt a message");
        {
            let mut list = self.undecryptable.lock().unwrap();
            list.retain(|(r, _)| r != room);
            list.push((room.to_owned(), why.to_owned()));
        }
        let text = format!(
            "I cannot decrypt the message {sender} just sent ({why}), so the orchestrator did not get it. Share the room keys with my device (see docs/connectors/matrix.md), then send it again."
        );
        if let Ok(room) = self.room(room) {
            let _ = room
                .send_raw(
                    "m.room.message",
                    json!({"msgtype": "m.notice", "body": text}),
                )
                .with_transaction_id(&transaction_id(&format!("utd-{event_id}")))
                .await;
        }
    }

    async fn answer_text_only(&self, room: &str, event_id: &str) {
        if let Ok(room) = self.room(room) {
            let content = json!({
                "msgtype": "m.notice",
                "body": TEXT_ONLY,
                "m.relates_to": {"m.in_reply_to": {"event_id": event_id}},
            });
            let sent = room
                .send_raw("m.room.message", content)
                .with_transaction_id(&transaction_id(&format!("text-only-{event_id}")))
                .await;
            if let Err(e) = sent {
                tracing::warn!(connector = %self.config.id, error = %e, "matrix: cannot answer a file with the text-only note");
            }
        }
    }
}

/// The most events a room's timeline brings in one `/sync` (homeservers default to about 10;
/// more said while the bot was away is rare, and they are reported).
const TIMELINE_LIMIT: u32 = 100;

fn timeline_filter() -> FilterDefinition {
    let mut filter = FilterDefinition::default();
    filter.room.timeline.limit = Some(TIMELINE_LIMIT.into());
    filter
}

/// How many pages of [`TIMELINE_LIMIT`] events a room's history is read back after a gap.
const HISTORY_PAGES: usize = 20;

/// Whether `event` is the bot's own join (not a profile change while joined).
fn is_own_join(event: &TimelineEvent, me: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(event.raw().json().get()) else {
        return false;
    };
    value["type"] == "m.room.member"
        && value["state_key"] == me
        && value["content"]["membership"] == "join"
        && value["unsigned"]["prev_content"]["membership"] != "join"
}

/// The events after the bot's own join, if the timeline has one: what was said before the bot
/// came (history a new member may read) is not the orchestrator's to answer.
fn after_own_join(events: Vec<TimelineEvent>, me: &str) -> Vec<TimelineEvent> {
    match events.iter().rposition(|e| is_own_join(e, me)) {
        Some(join) => events.into_iter().skip(join + 1).collect(),
        None => events,
    }
}

/// What a timeline event is to the connector.
enum Read {
    Message(Inbound),
    Undecryptable {
        event_id: String,
        sender: String,
        why: String,
    },
    Media {
        event_id: String,
    },
    Skip,
}

/// A reply's body without the quoted fallback clients put before it (`> <@a:b> quoted` lines and
/// a blank line).
fn strip_reply_fallback(body: &str) -> String {
    let mut lines = body.lines().peekable();
    if !body.starts_with("> ") {
        return body.to_owned();
    }
    while lines.peek().is_some_and(|l| l.starts_with('>')) {
        lines.next();
    }
    if lines.peek().is_some_and(|l| l.is_empty()) {
        lines.next();
    }
    lines.collect::<Vec<_>>().join("\n")
}

fn fatal(message: impl Into<String>) -> ConnectorError {
    ConnectorError::new(ErrorKind::Fatal, message.into())
}

fn make_private_dir(dir: &Path) -> Result<(), ConnectorError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| fatal(format!("matrix: cannot make {}: {e}", dir.display())))
}

fn read_session(path: &Path) -> Option<MatrixSession> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_session(path: &Path, session: &MatrixSession) -> Result<(), ConnectorError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = serde_json::to_vec(session).map_err(|e| fatal(format!("matrix: session: {e}")))?;
    let tmp = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    written.map_err(|e| fatal(format!("matrix: cannot keep the session: {e}")))
}

fn http_status(e: &matrix_sdk::HttpError) -> Option<u16> {
    e.as_client_api_error().map(|e| e.status_code.as_u16())
}

/// Maps a failed request to how the bridge should treat it.
fn classify_http(e: matrix_sdk::HttpError) -> ConnectorError {
    use matrix_sdk::ruma::api::error::{ErrorKind as Kind, RetryAfter};
    let kind = match (http_status(&e), e.client_api_error_kind()) {
        (_, Some(Kind::LimitExceeded(data))) => ErrorKind::RateLimited {
            retry_after: match data.retry_after {
                Some(RetryAfter::Delay(d)) => d,
                _ => Duration::from_secs(1),
            },
        },
        (Some(429), _) => ErrorKind::RateLimited {
            retry_after: Duration::from_secs(1),
        },
        (Some(401), _) => ErrorKind::Auth,
        (Some(s), _) if s >= 500 => ErrorKind::Retryable,
        (Some(_), _) => ErrorKind::Fatal,
        (None, _) => ErrorKind::Retryable,
    };
    ConnectorError::new(kind, format!("matrix: {e}"))
}

fn classify(e: matrix_sdk::Error) -> ConnectorError {
    match e {
        matrix_sdk::Error::Http(h) => classify_http(*h),
        other => ConnectorError::new(ErrorKind::Fatal, format!("matrix: {other}")),
    }
}

/// The Matrix transaction id of an outbound message: stable across retries, so the homeserver
/// drops a repeat.
fn transaction_id(key: &str) -> OwnedTransactionId {
    format!("mosaic-{key}").into()
}

#[async_trait]
impl Connector for MatrixConnector {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE_LEN,
            markdown: Markdown::MatrixHtml,
            threads: true,
            native_commands: false,
            reactions: true,
        }
    }

    async fn run(&self, ctx: RunContext) -> Result<(), ConnectorError> {
        let RunContext {
            inbound,
            cursors,
            health,
            mut shutdown,
        } = ctx;
        health.set(Health::Starting);
        let work = async {
            // One client per process: two on the same crypto store would each cache its own
            // view of the device's keys. A run after a failure (a homeserver outage) goes on
            // with the client it has.
            let kept = self.client.lock().unwrap().clone();
            let client = match kept.filter(|c| c.session_meta().is_some()) {
                Some(client) => client,
                None => {
                    let client = self.connect().await?;
                    *self.client.lock().unwrap() = Some(client.clone());
                    // What people compare to trust this device (docs/connectors/matrix.md).
                    let device = client
                        .device_id()
                        .map(|d| d.to_string())
                        .unwrap_or_default();
                    let key = client.encryption().ed25519_key().await.unwrap_or_default();
                    tracing::info!(connector = %self.config.id, device, ed25519 = key, "matrix: logged in");
                    client
                }
            };
            let token = cursors.checkpoint();
            self.sync_loop(&client, &inbound, &health, &cursors, token)
                .await
        };
        let result = tokio::select! {
            r = work => r,
            _ = inbound.closed() => Ok(()),
            _ = shutdown.wait() => Ok(()),
        };
        health.set(match &result {
            Ok(()) => Health::Down("stopped".into()),
            Err(e) => Health::Down(e.to_string()),
        });
        result
    }

    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError> {
        let room = self.room(&message.room)?;
        let mut content = json!({"msgtype": "m.text", "body": message.text});
        if let Some(html) = &message.html {
            content["format"] = json!("org.matrix.custom.html");
            content["formatted_body"] = json!(html);
        }
        let reply_to = message.reply_to.as_ref().map(|r| r.id().to_owned());
        if let Some(thread) = &message.thread {
            content["m.relates_to"] = json!({
                "rel_type": "m.thread",
                "event_id": thread,
                "is_falling_back": reply_to.is_none(),
                "m.in_reply_to": {"event_id": reply_to.as_deref().unwrap_or(thread)},
            });
        } else if let Some(reply_to) = &reply_to {
            content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": reply_to}});
        }
        let sent = room
            .send_raw("m.room.message", content)
            .with_transaction_id(&transaction_id(&message.key))
            .await
            .map_err(classify)?;
        Ok(sent.response.event_id.to_string())
    }

    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError> {
        let room = self.room(room)?;
        let content = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": message_id, "key": ACK_EMOJI}});
        room.send_raw("m.reaction", content)
            .with_transaction_id(&transaction_id(&format!("ack-{message_id}")))
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn typing(&self, room: &str, _thread: Option<&str>) -> Result<(), ConnectorError> {
        self.room(room)?.typing_notice(true).await.map_err(classify)
    }

    /// The agent's room is the one the bot made for it: a room the bot created, is in, and
    /// named `mosaic: AGENT` (only the bot may rename it), found in the bot's own store, so a
    /// restart reuses it and nobody else's room (a stranger's alias, an invitation) is ever
    /// taken for it. A new one is private and encrypted, with the ACL's users of this connector
    /// (as the roster has them now) invited.
    async fn agent_room(&self, agent: &str) -> Result<String, ConnectorError> {
        let client = self.client()?;
        let me = client
            .user_id()
            .ok_or_else(|| ConnectorError::new(ErrorKind::Retryable, "matrix: not logged in"))?
            .to_owned();
        let name = format!("mosaic: {agent}");
        let ours = client.joined_rooms().into_iter().find(|room| {
            room.name().as_deref() == Some(name.as_str())
                && room.creators().is_some_and(|c| c.contains(&me))
        });
        if let Some(room) = ours {
            return Ok(room.room_id().to_string());
        }
        let mut request = create_room::v3::Request::new();
        request.name = Some(name);
        request.topic = Some(format!(
            "What mosaic's fleet says to and hears from agent {agent}"
        ));
        request.preset = Some(RoomPreset::PrivateChat);
        request.invite = self
            .inviters
            .lock()
            .unwrap()
            .iter()
            .filter_map(|u| UserId::parse(u).ok())
            .collect();
        request.initial_state = vec![
            Raw::new(&json!({
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }))
            .map_err(|e| fatal(format!("matrix: {e}")))?
            .cast_unchecked(),
        ];
        let room = client.create_room(request).await.map_err(classify)?;
        Ok(room.room_id().to_string())
    }

    async fn users_changed(&self, users: &[String]) {
        *self.inviters.lock().unwrap() = users.to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_fallbacks_are_dropped() {
        assert_eq!(
            strip_reply_fallback("> <@a:b> earlier\n> more\n\nthe answer"),
            "the answer"
        );
        assert_eq!(strip_reply_fallback("no quote"), "no quote");
    }

    #[test]
    fn ids_are_checked() {
        assert!(MatrixSettings::check_user_id("@mosaic:example.org").is_ok());
        assert!(MatrixSettings::check_user_id("mosaic").is_err());
        let settings = MatrixSettings {
            homeserver: "matrix.example.org".into(),
            user: "mosaic".into(),
            rooms: vec!["#ops:example.org".into(), "!abc:example.org".into()],
            password: None,
            access_token: None,
        };
        let problems: Vec<String> = settings.validate().into_iter().map(|p| p.path).collect();
        assert_eq!(problems, ["homeserver", "user", "rooms[0]", "password"]);
    }
}
