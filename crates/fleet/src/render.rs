//! Human-readable renderings shared by the CLI and chat.

use crate::verify::{Check, Level};
use crate::{AgentState, FleetStatus, Outcome, StatusReport};
use std::fmt::Write;

/// Start/stop outcomes, one line per agent.
pub fn outcomes(outcomes: &[(String, Outcome)]) -> String {
    let mut out = String::new();
    for (name, o) in outcomes {
        let line = match o {
            Outcome::Started => "started".to_owned(),
            Outcome::AlreadyRunning => "already running".to_owned(),
            Outcome::Slow => "started (still loading)".to_owned(),
            Outcome::Stopped => "stopped".to_owned(),
            Outcome::Killed => "killed".to_owned(),
            Outcome::NotRunning => "not running".to_owned(),
            Outcome::ExitedAtStart { status, last_lines } => {
                let status = status
                    .map(|s| format!(" with status {s}"))
                    .unwrap_or_default();
                let lines: String = last_lines.lines().map(|l| format!("\n  | {l}")).collect();
                format!("exited at start{status}{lines}")
            }
        };
        let _ = writeln!(out, "{name}: {line}");
    }
    out
}

fn age(since: Option<&str>) -> String {
    let Some(t) = since.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else {
        return "-".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// What a running agent is doing and how that is known: `busy (hook)`; `-` when unknown.
fn activity(a: &crate::AgentStatus) -> String {
    match (a.activity, a.activity_source) {
        (Some(activity), Some(source)) => format!("{} ({})", activity.as_str(), source.as_str()),
        (Some(activity), None) => activity.as_str().to_owned(),
        _ => "-".into(),
    }
}

/// `fleet ps` as a table.
pub fn ps_table(status: &FleetStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<12} {:<8} {:<8} {:<8} {:>8} {:>9}  ACTIVITY",
        "NAME", "ROLE", "RUNTIME", "STATE", "PID", "UPTIME", "IDLE"
    );
    for a in &status.agents {
        let state = match (a.state, a.exit_status, a.exit_signal) {
            (AgentState::Dead, Some(code), _) => format!("dead({code})"),
            (AgentState::Dead, None, Some(sig)) => format!("dead(sig{sig})"),
            (s, ..) => s.as_str().to_owned(),
        };
        let pid = a.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let up = if a.state == AgentState::Running {
            age(a.started_at.as_deref())
        } else {
            "-".into()
        };
        let idle = if a.state == AgentState::Running {
            age(a.last_activity.as_deref())
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "{:<16} {:<12} {:<8} {:<8} {:<8} {:>8} {:>9}  {}",
            a.name,
            a.role,
            a.runtime,
            state,
            pid,
            up,
            idle,
            activity(a)
        );
    }
    out
}

