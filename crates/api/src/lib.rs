//! The daemon's HTTP+JSON API (`/v1`). Every route needs `Authorization: Bearer TOKEN` (the
//! token is in the state directory, mode 0600). The server takes a bound listener, so it binds
//! wherever the caller chose (loopback by default; tests bind port 0) and stops on a signal.
//! The routes are documented in docs/api.md. Every error is JSON: `{"error": "..."}`.

pub mod guard;

pub mod wire;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mosaic_bridge::{Bridge, HookError, ReplyError, Target, Verdict};
use mosaic_connector::{Inbound, Markdown};
use mosaic_exec::{Actor, ErrorKind, ExecError, Outcome, Surface, render};
use mosaic_fleet::Paths;
use mosaic_fleet::paths::{AgentToken, constant_time_eq};
use mosaic_grammar::chat::{ChatInput, ParseError, parse};
use mosaic_grammar::{
    FleetCommand, LogsArgs, MAX_WAIT_SECS, PsArgs, STOP_TIMEOUT_SECS, SendArgs, StopArgs,
};
use mosaic_roster::Role;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use wire::{ConnectorHealth, HealthReport, ReplyAccepted, ReplyRequest};

/// Identifies the API and its version in `GET /v1/health`.
pub const API_VERSION: &str = "mosaic.api/v1";

/// What the routes share.
#[derive(Clone)]
pub struct ApiState {
    /// The bridge (chat, replies, hooks, events).
    pub bridge: Bridge,
    /// Config and state directories.
    pub paths: Paths,
    /// The bearer token every request must carry.
    pub token: Arc<String>,
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = guard::GuardedListener::new(listener, guard::Limits::default());
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Why an API address is refused.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Not `HOST:PORT`, or the host does not resolve.
    #[error("cannot listen on {addr:?}: {why} (expected HOST:PORT, e.g. 127.0.0.1:7317)")]
    Invalid {
        /// The address as given.
        addr: String,
        /// What was wrong.
        why: String,
    },
    /// Not loopback, and remote access was not allowed.
    #[error(
        "refusing to listen on {addr}: it is reachable from other machines and the API token would travel in clear; use a loopback address (127.0.0.1), or pass --allow-remote if a TLS proxy or a private network protects it"
    )]
    Remote {
        /// The address as given.
        addr: String,
    },
}

/// Checks the API address before binding: loopback only, unless `allow_remote`. Returns a
/// warning to print when a remote address is allowed.
pub fn check_listen(addr: &str, allow_remote: bool) -> Result<Option<String>, ListenError> {
    use std::net::ToSocketAddrs;
    let invalid = |why: String| ListenError::Invalid {
        addr: addr.to_owned(),
        why,
    };
    let resolved: Vec<std::net::SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| invalid(e.to_string()))?
        .collect();
    if resolved.is_empty() {
        return Err(invalid("it resolves to no address".into()));
    }
    if resolved.iter().all(|a| a.ip().is_loopback()) {
        return Ok(None);
    }
    if !allow_remote {
        return Err(ListenError::Remote {
            addr: addr.to_owned(),
        });
    }
    Ok(Some(format!(
        "warning: the API listens on {addr}, reachable from other machines; its token travels in clear unless a TLS proxy or a private network protects it"
    )))
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/fleet", get(fleet))
        .route("/v1/events", get(events))
        .route("/v1/agents/{name}/send", post(send))
        .route("/v1/agents/{name}/terminate", post(terminate))
        .route("/v1/agents/{name}/capture", get(capture))
        .route("/v1/chat", post(chat))
        .route("/v1/reply", post(reply))
        .route("/v1/commands", post(command))
        .route("/v1/hooks", post(hook))
        .route("/v1/rooms", post(tell_rooms))
        .route("/v1/queue/{id}/{decision}", post(held_decision))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

async fn no_route(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such route: {} (see docs/api.md)", uri.path()),
    )
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

/// Turns every error response that is not JSON (the extractors' rejections: malformed JSON,
/// a missing field, a wrong content type, a bad query) into `{"error": "..."}`.
async fn json_errors(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let status = response.status();
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        text
    };
    error(status, message)
}

