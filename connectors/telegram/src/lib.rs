//! The Telegram connector: teloxide's Bot API client on long polling (`getUpdates`), private
//! chats, groups and forum topics as rooms (a topic is a thread), `/fleet` and `/fleet@ThisBot`,
//! the command registered with `setMyCommands`, MarkdownV2 replies, a reaction as the
//! acknowledgement, "typing" while the orchestrator works.
//!
//! **Exactly once.** Telegram keeps an update until a later `getUpdates` names a higher offset.
//! The connector asks for the next batch only once the bridge has stored the last one and kept
//! the new offset as the connector's checkpoint (in the state database), so a crash anywhere
//! loses nothing: Telegram sends the unconfirmed updates again and the bridge drops the ones it
//! already has. A restart resumes from the checkpoint.
//!
//! **One consumer per bot.** When two programs poll one bot, Telegram ends the older poll with
//! 409 "terminated by other getUpdates request". A connector that meets a 409 within
//! [`TelegramConfig::conflict_grace`] of starting to poll is the newcomer and stops with
//! "another program polls this bot"; one that polled longer takes the bot back (its next poll
//! ends the newcomer's), and stops too if the other program does not give up within the grace.

#[cfg(feature = "test-util")]
pub mod fake;
mod text;

use async_trait::async_trait;
use mosaic_connector::registry::{BuildContext, ConnectorConfig, Question, QuestionKind, Typed};
use mosaic_connector::{
    Capabilities, Connector, ConnectorError, ErrorKind, Health, HealthReporter, Inbound,
    InboundSink, Markdown, Outbound, RunContext,
};
use mosaic_roster::{SecretRef, SettingProblem};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use teloxide::payloads::{
    GetUpdatesSetters, SendChatActionSetters, SendMessageSetters, SetMessageReactionSetters,
    SetMyCommandsSetters,
};
use teloxide::requests::{Request, Requester};
use teloxide::types::{
    AllowedUpdate, BotCommand, BotCommandScope, ChatAction, ChatId, ChatMemberKind,
    LinkPreviewOptions, MediaKind, Message, MessageId, MessageKind, ParseMode, ReactionType,
    Recipient, ReplyParameters, ThreadId, Update, UpdateKind,
};
use teloxide::{ApiError, Bot, RequestError};

/// Telegram's message length limit (characters after entities parsing).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The reaction that acknowledges a received message.
pub const ACK_EMOJI: &str = "👀";
/// The command registered with `setMyCommands` (Telegram commands cannot hold spaces, so the
/// verbs follow as arguments).
pub const COMMAND: &str = "fleet";
/// How long Telegram waits for updates in one `getUpdates`.
const POLL: Duration = Duration::from_secs(25);
/// Telegram picks update ids at random after a week without updates, so an older checkpoint is
/// not used.
const CHECKPOINT_TTL: Duration = Duration::from_secs(6 * 24 * 3600);
/// What a user who sends a file, photo or voice message is told.
pub const TEXT_ONLY: &str = "mosaic passes only text to the orchestrator: type or paste it as a message (files, photos, voice and stickers are not forwarded).";

/// The Telegram connector type, registered by the binary.
pub static TYPE: Typed<TelegramSettings> = Typed::new();

/// A Telegram entry of the roster (`type: telegram`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    /// Chat ids the orchestrator listens and answers in: a private chat's id is the user's id,
    /// groups' ids are negative (supergroups start with -100).
    pub chats: Vec<String>,
    /// Where the bot token is.
    pub token: SecretRef,
}

impl ConnectorConfig for TelegramSettings {
    const TYPE: &'static str = "telegram";
    const SUMMARY: &'static str = "Telegram (a bot in your chats and groups; teloxide)";

    fn questions() -> Vec<Question> {
        vec![
            Question {
                field: "chats",
                flag: "target",
                value_name: "ID",
                prompt: "Telegram chat ids (a private chat is your user id; groups are negative)",
                kind: QuestionKind::List,
            },
            Question {
                field: "token",
                flag: "secret-env",
                value_name: "VAR",
                prompt: "Telegram bot token",
                kind: QuestionKind::Secret {
                    default_env: "TELEGRAM_BOT_TOKEN",
                    file_flag: Some("secret-file"),
                },
            },
        ]
    }

