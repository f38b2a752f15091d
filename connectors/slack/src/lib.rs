//! The Slack connector: Socket Mode (no public URL) on its own WebSocket client, the Web API
//! through slack-morphism, channel and DM messages, threads as reply targets, `/fleet` as a slash
//! command answered through its `response_url`, a reaction as the acknowledgement, replies in
//! mrkdwn, and Web API errors mapped to retry kinds (a 429 becomes a rate limit with Slack's
//! `Retry-After`).
//!
//! Socket Mode is driven here rather than by slack-morphism's listener: every envelope is acked
//! the moment it arrives (before the bridge sees it), a `disconnect` brings the new connection up
//! before the old one is closed, and a connection is judged alive by its traffic (our pings must
//! be answered, some frame must come within a deadline), so an open but silent socket is
//! replaced. After every fresh connection each room is caught up from `conversations.history`
//! since the bridge's cursor, so events acked and then lost in a crash are not lost.

mod events;
#[cfg(feature = "test-util")]
pub mod fake;
mod socket;

use async_trait::async_trait;
use mosaic_connector::registry::{BuildContext, ConnectorConfig, Question, QuestionKind, Typed};
use mosaic_connector::{
    Capabilities, Connector, ConnectorError, ErrorKind, Health, Markdown, Outbound, ReplyTo,
    RunContext,
};
use mosaic_roster::{SecretRef, SettingProblem};
use serde::{Deserialize, Serialize};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest message text posted, in characters: chat.postMessage asks to keep `text` within
/// 4,000 characters (Slack truncates past 40,000).
pub const MAX_MESSAGE_LEN: usize = 4000;
/// The reaction (an emoji name, without colons) that acknowledges a received message.
pub const ACK_REACTION: &str = "eyes";
/// How long Slack accepts posts to a slash command's `response_url`.
const RESPONSE_URL_TTL: Duration = Duration::from_secs(30 * 60);
/// How many posts Slack accepts to one `response_url`.
const RESPONSE_URL_USES: u32 = 5;
/// The prefix of the message ids given to slash-command invocations (`slash:` + trigger id).
const SLASH_PREFIX: &str = "slash:";
/// The most messages asked for in one page of channel history.
const HISTORY_PAGE: u16 = 200;
/// The wait after a 429 whose `Retry-After` is missing or unreadable.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// The Slack connector type, registered by the binary.
pub static TYPE: Typed<SlackSettings> = Typed::new();

/// A Slack entry of the roster (`type: slack`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// Channel ids the orchestrator listens and answers in (`C…` public, `G…` private, `D…` a
    /// direct-message conversation).
    pub channels: Vec<String>,
    /// Where the bot token (`xoxb-…`) is.
    pub bot_token: SecretRef,
    /// Where the app-level token (`xapp-…`, scope `connections:write`) is: Socket Mode.
    pub app_token: SecretRef,
}

impl ConnectorConfig for SlackSettings {
    const TYPE: &'static str = "slack";
    const SUMMARY: &'static str =
        "Slack (an app in your workspace over Socket Mode; no public URL)";

    fn questions() -> Vec<Question> {
        vec![
            Question {
                field: "channels",
                flag: "target",
                value_name: "ID",
                prompt: "Slack channel ids (C…/G…: channel details → About → Channel ID)",
                kind: QuestionKind::List,
            },
            Question {
                field: "bot_token",
                flag: "secret-env",
                value_name: "VAR",
                prompt: "Slack bot token (xoxb-…)",
                kind: QuestionKind::Secret {
                    default_env: "SLACK_BOT_TOKEN",
                    file_flag: Some("secret-file"),
                },
            },
            Question {
                field: "app_token",
                flag: "app-token-env",
                value_name: "VAR",
                prompt: "Slack app-level token (xapp-…, for Socket Mode)",
                kind: QuestionKind::Secret {
                    default_env: "SLACK_APP_TOKEN",
                    file_flag: Some("app-token-file"),
                },
            },
        ]
    }

