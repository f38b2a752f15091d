//! One executor, three surfaces: the same command through the CLI (`mosaic fleet …`), chat (the
//! bridge, from a fake platform) and the API (`POST /v1/commands`, typed) gives the same answer,
//! over a real fleet (real tmux, demo agents).

mod support;
use mosaic_connector::Markdown;
use mosaic_exec::{Outcome, render};
use std::time::Duration;
use support::bridge::*;
use support::*;

/// Posts `text` in the room as `user` and returns the bridge's answer.
fn ask(h: &BridgeHarness, user: &str, text: &str) -> String {
    let before = h.sent().len();
    h.post(user, text);
    wait_for(&format!("an answer to {text:?}"), || {
        h.sent().len() > before
    });
    h.sent()[before].clone()
}

/// Runs a typed command through the API: the HTTP status and the body.
fn api(h: &BridgeHarness, command: serde_json::Value) -> (u16, serde_json::Value) {
    post(h, serde_json::json!({ "command": command }))
}

/// `POST /v1/commands` with `body`: the HTTP status and the answer.
fn post(h: &BridgeHarness, body: serde_json::Value) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut r = agent
        .post(format!("{}/v1/commands", h.url))
        .header("Authorization", format!("Bearer {}", h.token))
        .send_json(body)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_json().unwrap())
}

fn outcome(body: &serde_json::Value) -> Outcome {
    serde_json::from_value(body["outcome"].clone()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn pid(h: &BridgeHarness, agent: &str) -> u64 {
    h.s.pid(agent).expect("the agent runs")
}

#[test]
fn the_cli_chat_and_the_api_give_the_same_answer() {
    let h = BridgeHarness::new("bridge:\n  orchestrator_role: operator\n");

    // restart: each surface really restarts the agent (a new pid) and says so the same way.
    let before = pid(&h, "helper");
    let cli = h.s.ok(&["fleet", "restart", "helper"]);
    assert_eq!(cli, "helper: stopped\nhelper: started\n");
    let after_cli = pid(&h, "helper");
    assert_ne!(after_cli, before, "the CLI restarted it");

    let chat = ask(&h, "op-1", "/fleet restart helper");
    assert_eq!(chat, "```\nhelper: stopped\nhelper: started\n```");
    let after_chat = pid(&h, "helper");
    assert_ne!(after_chat, after_cli, "chat restarted it");

    let (status, body) = api(
        &h,
        serde_json::json!({ "verb": "restart", "name": "helper" }),
    );
    assert_eq!(status, 200, "{body}");
    let restarted = outcome(&body);
    assert!(matches!(restarted, Outcome::Restarted { .. }), "{body}");
    assert_ne!(pid(&h, "helper"), after_chat, "the API restarted it");
    assert_eq!(render::terminal(&restarted, false).stdout, cli);
    assert_eq!(render::chat(&restarted, Markdown::CommonMark, false), chat);
    assert_eq!(body["output"], chat.as_str());

    // send: typed into the agent once per surface, reported alike.
    let cli = h.s.ok(&["fleet", "send", "helper", "one"]);
    let chat = ask(&h, "op-1", "/fleet send helper two");
    let (status, body) = api(
        &h,
        serde_json::json!({ "verb": "send", "name": "helper", "text": ["six"] }),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("three messages", || {
        h.s.transcript("helper") == ["one", "two", "six"]
    });
    // (A busy machine may need a second Enter; the report says so, on any surface.)
    let sent = "sent 3 chars to helper, submitted";
    assert!(cli.starts_with(sent), "{cli}");
    assert!(chat.starts_with(sent), "{chat}");
    let api_sent = outcome(&body);
    assert!(
        matches!(
            api_sent,
            Outcome::Sent {
                pasted_chars: 3,
                ..
            }
        ),
        "{body}"
    );
    assert!(render::terminal(&api_sent, false).stdout.starts_with(sent));

    // ps --json: the same agents in the same states.
    let states = agent_rows;
    let cli: serde_json::Value = serde_json::from_str(&h.s.ok(&["fleet", "ps", "--json"])).unwrap();
    // Longer than a message of the fake platform: split into json blocks, joined back here.
    let before = h.sent().len();
    h.post("viewer-1", "/fleet ps --json");
    let joined = || -> Option<serde_json::Value> {
        let inner: Option<Vec<String>> = h.sent()[before..]
            .iter()
            .map(|part| {
                part.strip_prefix("```json\n")
                    .and_then(|p| p.strip_suffix("\n```"))
                    .map(str::to_owned)
            })
            .collect();
        serde_json::from_str(&inner?.join("\n")).ok()
    };
    wait_for("the whole ps document in chat", || joined().is_some());
    let chat = joined().unwrap();
    let (status, body) = api(&h, serde_json::json!({ "verb": "ps", "json": true }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"]["outcome"], "ps");
    assert_eq!(states(&cli), states(&chat));
    assert_eq!(states(&cli), states(&body["outcome"]["status"]));
    let ps_states = states(&cli);
    assert_eq!(ps_states.len(), 3);

    // An unknown agent: the same error everywhere, typed on the API.
    let cli = h.s.fails(&["fleet", "send", "nobody", "x"]);
    let chat = ask(&h, "op-1", "/fleet send nobody x");
    let (status, body) = api(
        &h,
        serde_json::json!({ "verb": "send", "name": "nobody", "text": ["x"] }),
    );
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("no agent named \"nobody\""), "{body}");
    assert_eq!(cli, format!("error: {error}\n"));
    assert_eq!(chat, format!("error: {error}"));
    assert_eq!((status, body["kind"].as_str()), (422, Some("not-found")));

    // Above the orchestrator's role (operator): refused, typed.
    let (status, body) = api(
        &h,
        serde_json::json!({ "verb": "add", "name": "sneaky", "runtime": "demo" }),
    );
    assert_eq!(
        (status, body["kind"].as_str()),
        (403, Some("refused")),
        "{body}"
    );
    assert_eq!(body["error"], "refused: `add` needs role admin");

    // The chat grammar as a line works too; a bad line is invalid, typed.
    let (status, body) = post(&h, serde_json::json!({ "line": "ps" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(ps_states, states(&body["outcome"]["status"]));
    let (status, body) = post(&h, serde_json::json!({ "line": "frobnicate" }));
    assert_eq!(
        (status, body["kind"].as_str()),
        (422, Some("invalid")),
        "{body}"
    );
    let (status, _) = post(
        &h,
        serde_json::json!({ "line": "ps", "command": { "verb": "ps" } }),
    );
    assert_eq!(status, 400, "one of the two, not both");
    // The orchestrator's commands are audited with their line.
    assert!(h.audit().iter().any(|r| r["platform"] == "orchestrator"
        && r["command"] == "/fleet restart helper"
        && r["outcome"] == "ok"));
}