    fn rooms(&self) -> (&'static str, Vec<String>) {
        ("chats", self.chats.clone())
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("token", &self.token)]
    }

    fn check_user_id(user: &str) -> Result<(), String> {
        match user.parse::<i64>() {
            // The bridge compares ids as strings: only the form Telegram sends ("123", not "+123").
            Ok(id) if id > 0 && id.to_string() == user => Ok(()),
            _ => Err(format!(
                "a Telegram user id is a positive number like 123456789, not {} (send any message to your bot and read `from.id` in https://api.telegram.org/bot<TOKEN>/getUpdates, or ask @userinfobot)",
                mosaic_roster::redact::shown(user)
            )),
        }
    }

    fn validate(&self) -> Vec<SettingProblem> {
        self.chats
            .iter()
            .enumerate()
            .filter(
                |(_, c)| !matches!(c.parse::<i64>(), Ok(id) if id != 0 && id.to_string() == **c),
            )
            .map(|(j, c)| {
                SettingProblem::new(
                    format!("chats[{j}]"),
                    format!(
                        "a Telegram chat id is a number like 123456789 or -1001234567890, not {}",
                        mosaic_roster::redact::shown(c)
                    ),
                )
            })
            .collect()
    }

    fn check_secret(&self, _field: &str, value: &str) -> Result<(), (String, String)> {
        if token_shape_ok(value) {
            Ok(())
        } else {
            Err((
                "does not hold a Telegram bot token (digits, a colon, then 35 characters)".into(),
                "copy the token from @BotFather: /mybots > your bot > API Token".into(),
            ))
        }
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let id = ctx.id;
        let token = self
            .token
            .resolve()
            .map_err(|e| ConnectorError::new(ErrorKind::Auth, format!("telegram token: {e}")))?;
        let chats = self
            .chats
            .iter()
            .map(|c| {
                c.parse().map_err(|_| {
                    ConnectorError::new(ErrorKind::Fatal, "telegram: a chat id is not numeric")
                })
            })
            .collect::<Result<_, _>>()?;
        // A Bot API server other than api.telegram.org: a local Bot API server, or the tests'
        // fake Telegram.
        let api_base = std::env::var("MOSAIC_TELEGRAM_API_BASE")
            .ok()
            .filter(|b| !b.is_empty());
        Ok(Arc::new(TelegramConnector::new(TelegramConfig {
            id: id.to_owned(),
            token: token.trim().to_owned(),
            chats,
            users: ctx.users.to_vec(),
            api_base,
            poll: POLL,
            conflict_grace: POLL + Duration::from_secs(5),
        })?))
    }
}

/// Whether `token` has the shape of a Telegram bot token (`123456:ABC-…`), checked without
/// contacting Telegram.
pub fn token_shape_ok(token: &str) -> bool {
    let Some((bot, secret)) = token.trim().split_once(':') else {
        return false;
    };
    !bot.is_empty()
        && bot.bytes().all(|b| b.is_ascii_digit())
        && secret.len() >= 30
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What the connector needs.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// The instance id (the roster entry's `id`, by default `telegram`).
    pub id: String,
    /// The bot token (from the env var or file the roster names).
    pub token: String,
    /// The bridged chats.
    pub chats: Vec<i64>,
    /// The users the roster's ACL names for this connector: only they are told that files are
    /// not forwarded (a stranger gets no answer at all, as from the bridge).
    pub users: Vec<String>,
    /// Send Bot API calls here instead of https://api.telegram.org (tests point it at a fake).
    pub api_base: Option<String>,
    /// How long one `getUpdates` waits for updates.
    pub poll: Duration,
    /// How long a polling connector fights another poller of its bot before it gives up.
    pub conflict_grace: Duration,
}

/// The Telegram connector.
pub struct TelegramConnector {
    config: TelegramConfig,
    bot: Bot,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The bot's username (for `/fleet@name`), once known.
    username: Mutex<Option<String>>,
    /// When this process began polling. A 409 in the first [`TelegramConfig::conflict_grace`]
    /// means we are the newcomer (Telegram ends the older of two polls); later, that someone
    /// else started polling our bot.
    polling_since: Mutex<Option<Instant>>,
    /// Chats where reactions are off: the ack is a short reply there.
    no_reactions: Mutex<HashSet<i64>>,
    /// The files already answered with the text-only note (their message keys, the newest
    /// [`ANSWERED_KEPT`]): a batch fetched again is not answered again.
    answered: Mutex<VecDeque<String>>,
}