    fn rooms(&self) -> (&'static str, Vec<String>) {
        ("channels", self.channels.clone())
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![
            ("bot_token", &self.bot_token),
            ("app_token", &self.app_token),
        ]
    }

    fn check_user_id(user: &str) -> Result<(), String> {
        if slack_id(user, &['U', 'W']) {
            return Ok(());
        }
        Err(format!(
            "a Slack user id looks like U012AB3CD4E, not {} (Slack: click your name → View full profile → ⋮ → Copy member ID)",
            mosaic_roster::redact::shown(user)
        ))
    }

    fn validate(&self) -> Vec<SettingProblem> {
        self.channels
            .iter()
            .enumerate()
            .filter(|(_, c)| !slack_id(c, &['C', 'G', 'D']))
            .map(|(j, c)| {
                SettingProblem::new(
                    format!("channels[{j}]"),
                    format!(
                        "Slack channel id {} must look like C0123ABCD (or G…/D…): channel details → About → Channel ID, not the channel's name",
                        mosaic_roster::redact::shown(c)
                    ),
                )
            })
            .collect()
    }

    fn check_secret(&self, field: &str, value: &str) -> Result<(), (String, String)> {
        let (prefix, what, hint) = if field == "app_token" {
            (
                "xapp-",
                "an app-level token (xapp-…)",
                "api.slack.com/apps → your app → Basic Information → App-Level Tokens → Generate (scope connections:write)",
            )
        } else {
            (
                "xoxb-",
                "a bot token (xoxb-…)",
                "api.slack.com/apps → your app → OAuth & Permissions → Bot User OAuth Token (install the app first)",
            )
        };
        let value = value.trim();
        if value.starts_with(prefix) && value.len() > prefix.len() + 8 && !value.contains(' ') {
            Ok(())
        } else {
            Err((format!("does not hold {what}"), hint.into()))
        }
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let id = ctx.id;
        let read = |secret: &SecretRef, what: &str| {
            secret
                .resolve()
                .map(|s| s.trim().to_owned())
                .map_err(|e| ConnectorError::new(ErrorKind::Auth, format!("slack {what}: {e}")))
        };
        // A Web API base other than https://slack.com/api: an API proxy, or the tests' fake.
        let api_base = std::env::var("MOSAIC_SLACK_API_BASE")
            .ok()
            .filter(|b| !b.is_empty());
        Ok(Arc::new(SlackConnector::new(SlackConfig {
            id: id.to_owned(),
            bot_token: read(&self.bot_token, "bot token")?,
            app_token: read(&self.app_token, "app token")?,
            api_base,
            timing: Timing::default(),
        })))
    }
}

/// Whether `id` looks like a Slack id starting with one of `first` (upper-case alphanumerics).
fn slack_id(id: &str, first: &[char]) -> bool {
    id.len() >= 7
        && id.len() <= 24
        && id.starts_with(first)
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The Socket Mode timing: how often to ping, how long a connection may be silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often each connection is pinged.
    pub ping_interval: Duration,
    /// A connection with no frame at all (pong, ping, message) for this long is a ghost: it is
    /// replaced.
    pub silence_limit: Duration,
    /// How long a new connection may take to say `hello`.
    pub hello_timeout: Duration,
    /// How long a connection Slack asked to leave (`disconnect`) is still read, once its
    /// replacement is up, before it is closed.
    pub drain_limit: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ping_interval: Duration::from_secs(10),
            silence_limit: Duration::from_secs(35),
            hello_timeout: Duration::from_secs(10),
            drain_limit: Duration::from_secs(10),
        }
    }
}

/// What the connector needs.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The instance id (the roster entry's `id`, by default `slack`).
    pub id: String,
    /// The bot token (`xoxb-…`): the Web API.
    pub bot_token: String,
    /// The app-level token (`xapp-…`): `apps.connections.open`.
    pub app_token: String,
    /// The Web API base instead of `https://slack.com/api` (tests point it at a fake).
    pub api_base: Option<String>,
    /// Socket Mode timing.
    pub timing: Timing,
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
pub(crate) type Http = SlackClientHyperConnector<Https>;

