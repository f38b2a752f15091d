//! The Discord connector: serenity 0.12 on the gateway with the least intents it needs, messages
//! from the configured guild's channels, the `/fleet` grammar registered as a native slash command
//! for the guild, deferred interaction responses with follow-ups, `!fleet` in plain messages,
//! a reaction as the acknowledgement, a typing indicator, and REST errors mapped to retry kinds
//! (a 429 becomes a rate limit with a retry-after).

#[cfg(feature = "test-util")]
pub mod fake;
mod slash;

use async_trait::async_trait;
use mosaic_connector::registry::{BuildContext, ConnectorConfig, Question, QuestionKind, Typed};
use mosaic_connector::{
    Capabilities, Connector, ConnectorError, Cursors, ErrorKind, Health, HealthReporter, Inbound,
    InboundSink, Markdown, Outbound, ReplyTo, RunContext,
};
use mosaic_roster::{SecretRef, SettingProblem};
use serde::{Deserialize, Serialize};
use serenity::all::{
    ChannelId, ClientBuilder, Command, CommandInteraction, Context,
    CreateInteractionResponseFollowup, CreateMessage, EventHandler, GatewayIntents, GetMessages,
    GuildId, Http, HttpBuilder, Interaction, Message, MessageId, MessageReference,
    MessageReferenceKind, Nonce, ReactionType, Ready, ResumedEvent,
};
use serenity::builder::Builder;
use serenity::http::{LightMethod, Route};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Discord's message length limit, in characters.
pub const MAX_MESSAGE_LEN: usize = 2000;
/// The reaction that acknowledges a received message.
pub const ACK_EMOJI: &str = "👀";
/// How long Discord accepts follow-ups with an interaction's token.
const INTERACTION_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// The most messages Discord returns in one page of channel history.
const HISTORY_PAGE: u8 = 100;
/// The prefix of the message ids given to slash-command invocations (`i` + interaction id).
const INTERACTION_PREFIX: &str = "i";

/// The Discord connector type, registered by the binary.
pub static TYPE: Typed<DiscordSettings> = Typed::new();

/// A Discord entry of the roster (`type: discord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    /// The server (guild) id.
    pub guild: String,
    /// Channel ids the orchestrator listens and answers in.
    pub channels: Vec<String>,
    /// Where the bot token is.
    pub token: SecretRef,
}

impl ConnectorConfig for DiscordSettings {
    const TYPE: &'static str = "discord";
    const SUMMARY: &'static str = "Discord (a bot in your server; serenity)";

    fn questions() -> Vec<Question> {
        vec![
            Question {
                field: "guild",
                flag: "guild",
                value_name: "ID",
                prompt: "Discord server (guild) id",
                kind: QuestionKind::Text { default: None },
            },
            Question {
                field: "channels",
                flag: "target",
                value_name: "ID",
                prompt: "Discord channel ids",
                kind: QuestionKind::List,
            },
            Question {
                field: "token",
                flag: "secret-env",
                value_name: "VAR",
                prompt: "Discord bot token",
                kind: QuestionKind::Secret {
                    default_env: "DISCORD_TOKEN",
                    file_flag: Some("secret-file"),
                },
            },
        ]
    }

    fn rooms(&self) -> (&'static str, Vec<String>) {
        ("channels", self.channels.clone())
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("token", &self.token)]
    }

    fn check_user_id(user: &str) -> Result<(), String> {
        if is_snowflake(user) {
            return Ok(());
        }
        Err(format!(
            "a Discord user id is a number like 123456789012345678, not {} (Discord: User Settings → Advanced → Developer Mode, then right-click your name → Copy User ID)",
            mosaic_roster::redact::shown(user)
        ))
    }

    fn validate(&self) -> Vec<SettingProblem> {
        let mut out = Vec::new();
        if !is_snowflake(&self.guild) {
            out.push(SettingProblem::new(
                "guild",
                format!(
                    "Discord guild id {} must be numeric",
                    mosaic_roster::redact::shown(&self.guild)
                ),
            ));
        }
        for (j, c) in self.channels.iter().enumerate() {
            if !is_snowflake(c) {
                out.push(SettingProblem::new(
                    format!("channels[{j}]"),
                    format!(
                        "Discord channel id {} must be numeric",
                        mosaic_roster::redact::shown(c)
                    ),
                ));
            }
        }
        out
    }

    fn check_secret(&self, _field: &str, value: &str) -> Result<(), (String, String)> {
        if token_shape_ok(value) {
            Ok(())
        } else {
            Err((
                "does not hold a Discord bot token (three dot-separated parts)".into(),
                "copy the token from Developer Portal > your application > Bot > Reset Token"
                    .into(),
            ))
        }
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let id = ctx.id;
        let token = self
            .token
            .resolve()
            .map_err(|e| ConnectorError::new(ErrorKind::Auth, format!("discord token: {e}")))?;
        let guild = self.guild.parse().map_err(|_| {
            ConnectorError::new(ErrorKind::Fatal, "discord: the guild id is not numeric")
        })?;
        // A REST/gateway base other than discord.com: an API proxy, or the tests' fake Discord.
        let api_base = std::env::var("MOSAIC_DISCORD_API_BASE")
            .ok()
            .filter(|b| !b.is_empty());
        Ok(Arc::new(DiscordConnector::new(DiscordConfig {
            id: id.to_owned(),
            token,
            guild,
            api_base,
        })))
    }
}