/// How many answered files the connector remembers.
const ANSWERED_KEPT: usize = 256;

impl TelegramConnector {
    /// A connector for `config` (nothing connects until [`Connector::run`]).
    pub fn new(config: TelegramConfig) -> Result<TelegramConnector, ConnectorError> {
        // teloxide's default client gives up after 17 s, shorter than a long poll.
        let client = teloxide::net::default_reqwest_settings()
            .timeout(config.poll + Duration::from_secs(15))
            .build()
            .map_err(|e| ConnectorError::new(ErrorKind::Fatal, format!("telegram: {e}")))?;
        let mut bot = Bot::with_client(&config.token, client);
        if let Some(base) = &config.api_base {
            let url = base.parse().map_err(|_| {
                ConnectorError::new(ErrorKind::Fatal, "telegram: the API base is not a URL")
            })?;
            bot = bot.set_api_url(url);
        }
        Ok(TelegramConnector {
            config,
            bot,
            shared: Arc::new(Shared::default()),
        })
    }

    /// Maps a teloxide failure to how the bridge should treat it, without the token (reqwest's
    /// errors name the URL, and the URL holds the token).
    fn classify(&self, e: RequestError) -> ConnectorError {
        let (kind, hint) = match &e {
            RequestError::RetryAfter(wait) => (
                ErrorKind::RateLimited {
                    retry_after: wait.duration(),
                },
                "",
            ),
            RequestError::Network(_) | RequestError::Io(_) | RequestError::InvalidJson { .. } => {
                (ErrorKind::Retryable, "")
            }
            RequestError::MigrateToChatId(_) => (
                ErrorKind::Fatal,
                " - the group became a supergroup: put its new id in chats in roster.yaml",
            ),
            RequestError::Api(ApiError::InvalidToken) => (
                ErrorKind::Auth,
                " - the bot token was refused (mistyped, or revoked in @BotFather)",
            ),
            RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => {
                (ErrorKind::Fatal, CONFLICT_HINT)
            }
            RequestError::Api(ApiError::BotBlocked) => (
                ErrorKind::Fatal,
                " - the user blocked the bot; they can unblock it in its chat",
            ),
            RequestError::Api(ApiError::ChatNotFound) => (
                ErrorKind::Fatal,
                " - add the bot to the chat, or fix the chat id in roster.yaml",
            ),
            RequestError::Api(ApiError::Unknown(d)) if is_server_error(d) => {
                (ErrorKind::Retryable, "")
            }
            RequestError::Api(ApiError::Unknown(d)) if d.starts_with("Too Many Requests") => (
                ErrorKind::RateLimited {
                    retry_after: Duration::from_secs(1),
                },
                "",
            ),
            _ => (ErrorKind::Fatal, ""),
        };
        let message = format!("telegram: {e}{hint}").replace(&self.config.token, "<token>");
        ConnectorError::new(kind, message)
    }

    /// Learns who the bot is, refuses to poll a bot with a webhook, registers `/fleet` in each
    /// chat and finds the chats where group privacy hides plain messages. Returns the health to
    /// show while polling works.
    async fn prepare(&self) -> Result<(Health, u64), ConnectorError> {
        let me = self
            .bot
            .get_me()
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        let username = me.user.username.clone().unwrap_or_default();
        *self.shared.username.lock().unwrap() = Some(username.clone());
        let webhook = self
            .bot
            .get_webhook_info()
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        if let Some(url) = webhook.url {
            return Err(ConnectorError::new(
                ErrorKind::Fatal,
                format!(
                    "telegram: a webhook is set for this bot ({}), and Telegram sends no updates to pollers while it is; mosaic only polls: remove it (https://api.telegram.org/bot<TOKEN>/deleteWebhook) or give mosaic its own bot",
                    url.host_str().unwrap_or("a URL")
                ),
            ));
        }
        let mut problems = Vec::new();
        let command = BotCommand::new(COMMAND, command_description());
        for &chat in &self.config.chats {
            let registered = self
                .bot
                .set_my_commands(vec![command.clone()])
                .scope(BotCommandScope::Chat {
                    chat_id: Recipient::Id(ChatId(chat)),
                })
                .send()
                .await;
            if let Err(e) = registered {
                let e = self.classify(e);
                if !matches!(e.kind, ErrorKind::Fatal) {
                    return Err(e);
                }
                problems.push(format!("registering /fleet in chat {chat} failed: {e}"));
            }
        }
        if !me.can_read_all_group_messages {
            let mut hidden = Vec::new();
            for &chat in self.config.chats.iter().filter(|c| **c < 0) {
                let member = self
                    .bot
                    .get_chat_member(ChatId(chat), me.user.id)
                    .send()
                    .await;
                let admin = matches!(
                    member.map(|m| m.kind),
                    Ok(ChatMemberKind::Owner(_) | ChatMemberKind::Administrator(_))
                );
                if !admin {
                    hidden.push(chat.to_string());
                }
            }
            if !hidden.is_empty() {
                problems.push(format!(
                    "group privacy is on, so in chat {} the bot sees only /fleet@{username} commands and replies to its own messages, not plain messages: turn it off (@BotFather /setprivacy > Disable, then remove the bot from the group and add it again) or make the bot an admin there",
                    hidden.join(", ")
                ));
            }
        }
        let health = if problems.is_empty() {
            Health::Up
        } else {
            Health::Degraded(problems.join("; "))
        };
        Ok((health, me.user.id.0))
    }

