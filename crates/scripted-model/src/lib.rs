//! TEST SUPPORT, not a model: a scripted stand-in for the model APIs the real harnesses call.
//!
//! One loopback HTTP server speaks three wire formats:
//! - Anthropic Messages (`POST /v1/messages`), for Claude Code (`ANTHROPIC_BASE_URL`);
//! - the OpenAI Responses API (`POST /v1/responses`), for Codex;
//! - OpenAI chat completions (`POST /v1/chat/completions`), for pi.
//!
//! What it answers is decided by [`Script::decide`] from the conversation, never at random: the
//! newest user text may carry directives (see [`Directive`]); without one the answer is the text
//! `ok: FIRST LINE OF THE PROMPT`. Every request is recorded ([`Recorded`], `GET /_requests`) so a
//! test can see what the harness sent.

mod anthropic;
mod chat;
mod responses;
mod script;

pub use script::{Directive, Reply, Script};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

/// One request the server received.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    /// The request path, e.g. `/v1/messages`.
    pub path: String,
    /// The JSON body (`null` when it was not JSON).
    pub body: serde_json::Value,
}

/// Shared state of a running server.
#[derive(Clone, Default)]
pub struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Shared {
    /// Records one request.
    pub fn record(&self, path: &str, body: &serde_json::Value) {
        self.requests.lock().expect("requests lock").push(Recorded {
            path: path.to_owned(),
            body: body.clone(),
        });
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("requests lock").clone()
    }
}

/// The router with every endpoint.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .merge(anthropic::routes())
        .merge(responses::routes())
        .merge(chat::routes())
        .route("/_requests", get(list_requests))
        .with_state(shared)
}

async fn list_requests(State(shared): State<Shared>) -> axum::Json<Vec<Recorded>> {
    axum::Json(shared.requests())
}

/// Serves on `listener` until the process ends (tests bind port 0).
pub async fn serve(listener: tokio::net::TcpListener, shared: Shared) -> std::io::Result<()> {
    axum::serve(listener, router(shared)).await
}

/// A server running on its own thread, for tests: bound to `127.0.0.1:0`.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its recorded requests.
    pub shared: Shared,
}

impl Running {
    /// Starts a server on a background thread with its own runtime.
    pub fn start() -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let shared = Shared::default();
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name("scripted-model".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("scripted model runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(std_listener).expect("listener");
                    let _ = serve(listener, for_thread).await;
                });
            })?;
        Ok(Self { addr, shared })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Helpers for this crate's tests.
#[cfg(test)]
mod test_support {
    use serde_json::Value;

    /// The `data:` objects of a server-sent event stream whose events name their data's type
    /// (`event: T` then `data: {"type": T, …}`), checking that they agree.
    pub(crate) fn typed_sse_events(stream: &str) -> Vec<Value> {
        stream
            .split("\n\n")
            .filter(|chunk| !chunk.trim().is_empty())
            .map(|chunk| {
                let (event_line, data_line) = chunk.split_once('\n').expect("two lines");
                let data: Value =
                    serde_json::from_str(data_line.strip_prefix("data: ").expect("data line"))
                        .expect("data is JSON");
                assert_eq!(
                    event_line,
                    format!("event: {}", data["type"].as_str().unwrap())
                );
                data
            })
            .collect()
    }

    /// The `type` of each event.
    pub(crate) fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }
}