fn is_snowflake(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `token` has the shape of a Discord bot token (three dot-separated base64url parts),
/// checked without contacting Discord.
pub fn token_shape_ok(token: &str) -> bool {
    let parts: Vec<&str> = token.trim().split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        && parts[0].len() >= 17
}

/// What the connector needs.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The instance id (the roster entry's `id`, by default `discord`).
    pub id: String,
    /// The bot token (from the env var or file the roster names).
    pub token: String,
    /// The guild (server) whose channels are bridged and where `/fleet` is registered.
    pub guild: u64,
    /// Send REST calls here instead of https://discord.com (tests point it at a fake).
    pub api_base: Option<String>,
}

/// The Discord connector.
pub struct DiscordConnector {
    config: DiscordConfig,
    http: Arc<Http>,
    /// The HTTP client for posting through a proxy base ([`DiscordConnector::post_through_proxy`]).
    proxy_client: reqwest::Client,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    bot_user: Mutex<Option<u64>>,
    /// Interaction tokens (and when they came) by the message id given to the bridge, for
    /// follow-ups. Discord honours a token for 15 minutes; older ones are dropped.
    interactions: Mutex<HashMap<String, (String, Instant)>>,
}

impl DiscordConnector {
    /// A connector for `config` (nothing connects until [`Connector::run`]).
    pub fn new(config: DiscordConfig) -> DiscordConnector {
        DiscordConnector {
            http: Arc::new(make_http(&config)),
            proxy_client: reqwest::Client::new(),
            config,
            shared: Arc::new(Shared::default()),
        }
    }

    /// Posts `body` to `route` through the proxy base `base` and returns the new message's id.
    /// serenity's own path loses a 429's wait there: its rate limiter must be off behind a
    /// proxy, and its error keeps only a body that decodes with a `code`, which Discord's rate
    /// limit response need not have. This reads the wait ([`rate_limit_wait`]).
    async fn post_through_proxy(
        &self,
        base: &str,
        route: Route<'_>,
        body: &impl Serialize,
    ) -> Result<String, ConnectorError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ConnectorError::new(ErrorKind::Fatal, format!("discord: {e}")))?;
        let token = format!("Bot {}", self.config.token.trim_start_matches("Bot "));
        let request = serenity::http::Request::new(route, LightMethod::Post)
            .body(Some(bytes))
            .build(&self.proxy_client, &token, Some(base))
            .map_err(classify)?;
        let response = request
            .send()
            .await
            .map_err(|e| ConnectorError::new(ErrorKind::Retryable, format!("discord: {e}")))?;
        let status = response.status().as_u16();
        let header = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if (200..300).contains(&status) {
            return json["id"].as_str().map(str::to_owned).ok_or_else(|| {
                ConnectorError::new(ErrorKind::Fatal, "discord: the posted message has no id")
            });
        }
        let wait = rate_limit_wait(&json, header.as_deref());
        let message = json["message"].as_str().unwrap_or(text.as_str());
        Err(ConnectorError::new(
            status_kind(status, wait),
            format!("discord: HTTP {status}: {message}"),
        ))
    }

    /// The gateway intents: guild messages and their content, nothing more.
    pub fn intents(&self) -> GatewayIntents {
        GatewayIntents::GUILD_MESSAGES | GatewayIntents::MESSAGE_CONTENT
    }
}