    /// Hands one update to the bridge, or answers it here (files), or skips it.
    async fn take(&self, update: Update, inbound: &InboundSink) -> Result<(), ()> {
        let UpdateKind::Message(msg) = update.kind else {
            return Ok(());
        };
        if !self.config.chats.contains(&msg.chat.id.0) {
            tracing::debug!(connector = %self.config.id, chat = msg.chat.id.0, "telegram: a message from a chat that is not bridged");
            return Ok(());
        }
        let Some(from) = msg.from.as_ref().filter(|u| !u.is_bot) else {
            return Ok(()); // bots, channels and anonymous admins do not command the fleet
        };
        let Some(raw) = msg.text() else {
            if is_user_content(&msg) && self.first_answer(&msg, from.id.0) {
                self.answer_text_only(&msg).await;
            }
            return Ok(());
        };
        let username = self.shared.username.lock().unwrap().clone();
        let Some(text) = text::addressed(
            raw,
            username.as_deref().unwrap_or_default(),
            msg.chat.is_private(),
        ) else {
            return Ok(()); // a command for another bot
        };
        let user_name = match &from.username {
            Some(u) => format!("@{u}"),
            None => from.full_name(),
        };
        let event = Inbound {
            connector: self.config.id.clone(),
            message_id: message_key(msg.chat.id.0, msg.id),
            room: msg.chat.id.0.to_string(),
            user: from.id.0.to_string(),
            user_name,
            text,
            thread: msg
                .is_topic_message
                .then_some(msg.thread_id)
                .flatten()
                .map(|t| t.0.0.to_string()),
            native_command: false,
        };
        inbound.send(event).await.map_err(|_| ())
    }

    /// Whether a file from `user` should get the text-only note now: the sender is a user the
    /// ACL names (a stranger is not answered, as the bridge answers strangers nothing), and the
    /// file was not answered before (a batch the bridge could not store is fetched again).
    fn first_answer(&self, msg: &Message, user: u64) -> bool {
        let user = user.to_string();
        if !self.config.users.contains(&user) {
            tracing::debug!(connector = %self.config.id, "telegram: a file from a user the acl does not name; not answered");
            return false;
        }
        let key = message_key(msg.chat.id.0, msg.id);
        let mut answered = self.shared.answered.lock().unwrap();
        if answered.contains(&key) {
            return false;
        }
        if answered.len() >= ANSWERED_KEPT {
            answered.pop_front();
        }
        answered.push_back(key);
        true
    }

    async fn answer_text_only(&self, msg: &Message) {
        let mut request = self
            .bot
            .send_message(msg.chat.id, TEXT_ONLY)
            .reply_parameters(ReplyParameters::new(msg.id).allow_sending_without_reply());
        if msg.is_topic_message
            && let Some(thread) = msg.thread_id
        {
            request = request.message_thread_id(thread);
        }
        if let Err(e) = request.send().await {
            let e = self.classify(e);
            tracing::warn!(connector = %self.config.id, error = %e, "telegram: cannot answer a file with the text-only note");
        }
    }

