//! `mosaic fleet verify`: is this host ready to run the fleet, and does it match the roster?

use crate::engine::Fleet;
use crate::paths::{Paths, agent_workdir, expand_tilde, which};
use crate::status::AgentState;
use mosaic_roster::{Connector, LOCAL_HOST, SecretRef, discord_token_shape_ok, runtime};
use mosaic_tmux::Tmux;
use std::path::Path;

/// How serious a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Worth knowing; does not fail verify.
    Warn,
    /// Must be fixed; verify exits non-zero.
    Fail,
}

/// One finding.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Check {
    /// How serious.
    pub level: Level,
    /// What was checked.
    pub subject: String,
    /// What was found.
    pub detail: String,
    /// How to fix it.
    pub hint: Option<String>,
}

fn check(
    level: Level,
    subject: impl Into<String>,
    detail: impl Into<String>,
    hint: Option<String>,
) -> Check {
    Check {
        level,
        subject: subject.into(),
        detail: detail.into(),
        hint,
    }
}

/// Runs every check; never stops at the first failure.
pub fn verify(paths: &Paths, mosaic_exe: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    match Tmux::version() {
        Ok(v) => {
            let ok = tmux_version_ok(&v);
            out.push(check(
                if ok { Level::Ok } else { Level::Fail },
                "tmux",
                v,
                (!ok).then(|| "install tmux 3.2 or newer (e.g. `apt install tmux`)".into()),
            ));
        }
        Err(e) => out.push(check(
            Level::Fail,
            "tmux",
            e.to_string(),
            Some("install tmux 3.2 or newer (e.g. `apt install tmux`)".into()),
        )),
    }
    let fleet = match Fleet::open(paths.clone(), mosaic_exe.to_owned()) {
        Ok(f) => {
            out.push(check(
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
            out.push(check(Level::Fail, "roster", e.to_string(), Some("fix the roster (each problem names its line and field), or run `mosaic fleet init`".into())));
            return out;
        }
    };
    for agent in &fleet.roster.agents {
        let rt = runtime(&agent.runtime).expect("validated");
        match rt.binary {
            None => out.push(check(
                Level::Ok,
                format!("agent {}", agent.name),
                "runs the built-in demo agent (not an AI)",
                None,
            )),
            Some(bin) => match which(bin) {
                Some(p) => out.push(check(
                    Level::Ok,
                    format!("agent {}", agent.name),
                    format!("{} at {}", rt.description, p.display()),
                    None,
                )),
                None => out.push(check(
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
            out.push(check(
                Level::Fail,
                format!("agent {}", agent.name),
                format!("working directory {} does not exist", dir.display()),
                Some(format!("mkdir -p {}", dir.display())),
            ));
        }
        if agent.host != LOCAL_HOST {
            out.push(check(
                Level::Fail,
                format!("agent {}", agent.name),
                format!("host {:?} is not supported by this version", agent.host),
                Some("set `host: local`".into()),
            ));
        }
    }
    for (i, connector) in fleet.roster.connectors.iter().enumerate() {
        for (field, secret) in connector.secrets() {
            let subject = format!("connector {} ({}) {field}", i, connector.kind());
            match resolve_secret(secret) {
                Ok(value)
                    if matches!(connector, Connector::Discord { .. })
                        && !discord_token_shape_ok(&value) =>
                {
                    out.push(check(
                        Level::Fail,
                        subject,
                        format!("{} does not hold a Discord bot token (three dot-separated parts)", describe(secret)),
                        Some("copy the token from Developer Portal > your application > Bot > Reset Token".into()),
                    ))
                }
                Ok(_) => out.push(check(
                    Level::Ok,
                    subject,
                    format!("{} is set", describe(secret)),
                    None,
                )),
                Err(why) => out.push(check(
                    Level::Fail,
                    subject,
                    why,
                    Some(format!(
                        "export the variable or create the file; see docs/connectors/{}.md",
                        connector.kind()
                    )),
                )),
            }
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
                out.push(check(level, format!("session {}", a.name), detail, hint));
            }
        }
        Err(e) => out.push(check(Level::Fail, "sessions", e.to_string(), None)),
    }
    out
}

/// Reads a secret's value without ever printing it.
pub fn resolve_secret(secret: &SecretRef) -> Result<String, String> {
    if let Some(var) = &secret.env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
            Ok(_) => Err(format!("environment variable {var} is empty")),
            Err(_) => Err(format!("environment variable {var} is not set")),
        };
    }
    if let Some(file) = &secret.file {
        let path = expand_tilde(file);
        return match std::fs::read_to_string(&path) {
            Ok(v) if !v.trim().is_empty() => Ok(v.lines().next().unwrap_or("").trim().to_owned()),
            Ok(_) => Err(format!("file {} is empty", path.display())),
            Err(e) => Err(format!("file {}: {e}", path.display())),
        };
    }
    Err("no env or file given".into())
}

fn describe(secret: &SecretRef) -> String {
    match (&secret.env, &secret.file) {
        (Some(v), _) => format!("environment variable {v}"),
        (_, Some(f)) => format!("file {f}"),
        _ => "nothing".into(),
    }
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

    #[test]
    fn secrets_resolve_from_files_and_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            resolve_secret(&SecretRef::file(f.display().to_string())).unwrap(),
            "s3cret"
        );
        let err = resolve_secret(&SecretRef::env("MOSAIC_SURELY_UNSET_VAR")).unwrap_err();
        assert_eq!(
            err,
            "environment variable MOSAIC_SURELY_UNSET_VAR is not set"
        );
    }
}
