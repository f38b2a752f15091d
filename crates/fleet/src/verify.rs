//! `mosaic fleet verify`: is this host ready to run the fleet, and does it match the roster?

use crate::engine::Fleet;
use crate::harness::{detect_installed, program_path};
use crate::paths::{Paths, agent_workdir};
use crate::status::AgentState;
use mosaic_connector::registry::connector_type;
use mosaic_roster::{LOCAL_HOST, harness, load_harness_dir};
use mosaic_tmux::{MIN_VERSION, Tmux, parse_version};
use std::path::Path;

pub use mosaic_connector::registry::{Check, Level};

/// Runs every check; never stops at the first failure.
pub fn verify(paths: &Paths, mosaic_exe: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match Tmux::version() {
        Ok(v) => tmux_check(&v),
        Err(e) => Check::new(Level::Fail, "tmux", e.to_string(), Some(TMUX_FIX.into())),
    });
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
    for problem in load_harness_dir(&paths.harnesses_dir()) {
        out.push(Check::new(
            Level::Fail,
            "harness manifest",
            problem.to_string(),
            Some("fix or remove the file (docs/harnesses.md describes the format)".into()),
        ));
    }
    for installed in detect_installed() {
        let h = &installed.harness;
        out.push(Check::new(
            Level::Ok,
            format!("harness {}", h.name),
            format!(
                "{} {} at {}",
                h.description,
                installed.version.as_deref().unwrap_or("(version unknown)"),
                installed.path.display()
            ),
            None,
        ));
    }
    // The harnesses the fleet uses: are they current?
    let mut used: Vec<String> = fleet
        .roster
        .agents
        .iter()
        .filter(|a| harness(&a.runtime).is_some_and(|h| !h.is_builtin()))
        .map(|a| a.runtime.clone())
        .collect();
    used.sort();
    used.dedup();
    if !used.is_empty() {
        let asked = crate::versions::versions(Some(&fleet.roster), &used);
        crate::versions::remember(paths, &asked);
        for v in asked {
            let Some(installed) = &v.installed else {
                continue;
            };
            let subject = format!("harness {} version", v.harness);
            out.push(match &v.latest {
                Some(latest) if v.outdated() => Check::new(
                    Level::Warn,
                    subject,
                    format!("{installed}; {latest} is available"),
                    Some(format!(
                        "mosaic fleet update {}   (agents finish their turns first)",
                        v.harness
                    )),
                ),
                Some(_) => Check::new(Level::Ok, subject, format!("{installed}, the newest"), None),
                None => Check::new(
                    Level::Ok,
                    subject,
                    format!("{installed} (the newest version could not be asked: offline?)"),
                    None,
                ),
            });
        }
    }
    for agent in &fleet.roster.agents {
        // Roster validation already refused an unknown runtime.
        let Some(h) = harness(&agent.runtime) else {
            continue;
        };
        if h.is_builtin() {
            out.push(Check::new(
                Level::Ok,
                format!("agent {}", agent.name),
                "runs the built-in demo agent (not an AI)",
                None,
            ));
        } else {
            match program_path(&h) {
                Some(p) => out.push(Check::new(
                    Level::Ok,
                    format!("agent {}", agent.name),
                    format!("{} at {}", h.description, p.display()),
                    None,
                )),
                None => out.push(Check::new(
                    Level::Fail,
                    format!("agent {}", agent.name),
                    format!("`{}` ({}) is not on PATH", h.program(), h.description),
                    Some(format!(
                        "install {} or set another runtime for {} in roster.yaml",
                        h.description, agent.name
                    )),
                )),
            }
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
                    AgentState::Dead | AgentState::Exited => (
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

/// How to get a tmux mosaic runs on.
const TMUX_FIX: &str = "install tmux 3.5 or newer: `deploy/install-deps.sh` does it (on Debian 12: `apt-get install -t bookworm-backports tmux`)";

/// The tmux check: OK from [`MIN_VERSION`]; older fails with why and how to fix it.
fn tmux_check(v: &str) -> Check {
    let (min_major, min_minor) = MIN_VERSION;
    if tmux_crash_fixed(v) {
        return Check::new(Level::Ok, "tmux", v, None);
    }
    let why = if tmux_version_ok(v) {
        format!(
            "{v} is too old: it crashes (SIGSEGV, every agent lost) when a pane that turned on focus reporting (Claude Code, Codex) dies under a control client and its session is killed; fixed in tmux {min_major}.{min_minor}"
        )
    } else {
        format!("{v} is too old: mosaic needs tmux {min_major}.{min_minor} or newer")
    };
    Check::new(Level::Fail, "tmux", why, Some(TMUX_FIX.into()))
}

/// Whether `tmux -V` output is 3.2 or newer (`tmux 3.3a`, `tmux next-3.4`): a tmux whose
/// commands mosaic can drive at all (3.2 to 3.4 still crash, see [`tmux_crash_fixed`]).
fn tmux_version_ok(v: &str) -> bool {
    parse_version(v).is_some_and(|ver| ver >= (3, 2))
}

/// Whether `tmux -V` output is [`MIN_VERSION`] or newer: free of the focus-reporting crash.
fn tmux_crash_fixed(v: &str) -> bool {
    parse_version(v).is_some_and(|ver| ver >= MIN_VERSION)
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

    #[test]
    fn tmux_before_3_5_fails_with_the_reason_and_the_fix() {
        for old in ["tmux 3.3a", "tmux 3.4", "tmux 2.9"] {
            let c = tmux_check(old);
            assert_eq!(c.level, Level::Fail, "{old}");
            assert!(
                c.hint
                    .as_deref()
                    .unwrap()
                    .contains("deploy/install-deps.sh")
            );
            assert!(c.hint.as_deref().unwrap().contains("bookworm-backports"));
        }
        assert!(tmux_check("tmux 3.3a").detail.contains("focus reporting"));
        for new in ["tmux 3.5a", "tmux 3.6", "tmux next-3.7", "tmux 4.0"] {
            assert_eq!(tmux_check(new).level, Level::Ok, "{new}");
        }
        assert_eq!(tmux_check("tmux master").level, Level::Fail);
    }
}