    async fn poll(
        &self,
        inbound: &InboundSink,
        health: &HealthReporter,
        serving: Health,
        bot: u64,
        mut offset: Option<i32>,
    ) -> Result<(), ConnectorError> {
        let mut conflict_since: Option<Instant> = None;
        let started = *self
            .shared
            .polling_since
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
        let poll_secs = u32::try_from(self.config.poll.as_secs()).unwrap_or(25);
        loop {
            let mut request = self
                .bot
                .get_updates()
                .timeout(poll_secs)
                .limit(100)
                .allowed_updates(vec![AllowedUpdate::Message]);
            if let Some(o) = offset {
                request = request.offset(o);
            }
            match request.send().await {
                Ok(updates) => {
                    if conflict_since.take().is_some() {
                        health.set(serving.clone());
                    }
                    let Some(last) = updates.last().map(|u| u.id) else {
                        // This poll confirmed everything before `offset`, so polling without one
                        // gets the same updates, and keeps working when Telegram numbers them
                        // at random after a week without updates (a kept offset would then be
                        // higher than the new ids and confirm them away unseen).
                        offset = None;
                        continue;
                    };
                    // `None` when the last id is i32::MAX (or beyond): no offset can confirm it.
                    let next = next_offset(last.0);
                    for update in updates {
                        if self.take(update, inbound).await.is_err() {
                            return Ok(()); // the bridge stopped
                        }
                    }
                    match inbound.checkpoint(checkpoint_value(bot, next)).await {
                        Ok(true) if next.is_some() => offset = next,
                        // The batch ends with the highest update id there is, which no offset
                        // can confirm: poll without one (the bridge drops what it already
                        // took), at most once a second, until Telegram forgets it.
                        Ok(true) => {
                            offset = None;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        // A message was not stored: fetch the batch again (Telegram still has
                        // it; the bridge drops what it already took).
                        Ok(false) => tokio::time::sleep(Duration::from_secs(1)).await,
                        Err(_) => return Ok(()),
                    }
                }
                Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates)) => {
                    let err =
                        self.classify(RequestError::Api(ApiError::TerminatedByOtherGetUpdates));
                    if started.elapsed() < self.config.conflict_grace {
                        return Err(err);
                    }
                    let since = *conflict_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.config.conflict_grace {
                        return Err(err);
                    }
                    health.set(Health::Degraded(format!(
                        "another program polls this bot; taking it back (giving up in {} s)",
                        (self.config.conflict_grace - since.elapsed()).as_secs()
                    )));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(RequestError::RetryAfter(wait)) => {
                    health.set(Health::Degraded(format!(
                        "Telegram asked to wait {} s (flood control)",
                        wait.seconds()
                    )));
                    tokio::time::sleep(wait.duration()).await;
                    health.set(serving.clone());
                }
                Err(e) => return Err(self.classify(e)),
            }
        }
    }

    /// Sends `text` (MarkdownV2) and returns the new message; a text Telegram cannot parse is
    /// sent again as plain text, so a rendering slip never loses a reply.
    async fn send_text(
        &self,
        chat: ChatId,
        text: &str,
        thread: Option<ThreadId>,
        reply_to: Option<MessageId>,
    ) -> Result<Message, ConnectorError> {
        let request = |text: &str, markdown: bool| {
            let mut r =
                self.bot
                    .send_message(chat, text)
                    .link_preview_options(LinkPreviewOptions {
                        is_disabled: true,
                        url: None,
                        prefer_small_media: false,
                        prefer_large_media: false,
                        show_above_text: false,
                    });
            if markdown {
                r = r.parse_mode(ParseMode::MarkdownV2);
            }
            if let Some(thread) = thread {
                r = r.message_thread_id(thread);
            }
            if let Some(id) = reply_to {
                r = r.reply_parameters(ReplyParameters::new(id).allow_sending_without_reply());
            }
            r
        };
        let plain = match request(text, true).send().await {
            Err(RequestError::Api(ApiError::CantParseEntities(why))) => {
                tracing::warn!(connector = %self.config.id, error = %why, "telegram: the reply's MarkdownV2 was refused; sending it as plain text");
                text::unescape(text)
            }
            // Telegram counts UTF-16 units, so a reply of many emoji can be longer than the
            // bridge's character count: send it as plain parts that fit.
            Err(RequestError::Api(ApiError::MessageIsTooLong)) => text::unescape(text),
            other => return other.map_err(|e| self.classify(e)),
        };
        let mut last = None;
        for part in text::utf16_parts(&plain, MAX_MESSAGE_LEN) {
            last = Some(
                request(&part, false)
                    .send()
                    .await
                    .map_err(|e| self.classify(e))?,
            );
        }
        last.ok_or_else(|| ConnectorError::new(ErrorKind::Fatal, "telegram: an empty reply"))
    }
}

