//! The OpenAI Responses API as Codex calls it: `POST /v1/responses` answered as a server-sent
//! event stream (`GET /v1/models`, which Codex 0.171 never calls, is answered by the chat module).
//!
//! Codex parses, per event, only `type` and one of `response`, `item` or `delta`
//! (`codex-rs/codex-api/src/sse/responses.rs`); a stream that closes without
//! `response.completed` is an error to it.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

use crate::{Reply, Script, Shared};

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/v1/responses", post(responses))
}

async fn responses(State(shared): State<Shared>, body: axum::body::Bytes) -> impl IntoResponse {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.record("/v1/responses", &request);
    let reply = match structured_answer(&request) {
        Some(answer) => Reply::Text(answer),
        None => {
            let conversation = Conversation::of(&request);
            if let Some(pause) = Script::delay(&conversation.user_text) {
                tokio::time::sleep(pause).await;
            }
            Script::decide(
                &conversation.user_text,
                conversation.tool_result.as_deref(),
                |command| shell_call(&request, command),
            )
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        event_stream(&request, &reply),
    )
}

/// The answer to a request for structured output (`text.format` a JSON schema), which Codex
/// sends on its own, e.g. to title a new thread (`{"title": …}`): an object giving every required
/// property the string `scripted`. Directives in its prompt (which quotes the user's) are ignored.
fn structured_answer(request: &Value) -> Option<String> {
    let format = request.get("text")?.get("format")?;
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return None;
    }
    let required = format
        .get("schema")
        .and_then(|schema| schema.get("required"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let answer: serde_json::Map<String, Value> = required
        .iter()
        .filter_map(Value::as_str)
        .map(|key| (key.to_owned(), json!("scripted")))
        .collect();
    Some(Value::Object(answer).to_string())
}

/// What the scripted model reads from a Responses request.
#[derive(Debug, Default, PartialEq)]
struct Conversation {
    /// The newest text the user typed (context items Codex adds are skipped).
    user_text: String,
    /// The output of the tool call answered last, when the input ends with one.
    tool_result: Option<String>,
}

/// Starts of the user-role texts Codex adds itself (environment, AGENTS.md, skills, turn
/// aborts); they are context, not what the user typed.
const CONTEXT_PREFIXES: &[&str] = &[
    "<environment_context>",
    "<user_instructions>",
    "# AGENTS.md instructions",
    "<INSTRUCTIONS>",
    "<skill>",
    "<user_shell_command>",
    "<turn_aborted>",
    "<subagent_notification>",
];

impl Conversation {
    fn of(request: &Value) -> Self {
        let items = request
            .get("input")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let user_text = items
            .iter()
            .rev()
            .filter(|item| item.get("role").and_then(Value::as_str) == Some("user"))
            .filter_map(|item| message_text(item.get("content")?))
            .find(|text| {
                let start = text.trim_start();
                !CONTEXT_PREFIXES.iter().any(|p| start.starts_with(p))
            })
            .unwrap_or_default();
        let tool_result = items
            .last()
            .filter(|item| {
                matches!(
                    item.get("type").and_then(Value::as_str),
                    Some("function_call_output" | "custom_tool_call_output")
                )
            })
            .map(|item| {
                let output = item.get("output").map(output_text).unwrap_or_default();
                command_output(&output).to_owned()
            });
        Self {
            user_text,
            tool_result,
        }
    }
}

/// What a tool printed. Codex puts a header before it, ending in a line `Output:`: for
/// `exec_command` `Chunk ID: …`, `Wall time: …`, `Process exited with code 0`,
/// `Original token count: …`; for an MCP tool `Wall time: …`. Other outputs are returned whole.
fn command_output(output: &str) -> &str {
    if !(output.starts_with("Chunk ID: ") || output.starts_with("Wall time: ")) {
        return output;
    }
    output
        .split_once("\nOutput:\n")
        .map_or(output, |(_, printed)| printed)
}

/// The text parts of a message's `content` (a string or a list of `input_text` parts).
fn message_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// A tool output: a string, or a list of content items whose texts are joined.
fn output_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        Value::Array(_) => message_text(output).unwrap_or_default(),
        Value::Object(object) => object
            .get("content")
            .map(output_text)
            .unwrap_or_else(|| output.to_string()),
        other => other.to_string(),
    }
}

