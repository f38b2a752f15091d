//! The daemon's HTTP+JSON API (`/v1`). Every route needs `Authorization: Bearer TOKEN` (the
//! token is in the state directory, mode 0600). The server takes a bound listener, so it binds
//! wherever the caller chose (loopback by default; tests bind port 0) and stops on a signal.
//! The routes are documented in docs/api.md.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mosaic_bridge::activity::HookState;
use mosaic_bridge::{Bridge, Target, Verdict};
use mosaic_connector::{Inbound, Markdown};
use mosaic_exec::{Actor, ErrorKind, ExecError, Executor, Outcome, Surface, render};
use mosaic_fleet::Paths;
use mosaic_grammar::chat::{ChatInput, ParseError, parse};
use mosaic_grammar::{FleetCommand, LogsArgs, PsArgs, STOP_TIMEOUT_SECS, SendArgs, StopArgs};
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// Identifies the API and its version in `GET /v1/health`.
pub const API_VERSION: &str = "mosaic.api/v1";

/// What the routes share.
#[derive(Clone)]
pub struct ApiState {
    /// The bridge (chat, replies, hooks, events).
    pub bridge: Bridge,
    /// Config and state directories.
    pub paths: Paths,
    /// The `mosaic` executable.
    pub mosaic_exe: PathBuf,
    /// The bearer token every request must carry.
    pub token: Arc<String>,
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state)
}

async fn require_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes())) {
        next.run(request).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer TOKEN` (the token is in the state directory's api.token)",
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// Runs `command` through the executor as an API client.
async fn run(state: &ApiState, command: FleetCommand) -> Result<Outcome, Response> {
    let executor = Executor::new(state.paths.clone(), state.mosaic_exe.clone());
    tokio::task::spawn_blocking(move || executor.exec(&command, &Actor::api()))
        .await
        .unwrap_or_else(|e| Err(ExecError::Internal(Box::new(e))))
        .map_err(|e| exec_error(&e))
}

async fn health(State(state): State<ApiState>) -> Json<Value> {
    let connectors: Vec<Value> = state
        .bridge
        .health()
        .into_iter()
        .map(|(id, h)| json!({ "id": id, "health": h }))
        .collect();
    Json(json!({ "api": API_VERSION, "connectors": connectors, "queue": state.bridge.queue_len() }))
}

async fn fleet(State(state): State<ApiState>) -> Response {
    match run(&state, FleetCommand::Ps(PsArgs { json: true })).await {
        Ok(Outcome::Ps { status }) => Json(status).into_response(),
        Ok(other) => Json(other).into_response(),
        Err(r) => r,
    }
}

async fn events(
    State(state): State<ApiState>,
) -> Sse<impl tokio_stream::Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(state.bridge.events())
        .filter_map(|e| e.ok())
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
    Path(name): Path<String>,
    Json(body): Json<TextBody>,
) -> Response {
    let command = FleetCommand::Send(SendArgs {
        name,
        text: vec![body.text],
    });
    match run(&state, command).await {
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
    Path(name): Path<String>,
    body: Option<Json<TerminateBody>>,
) -> Response {
    let timeout = body.map(|b| b.timeout_secs).unwrap_or_else(default_timeout);
    let command = FleetCommand::Stop(StopArgs {
        agents: vec![name],
        timeout,
    });
    match run(&state, command).await {
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
    Path(name): Path<String>,
    Query(q): Query<CaptureQuery>,
) -> Response {
    let command = FleetCommand::Logs(LogsArgs {
        name,
        follow: false,
        screen: !q.history,
    });
    match run(&state, command).await {
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

#[derive(Deserialize)]
struct ReplyBody {
    text: String,
    /// `CONNECTOR:ROOM`; the room of the last delivered message when absent.
    room: Option<String>,
}

async fn reply(State(state): State<ApiState>, Json(body): Json<ReplyBody>) -> Response {
    let target = match body.room.as_deref().map(|r| r.split_once(':')) {
        None => None,
        Some(Some((connector, room))) => Some(Target {
            connector: connector.into(),
            room: room.into(),
            thread: None,
            reply_to: None,
        }),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "room must be CONNECTOR:ROOM, e.g. discord:1517622518662434996",
            );
        }
    };
    match state.bridge.reply(&body.text, target) {
        Ok(parts) => (
            StatusCode::ACCEPTED,
            Json(json!({ "queued_messages": parts })),
        )
            .into_response(),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// A command for `POST /v1/commands`: a typed `command` (a [`FleetCommand`] as JSON), or a
/// `line` in the chat grammar (`/fleet` optional).
#[derive(Deserialize)]
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
                ChatInput::Help(text) => return commanded(&Outcome::Help { text }),
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
    let surface = match body.via.as_deref() {
        Some("mcp") => Surface::Mcp,
        _ => Surface::Orchestrator,
    };
    match state
        .bridge
        .orchestrator_command(command, &line, surface)
        .await
    {
        Ok(outcome) => commanded(&outcome),
        Err(e) => exec_error(&e),
    }
}

/// The answer to a command: the outcome, and its chat rendering as `output`.
fn commanded(outcome: &Outcome) -> Response {
    Json(json!({
        "outcome": outcome,
        "output": render::chat(outcome, Markdown::CommonMark, false),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct HookBody {
    /// `busy` or `idle`, or a harness's own event name (`UserPromptSubmit`, `Stop`, …).
    event: String,
}

/// Maps a hook event name to a state: mosaic's own names and the harnesses' event names.
pub fn hook_state(event: &str) -> Option<HookState> {
    match event {
        "busy" | "UserPromptSubmit" | "PreToolUse" | "PostToolUse" => Some(HookState::Busy),
        "idle" | "Stop" | "SessionStart" | "agent-turn-complete" | "agent_end" => {
            Some(HookState::Idle)
        }
        _ => None,
    }
}

async fn hook(State(state): State<ApiState>, Json(body): Json<HookBody>) -> Response {
    match hook_state(&body.event) {
        Some(s) => {
            state.bridge.hook(s);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown hook event {:?}; expected busy, idle, or a harness event name",
                body.event
            ),
        ),
    }
}