const CONFLICT_HINT: &str = " - another program polls this bot (a second mosaic, or another bot framework with the same token): stop it, or give mosaic its own bot (@BotFather /newbot)";

/// Whether a Bot API description is a passing server failure.
fn is_server_error(description: &str) -> bool {
    [
        "Internal Server Error",
        "Bad Gateway",
        "Gateway Timeout",
        "Service Unavailable",
    ]
    .iter()
    .any(|p| description.starts_with(p))
}

/// Whether a message without text is something a user sent (a file, photo, voice, sticker…)
/// rather than a service message (joins, pins, topic changes).
fn is_user_content(msg: &Message) -> bool {
    matches!(&msg.kind, MessageKind::Common(c) if !matches!(c.media_kind, MediaKind::Text(_)))
}

/// `/fleet`'s description in Telegram's command menu, from the grammar's verbs (at most 256
/// characters).
fn command_description() -> String {
    let verbs: Vec<String> = mosaic_grammar::native::native_verbs()
        .into_iter()
        .map(|v| v.name)
        .collect();
    let mut text = format!("Command the mosaic fleet: {}", verbs.join(", "));
    if text.chars().count() > 256 {
        text = text.chars().take(252).collect::<String>() + " ...";
    }
    text
}

/// The bridge's id of a Telegram message: Telegram numbers messages per chat.
fn message_key(chat: i64, id: MessageId) -> String {
    format!("{chat}:{}", id.0)
}

/// The message id within its chat of a bridge id made by [`message_key`].
fn parse_message_key(key: &str) -> Result<MessageId, ConnectorError> {
    key.rsplit(':')
        .next()
        .and_then(|m| m.parse().ok())
        .map(MessageId)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Fatal,
                format!(
                    "telegram: {} is not a message id",
                    mosaic_roster::redact::shown(key)
                ),
            )
        })
}

