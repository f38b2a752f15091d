//! One renderer per surface: the terminal (`mosaic fleet …`), chat, and JSON.

use crate::{Outcome, PresetOrigin};
use mosaic_connector::Markdown;
use mosaic_fleet::render;
use mosaic_grammar::FleetCommand;
use std::fmt::Write;

/// What the terminal shows for an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// Standard output.
    pub stdout: String,
    /// Standard error (warnings).
    pub stderr: String,
    /// Whether the command succeeded (the CLI exits 1 otherwise).
    pub success: bool,
}

/// Whether the command asked for its machine-readable form (`ps --json`, `verify --json`).
pub fn wants_json(command: &FleetCommand) -> bool {
    match command {
        FleetCommand::Ps(a) => a.json,
        FleetCommand::Verify(a) => a.json,
        FleetCommand::Versions(a) => a.json,
        _ => false,
    }
}

/// The machine-readable form `--json` prints: the `ps` document, the `verify` findings, else the
/// outcome.
fn payload(outcome: &Outcome) -> String {
    let json = match outcome {
        Outcome::Ps { status } => serde_json::to_string_pretty(status),
        Outcome::Verify { checks } => serde_json::to_string_pretty(checks),
        other => serde_json::to_string_pretty(other),
    };
    json.expect("outcomes serialize")
}

/// The outcome as a JSON document (schema `mosaic.outcome/v1`).
pub fn json(outcome: &Outcome) -> String {
    serde_json::to_string_pretty(outcome).expect("outcomes serialize")
}

/// What `mosaic fleet …` prints; `json` for the `--json` form.
pub fn terminal(outcome: &Outcome, json: bool) -> Terminal {
    let mut stderr = String::new();
    let stdout = if json {
        payload(outcome) + "\n"
    } else {
        match outcome {
            Outcome::Presets { skipped, .. } => {
                for e in skipped {
                    let _ = writeln!(stderr, "warning: skipping an invalid user preset:\n{e}");
                }
                body(outcome)
            }
            Outcome::Sent {
                agent,
                pasted_chars,
                enter_presses,
            } => {
                let retries = if *enter_presses > 1 {
                    format!(" (Enter pressed {enter_presses} times)")
                } else {
                    String::new()
                };
                format!("sent {pasted_chars} chars to {agent}, submitted{retries}\n")
            }
            Outcome::Added {
                agent,
                roster,
                started,
            } => {
                let mut out = format!("added {agent} to {roster}\n");
                if let Some(agents) = started {
                    out.push_str(&lifecycle(agents));
                }
                out
            }
            Outcome::Removed {
                agent,
                roster,
                stopped,
            } => format!(
                "{}removed {agent} from {roster}\n",
                lifecycle(std::slice::from_ref(stopped))
            ),
            Outcome::Stopped {
                agents,
                fallback: Some(why),
            } => {
                let _ = writeln!(stderr, "warning: {why}");
                lifecycle(agents)
            }
            Outcome::Logs { text, .. } => format!("{}\n", text.trim_end_matches('\n')),
            Outcome::Help { text } => format!("{}\n", text.trim_end()),
            other => body(other),
        }
    };
    Terminal {
        stdout,
        stderr,
        success: !outcome.is_failure(),
    }
}

/// The text of an outcome that is the same everywhere (fenced in chat).
fn body(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Status { report } => render::status(report),
        Outcome::Ps { status } => render::ps_table(status),
        Outcome::Verify { checks } => render::checks(checks),
        Outcome::Presets {
            presets, user_dir, ..
        } => {
            let mut out = String::new();
            for p in presets {
                let origin = match &p.source {
                    PresetOrigin::Shipped => "shipped".to_owned(),
                    PresetOrigin::User { path } => format!("yours ({path})"),
                };
                let agents: Vec<String> = p
                    .agents
                    .iter()
                    .map(|a| format!("{}:{}", a.name, a.runtime))
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<10} {}\n           agents: {}\n           source: {origin}",
                    p.name,
                    p.description,
                    agents.join(", ")
                );
            }
            let _ = writeln!(
                out,
                "Make your own: mosaic fleet presets show coding > {user_dir}/mine.yaml, then edit it."
            );
            out
        }
        Outcome::Preset { text, .. } => text.clone(),
        Outcome::Started { agents }
        | Outcome::Stopped { agents, .. }
        | Outcome::Restarted { agents } => lifecycle(agents),
        Outcome::Init { report } => report.clone(),
        Outcome::Versions { harnesses } => render::versions(harnesses),
        Outcome::Updated { harnesses } => render::updates(harnesses),
        Outcome::Logs { text, .. } => text.clone(),
        Outcome::Help { text } => text.clone(),
        Outcome::Comms { mode, changed } => comms(mode, *changed),
        Outcome::Sent { .. } | Outcome::Added { .. } | Outcome::Removed { .. } => {
            terminal(outcome, false).stdout
        }
    }
}

/// What `comms` says: the mode, and what it means for the fleet's messages.
fn comms(mode: &str, changed: bool) -> String {
    let means = match mode {
        "matrix" => {
            "messages to agents are typed into their panes and posted in each agent's own Matrix room, with the workers' notices and answers"
        }
        _ => "messages to agents are typed into their panes",
    };
    let verb = if changed { "switched to" } else { "is" };
    format!("comms {verb} {mode}: {means}\n")
}

fn lifecycle(agents: &[crate::AgentOutcome]) -> String {
    let pairs: Vec<(String, mosaic_fleet::Outcome)> = agents
        .iter()
        .map(|a| (a.agent.clone(), a.result.clone()))
        .collect();
    render::outcomes(&pairs)
}

/// How many lines of an agent's pane a chat answer shows.
const CHAT_LOG_LINES: usize = 30;

/// A code block in `markdown`. Every dialect gets a CommonMark fence for now; rendering per
/// dialect belongs to `mosaic-connector`.
fn code_block(_markdown: Markdown, lang: &str, text: &str) -> String {
    format!("```{lang}\n{}\n```", text.trim_end())
}

/// The answer posted in chat, for a platform speaking `markdown`; `json` for the `--json` form.
/// Tables and logs go in code blocks.
pub fn chat(outcome: &Outcome, markdown: Markdown, json: bool) -> String {
    let block = |lang: &str, text: &str| code_block(markdown, lang, text);
    if json {
        return block("json", &payload(outcome));
    }
    match outcome {
        Outcome::Preset { text, .. } => block("yaml", text),
        Outcome::Sent { .. } | Outcome::Comms { .. } => {
            terminal(outcome, false).stdout.trim_end().to_owned()
        }
        Outcome::Added { agent, started, .. } => {
            let mut reply = format!("added {agent} to the roster");
            if let Some(agents) = started {
                reply.push('\n');
                reply.push_str(&block("", &lifecycle(agents)));
            }
            reply
        }
        Outcome::Removed { agent, stopped, .. } => format!(
            "{}removed {agent} from the roster",
            lifecycle(std::slice::from_ref(stopped))
        ),
        Outcome::Logs { text, .. } => {
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            block(
                "",
                &lines[lines.len().saturating_sub(CHAT_LOG_LINES)..].join("\n"),
            )
        }
        other => block("", &body(other)),
    }
}