/// The Slack connector.
pub struct SlackConnector {
    config: SlackConfig,
    http: Http,
    client: Arc<SlackClient<Http>>,
    bot: SlackApiToken,
    app: SlackApiToken,
    shared: Arc<Shared>,
}

/// Who the bot is (from `auth.test`), to drop its own messages and strip mentions of it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Me {
    pub user: String,
}

#[derive(Default)]
struct Shared {
    /// `response_url`s of slash commands (with when they came and how often they were used), by
    /// the message id given to the bridge.
    responses: Mutex<HashMap<String, Responder>>,
}

struct Responder {
    url: String,
    room: String,
    at: Instant,
    uses: u32,
}

/// Makes rustls usable whatever crypto features other crates enabled (one provider, ring).
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn make_http(config: &SlackConfig) -> Http {
    install_crypto();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(b) => b,
        // No system certificates: https fails later with a clear error; http (a proxy, the
        // fake) still works.
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    };
    let https = builder.https_or_http().enable_http1().build();
    let connector = SlackClientHyperConnector::with_connector(https);
    match &config.api_base {
        Some(base) => connector.with_slack_api_url(base.trim_end_matches('/')),
        None => connector,
    }
}

fn token(value: &str) -> SlackApiToken {
    SlackApiToken::new(SlackApiTokenValue::new(value.to_owned()))
}

impl SlackConnector {
    /// A connector for `config` (nothing connects until [`Connector::run`]).
    pub fn new(config: SlackConfig) -> SlackConnector {
        let http = make_http(&config);
        SlackConnector {
            client: Arc::new(SlackClient::new(http.clone())),
            http,
            bot: token(&config.bot_token),
            app: token(&config.app_token),
            config,
            shared: Arc::new(Shared::default()),
        }
    }

    /// Posts `text` to a slash command's `response_url`, visible in the channel.
    async fn respond(&self, id: &str, text: &str) -> Result<String, ConnectorError> {
        let (url, uses) = {
            let mut responses = self.shared.responses.lock().unwrap();
            responses.retain(|_, r| r.at.elapsed() < RESPONSE_URL_TTL);
            match responses.get_mut(id) {
                Some(r) if r.uses < RESPONSE_URL_USES => {
                    r.uses += 1;
                    (r.url.clone(), r.uses)
                }
                Some(r) => {
                    return Err(ConnectorError::new(
                        ErrorKind::Fatal,
                        format!(
                            "slack: the answer to a slash command in {} has used its {RESPONSE_URL_USES} posts",
                            r.room
                        ),
                    ));
                }
                None => {
                    return Err(ConnectorError::new(
                        ErrorKind::Fatal,
                        "slack: the slash command's response_url expired (Slack takes answers for 30 minutes) or was lost in a restart",
                    ));
                }
            }
        };
        let url: url::Url = url.parse().map_err(|e| {
            ConnectorError::new(ErrorKind::Fatal, format!("slack: bad response_url: {e}"))
        })?;
        let body = serde_json::json!({ "text": text, "response_type": "in_channel" });
        let span = tracing::debug_span!("slack response_url");
        let context = SlackClientApiCallContext {
            rate_control_params: None,
            token: None,
            tracing_span: &span,
            is_sensitive_url: true,
        };
        let result: Result<serde_json::Value, _> =
            self.http.http_post_uri(url, &body, context).await;
        match result {
            Ok(_) => Ok(format!("{id}#{uses}")),
            Err(e) => {
                // A post that did not go through may be retried.
                if let Some(r) = self.shared.responses.lock().unwrap().get_mut(id) {
                    r.uses = r.uses.saturating_sub(1);
                }
                Err(classify(e))
            }
        }
    }
}