/// A REST client for `config`. Against Discord, serenity's rate limiter honours the buckets and,
/// on a 429, waits the `retry-after` and retries by itself. Through a proxy base (an API proxy,
/// the tests' fake Discord) serenity requires the limiter off; messages are then posted by
/// [`DiscordConnector::post_through_proxy`], whose 429 reaches the bridge as
/// [`ErrorKind::RateLimited`] with Discord's wait, and the outbox retries after it.
fn make_http(config: &DiscordConfig) -> Http {
    let mut builder = HttpBuilder::new(&config.token);
    if let Some(base) = &config.api_base {
        builder = builder.proxy(base.clone()).ratelimiter_disabled(true);
    }
    builder.build()
}

/// Maps a serenity failure to how the bridge should treat it.
fn classify(e: serenity::Error) -> ConnectorError {
    use serenity::http::HttpError;
    let kind = match &e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            // serenity keeps no wait of a 429 (its limiter, on here, waits and retries itself).
            status_kind(r.status_code.as_u16(), DEFAULT_RATE_LIMIT_WAIT)
        }
        serenity::Error::Http(HttpError::Request(_))
        | serenity::Error::Io(_)
        | serenity::Error::Tungstenite(_) => ErrorKind::Retryable,
        serenity::Error::Gateway(serenity::gateway::GatewayError::InvalidAuthentication) => {
            ErrorKind::Auth
        }
        serenity::Error::Gateway(serenity::gateway::GatewayError::DisallowedGatewayIntents) => {
            ErrorKind::Auth
        }
        serenity::Error::Gateway(serenity::gateway::GatewayError::InvalidGatewayIntents) => {
            ErrorKind::Fatal
        }
        serenity::Error::Gateway(_) => ErrorKind::Retryable,
        _ => ErrorKind::Fatal,
    };
    let hint = match &e {
        serenity::Error::Gateway(serenity::gateway::GatewayError::DisallowedGatewayIntents) => {
            " - enable the MESSAGE CONTENT privileged intent for the bot (Developer Portal > Bot > Privileged Gateway Intents)"
        }
        serenity::Error::Gateway(serenity::gateway::GatewayError::InvalidAuthentication) => {
            " - the bot token is wrong or was reset"
        }
        _ => "",
    };
    ConnectorError::new(kind, format!("discord: {e}{hint}"))
}

/// The wait after a 429 whose wait is unknown (Discord's are usually shorter).
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// How the bridge treats an unsuccessful HTTP status; `rate_limit_wait` is a 429's wait.
fn status_kind(status: u16, rate_limit_wait: Duration) -> ErrorKind {
    match status {
        429 => ErrorKind::RateLimited {
            retry_after: rate_limit_wait,
        },
        401 => ErrorKind::Auth,
        s if s >= 500 => ErrorKind::Retryable,
        _ => ErrorKind::Fatal,
    }
}

/// The wait a 429 asks for: the body's `retry_after` (seconds, fractional: Discord's rate limit
/// response), else the `Retry-After` header (seconds), else [`DEFAULT_RATE_LIMIT_WAIT`]; at most
/// an hour.
fn rate_limit_wait(body: &serde_json::Value, header: Option<&str>) -> Duration {
    body["retry_after"]
        .as_f64()
        .or_else(|| header.and_then(|h| h.trim().parse::<f64>().ok()))
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| Duration::from_secs_f64(secs.min(3600.0)))
        .unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
}

struct Handler {
    id: String,
    inbound: InboundSink,
    cursors: Cursors,
    health: HealthReporter,
    /// The connector's own REST client (used by `send`), which needs the application id too.
    http: Arc<Http>,
    guild: u64,
    shared: Arc<Shared>,
}

impl Handler {
    async fn forward(&self, event: Inbound) {
        let _ = self.inbound.send(event).await;
    }

    /// A user's message as the bridge sees it; `None` for the bot's own and other bots'.
    fn inbound_from(&self, msg: &Message) -> Option<Inbound> {
        let own = *self.shared.bot_user.lock().unwrap() == Some(msg.author.id.get());
        (!own && !msg.author.bot).then(|| Inbound {
            connector: self.id.clone(),
            message_id: msg.id.get().to_string(),
            room: msg.channel_id.get().to_string(),
            user: msg.author.id.get().to_string(),
            user_name: msg.author.name.clone(),
            text: msg.content.clone(),
            thread: None,
            native_command: false,
        })
    }

