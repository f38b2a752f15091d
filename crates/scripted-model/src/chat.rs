//! OpenAI chat completions (`POST /v1/chat/completions`, `GET /v1/models`), as pi's
//! `openai-completions` provider calls them.
//!
//! pi always streams (`stream: true`): the answer is a `text/event-stream` of
//! `chat.completion.chunk` objects whose `choices[0].delta` carries the role, the text or one tool
//! call (its `arguments` split over several chunks, as real servers do), then a chunk with
//! `finish_reason` `stop` or `tool_calls`, a usage chunk when `stream_options.include_usage` asks
//! for one, and `data: [DONE]`. Without `stream` the answer is one `chat.completion` object.
//!
//! pi's shell tool is `bash` with the input `{"command": …}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{Reply, Script, Shared};

const COMPLETIONS_PATH: &str = "/v1/chat/completions";
const MODELS_PATH: &str = "/v1/models";
/// The one model `GET /v1/models` lists; completions accept any model id and echo it.
const LISTED_MODEL: &str = "scripted";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route(COMPLETIONS_PATH, post(completions))
        .route(MODELS_PATH, get(models))
}

async fn models(State(shared): State<Shared>) -> axum::Json<Value> {
    shared.record(MODELS_PATH, &Value::Null);
    axum::Json(json!({
        "object": "list",
        "data": [{"id": LISTED_MODEL, "object": "model", "created": 0, "owned_by": "mosaic"}],
    }))
}

async fn completions(State(shared): State<Shared>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.record(COMPLETIONS_PATH, &request);
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return invalid_request("the body must be a JSON object with a `messages` array");
    };
    let user_text = newest_user_text(messages);
    let tool_result = trailing_tool_result(messages);
    if tool_result.is_none()
        && let Some(delay) = Script::delay(&user_text)
    {
        tokio::time::sleep(delay).await;
    }
    let reply = Script::decide(&user_text, tool_result.as_deref(), |command| {
        ("bash".to_owned(), json!({ "command": command }))
    });
    let sequence = shared.requests().len();
    let answer = Answer {
        id: format!("chatcmpl-scripted-{sequence}"),
        call_id: format!("call_scripted_{sequence}"),
        model: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(LISTED_MODEL)
            .to_owned(),
        reply,
    };
    if request.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            answer.event_stream(include_usage),
        )
            .into_response()
    } else {
        axum::Json(answer.completion()).into_response()
    }
}

fn invalid_request(message: &str) -> Response {
    let error = json!({"error": {"message": message, "type": "invalid_request_error"}});
    (StatusCode::BAD_REQUEST, axum::Json(error)).into_response()
}

/// The text of a message's `content`: a string, or the `text` parts of an array of parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The text of the newest `user` message (empty when there is none).
fn newest_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|message| role(message) == Some("user"))
        .map(|message| content_text(message.get("content")))
        .unwrap_or_default()
}

/// The content of the last message when it is a `tool` result.
fn trailing_tool_result(messages: &[Value]) -> Option<String> {
    let last = messages.last()?;
    (role(last) == Some("tool")).then(|| content_text(last.get("content")))
}

/// One scripted answer and the ids it goes out with.
struct Answer {
    id: String,
    call_id: String,
    model: String,
    reply: Reply,
}

impl Answer {
    fn finish_reason(&self) -> &'static str {
        match self.reply {
            Reply::Text(_) => "stop",
            Reply::ToolCall { .. } => "tool_calls",
        }
    }

    fn usage(&self) -> Value {
        json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
    }

    /// The non-streaming `chat.completion` object.
    fn completion(&self) -> Value {
        let message = match &self.reply {
            Reply::Text(text) => json!({"role": "assistant", "content": text}),
            Reply::ToolCall { name, input } => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": self.call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }],
            }),
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason(),
            }],
            "usage": self.usage(),
        })
    }

    /// One `chat.completion.chunk` with this delta and finish reason.
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        })
    }

    /// The whole server-sent event stream of a streamed answer.
    fn event_stream(&self, include_usage: bool) -> String {
        let mut chunks = vec![self.chunk(json!({"role": "assistant", "content": ""}), None)];
        match &self.reply {
            Reply::Text(text) => {
                for piece in halves(text) {
                    chunks.push(self.chunk(json!({ "content": piece }), None));
                }
            }
            Reply::ToolCall { name, input } => {
                chunks.push(self.chunk(
                    json!({"tool_calls": [{
                        "index": 0,
                        "id": self.call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }]}),
                    None,
                ));
                for piece in halves(&input.to_string()) {
                    chunks.push(self.chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                        None,
                    ));
                }
            }
        }
        chunks.push(self.chunk(json!({}), Some(self.finish_reason())));
        if include_usage {
            chunks.push(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            }));
        }
        let mut stream: String = chunks
            .iter()
            .map(|chunk| format!("data: {chunk}\n\n"))
            .collect();
        stream.push_str("data: [DONE]\n\n");
        stream
    }
}