/// How the bridge treats a Slack error code (`{"ok": false, "error": CODE}`).
fn code_kind(code: &str) -> ErrorKind {
    match code {
        "ratelimited" | "rate_limited" => ErrorKind::RateLimited {
            retry_after: DEFAULT_RATE_LIMIT_WAIT,
        },
        "invalid_auth"
        | "not_authed"
        | "token_revoked"
        | "token_expired"
        | "account_inactive"
        | "missing_scope"
        | "not_allowed_token_type"
        | "no_permission"
        | "access_denied"
        | "invalid_token" => ErrorKind::Auth,
        "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org" => ErrorKind::Retryable,
        // channel_not_found, not_in_channel, is_archived, msg_too_long, no_text, …
        _ => ErrorKind::Fatal,
    }
}

/// What to do about a Slack error code, for the error's text.
fn code_hint(code: &str) -> &'static str {
    match code {
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
            " - the token is wrong, revoked or of another app (see docs/connectors/slack.md)"
        }
        "missing_scope" => {
            " - the app lacks a scope: create it from deploy/slack/manifest.yaml and reinstall it"
        }
        "not_allowed_token_type" => {
            " - a token of the wrong kind: bot_token is the xoxb- one, app_token the xapp- one"
        }
        "not_in_channel" => " - invite the bot to the channel (/invite @mosaic)",
        "channel_not_found" => " - check the channel id and that the bot was invited",
        _ => "",
    }
}

/// Maps a slack-morphism failure to how the bridge should treat it.
pub(crate) fn classify(e: SlackClientError) -> ConnectorError {
    let (kind, hint) = match &e {
        SlackClientError::RateLimitError(r) => (
            ErrorKind::RateLimited {
                retry_after: r
                    .retry_after
                    .unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
                    .min(Duration::from_secs(3600)),
            },
            "",
        ),
        SlackClientError::ApiError(a) => (code_kind(&a.code), code_hint(&a.code)),
        SlackClientError::HttpError(h) => (
            match h.status_code.as_u16() {
                401 | 403 => ErrorKind::Auth,
                429 => ErrorKind::RateLimited {
                    retry_after: DEFAULT_RATE_LIMIT_WAIT,
                },
                s if s >= 500 => ErrorKind::Retryable,
                _ => ErrorKind::Fatal,
            },
            "",
        ),
        SlackClientError::HttpProtocolError(_)
        | SlackClientError::EndOfStream(_)
        | SlackClientError::SystemError(_)
        | SlackClientError::SocketModeProtocolError(_) => (ErrorKind::Retryable, ""),
        SlackClientError::ProtocolError(_) => (ErrorKind::Fatal, ""),
    };
    ConnectorError::new(kind, format!("slack: {e}{hint}"))
}

/// The `ts` of a message id (`CHANNEL:TS`, or a bare ts).
pub(crate) fn ts_of(message_id: &str) -> &str {
    message_id.rsplit(':').next().unwrap_or(message_id)
}

/// The message id the bridge sees for message `ts` of `channel` (a ts is unique per channel
/// only, and the bridge deduplicates per connector).
pub(crate) fn message_id(channel: &str, ts: &str) -> String {
    format!("{channel}:{ts}")
}