/// Who holds the token a request carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The owner's token (`api.token` in the state directory): everything.
    Owner,
    /// An agent's own token ([`mosaic_fleet::paths::AgentToken`], given to its harness at
    /// launch): the orchestrator may reply, report its hooks and run commands with its
    /// configured role (`bridge.orchestrator_role`); a worker may only report its own hooks.
    Agent {
        /// The agent's name.
        name: String,
        /// Its roster role.
        role: Role,
    },
}

impl Principal {
    /// The actor a command runs as: the owner is an admin of the API surface; the orchestrator
    /// acts with its configured role.
    fn actor(&self, bridge: &Bridge) -> Actor {
        match self {
            Principal::Owner => Actor::api(),
            Principal::Agent { .. } => Actor {
                surface: Surface::Orchestrator,
                role: bridge.orchestrator_role(),
            },
        }
    }
}

/// Whether an agent with `role` may call `method path` at all (deny by default; the executor
/// checks the role of each command after this).
fn agent_may_call(role: Role, method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let get = method == Method::GET;
    let post = method == Method::POST;
    match (role, path) {
        (_, "/v1/health") => get,
        (_, "/v1/hooks") => post,
        (Role::Orchestrator, "/v1/fleet" | "/v1/events") => get,
        (Role::Orchestrator, "/v1/reply" | "/v1/commands") => post,
        (Role::Orchestrator, p) if p.starts_with("/v1/agents/") => {
            (post && (p.ends_with("/send") || p.ends_with("/terminate")))
                || (get && p.ends_with("/capture"))
        }
        // The local chat and decisions on held messages are the owner's.
        _ => false,
    }
}