/// `fleet status`: one screen.
pub fn status(report: &StatusReport) -> String {
    let status = &report.fleet;
    let count = |s: AgentState| status.agents.iter().filter(|a| a.state == s).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fleet \"{}\" (tmux -L {}, comms {}): {} agents, {} running, {} dead, {} stopped{}",
        status.fleet,
        status.socket,
        report.comms,
        status.agents.len() - count(AgentState::Orphan),
        count(AgentState::Running),
        count(AgentState::Dead),
        count(AgentState::Stopped),
        match (count(AgentState::Exited), count(AgentState::Orphan)) {
            (0, 0) => String::new(),
            (e, 0) => format!(", {e} exited"),
            (0, o) => format!(", {o} not in the roster"),
            (e, o) => format!(", {e} exited, {o} not in the roster"),
        }
    );
    for a in &status.agents {
        let (mark, note) = match a.state {
            AgentState::Running => {
                let doing = match (a.activity, a.activity_detail.as_deref()) {
                    (Some(crate::Activity::WaitingForInput), Some(what)) => {
                        format!(", waiting for input: {what}")
                    }
                    (Some(activity), _) => format!(", {}", activity.as_str()),
                    (None, _) => String::new(),
                };
                ("●", format!("up {}{doing}", age(a.started_at.as_deref())))
            }
            AgentState::Dead | AgentState::Exited => {
                let why = match (a.exit_status, a.exit_signal) {
                    (Some(c), _) => format!("exited ({c})"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    _ => "exited".into(),
                };
                ("✗", format!("{why} - mosaic fleet restart {}", a.name))
            }
            AgentState::Stopped => ("○", format!("stopped - mosaic fleet start {}", a.name)),
            AgentState::Orphan => ("?", "not in the roster - mosaic fleet stop".into()),
        };
        let model = a
            .model
            .as_deref()
            .map(|m| format!(" {m}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {mark} {:<16} {:<12} {}{model:<10}  {note}",
            a.name, a.role, a.runtime
        );
    }
    if report.chat.is_empty() {
        let _ = writeln!(
            out,
            "chat: no connector (add one with `mosaic fleet init --connector …`)"
        );
    }
    for c in &report.chat {
        let noun = if c.rooms == 1 { "room" } else { "rooms" };
        let id = if c.id == c.connector {
            String::new()
        } else {
            format!(" as {}", c.id)
        };
        let _ = writeln!(out, "chat: {}{id} ({} {noun})", c.connector, c.rooms);
    }
    out
}

/// `fleet verify` findings.
pub fn checks(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let _ = writeln!(out, "{mark}  {}: {}", c.subject, c.detail);
        if let Some(h) = &c.hint {
            let _ = writeln!(out, "      fix: {h}");
        }
    }
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    let _ = writeln!(
        out,
        "{}",
        if fails == 0 {
            "verify: all good".to_owned()
        } else {
            format!("verify: {fails} problem(s) to fix")
        }
    );
    out
}

/// `fleet versions`: a table, a line per harness.
pub fn versions(harnesses: &[crate::versions::HarnessVersion]) -> String {
    let mut out = format!(
        "{:<8} {:<12} {:<12} {:<24} AGENTS\n",
        "HARNESS", "INSTALLED", "LATEST", "SOURCE"
    );
    for h in harnesses {
        let latest = match (&h.latest, h.outdated()) {
            (Some(l), true) => format!("{l} (new)"),
            (Some(l), false) => l.clone(),
            (None, _) => "unknown".into(),
        };
        let _ = writeln!(
            out,
            "{:<8} {:<12} {:<12} {:<24} {}",
            h.harness,
            h.installed.as_deref().unwrap_or("-"),
            latest,
            h.source.to_string(),
            if h.agents.is_empty() {
                "-".to_owned()
            } else {
                h.agents.join(", ")
            }
        );
    }
    if harnesses.iter().any(|h| h.outdated()) {
        out.push_str("Update with `mosaic fleet update` (agents finish their turns first).\n");
    }
    out
}

/// `fleet update`: each harness's result and its steps.
pub fn updates(harnesses: &[crate::update::HarnessUpdate]) -> String {
    let mut out = String::new();
    if harnesses.is_empty() {
        out.push_str("nothing to update: no installed harness is used by the roster\n");
    }
    for h in harnesses {
        let _ = writeln!(out, "{}", update_summary(h));
        for step in &h.steps {
            let _ = writeln!(out, "  - {step}");
        }
    }
    out
}

/// One line on how the update of a harness ended.
pub fn update_summary(h: &crate::update::HarnessUpdate) -> String {
    use crate::update::UpdateResult;
    let from = h.from.as_deref().unwrap_or("unknown");
    let to = h.to.as_deref().unwrap_or("unknown");
    let result = match &h.result {
        UpdateResult::UpToDate => format!("{from} is the newest; nothing to do"),
        UpdateResult::Planned => format!("would update {from} → {to} (dry run)"),
        UpdateResult::Updated => format!("updated {from} → {to}"),
        UpdateResult::Busy { agents } => format!(
            "not updated: {} still busy (wait, or --force to cut their turns)",
            agents.join(", ")
        ),
        UpdateResult::RolledBack { why } => format!("FAILED, rolled back to {from}: {why}"),
        UpdateResult::Failed { why } => format!("FAILED: {why}"),
    };
    format!("{}: {result}", h.harness)
}