#[async_trait]
impl Connector for SlackConnector {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: MAX_MESSAGE_LEN,
            markdown: Markdown::SlackMrkdwn,
            threads: true,
            native_commands: true,
            reactions: true,
        }
    }

    async fn run(&self, ctx: RunContext) -> Result<(), ConnectorError> {
        ctx.health.set(Health::Starting);
        let session = self.client.open_session(&self.bot);
        let me = match session.auth_test().await {
            Ok(r) => Me {
                user: r.user_id.to_string(),
            },
            Err(e) => {
                let e = classify(e);
                ctx.health.set(Health::Down(e.to_string()));
                return Err(e);
            }
        };
        let health = ctx.health.clone();
        let result = socket::Socket {
            id: self.config.id.clone(),
            client: self.client.clone(),
            bot: self.bot.clone(),
            app: self.app.clone(),
            me,
            timing: self.config.timing,
            responses: self.shared.clone(),
        }
        .run(ctx)
        .await;
        health.set(match &result {
            Ok(()) => Health::Down("stopped".into()),
            Err(e) => Health::Down(e.to_string()),
        });
        result
    }

    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError> {
        if let Some(ReplyTo::Native(id)) = &message.reply_to {
            return self.respond(id, &message.text).await;
        }
        let thread = message.thread.clone().or_else(|| match &message.reply_to {
            Some(ReplyTo::Message(id)) => Some(ts_of(id).to_owned()),
            _ => None,
        });
        let request = SlackApiChatPostMessageRequest::new(
            message.room.clone().into(),
            SlackMessageContent::new().with_text(message.text.clone()),
        )
        .opt_thread_ts(thread.map(Into::into))
        .with_unfurl_links(false)
        .with_unfurl_media(false);
        let session = self.client.open_session(&self.bot);
        let sent = session
            .chat_post_message(&request)
            .await
            .map_err(classify)?;
        Ok(message_id(sent.channel.as_ref(), sent.ts.as_ref()))
    }

    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError> {
        if message_id.starts_with(SLASH_PREFIX) {
            return Ok(()); // the envelope's ack already answered Slack
        }
        let request = SlackApiReactionsAddRequest::new(
            room.to_owned().into(),
            SlackReactionName::new(ACK_REACTION.into()),
            ts_of(message_id).to_owned().into(),
        );
        let session = self.client.open_session(&self.bot);
        match session.reactions_add(&request).await {
            Ok(_) => Ok(()),
            Err(SlackClientError::ApiError(a)) if a.code == "already_reacted" => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    // typing: Slack has no typing indicator for bots outside assistant threads; the 👀 reaction
    // is the sign that the orchestrator got the message.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_are_checked_by_shape() {
        assert!(SlackSettings::check_user_id("U012AB3CD4E").is_ok());
        assert!(SlackSettings::check_user_id("W012AB3CD4E").is_ok());
        assert!(SlackSettings::check_user_id("alice").is_err());
        assert!(SlackSettings::check_user_id("C012AB3CD4E").is_err());
        let settings = |channels: &[&str]| SlackSettings {
            channels: channels.iter().map(|c| c.to_string()).collect(),
            bot_token: SecretRef::env("B".to_owned()),
            app_token: SecretRef::env("A".to_owned()),
        };
        assert!(
            settings(&["C0123ABCD", "G0456EFGH", "D0789IJKL"])
                .validate()
                .is_empty()
        );
        let problems = settings(&["C0123ABCD", "#general"]).validate();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "channels[1]");
        let s = settings(&["C0123ABCD"]);
        assert!(s.check_secret("bot_token", "xoxb-1234-5678-abcdef").is_ok());
        assert!(s.check_secret("bot_token", "xapp-1-A1-123-abcdef").is_err());
        assert!(s.check_secret("app_token", "xapp-1-A1-123-abcdef").is_ok());
        assert!(
            s.check_secret("app_token", "xoxb-1234-5678-abcdef")
                .is_err()
        );
    }

    #[test]
    fn error_codes_map_to_retry_kinds() {
        for code in [
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "account_inactive",
        ] {
            assert_eq!(code_kind(code), ErrorKind::Auth, "{code}");
        }
        for code in [
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
        ] {
            assert_eq!(code_kind(code), ErrorKind::Fatal, "{code}");
        }
        assert!(matches!(
            code_kind("ratelimited"),
            ErrorKind::RateLimited { .. }
        ));
        assert_eq!(code_kind("internal_error"), ErrorKind::Retryable);
    }

    #[test]
    fn message_ids_carry_the_channel_and_the_ts() {
        assert_eq!(message_id("C1", "1.000200"), "C1:1.000200");
        assert_eq!(ts_of("C1:1.000200"), "1.000200");
        assert_eq!(ts_of("1.000200"), "1.000200");
    }
}