async fn require_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let principal = given.and_then(|t| authenticate(&state, t));
    match principal {
        None => error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer TOKEN` (the token is in the state directory's api.token)",
        ),
        Some(Principal::Agent { name, role })
            if !agent_may_call(role, request.method(), request.uri().path()) =>
        {
            error(
                StatusCode::FORBIDDEN,
                format!(
                    "agent {name} ({}) may not call {} {}",
                    role.as_str(),
                    request.method(),
                    request.uri().path()
                ),
            )
        }
        Some(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
    }
}

/// The owner's token, or an agent's own token of an agent in the roster in use.
fn authenticate(state: &ApiState, token: &str) -> Option<Principal> {
    if constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
        return Some(Principal::Owner);
    }
    let (name, secret) = AgentToken::parse(token)?;
    let role = state.bridge.agent_role(name)?;
    AgentToken::read(&state.paths, name)
        .filter(|t| t.matches(secret))
        .map(|t| Principal::Agent {
            name: t.agent,
            role,
        })
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme in any case (RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The HTTP status of a failed command: refused 403, not found or invalid 422, transient 503
/// (retry), internal 500; the body says the kind.
fn exec_error(e: &ExecError) -> Response {
    let status = match e.kind() {
        ErrorKind::Refused => StatusCode::FORBIDDEN,
        ErrorKind::NotFound | ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Transient => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (
        status,
        Json(json!({ "error": e.to_string(), "kind": e.kind().as_str() })),
    )
        .into_response()
}

/// Runs `command` through the executor as `principal`.
async fn run(
    state: &ApiState,
    principal: &Principal,
    command: FleetCommand,
) -> Result<Outcome, Response> {
    let actor = principal.actor(&state.bridge);
    state
        .bridge
        .exec(command, actor)
        .await
        .map_err(|e| exec_error(&e))
}

async fn health(State(state): State<ApiState>) -> Json<HealthReport> {
    let connectors = state
        .bridge
        .health()
        .into_iter()
        .map(|(id, health)| ConnectorHealth { id, health })
        .collect();
    let held = state
        .bridge
        .held()
        .unwrap_or_default()
        .iter()
        .map(|q| q.id)
        .collect();
    Json(HealthReport {
        api: API_VERSION.to_owned(),
        connectors,
        queue: state.bridge.queue_len(),
        held,
    })
}

/// A person's decision on a held message (pasted, never confirmed): `retry` or `drop`.
async fn held_decision(
    State(state): State<ApiState>,
    Path((id, decision)): Path<(i64, String)>,
) -> Response {
    let retry = match decision.as_str() {
        "retry" => true,
        "drop" => false,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "use /v1/queue/ID/retry or /v1/queue/ID/drop",
            );
        }
    };
    match state.bridge.resolve_held(id, retry) {
        Ok(true) => Json(json!({ "id": id, "status": if retry { "queued" } else { "dropped" } }))
            .into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("message #{id} is not held (see `held` in GET /v1/health)"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn fleet(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    match run(&state, &principal, FleetCommand::Ps(PsArgs { json: true })).await {
        Ok(Outcome::Ps { status }) => Json(status).into_response(),
        Ok(other) => Json(other).into_response(),
        Err(r) => r,
    }
}

async fn events(
    State(state): State<ApiState>,
) -> Sse<impl tokio_stream::Stream<Item = Result<SseEvent, Infallible>>> {
    // Ends when the bridge shuts down, so an open stream never holds up the daemon's exit.
    let end = WatchStream::new(state.bridge.closing())
        .filter(|closing| *closing)
        .map(|_| None);
    let stream = BroadcastStream::new(state.bridge.events())
        .map(|e| match e {
            Ok(e) => e,
            // Said, not skipped: the reader knows to read state again.
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                mosaic_bridge::events::Event::Lagged { missed }
            }
        })
        .map(Some)
        .merge(end)
        .take_while(Option::is_some)
        .filter_map(|e| e)
        .map(|e| {
            let data = serde_json::to_string(&e).expect("events serialize");
            let kind = serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Ok(SseEvent::default().event(kind).data(data))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

async fn send(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<TextBody>,
) -> Response {
    let command = FleetCommand::Send(SendArgs {
        name,
        text: vec![body.text],
    });
    match run(&state, &principal, command).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct TerminateBody {
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

fn default_timeout() -> u64 {
    STOP_TIMEOUT_SECS
}

async fn terminate(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Option<Json<TerminateBody>>,
) -> Response {
    let timeout = body.map(|b| b.timeout_secs).unwrap_or_else(default_timeout);
    if timeout > MAX_WAIT_SECS {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("timeout_secs {timeout} is too long: at most {MAX_WAIT_SECS}"),
        );
    }
    let command = FleetCommand::Stop(StopArgs {
        agents: vec![name],
        timeout,
    });
    match run(&state, &principal, command).await {
        Ok(Outcome::Stopped { agents, .. }) => {
            let result = agents.first().map(|a| &a.result);
            let tag = serde_json::to_value(result).unwrap_or_default()["result"].clone();
            Json(json!({ "outcome": tag })).into_response()
        }
        Ok(other) => Json(other).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct CaptureQuery {
    #[serde(default)]
    history: bool,
}

async fn capture(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<CaptureQuery>,
) -> Response {
    let command = FleetCommand::Logs(LogsArgs {
        name,
        follow: false,
        screen: !q.history,
    });
    match run(&state, &principal, command).await {
        Ok(Outcome::Logs { text, .. }) => Json(json!({ "text": text })).into_response(),
        Ok(other) => Json(other).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ChatBody {
    text: String,
    /// A client-chosen id: sending the same id again is a no-op (safe retries).
    id: Option<String>,
}

static CHAT_SEQ: AtomicU64 = AtomicU64::new(0);

/// A random tag for this process: with a counter it makes the ids of messages sent without one
/// unique across restarts (a restarted daemon often gets the same pid, e.g. pid 1 in a container).
fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        mosaic_fleet::paths::random_hex(8).unwrap_or_else(|_| {
            // No /dev/urandom: the start time is unique enough for one machine's restarts.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("{}-{nanos}", std::process::id())
        })
    })
}

async fn chat(State(state): State<ApiState>, Json(body): Json<ChatBody>) -> Response {
    let id = body.id.unwrap_or_else(|| {
        format!(
            "api-{}-{}",
            run_tag(),
            CHAT_SEQ.fetch_add(1, Ordering::Relaxed)
        )
    });
    let inbound = Inbound {
        connector: "local".into(),
        message_id: id.clone(),
        room: "local".into(),
        user: "local".into(),
        user_name: whoami(),
        text: body.text,
        thread: None,
        native_command: false,
    };
    let (status, verdict) = match state.bridge.accept(inbound).await {
        Verdict::Queued { id: q, ahead } => (
            StatusCode::ACCEPTED,
            json!({ "status": "queued", "queue_id": q, "ahead": ahead }),
        ),
        Verdict::Duplicate => (StatusCode::OK, json!({ "status": "duplicate" })),
        Verdict::Answered => (StatusCode::ACCEPTED, json!({ "status": "answered" })),
        Verdict::AwaitingConfirmation(code) => (
            StatusCode::ACCEPTED,
            json!({ "status": "awaiting_confirmation", "code": code }),
        ),
        Verdict::Refused(why) => (
            StatusCode::FORBIDDEN,
            json!({ "status": "refused", "error": why }),
        ),
        Verdict::Ignored(why) => (
            StatusCode::FORBIDDEN,
            json!({ "status": "ignored", "error": why }),
        ),
        // Not stored: the client should send it again (same id), later.
        Verdict::Failed(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "failed", "error": why }),
        ),
    };
    (status, Json(json!({ "id": id, "verdict": verdict }))).into_response()
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "local".into())
}

async fn reply(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<ReplyRequest>,
) -> Response {
    // The orchestrator's own reply answers its turn; the owner's remark in a room does not.
    let answers_turn = matches!(
        principal,
        Principal::Agent {
            role: Role::Orchestrator,
            ..
        }
    );
    match post_reply(&state.bridge, &body, answers_turn) {
        Ok(parts) => (
            StatusCode::ACCEPTED,
            Json(ReplyAccepted {
                queued_messages: parts,
            }),
        )
            .into_response(),
        Err((status, message)) => error(status, message),
    }
}

/// Queues the reply `request` (to message `to`, to `room`, or where the last delivered message
/// came from); `answers_turn` when it is the orchestrator's own (its last turn is then answered:
/// its final answer is not relayed too): the number of messages, or why not with its HTTP
/// status. The API's `POST /v1/reply` and the daemon's reply spool both post through here.
pub fn post_reply(
    bridge: &Bridge,
    request: &ReplyRequest,
    answers_turn: bool,
) -> Result<usize, (StatusCode, String)> {
    let refused = |e: ReplyError| (reply_status(&e), e.to_string());
    let target = match (
        request.to,
        request.room.as_deref().map(|r| r.split_once(':')),
    ) {
        (Some(_), Some(_)) => {
            return Err((
                StatusCode::BAD_REQUEST,
                "give either `to` or `room`, not both".into(),
            ));
        }
        (Some(id), None) => Some(bridge.target_of(id).map_err(refused)?),
        (None, None) => None,
        (None, Some(Some((connector, room)))) => Some(Target {
            connector: connector.into(),
            room: room.into(),
            thread: None,
            reply_to: None,
        }),
        (None, Some(None)) => {
            return Err((
                StatusCode::BAD_REQUEST,
                "room must be CONNECTOR:ROOM, e.g. discord:1517622518662434996".into(),
            ));
        }
    };
    if answers_turn {
        bridge.orchestrator_reply(&request.text, target)
    } else {
        bridge.reply(&request.text, target)
    }
    .map_err(refused)
}

/// The status of a reply that could not be queued.
fn reply_status(e: &ReplyError) -> StatusCode {
    match e {
        ReplyError::Empty => StatusCode::BAD_REQUEST,
        ReplyError::NoConversation => StatusCode::CONFLICT,
        ReplyError::UnknownMessage(_) => StatusCode::NOT_FOUND,
        ReplyError::UnknownConnector(_) => StatusCode::NOT_FOUND,
        ReplyError::RoomNotBridged { .. } => StatusCode::FORBIDDEN,
        ReplyError::Conversation(_) => StatusCode::INTERNAL_SERVER_ERROR,
        // The database failed: the client may send it again later.
        ReplyError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A command for `POST /v1/commands`: a typed `command` (a [`FleetCommand`] as JSON), or a
/// `line` in the chat grammar (`/fleet` optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command: Option<FleetCommand>,
    line: Option<String>,
    /// `mcp` when the orchestrator's MCP tools send it (for the audit log).
    #[serde(default)]
    via: Option<String>,
}

async fn command(State(state): State<ApiState>, Json(body): Json<CommandBody>) -> Response {
    let (command, line) = match (body.command, body.line) {
        (Some(command), None) => {
            let line = command.to_line();
            (command, line)
        }
        (None, Some(line)) => {
            let line = if line.trim_start().starts_with("/fleet") {
                line
            } else {
                format!("/fleet {line}")
            };
            match parse(&line) {
                ChatInput::Command(c) => (*c, line),
                ChatInput::Help(text) => return commanded(&Outcome::Help { text }, false),
                ChatInput::Invalid(e) => return exec_error(&ExecError::BadCommand(e)),
                ChatInput::Talk => {
                    return exec_error(&ExecError::BadCommand(ParseError {
                        message: "not a /fleet command".into(),
                    }));
                }
            }
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "send either `command` (a typed command) or `line` (a /fleet command line)",
            );
        }
    };
    let json = render::wants_json(&command);
    // The orchestrator's tools: whoever calls, the command runs as the orchestrator, with its
    // role (`mosaic fleet` and the other routes are the owner's way to act as admin).
    let surface = match body.via.as_deref() {
        Some("mcp") => Surface::Mcp,
        _ => Surface::Orchestrator,
    };
    match state
        .bridge
        .orchestrator_command(command, &line, surface)
        .await
    {
        Ok(outcome) => commanded(&outcome, json),
        Err(e) => exec_error(&e),
    }
}

/// The answer to a command: the outcome, and its chat rendering as `output` (the JSON form for
/// `ps --json`, as chat gives it).
fn commanded(outcome: &Outcome, json: bool) -> Response {
    Json(json!({
        "outcome": outcome,
        "output": render::chat(outcome, Markdown::CommonMark, json),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HookBody {
    /// `busy`, `idle`, `waiting-for-input`, `ended`, or a harness's own event name
    /// (`UserPromptSubmit`, `Stop`, `agent_end`, …).
    event: String,
    /// The agent it is about; an agent's own token may name only itself (the default), the
    /// owner's token defaults to the orchestrator.
    #[serde(default)]
    agent: Option<String>,
    /// What the harness handed its hook (its JSON payload), if anything.
    #[serde(default)]
    payload: Value,
}

/// The event name in what a harness hands its hook: Claude Code's and Codex's JSON
/// (`hook_event_name`) on stdin, Codex's notify JSON (`type`) as an argument, pi's extension
/// (`event`), or a bare name (`busy`, `idle`).
pub fn hook_event_name(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw.trim()) {
        Ok(v) => v["hook_event_name"]
            .as_str()
            .or(v["type"].as_str())
            .or(v["event"].as_str())
            .unwrap_or_default()
            .to_owned(),
        Err(_) => raw.trim().to_owned(),
    }
}

/// `POST /v1/rooms`: what every bridged room should hear from mosaic (an update starting or
/// ending, run from the terminal). The owner's only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TellBody {
    text: String,
}

async fn tell_rooms(State(state): State<ApiState>, Json(body): Json<TellBody>) -> Response {
    if body.text.trim().is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "nothing to tell");
    }
    let bridge = state.bridge.clone();
    let _ = tokio::task::spawn_blocking(move || bridge.tell_rooms(&body.text)).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn hook(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<HookBody>,
) -> Response {
    let agent = match (&principal, body.agent) {
        (Principal::Agent { name, .. }, Some(other)) if *name != other => {
            return error(
                StatusCode::FORBIDDEN,
                format!("agent {name} may report only its own hooks, not {other}'s"),
            );
        }
        (Principal::Agent { name, .. }, _) => Some(name.clone()),
        (Principal::Owner, agent) => agent,
    };
    match state
        .bridge
        .hook(agent.as_deref(), &body.event, &body.payload)
    {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e @ HookError::UnknownAgent(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ HookError::UnknownEvent { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer t", "bearer t", "BEARER  t ", "bEaReR\tt"] {
            assert_eq!(bearer_token(v), Some("t"), "{v:?}");
        }
        for v in ["Basic t", "Bearer", "Bearer ", "Bearert", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }

    #[test]
    fn only_loopback_unless_remote_is_allowed() {
        assert!(check_listen("127.0.0.1:0", false).unwrap().is_none());
        assert!(check_listen("[::1]:7317", false).unwrap().is_none());
        assert!(check_listen("localhost:7317", false).unwrap().is_none());
        let e = check_listen("0.0.0.0:7317", false).unwrap_err().to_string();
        assert!(e.contains("--allow-remote"), "{e}");
        assert!(check_listen("[::]:7317", false).is_err());
        let warning = check_listen("0.0.0.0:7317", true).unwrap().unwrap();
        assert!(warning.starts_with("warning:"), "{warning}");
        let e = check_listen("abc", false).unwrap_err().to_string();
        assert!(e.contains("expected HOST:PORT"), "{e}");
    }
}