    /// After a fresh session (not a resume, where the gateway replays), fetches what was said in
    /// each room since the last message the bridge took, oldest first.
    async fn backfill(&self, ctx: &Context) {
        let points =
            self.cursors.current().into_iter().filter_map(|(room, id)| {
                Some((room.parse::<u64>().ok()?, id.parse::<u64>().ok()?))
            });
        for (channel, mut after) in points {
            // Discord answers at most 100 messages a page: page until a short one.
            loop {
                let request = GetMessages::new()
                    .after(MessageId::new(after))
                    .limit(HISTORY_PAGE);
                match ChannelId::new(channel).messages(&ctx.http, request).await {
                    Ok(mut missed) => {
                        missed.sort_by_key(|m| m.id);
                        for msg in &missed {
                            if let Some(inbound) = self.inbound_from(msg) {
                                self.forward(inbound).await;
                            }
                        }
                        match missed.last() {
                            Some(last) if missed.len() == usize::from(HISTORY_PAGE) => {
                                after = last.id.get();
                            }
                            _ => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(
                            connector = %self.id,
                            room = channel,
                            error = %e,
                            "discord: cannot fetch the messages missed in a room"
                        );
                        break;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        *self.shared.bot_user.lock().unwrap() = Some(ready.user.id.get());
        ctx.http.set_application_id(ready.application.id);
        self.http.set_application_id(ready.application.id);
        let commands = vec![slash::fleet_command()];
        let result: Result<Vec<Command>, _> = GuildId::new(self.guild)
            .set_commands(&ctx.http, commands)
            .await;
        self.health.set(match result {
            Ok(_) => Health::Up,
            Err(e) => Health::Degraded(format!("registering /fleet failed: {e}")),
        });
        self.backfill(&ctx).await;
    }

    async fn resume(&self, _ctx: Context, _: ResumedEvent) {
        self.health.set(Health::Up);
    }

    async fn message(&self, _ctx: Context, msg: Message) {
        // Other guilds and direct messages never reach the bridge.
        if msg.guild_id.map(|g| g.get()) != Some(self.guild) {
            return;
        }
        if let Some(inbound) = self.inbound_from(&msg) {
            self.forward(inbound).await;
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let Interaction::Command(command) = interaction else {
            return;
        };
        if command.data.name != slash::COMMAND
            || command.guild_id.map(|g| g.get()) != Some(self.guild)
        {
            return;
        }
        // Discord wants an answer within 3 s: defer now, follow up when the bridge replies.
        if let Err(e) = command.defer(&ctx.http).await {
            tracing::warn!(connector = %self.id, error = %e, "discord: deferring /fleet failed");
            return;
        }
        let id = format!("{INTERACTION_PREFIX}{}", command.id.get());
        {
            let mut tokens = self.shared.interactions.lock().unwrap();
            tokens.retain(|_, (_, at)| at.elapsed() < INTERACTION_TOKEN_TTL);
            tokens.insert(id.clone(), (command.token.clone(), Instant::now()));
        }
        self.forward(inbound_from_interaction(&self.id, &command, id))
            .await;
    }
}

fn inbound_from_interaction(connector: &str, command: &CommandInteraction, id: String) -> Inbound {
    let user = command
        .member
        .as_ref()
        .map(|m| m.user.clone())
        .unwrap_or_else(|| command.user.clone());
    Inbound {
        connector: connector.to_owned(),
        message_id: id,
        room: command.channel_id.get().to_string(),
        user: user.id.get().to_string(),
        user_name: user.name.clone(),
        text: slash::to_line(&command.data),
        thread: None,
        native_command: true,
    }
}

fn parse_id(s: &str, what: &str) -> Result<u64, ConnectorError> {
    s.parse().map_err(|_| {
        ConnectorError::new(
            ErrorKind::Fatal,
            format!(
                "discord: {what} {} is not a numeric id",
                mosaic_roster::redact::shown(s)
            ),
        )
    })
}

#[async_trait]
impl Connector for DiscordConnector {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE_LEN,
            markdown: Markdown::Discord,
            threads: true,
            native_commands: true,
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
        let handler = Handler {
            id: self.config.id.clone(),
            inbound: inbound.clone(),
            cursors,
            health: health.clone(),
            http: self.http.clone(),
            guild: self.config.guild,
            shared: self.shared.clone(),
        };
        let mut client = ClientBuilder::new_with_http(make_http(&self.config), self.intents())
            .event_handler(handler)
            .await
            .map_err(classify)?;
        let shards = client.shard_manager.clone();
        // On shutdown the shard manager closes the gateway with a close frame.
        let result = tokio::select! {
            r = client.start() => r.map_err(classify),
            _ = inbound.closed() => {
                shards.shutdown_all().await;
                Ok(())
            }
            _ = shutdown.wait() => {
                shards.shutdown_all().await;
                Ok(())
            }
        };
        health.set(match &result {
            Ok(()) => Health::Down("stopped".into()),
            Err(e) => Health::Down(e.to_string()),
        });
        result
    }

    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError> {
        if let Some(ReplyTo::Native(id)) = &message.reply_to {
            let token = self
                .shared
                .interactions
                .lock()
                .unwrap()
                .get(id)
                .map(|(token, _)| token.clone())
                .ok_or_else(|| {
                    ConnectorError::new(
                        ErrorKind::Fatal,
                        "discord: the interaction expired (Discord takes follow-ups for 15 minutes)",
                    )
                })?;
            let followup = CreateInteractionResponseFollowup::new().content(&message.text);
            if let Some(base) = &self.config.api_base {
                let application_id = self.http.application_id().ok_or_else(|| {
                    ConnectorError::new(ErrorKind::Retryable, "discord: not connected yet")
                })?;
                let route = Route::WebhookFollowupMessages {
                    application_id,
                    token: &token,
                };
                return self.post_through_proxy(base, route, &followup).await;
            }
            let sent = followup
                .execute(&*self.http, (None, &token))
                .await
                .map_err(classify)?;
            return Ok(sent.id.get().to_string());
        }
        let channel = ChannelId::new(parse_id(&message.room, "channel")?);
        let mut builder = CreateMessage::new()
            .content(&message.text)
            .nonce(Nonce::String(nonce(&message.key)))
            .enforce_nonce(true);
        if let Some(reply_to) = message
            .reply_to
            .as_ref()
            .and_then(|r| r.id().parse::<u64>().ok())
        {
            // A reply to a message deleted meanwhile is posted as a plain message, not refused.
            builder = builder.reference_message(
                MessageReference::new(MessageReferenceKind::Default, channel)
                    .message_id(MessageId::new(reply_to))
                    .fail_if_not_exists(false),
            );
        }
        if let Some(base) = &self.config.api_base {
            let route = Route::ChannelMessages {
                channel_id: channel,
            };
            return self.post_through_proxy(base, route, &builder).await;
        }
        let sent = channel
            .send_message(&*self.http, builder)
            .await
            .map_err(classify)?;
        Ok(sent.id.get().to_string())
    }

    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError> {
        if message_id.starts_with(INTERACTION_PREFIX) {
            return Ok(()); // the deferral already showed "thinking…"
        }
        let channel = ChannelId::new(parse_id(room, "channel")?);
        let message = MessageId::new(parse_id(message_id, "message")?);
        self.http
            .create_reaction(channel, message, &ReactionType::Unicode(ACK_EMOJI.into()))
            .await
            .map_err(classify)
    }

    async fn typing(&self, room: &str, _thread: Option<&str>) -> Result<(), ConnectorError> {
        ChannelId::new(parse_id(room, "channel")?)
            .broadcast_typing(&*self.http)
            .await
            .map_err(classify)
    }
}

/// Discord nonces are at most 25 characters.
fn nonce(key: &str) -> String {
    key.chars()
        .rev()
        .take(25)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limits_wait_is_read_from_the_body_then_the_header() {
        let body = serde_json::json!({"message": "You are being rate limited.", "retry_after": 0.25, "global": false});
        assert_eq!(
            rate_limit_wait(&body, Some("1")),
            Duration::from_millis(250)
        );
        assert_eq!(
            rate_limit_wait(&serde_json::Value::Null, Some("3")),
            Duration::from_secs(3)
        );
        assert_eq!(
            rate_limit_wait(&serde_json::json!({"retry_after": -1}), None),
            DEFAULT_RATE_LIMIT_WAIT
        );
        assert_eq!(
            rate_limit_wait(&serde_json::json!({"retry_after": 1e300}), None),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn discord_token_shapes() {
        assert!(token_shape_ok(
            "MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
        ));
        assert!(!token_shape_ok("not a token"));
        assert!(!token_shape_ok("a.b"));
        assert!(!token_shape_ok("xoxb-123-456"));
    }

    #[test]
    fn nonces_fit_discord() {
        assert_eq!(nonce("mosaic-out-123"), "mosaic-out-123");
        assert_eq!(nonce(&"x".repeat(40)).len(), 25);
    }
}
