//! The Anthropic Messages API (`POST /v1/messages`), as Claude Code calls it through
//! `ANTHROPIC_BASE_URL`: streaming (server-sent events) and not, a text answer or one `tool_use`
//! block. Also `POST /v1/messages/count_tokens`.
//!
//! Claude Code sends side requests besides the main turn (e.g. a session title from a small
//! model). Only a request that offers tools is a turn of the agent; any other is answered with a
//! fixed harmless text, so it never consumes a directive meant for the main turn.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::{Reply, Script, Shared};

/// Claude Code's shell tool.
const SHELL_TOOL: &str = "Bash";

/// The answer to a side request (one without tools), or every string in a structured one.
const SIDE_ANSWER: &str = "scripted";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
}

/// A number unique in this process, for message and tool-use ids.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn invalid_request(message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn count_tokens(State(shared): State<Shared>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.record("/v1/messages/count_tokens", &request);
    if request.is_null() {
        return invalid_request("the body is not JSON");
    }
    axum::Json(json!({"input_tokens": rough_tokens(&request)})).into_response()
}

async fn messages(State(shared): State<Shared>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.record("/v1/messages", &request);
    let Some(conversation) = request.get("messages").and_then(Value::as_array) else {
        return invalid_request("messages: an array is required");
    };
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted");
    let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
    let offers_tools = request
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| !tools.is_empty());

    let reply = if offers_tools {
        let turn = Turn::of(conversation);
        if turn.tool_result.is_none()
            && let Some(pause) = Script::delay(&turn.user_text)
        {
            tokio::time::sleep(pause).await;
        }
        Script::decide(&turn.user_text, turn.tool_result.as_deref(), |command| {
            (SHELL_TOOL.to_owned(), json!({"command": command}))
        })
    } else {
        Reply::Text(side_answer(&request))
    };

    let answer = Answer {
        id: next_id(),
        model,
        input_tokens: rough_tokens(&request),
        reply: &reply,
    };
    if streaming {
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            answer.events(),
        )
            .into_response()
    } else {
        axum::Json(answer.message()).into_response()
    }
}

/// What the conversation asks now.
#[derive(Debug, Default, PartialEq)]
struct Turn {
    /// The newest text a user wrote (Claude Code's `<system-reminder>` parts left out).
    user_text: String,
    /// The content of the `tool_result` the conversation ends with, if it ends with one and no
    /// new text of the user came with it (a prompt typed after a refused tool call does).
    tool_result: Option<String>,
}

