//! `mosaic fleet verify`: is this host ready to run the fleet, and does it match the roster?

use crate::engine::Fleet;
use crate::paths::{Paths, agent_workdir, which};
use crate::status::AgentState;
use mosaic_connector::registry::connector_type;
use mosaic_roster::{LOCAL_HOST, runtime};
use mosaic_tmux::Tmux;
use std::path::Path;

pub use mosaic_connector::registry::{Check, Level};

/// Runs every check; never stops at the first failure.
pub fn verify(paths: &Paths, mosaic_exe: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    match Tmux::version() {
        Ok(v) => {
            let ok = tmux_version_ok(&v);
            out.push(Check::new(
                if ok { Level::Ok } else { Level::Fail },
                "tmux",
                v,
                (!ok).then(|| "install tmux 3.2 or newer (e.g. `apt install tmux`)".into()),
            ));
        }
        Err(e) => out.push(Check::new(
            Level::Fail,
            "tmux",
            e.to_string(),
            Some("install tmux 3.2 or newer (e.g. `apt install tmux`)".into()),
        )),
    }
    let fleet = match Fleet::open(paths.clone(), mosaic_exe.to_owned()) {
        Ok(f) => {
            out.push(Check::new(
                Level::Ok,
                "roster",
                format!(
                    "{} is valid ({} agents)",
                    paths.roster().display(),
                    f.roster.agents.len()
                ),
                None,
            ));
            f
        }
        Err(e) => {
            out.push(Check::new(Level::Fail, "roster", e.to_string(), Some("fix the roster (each problem names its line and field), or run `mosaic fleet init`".into())));
            return out;
        }
    };
    for agent in &fleet.roster.agents {
        let rt = runtime(&agent.runtime).expect("validated");
        match rt.binary {
            None => out.push(Check::new(
                Level::Ok,
                format!("agent {}", agent.name),
                "runs the built-in demo agent (not an AI)",
                None,
            )),
            Some(bin) => match which(bin) {
                Some(p) => out.push(Check::new(
                    Level::Ok,
                    format!("agent {}", agent.name),
                    format!("{} at {}", rt.description, p.display()),
                    None,
                )),
                None => out.push(Check::new(
                    Level::Fail,
                    format!("agent {}", agent.name),
                    format!("`{bin}` ({}) is not on PATH", rt.description),
                    Some(format!(
                        "install {} or set another runtime for {} in roster.yaml",
                        rt.description, agent.name
                    )),
                )),
            },
        }
        let dir = agent_workdir(agent);
        if !dir.is_dir() {
            out.push(Check::new(
                Level::Fail,
                format!("agent {}", agent.name),
                format!("working directory {} does not exist", dir.display()),
                Some(format!("mkdir -p {}", dir.display())),
            ));
        }
        if agent.host != LOCAL_HOST {
            out.push(Check::new(
                Level::Fail,
                format!("agent {}", agent.name),
                format!("host {:?} is not supported by this version", agent.host),
                Some("set `host: local`".into()),
            ));
        }
    }
    for (i, entry) in fleet.roster.connectors.iter().enumerate() {
        // Roster validation already refused a type this build lacks.
        if let Some(connector_type) = connector_type(&entry.kind) {
            out.extend(connector_type.verify(i, entry));
        }
    }
    match fleet.ps() {
        Ok(status) => {
            for a in status.agents {
                let (level, hint) = match a.state {
                    AgentState::Running => (Level::Ok, None),
                    AgentState::Stopped => {
                        (Level::Warn, Some(format!("mosaic fleet start {}", a.name)))
                    }
                    AgentState::Dead => (
                        Level::Fail,
                        Some(format!(
                            "mosaic fleet restart {}   (see why: mosaic fleet logs {})",
                            a.name, a.name
                        )),
                    ),
                    AgentState::Orphan => (
                        Level::Fail,
                        Some(format!(
                            "not in the roster: `mosaic fleet stop` stops it, or add it with `mosaic fleet add {}`",
                            a.name
                        )),
                    ),
                };
                let detail = match a.exit_status {
                    Some(code) => format!("{} (exit status {code})", a.state.as_str()),
                    None => a.state.as_str().to_owned(),
                };
                out.push(Check::new(
                    level,
                    format!("session {}", a.name),
                    detail,
                    hint,
                ));
            }
        }
        Err(e) => out.push(Check::new(Level::Fail, "sessions", e.to_string(), None)),
    }
    out
}

/// Whether `tmux -V` output is 3.2 or newer (`tmux 3.3a`, `tmux next-3.4`).
fn tmux_version_ok(v: &str) -> bool {
    let num = v.rsplit([' ', '-']).next().unwrap_or("");
    let mut parts = num.split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts
        .next()
        .map(|p| p.trim_end_matches(|c: char| c.is_alphabetic()))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    (major, minor) >= (3, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmux_versions() {
        assert!(tmux_version_ok("tmux 3.3a"));
        assert!(tmux_version_ok("tmux 3.2"));
        assert!(tmux_version_ok("tmux next-3.6"));
        assert!(!tmux_version_ok("tmux 3.1c"));
        assert!(!tmux_version_ok("tmux 2.9"));
    }
}