/// The shell tool this request offers and its arguments for `command`: `exec_command`
/// (`{"cmd"}`), `shell_command` (`{"command"}`) or the older `shell` (`{"command": [argv]}`),
/// in that order of preference.
fn shell_call(request: &Value, command: &str) -> (String, Value) {
    let offered: Vec<&str> = request
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|tool| tool.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if offered.contains(&"exec_command") {
        ("exec_command".to_owned(), json!({ "cmd": command }))
    } else if offered.contains(&"shell") {
        (
            "shell".to_owned(),
            json!({ "command": ["bash", "-lc", command] }),
        )
    } else {
        ("shell_command".to_owned(), json!({ "command": command }))
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A `function_call` item for `name`. Codex lists an MCP server's tools as a namespace
/// (`{"type":"namespace","name":"mcp__mosaic","tools":[{"name":"reply",…}]}`) and runs a call only
/// when it names the namespace apart (`"namespace":"mcp__mosaic","name":"reply"`); the script
/// writes the flat name `mcp__mosaic__reply`, split here against the offered namespaces.
fn function_call(request: &Value, name: &str, input: &Value, n: u64) -> Value {
    let mut call = json!({
        "type": "function_call", "id": format!("fc_scripted_{n}"),
        "call_id": format!("call_scripted_{n}"), "name": name,
        "arguments": input.to_string(), "status": "completed",
    });
    if let Some((namespace, tool)) = namespace_of(request, name) {
        call["namespace"] = json!(namespace);
        call["name"] = json!(tool);
    }
    call
}

/// The offered namespace and tool that the flat `name` (`NAMESPACE__TOOL`) stands for.
fn namespace_of(request: &Value, name: &str) -> Option<(String, String)> {
    let tools = request.get("tools")?.as_array()?;
    tools
        .iter()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("namespace"))
        .find_map(|namespace| {
            let prefix = namespace.get("name")?.as_str()?;
            let tool = name.strip_prefix(prefix)?.strip_prefix("__")?;
            let offered = namespace
                .get("tools")?
                .as_array()?
                .iter()
                .any(|inner| inner.get("name").and_then(Value::as_str) == Some(tool));
            offered.then(|| (prefix.to_owned(), tool.to_owned()))
        })
}

/// The SSE body answering `reply`: created, one output item (added, deltas, done), completed.
fn event_stream(request: &Value, reply: &Reply) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let response_id = format!("resp_scripted_{n}");
    let mut events = vec![json!({
        "type": "response.created",
        "response": { "id": response_id, "object": "response", "status": "in_progress" },
    })];
    match reply {
        Reply::Text(text) => {
            let item_id = format!("msg_scripted_{n}");
            events.push(json!({
                "type": "response.output_item.added",
                "output_index": 0,
                "item": { "type": "message", "id": item_id, "role": "assistant",
                          "status": "in_progress", "content": [] },
            }));
            events.push(json!({
                "type": "response.output_text.delta",
                "item_id": item_id, "output_index": 0, "content_index": 0, "delta": text,
            }));
            events.push(json!({
                "type": "response.output_item.done",
                "output_index": 0,
                "item": { "type": "message", "id": item_id, "role": "assistant",
                          "status": "completed",
                          "content": [{ "type": "output_text", "text": text, "annotations": [] }] },
            }));
        }
        Reply::ToolCall { name, input } => {
            let call = function_call(request, name, input, n);
            events.push(json!({
                "type": "response.output_item.added", "output_index": 0, "item": call,
            }));
            events.push(json!({
                "type": "response.output_item.done", "output_index": 0, "item": call,
            }));
        }
    }
    events.push(json!({
        "type": "response.completed",
        "response": {
            "id": response_id, "object": "response", "status": "completed",
            "usage": {
                "input_tokens": 10, "input_tokens_details": { "cached_tokens": 0 },
                "output_tokens": 5, "output_tokens_details": { "reasoning_tokens": 0 },
                "total_tokens": 15,
            },
        },
    }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Running;
    use crate::test_support::{typed_sse_events, types};

    /// The input items Codex 0.171 sends before the user's prompt (shortened).
    fn codex_input(prompt: &str) -> Vec<Value> {
        vec![
            json!({"type": "message", "role": "developer",
                   "content": [{"type": "input_text", "text": "You are a coding agent running in the Codex CLI"}]}),
            json!({"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "# AGENTS.md instructions for /w\n\n<INSTRUCTIONS>\n[[say trap]]\n</INSTRUCTIONS>"},
                {"type": "input_text", "text": "<environment_context>\n  <cwd>/w</cwd>\n</environment_context>"}]}),
            json!({"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": prompt}]}),
        ]
    }

    fn tools() -> Value {
        json!([
            {"type": "function", "name": "exec_command", "parameters": {}},
            {"type": "namespace", "name": "mcp__mosaic",
             "tools": [{"type": "function", "name": "reply", "parameters": {}}]},
        ])
    }

    /// Posts `body` to `/v1/responses` and returns the data of each event, checking that each
    /// `event:` line names the same type as its data.
    fn post(server: &Running, body: &Value) -> Vec<Value> {
        let mut response = ureq::post(format!("{}/v1/responses", server.base_url()))
            .header("content-type", "application/json")
            .send(body.to_string())
            .expect("post /v1/responses");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        let text = response.body_mut().read_to_string().expect("body");
        typed_sse_events(&text)
    }

    fn done_item(events: &[Value]) -> &Value {
        &events
            .iter()
            .find(|e| e["type"] == "response.output_item.done")
            .expect("an output_item.done")["item"]
    }

    #[test]
    fn a_prompt_is_answered_with_a_streamed_message_and_recorded() {
        let server = Running::start().unwrap();
        let body = json!({"model": "scripted", "stream": true,
                          "input": codex_input("hello\nworld"), "tools": tools()});
        let events = post(&server, &body);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.output_item.added",
                "response.output_text.delta",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[2]["delta"], "ok: hello");
        let item = done_item(&events);
        assert_eq!(item["type"], "message");
        assert_eq!(item["role"], "assistant");
        assert_eq!(item["content"][0]["text"], "ok: hello");
        let completed = &events[4]["response"];
        assert_eq!(completed["id"], events[0]["response"]["id"]);
        assert_eq!(completed["usage"]["total_tokens"], 15);
        let recorded = server.shared.requests();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].path, "/v1/responses");
        assert_eq!(recorded[0].body, body);
    }

    #[test]
    fn bash_calls_exec_command_and_its_output_ends_the_turn() {
        let server = Running::start().unwrap();
        let mut input = codex_input("[[bash echo hi]]");
        let events = post(&server, &json!({"input": input, "tools": tools()}));
        let call = done_item(&events).clone();
        assert_eq!(call["type"], "function_call");
        assert_eq!(call["name"], "exec_command");
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"cmd": "echo hi"}));
        assert_eq!(types(&events).last(), Some(&"response.completed"));

        input.push(call.clone());
        input.push(json!({"type": "function_call_output", "call_id": call["call_id"],
            "output": "Chunk ID: 9d3519\nWall time: 0.0000 seconds\nProcess exited with code 0\nOriginal token count: 1\nOutput:\nhi\n"}));
        let events = post(&server, &json!({"input": input, "tools": tools()}));
        assert_eq!(done_item(&events)["content"][0]["text"], "done: hi");
    }

    #[test]
    fn an_mcp_tool_is_called_by_its_namespace_and_name() {
        let server = Running::start().unwrap();
        let mut input = codex_input(r#"[[tool mcp__mosaic__reply {"text":"hi"}]]"#);
        let events = post(&server, &json!({"input": input, "tools": tools()}));
        let call = done_item(&events).clone();
        assert_eq!(call["namespace"], "mcp__mosaic");
        assert_eq!(call["name"], "reply");
        assert_eq!(call["arguments"], r#"{"text":"hi"}"#);

        input.push(call.clone());
        input.push(
            json!({"type": "function_call_output", "call_id": call["call_id"], "output": [
            {"type": "input_text", "text": "Wall time: 0.0045 seconds\nOutput:"},
            {"type": "input_text", "text": "sent"}]}),
        );
        let events = post(&server, &json!({"input": input, "tools": tools()}));
        assert_eq!(done_item(&events)["content"][0]["text"], "done: sent");
    }

    #[test]
    fn a_tool_the_request_does_not_offer_keeps_its_flat_name() {
        let server = Running::start().unwrap();
        let input = codex_input(r#"[[tool mcp__other__reply {}]]"#);
        let call = done_item(&post(&server, &json!({"input": input, "tools": tools()}))).clone();
        assert_eq!(call["name"], "mcp__other__reply");
        assert!(call.get("namespace").is_none());
    }

    #[test]
    fn the_title_request_gets_a_title_and_its_directives_are_ignored() {
        let server = Running::start().unwrap();
        let body = json!({
            "input": codex_input("Generate a concise, single-line task title\n\nUser prompt:\n[[bash rm -rf x]]"),
            "tools": [],
            "text": {"format": {"type": "json_schema", "name": "codex_output_schema", "strict": true,
                "schema": {"type": "object", "properties": {"title": {"type": "string"}},
                           "required": ["title"], "additionalProperties": false}}},
        });
        let events = post(&server, &body);
        assert_eq!(
            done_item(&events)["content"][0]["text"],
            r#"{"title":"scripted"}"#
        );
    }

    #[test]
    fn slow_waits_before_answering() {
        let server = Running::start().unwrap();
        let started = std::time::Instant::now();
        let events = post(
            &server,
            &json!({"input": codex_input("[[slow 300]] later")}),
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(300));
        assert_eq!(
            done_item(&events)["content"][0]["text"],
            "ok: [[slow 300]] later"
        );
    }

    #[test]
    fn the_newest_typed_text_skips_context_and_interruptions() {
        let mut input = codex_input("first");
        input.push(json!({"type": "message", "role": "user", "content": [{"type": "input_text",
            "text": "<turn_aborted>\nThe user interrupted the previous turn on purpose.\n</turn_aborted>"}]}));
        let conversation = Conversation::of(&json!({ "input": input }));
        assert_eq!(
            conversation,
            Conversation {
                user_text: "first".into(),
                tool_result: None
            }
        );
    }

    #[test]
    fn the_shell_tool_follows_what_the_request_offers() {
        let offered = |name: &str| json!({"tools": [{"type": "function", "name": name}]});
        assert_eq!(
            shell_call(&offered("exec_command"), "ls"),
            ("exec_command".to_owned(), json!({"cmd": "ls"}))
        );
        assert_eq!(
            shell_call(&offered("shell"), "ls"),
            (
                "shell".to_owned(),
                json!({"command": ["bash", "-lc", "ls"]})
            )
        );
        assert_eq!(
            shell_call(&offered("shell_command"), "ls"),
            ("shell_command".to_owned(), json!({"command": "ls"}))
        );
    }
}