impl Turn {
    fn of(conversation: &[Value]) -> Self {
        let user_messages = conversation
            .iter()
            .rev()
            .filter(|message| message.get("role").and_then(Value::as_str) == Some("user"));
        let user_text = user_messages
            .filter_map(|message| message.get("content").and_then(written_text))
            .next()
            .unwrap_or_default();
        // Newer models get a `system` message among the messages (often last); it is not a turn.
        let tool_result = conversation
            .iter()
            .rfind(|message| message.get("role").and_then(Value::as_str) != Some("system"))
            .filter(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|message| message.get("content"))
            .filter(|content| written_text(content).is_none())
            .and_then(Value::as_array)
            .and_then(|blocks| {
                blocks
                    .iter()
                    .rev()
                    .find(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
            .map(|block| {
                let content = block.get("content").map(text_of).unwrap_or_default();
                without_reminders(&content).trim().to_owned()
            });
        Self {
            user_text,
            tool_result,
        }
    }
}

/// The text a user wrote in a message's content: a string, or the last text block that is not
/// only Claude Code's `<system-reminder>` parts (it puts the prompt last, after reminders and
/// notes such as `[Request interrupted by user for tool use]`); `None` when there is none.
fn written_text(content: &Value) -> Option<String> {
    let texts: Vec<&str> = match content {
        Value::String(text) => vec![text.as_str()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    };
    texts
        .into_iter()
        .map(|text| without_reminders(text).trim().to_owned())
        .rfind(|text| !text.is_empty())
}

/// `text` with every `<system-reminder>…</system-reminder>` span removed.
fn without_reminders(text: &str) -> String {
    const OPEN: &str = "<system-reminder>";
    const CLOSE: &str = "</system-reminder>";
    let mut kept = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        kept.push_str(&rest[..start]);
        rest = match rest[start..].find(CLOSE) {
            Some(end) => &rest[start + end + CLOSE.len()..],
            None => "",
        };
    }
    kept.push_str(rest);
    kept
}

/// A `tool_result` content as text: a string, or its text blocks joined by newlines.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The answer to a side request: [`SIDE_ANSWER`], or, when the request asks for structured output
/// (`output_config.format` or `output_format` with a JSON schema, as Claude Code's session-title
/// request does), a JSON document that fits the schema.
fn side_answer(request: &Value) -> String {
    let format = request
        .pointer("/output_config/format")
        .or_else(|| request.get("output_format"));
    match format.and_then(|format| format.get("schema")) {
        Some(schema) => fitting(schema).to_string(),
        None => SIDE_ANSWER.to_owned(),
    }
}

/// A small value that fits a JSON schema: every property of an object, the first of an enum.
fn fitting(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str),
        Some(kind) => kind.as_str(),
        None => None,
    };
    match kind {
        Some("object") => Value::Object(
            schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, property)| (name.clone(), fitting(property)))
                .collect(),
        ),
        Some("array") => json!([]),
        Some("boolean") => json!(false),
        Some("integer" | "number") => json!(0),
        Some("null") => Value::Null,
        _ => json!(SIDE_ANSWER),
    }
}

/// A token count that is plausible, not exact: a quarter of the request's JSON length.
fn rough_tokens(request: &Value) -> usize {
    request.to_string().len() / 4 + 1
}

/// One answer in the Messages API's shapes.
struct Answer<'a> {
    id: u64,
    model: &'a str,
    input_tokens: usize,
    reply: &'a Reply,
}