fn parse_chat(room: &str) -> Result<ChatId, ConnectorError> {
    room.parse().map(ChatId).map_err(|_| {
        ConnectorError::new(
            ErrorKind::Fatal,
            format!(
                "telegram: chat {} is not a numeric id",
                mosaic_roster::redact::shown(room)
            ),
        )
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The offset that confirms update `id` and the ones before it: `id + 1`, or `None` when that
/// is not an i32 (the Bot API's offset; teloxide's `as_offset` would overflow).
fn next_offset(id: u32) -> Option<i32> {
    i32::try_from(id).ok()?.checked_add(1)
}

/// A checkpoint: the bot it belongs to, the next offset to ask for (`-` for none) and when
/// (update ids are random after a week).
fn checkpoint_value(bot: u64, offset: Option<i32>) -> String {
    let offset = offset.map_or_else(|| "-".to_owned(), |o| o.to_string());
    format!("{bot} {offset} {}", unix_now())
}

/// The offset to resume from, if the checkpoint is this bot's and fresh enough to trust.
///
/// The checkpoint is kept per roster entry, and the entry's token may now be another bot's,
/// whose update ids are unrelated: an offset of another bot would confirm away this bot's
/// pending messages, so it is not used. Neither is a checkpoint of the older form
/// `"{offset} {unix_secs}"`, which does not say whose it is: polling without an offset loses
/// nothing (Telegram sends every unconfirmed update, and the bridge drops the ones it has).
fn resume_offset(checkpoint: Option<&str>, bot: u64, now: u64) -> Option<i32> {
    let mut parts = checkpoint?.split(' ');
    let (owner, offset, at) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || owner.parse::<u64>().ok()? != bot {
        return None;
    }
    let at: u64 = at.parse().ok()?;
    (now.saturating_sub(at) < CHECKPOINT_TTL.as_secs())
        .then(|| offset.parse().ok())
        .flatten()
}

#[async_trait]
impl Connector for TelegramConnector {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE_LEN,
            markdown: Markdown::TelegramV2,
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
            let (serving, bot) = self.prepare().await?;
            health.set(serving.clone());
            let offset = resume_offset(cursors.checkpoint().as_deref(), bot, unix_now());
            self.poll(&inbound, &health, serving, bot, offset).await
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
        let chat = parse_chat(&message.room)?;
        let thread = match &message.thread {
            Some(t) => Some(ThreadId(parse_message_key(t)?)),
            None => None,
        };
        let reply_to = match &message.reply_to {
            Some(r) => Some(parse_message_key(r.id())?),
            None => None,
        };
        let sent = self
            .send_text(chat, &message.text, thread, reply_to)
            .await?;
        Ok(message_key(chat.0, sent.id))
    }

    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError> {
        let chat = parse_chat(room)?;
        let id = parse_message_key(message_id)?;
        if !self.shared.no_reactions.lock().unwrap().contains(&chat.0) {
            let reacted = self
                .bot
                .set_message_reaction(chat, id)
                .reaction(vec![ReactionType::Emoji {
                    emoji: ACK_EMOJI.into(),
                }])
                .send()
                .await;
            match reacted {
                Ok(_) => return Ok(()),
                // Reactions are off in this chat (its admins chose so): a short reply instead.
                Err(RequestError::Api(ApiError::Unknown(d))) if d.contains("REACTION_INVALID") => {
                    self.shared.no_reactions.lock().unwrap().insert(chat.0);
                }
                Err(e) => return Err(self.classify(e)),
            }
        }
        self.send_text(chat, ACK_EMOJI, None, Some(id))
            .await
            .map(|_| ())
    }

    /// In a forum topic the indicator is the topic's (without a thread it shows in General).
    async fn typing(&self, room: &str, thread: Option<&str>) -> Result<(), ConnectorError> {
        let mut request = self
            .bot
            .send_chat_action(parse_chat(room)?, ChatAction::Typing);
        if let Some(t) = thread {
            request = request.message_thread_id(ThreadId(parse_message_key(t)?));
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        assert!(token_shape_ok("123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"));
        assert!(!token_shape_ok("123456:short"));
        assert!(!token_shape_ok("abc:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"));
        assert!(!token_shape_ok("xoxb-123-456"));
    }

    #[test]
    fn checkpoints_older_than_six_days_are_not_trusted() {
        let now = 10_000_000;
        assert_eq!(resume_offset(Some("7 42 9999000"), 7, now), Some(42));
        assert_eq!(
            resume_offset(Some(&format!("7 42 {}", now - 7 * 86400)), 7, now),
            None
        );
        assert_eq!(resume_offset(Some("nonsense"), 7, now), None);
        assert_eq!(resume_offset(None, 7, now), None);
    }

    #[test]
    fn checkpoints_of_another_bot_or_of_no_known_bot_are_not_used() {
        let now = 10_000_000;
        assert_eq!(resume_offset(Some("8 42 9999000"), 7, now), None);
        // The older form, without the bot.
        assert_eq!(resume_offset(Some("42 9999000"), 7, now), None);
        // No offset (the last batch ended with the highest update id).
        assert_eq!(resume_offset(Some("7 - 9999000"), 7, now), None);
        assert_eq!(resume_offset(Some("7 42 9999000 x"), 7, now), None);
        let value = checkpoint_value(7, Some(42));
        assert_eq!(resume_offset(Some(&value), 7, unix_now()), Some(42));
    }

    #[test]
    fn the_next_offset_never_overflows() {
        assert_eq!(next_offset(41), Some(42));
        assert_eq!(next_offset(i32::MAX as u32 - 1), Some(i32::MAX));
        assert_eq!(next_offset(i32::MAX as u32), None);
        assert_eq!(next_offset(u32::MAX), None);
    }

    #[test]
    fn message_keys_name_the_chat_and_the_message() {
        let key = message_key(-1001847508954, MessageId(5));
        assert_eq!(key, "-1001847508954:5");
        assert_eq!(parse_message_key(&key).unwrap(), MessageId(5));
        assert_eq!(parse_message_key("7").unwrap(), MessageId(7));
        assert!(parse_message_key("x:y").is_err());
    }

    #[test]
    fn the_command_description_fits_telegram() {
        let d = command_description();
        assert!(d.starts_with("Command the mosaic fleet: ") && d.contains("status"));
        assert!(d.chars().count() <= 256);
    }

    #[test]
    fn user_ids_are_positive_numbers() {
        assert!(TelegramSettings::check_user_id("123456789").is_ok());
        assert!(TelegramSettings::check_user_id("-100123").is_err());
        assert!(TelegramSettings::check_user_id("ann").is_err());
    }
}