/// `text` in two non-empty pieces (one when it is shorter than two characters), so a client must
/// join streamed deltas.
fn halves(text: &str) -> Vec<&str> {
    let middle = text
        .char_indices()
        .map(|(index, _)| index)
        .nth(text.chars().count() / 2)
        .unwrap_or(text.len());
    [&text[..middle], &text[middle..]]
        .into_iter()
        .filter(|piece| !piece.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Running;

    /// POSTs `body` to the chat endpoint of `server`; returns the status and the body text.
    fn post_chat(server: &Running, body: &Value) -> (u16, String) {
        let response = ureq::post(format!("{}{COMPLETIONS_PATH}", server.base_url()))
            .config()
            .http_status_as_error(false)
            .build()
            .header("content-type", "application/json")
            .send(body.to_string())
            .expect("request");
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().expect("body");
        (status, text)
    }

    /// The JSON objects of an event stream, and whether it ended with `data: [DONE]`.
    fn events(stream: &str) -> (Vec<Value>, bool) {
        let data: Vec<&str> = stream
            .split("\n\n")
            .filter(|event| !event.trim().is_empty())
            .map(|event| event.strip_prefix("data: ").expect("a data event"))
            .collect();
        let done = data.last() == Some(&"[DONE]");
        let chunks = data
            .iter()
            .filter(|data| **data != "[DONE]")
            .map(|data| serde_json::from_str(data).expect("chunk JSON"))
            .collect();
        (chunks, done)
    }

    /// What a streaming client assembles: the text, the tool call (id, name, arguments) and the
    /// finish reason.
    fn assemble(chunks: &[Value]) -> (String, Option<(String, String, String)>, String) {
        let mut text = String::new();
        let mut call: Option<(String, String, String)> = None;
        let mut finish = String::new();
        for chunk in chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            let Some(choice) = chunk["choices"].get(0) else {
                continue;
            };
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = reason.to_owned();
            }
            text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            for delta in choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let entry = call.get_or_insert_with(Default::default);
                if let Some(id) = delta["id"].as_str() {
                    entry.0 = id.to_owned();
                }
                if let Some(name) = delta["function"]["name"].as_str() {
                    entry.1 = name.to_owned();
                }
                entry
                    .2
                    .push_str(delta["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
        (text, call, finish)
    }

    fn streamed(user: Value) -> Value {
        json!({
            "model": "scripted-pi",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "You are pi."}, user],
        })
    }

    #[test]
    fn a_streamed_prompt_is_answered_with_its_first_line() {
        let server = Running::start().expect("server");
        let (status, stream) = post_chat(
            &server,
            &streamed(
                json!({"role": "user", "content": [{"type": "text", "text": "hello\nthere"}]}),
            ),
        );
        assert_eq!(status, 200);
        let (chunks, done) = events(&stream);
        assert!(done, "the stream ends with [DONE]: {stream}");
        let (text, call, finish) = assemble(&chunks);
        assert_eq!(text, "ok: hello");
        assert_eq!(call, None);
        assert_eq!(finish, "stop");
        assert!(
            chunks
                .iter()
                .filter(|c| c["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty()))
                .count()
                > 1,
            "the text arrives in more than one delta"
        );
        let usage = chunks.last().expect("a usage chunk");
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 2);
        assert_eq!(chunks[0]["model"], "scripted-pi");

        let recorded = server.shared.requests();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].path, COMPLETIONS_PATH);
        assert_eq!(recorded[0].body["model"], "scripted-pi");
    }

    #[test]
    fn bash_calls_pi_shell_tool_and_its_result_ends_the_turn() {
        let server = Running::start().expect("server");
        let user = json!({"role": "user", "content": "run it [[bash echo hi]]"});
        let (_, stream) = post_chat(&server, &streamed(user.clone()));
        let (chunks, done) = events(&stream);
        assert!(done);
        let (text, call, finish) = assemble(&chunks);
        assert_eq!(text, "");
        assert_eq!(finish, "tool_calls");
        let (id, name, arguments) = call.expect("a tool call");
        assert!(!id.is_empty());
        assert_eq!(name, "bash");
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).expect("arguments JSON"),
            json!({"command": "echo hi"})
        );

        let follow_up = json!({
            "model": "scripted-pi",
            "stream": true,
            "messages": [
                user,
                {"role": "assistant", "content": null, "tool_calls": [{
                    "id": id, "type": "function",
                    "function": {"name": "bash", "arguments": arguments},
                }]},
                {"role": "tool", "tool_call_id": id, "content": "hi\n"},
            ],
        });
        let (_, stream) = post_chat(&server, &follow_up);
        let (chunks, done) = events(&stream);
        assert!(done);
        assert!(
            chunks.iter().all(|c| c["usage"].is_null()),
            "no usage chunk unless asked for"
        );
        let (text, call, finish) = assemble(&chunks);
        assert_eq!(
            (text.as_str(), call, finish.as_str()),
            ("done: hi", None, "stop")
        );
        assert_eq!(server.shared.requests().len(), 2);
    }

    #[test]
    fn a_named_tool_is_called_with_its_input() {
        let server = Running::start().expect("server");
        let (_, stream) = post_chat(
            &server,
            &streamed(
                json!({"role": "user", "content": r#"[[tool mosaic_reply {"text":"hé 👋"}]]"#}),
            ),
        );
        let (text, call, finish) = assemble(&events(&stream).0);
        assert_eq!((text.as_str(), finish.as_str()), ("", "tool_calls"));
        let (_, name, arguments) = call.expect("a tool call");
        assert_eq!(name, "mosaic_reply");
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).expect("arguments JSON"),
            json!({"text": "hé 👋"})
        );
    }

    #[test]
    fn the_newest_user_text_decides() {
        let server = Running::start().expect("server");
        let (_, stream) = post_chat(
            &server,
            &json!({"stream": true, "messages": [
                {"role": "user", "content": "[[say old]]"},
                {"role": "assistant", "content": "old"},
                {"role": "user", "content": "[[say new]]"},
            ]}),
        );
        assert_eq!(assemble(&events(&stream).0).0, "new");
    }

    #[test]
    fn without_stream_the_answer_is_one_completion_object() {
        let server = Running::start().expect("server");
        let (status, body) = post_chat(
            &server,
            &json!({"model": "m", "messages": [{"role": "user", "content": "[[say plain]]"}]}),
        );
        assert_eq!(status, 200);
        let completion: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["choices"][0]["message"]["content"], "plain");
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");

        let (_, body) = post_chat(
            &server,
            &json!({"model": "m", "messages": [{"role": "user", "content": "[[bash ls]]"}]}),
        );
        let completion: Value = serde_json::from_str(&body).expect("JSON");
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["tool_calls"][0]["type"], "function");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["name"],
            "bash"
        );
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"command":"ls"}"#
        );
    }

    #[test]
    fn slow_delays_the_answer() {
        let server = Running::start().expect("server");
        let started = std::time::Instant::now();
        let (_, stream) = post_chat(
            &server,
            &streamed(json!({"role": "user", "content": "wait [[slow 300]]"})),
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        assert_eq!(assemble(&events(&stream).0).0, "ok: wait [[slow 300]]");
    }

    #[test]
    fn a_body_without_messages_is_refused_and_still_recorded() {
        let server = Running::start().expect("server");
        let (status, body) = post_chat(&server, &json!({"model": "m"}));
        assert_eq!(status, 400);
        assert!(body.contains("invalid_request_error"), "{body}");
        assert_eq!(server.shared.requests().len(), 1);
    }

    #[test]
    fn models_lists_one_model() {
        let server = Running::start().expect("server");
        let mut response = ureq::get(format!("{}{MODELS_PATH}", server.base_url()))
            .call()
            .expect("models");
        let models: Value =
            serde_json::from_str(&response.body_mut().read_to_string().expect("body"))
                .expect("JSON");
        assert_eq!(models["object"], "list");
        assert_eq!(models["data"][0]["id"], LISTED_MODEL);
    }
}