impl Answer<'_> {
    fn stop_reason(&self) -> &'static str {
        match self.reply {
            Reply::Text(_) => "end_turn",
            Reply::ToolCall { .. } => "tool_use",
        }
    }

    fn output_tokens(&self) -> usize {
        match self.reply {
            Reply::Text(text) => text.len() / 4 + 1,
            Reply::ToolCall { input, .. } => input.to_string().len() / 4 + 1,
        }
    }

    fn usage(&self, output_tokens: usize) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        })
    }

    /// The content block, complete (non-streaming) or as opened by `content_block_start`.
    fn block(&self, complete: bool) -> Value {
        match self.reply {
            Reply::Text(text) => json!({
                "type": "text",
                "text": if complete { text.as_str() } else { "" },
            }),
            Reply::ToolCall { name, input } => json!({
                "type": "tool_use",
                "id": format!("toolu_scripted_{}", self.id),
                "name": name,
                "input": if complete { input.clone() } else { json!({}) },
            }),
        }
    }

    /// The `message` object; `complete` is false for the one `message_start` carries.
    fn message_object(&self, complete: bool) -> Value {
        json!({
            "id": format!("msg_scripted_{}", self.id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": if complete { vec![self.block(true)] } else { Vec::new() },
            "stop_reason": if complete { json!(self.stop_reason()) } else { Value::Null },
            "stop_sequence": null,
            "usage": self.usage(if complete { self.output_tokens() } else { 1 }),
        })
    }

    /// The non-streaming response body.
    fn message(&self) -> Value {
        self.message_object(true)
    }

    /// The streaming response body: the server-sent events of one message.
    fn events(&self) -> String {
        let delta = match self.reply {
            Reply::Text(text) => json!({"type": "text_delta", "text": text}),
            Reply::ToolCall { input, .. } => {
                json!({"type": "input_json_delta", "partial_json": input.to_string()})
            }
        };
        let events = [
            json!({"type": "message_start", "message": self.message_object(false)}),
            json!({"type": "content_block_start", "index": 0, "content_block": self.block(false)}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null},
                "usage": {"output_tokens": self.output_tokens()},
            }),
            json!({"type": "message_stop"}),
        ];
        events
            .iter()
            .map(|event| {
                format!(
                    "event: {}\ndata: {event}\n\n",
                    event["type"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Running;
    use crate::test_support::{typed_sse_events as sse_events, types};

    fn post(server: &Running, path: &str, body: &Value) -> (u16, String, String) {
        let mut response = ureq::post(format!("{}{path}", server.base_url()))
            .config()
            .http_status_as_error(false)
            .build()
            .header("content-type", "application/json")
            .send(body.to_string())
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.body_mut().read_to_string().expect("body");
        (status, content_type, text)
    }

    /// A main-turn request as Claude Code shapes it: a tool list and a user message whose first
    /// text block is a system reminder.
    fn turn(prompt: &str, stream: bool) -> Value {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 32000,
            "stream": stream,
            "system": [{"type": "text", "text": "You are Claude Code."}],
            "tools": [{"name": "Bash", "description": "runs a command", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\n[[say wrong]]\n</system-reminder>"},
                {"type": "text", "text": prompt},
            ]}],
        })
    }

    #[test]
    fn a_text_answer_without_streaming() {
        let server = Running::start().unwrap();
        let (status, content_type, body) =
            post(&server, "/v1/messages", &turn("[[say hello there]]", false));
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(message["type"], "message");
        assert_eq!(message["role"], "assistant");
        assert_eq!(message["model"], "claude-sonnet-4-5");
        assert_eq!(message["stop_reason"], "end_turn");
        assert_eq!(
            message["content"],
            json!([{"type": "text", "text": "hello there"}])
        );
        let recorded = server.shared.requests();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].path, "/v1/messages");
        assert_eq!(recorded[0].body, turn("[[say hello there]]", false));
    }

    #[test]
    fn a_text_answer_streamed() {
        let server = Running::start().unwrap();
        let (status, content_type, body) =
            post(&server, "/v1/messages", &turn("first line\nsecond", true));
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/event-stream");
        let events = sse_events(&body);
        assert_eq!(
            types(&events),
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0]["message"]["content"], json!([]));
        assert_eq!(events[0]["message"]["stop_reason"], Value::Null);
        assert_eq!(
            events[1]["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            events[3]["delta"],
            json!({"type": "text_delta", "text": "ok: first line"})
        );
        assert_eq!(events[5]["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn a_bash_call_streamed_then_its_result_ends_the_turn() {
        let server = Running::start().unwrap();
        let (_, _, body) = post(&server, "/v1/messages", &turn("[[bash echo hi]]", true));
        let events = sse_events(&body);
        let block = &events[1]["content_block"];
        assert_eq!(block["type"], "tool_use");
        assert_eq!(block["name"], "Bash");
        assert_eq!(block["input"], json!({}));
        assert_eq!(events[3]["delta"]["type"], "input_json_delta");
        let partial = events[3]["delta"]["partial_json"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(partial).unwrap(),
            json!({"command": "echo hi"})
        );
        assert_eq!(events[5]["delta"]["stop_reason"], "tool_use");

        let mut with_result = turn("[[bash echo hi]]", true);
        let conversation = with_result["messages"].as_array_mut().unwrap();
        conversation.push(json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": block["id"], "name": "Bash", "input": {"command": "echo hi"}},
        ]}));
        conversation.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": block["id"], "content": [{"type": "text", "text": "hi\nmore"}]},
        ]}));
        let (_, _, body) = post(&server, "/v1/messages", &with_result);
        let events = sse_events(&body);
        assert_eq!(events[3]["delta"]["text"], "done: hi");
        assert_eq!(events[5]["delta"]["stop_reason"], "end_turn");
    }

    #[test]
    fn a_named_tool_call_without_streaming() {
        let server = Running::start().unwrap();
        let prompt = r#"[[tool mcp__mosaic__reply {"text":"hi"}]]"#;
        let (_, _, body) = post(&server, "/v1/messages", &turn(prompt, false));
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(message["stop_reason"], "tool_use");
        let block = &message["content"][0];
        assert_eq!(block["type"], "tool_use");
        assert_eq!(block["name"], "mcp__mosaic__reply");
        assert_eq!(block["input"], json!({"text": "hi"}));
        assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    }

    #[test]
    fn a_side_request_without_tools_leaves_the_directive_alone() {
        let server = Running::start().unwrap();
        let mut side = turn("[[bash echo hi]]", false);
        side.as_object_mut().unwrap().remove("tools");
        let (_, _, body) = post(&server, "/v1/messages", &side);
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(message["content"][0]["text"], SIDE_ANSWER);
        assert_eq!(message["stop_reason"], "end_turn");
    }

    #[test]
    fn slow_waits_before_answering() {
        let server = Running::start().unwrap();
        let started = std::time::Instant::now();
        let (_, _, body) = post(&server, "/v1/messages", &turn("[[slow 300]] busy", false));
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        let message: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(message["content"][0]["text"], "ok: [[slow 300]] busy");
    }

    #[test]
    fn a_structured_side_request_gets_json_that_fits_its_schema() {
        let server = Running::start().unwrap();
        let mut title = turn("[[bash echo hi]]", false);
        let request = title.as_object_mut().unwrap();
        request.remove("tools");
        request.insert(
            "output_config".into(),
            json!({"effort": "medium", "format": {"type": "json_schema", "schema": {
                "type": "object",
                "additionalProperties": false,
                "properties": {"title": {"type": "string"}, "done": {"type": "boolean"}},
                "required": ["title"],
            }}}),
        );
        let (_, _, body) = post(&server, "/v1/messages", &title);
        let message: Value = serde_json::from_str(&body).unwrap();
        let text = message["content"][0]["text"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            json!({"title": SIDE_ANSWER, "done": false})
        );
    }

    #[test]
    fn count_tokens_answers_a_count() {
        let server = Running::start().unwrap();
        let (status, _, body) = post(&server, "/v1/messages/count_tokens", &turn("hi", false));
        assert_eq!(status, 200);
        let count: Value = serde_json::from_str(&body).unwrap();
        assert!(count["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            server.shared.requests()[0].path,
            "/v1/messages/count_tokens"
        );
    }

    #[test]
    fn a_body_without_messages_is_refused() {
        let server = Running::start().unwrap();
        let (status, _, body) = post(&server, "/v1/messages", &json!({"model": "m"}));
        assert_eq!(status, 400);
        assert!(body.contains("invalid_request_error"), "{body}");
    }

    #[test]
    fn the_newest_user_text_skips_reminders_and_tool_results() {
        let conversation = [
            json!({"role": "user", "content": "old prompt"}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": "before<system-reminder>x</system-reminder> after"}),
            json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]}),
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "\n<system-reminder>x</system-reminder>\nout"}]}),
            json!({"role": "system", "content": [{"type": "text", "text": "# Environment"}]}),
        ];
        assert_eq!(
            Turn::of(&conversation),
            Turn {
                user_text: "before after".into(),
                tool_result: Some("out".into())
            }
        );
        let mut refused_then_asked = conversation[..4].to_vec();
        refused_then_asked.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "The user doesn't want to proceed"},
            {"type": "text", "text": "[Request interrupted by user for tool use]\n"},
            {"type": "text", "text": "next prompt"},
        ]}));
        assert_eq!(
            Turn::of(&refused_then_asked),
            Turn {
                user_text: "next prompt".into(),
                tool_result: None
            }
        );
        assert_eq!(
            Turn::of(&conversation[..3]),
            Turn {
                user_text: "before after".into(),
                tool_result: None
            }
        );
    }
}
