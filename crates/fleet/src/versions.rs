//! `fleet versions`: for each harness, the installed version, where it came from, the newest one
//! available and the agents that run it. Asking for the newest version never fails: offline (or
//! with no way to ask) it is unknown.

use crate::harness::{first_line, program_path, version_of};
use mosaic_roster::harness::Stream;
use mosaic_roster::{Harness, Roster, harnesses};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long the package registry may take to say the newest version.
pub const LATEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One harness's versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HarnessVersion {
    /// The harness (`runtime:` in the roster).
    pub harness: String,
    /// The installed version (the version number it printed), if it is installed and answered.
    pub installed: Option<String>,
    /// Where its program is.
    pub path: Option<String>,
    /// Where it came from.
    pub source: Source,
    /// The newest version available; `None` when it could not be asked (offline, no package).
    pub latest: Option<String>,
    /// The agents of the roster that run it.
    pub agents: Vec<String>,
}

impl HarnessVersion {
    /// Whether a newer version than the installed one is known (an older "newest", such as a
    /// pre-release installed by hand, is not).
    pub fn outdated(&self) -> bool {
        matches!((&self.installed, &self.latest), (Some(i), Some(l)) if newer(l, i))
    }
}

/// Where an installed harness came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// Its program is not on `PATH`.
    NotInstalled,
    /// npm, installed globally (`npm install --global`) under `prefix`.
    NpmGlobal {
        /// npm's global prefix.
        prefix: String,
    },
    /// npm, installed in the project directory `prefix` (its `node_modules`).
    NpmLocal {
        /// The directory holding `node_modules`.
        prefix: String,
    },
    /// Anything else (a package manager of the system, a copied binary).
    Other,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::NotInstalled => write!(f, "not installed"),
            Source::NpmGlobal { .. } => write!(f, "npm (global)"),
            Source::NpmLocal { prefix } => write!(f, "npm ({prefix})"),
            Source::Other => write!(f, "other"),
        }
    }
}

/// Refuses a name in `names` that is no harness with versions (the demo agent is built in).
pub fn check_names(names: &[String]) -> Result<(), String> {
    for name in names {
        if mosaic_roster::harness(name).is_none_or(|h| h.is_builtin()) {
            let known: Vec<String> = harnesses()
                .iter()
                .filter(|h| !h.is_builtin())
                .map(|h| h.name.clone())
                .collect();
            return Err(format!(
                "no harness named {} (harnesses: {})",
                mosaic_roster::redact::shown(name),
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// The installed version of each harness as last asked (`STATE/versions.json`), for `ps`.
pub fn known(paths: &crate::Paths) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(paths.state_dir.join("versions.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Keeps the installed versions just asked (see [`known`]).
pub fn remember(paths: &crate::Paths, asked: &[HarnessVersion]) {
    let mut all = known(paths);
    for v in asked {
        match &v.installed {
            Some(version) => all.insert(v.harness.clone(), version.clone()),
            None => all.remove(&v.harness),
        };
    }
    let text = serde_json::to_string(&all).expect("a map serializes");
    if crate::create_private_dir(&paths.state_dir).is_ok() {
        let _ = crate::paths::write_atomic(&paths.state_dir.join("versions.json"), &text);
    }
}

/// The versions of the harnesses named in `only` (all but the built-in demo agent when empty),
/// each asked in parallel.
pub fn versions(roster: Option<&Roster>, only: &[String]) -> Vec<HarnessVersion> {
    let chosen: Vec<_> = harnesses()
        .into_iter()
        .filter(|h| !h.is_builtin())
        .filter(|h| only.is_empty() || only.contains(&h.name))
        .collect();
    std::thread::scope(|scope| {
        let asked: Vec<_> = chosen
            .iter()
            .map(|h| scope.spawn(move || version_info(h, roster)))
            .collect();
        asked
            .into_iter()
            .map(|a| a.join().expect("a version probe does not panic"))
            .collect()
    })
}

fn version_info(harness: &Harness, roster: Option<&Roster>) -> HarnessVersion {
    let path = program_path(harness);
    let installed = path
        .as_deref()
        .and_then(|p| version_of(harness, p))
        .and_then(|printed| version_number(&printed));
    let source = match &path {
        None => Source::NotInstalled,
        Some(p) => source_of(p),
    };
    HarnessVersion {
        harness: harness.name.clone(),
        installed,
        path: path.map(|p| p.display().to_string()),
        source,
        latest: latest(harness),
        agents: roster
            .map(|r| {
                r.agents
                    .iter()
                    .filter(|a| a.runtime == harness.name)
                    .map(|a| a.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Whether version `a` is newer than `b`: dot-separated parts compared as numbers where both
/// are numbers (`2.10.0` > `2.9.1`), a release newer than its pre-releases (`1.0.0` >
/// `1.0.0-beta.2`).
pub fn newer(a: &str, b: &str) -> bool {
    version_order(a, b) == std::cmp::Ordering::Greater
}

fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let split = |v: &str| -> (Vec<String>, Option<String>) {
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((core, pre)) => (
                core.split('.').map(str::to_owned).collect(),
                Some(pre.to_owned()),
            ),
            None => (v.split('.').map(str::to_owned).collect(), None),
        }
    };
    let part = |x: &str, y: &str| match (x.parse::<u64>(), y.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => x.cmp(y),
    };
    let ((ca, pa), (cb, pb)) = (split(a), split(b));
    for i in 0..ca.len().max(cb.len()) {
        let o = part(
            ca.get(i).map_or("0", String::as_str),
            cb.get(i).map_or("0", String::as_str),
        );
        if o != Ordering::Equal {
            return o;
        }
    }
    match (pa, pb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split('.').collect(), y.split('.').collect());
            for i in 0..xs.len().max(ys.len()) {
                match (xs.get(i), ys.get(i)) {
                    (Some(p), Some(q)) => {
                        let o = part(p, q);
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    (Some(_), None) => return Ordering::Greater,
                    (None, Some(_)) => return Ordering::Less,
                    (None, None) => break,
                }
            }
            Ordering::Equal
        }
    }
}

/// Whether `version` can be given to an installer as a version: letters, digits, `.`, `-`,
/// `+`, starting with a digit, at most 64 characters (not a URL, a path or a git spec).
pub fn is_version(version: &str) -> bool {
    version.len() <= 64
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
}

/// The version number in what a harness printed: `2.1.332 (Claude Code)` → `2.1.332`,
/// `codex-cli 0.171.0` → `0.171.0`.
pub fn version_number(printed: &str) -> Option<String> {
    printed
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .map(|w| w.trim_start_matches('v'))
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(str::to_owned)
}

/// Where the program at `path` came from: npm (global or local) when it lives in a
/// `node_modules`, else other.
pub fn source_of(path: &Path) -> Source {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let text = real.display().to_string();
    let Some(at) = text.find("/node_modules/") else {
        return Source::Other;
    };
    let prefix = &text[..at];
    // npm's global packages are in PREFIX/lib/node_modules.
    if let Some(global) = prefix.strip_suffix("/lib")
        && npm_global_prefix().as_deref() == Some(global)
    {
        return Source::NpmGlobal {
            prefix: global.to_owned(),
        };
    }
    Source::NpmLocal {
        prefix: prefix.to_owned(),
    }
}

fn npm_global_prefix() -> Option<String> {
    first_line(
        Command::new("npm").args(["prefix", "--global"]),
        Stream::Stdout,
        LATEST_TIMEOUT,
    )
}

/// The newest version of `harness`: from npm for an npm package, else from its
/// `package.latest` command; `None` when neither answers in time.
fn latest(harness: &Harness) -> Option<String> {
    let printed = if let Some(package) = &harness.package.npm {
        first_line(
            Command::new("npm").args(["view", package, "version"]),
            Stream::Stdout,
            LATEST_TIMEOUT,
        )
    } else {
        let command = harness.package.latest.as_ref()?;
        first_line(
            Command::new(&command[0]).args(&command[1..]),
            Stream::Stdout,
            LATEST_TIMEOUT,
        )
    };
    printed.and_then(|p| version_number(&p))
}

/// The file that remembers which new versions chat was told about.
fn announced_path(paths: &crate::Paths) -> std::path::PathBuf {
    paths.state_dir.join("update-announced.json")
}

/// What chat should be told now: one line per harness the roster uses whose newest version is
/// newer than the installed one and was not announced before (each new version once; the
/// announcement is remembered in the state directory).
pub fn announcements(paths: &crate::Paths, roster: &Roster) -> Vec<String> {
    let path = announced_path(paths);
    let mut told: std::collections::BTreeMap<String, String> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    let asked = versions(Some(roster), &[]);
    remember(paths, &asked);
    for v in asked {
        if v.agents.is_empty() || !v.outdated() {
            continue;
        }
        let latest = v.latest.clone().unwrap_or_default();
        if told.get(&v.harness) == Some(&latest) {
            continue;
        }
        out.push(format!(
            "{} {latest} is available (installed: {}; used by {}). An admin can update it with `/fleet update {}`: agents finish their turns first.",
            v.harness,
            v.installed.as_deref().unwrap_or("unknown"),
            v.agents.join(", "),
            v.harness
        ));
        told.insert(v.harness.clone(), latest);
    }
    if !out.is_empty() {
        let text = serde_json::to_string(&told).expect("a map serializes");
        if let Err(e) = crate::paths::write_atomic(&path, &text) {
            tracing::warn!(error = %e, "cannot remember the announced versions");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_are_read_from_what_harnesses_print() {
        assert_eq!(
            version_number("2.1.332 (Claude Code)").as_deref(),
            Some("2.1.332")
        );
        assert_eq!(
            version_number("codex-cli 0.171.0").as_deref(),
            Some("0.171.0")
        );
        assert_eq!(version_number("0.73.1").as_deref(), Some("0.73.1"));
        assert_eq!(
            version_number("v1.2.3-beta.1").as_deref(),
            Some("1.2.3-beta.1")
        );
        assert_eq!(version_number("no version here"), None);
    }

    #[test]
    fn versions_are_ordered_by_their_numbers_and_releases_beat_pre_releases() {
        assert!(newer("2.10.0", "2.9.1"));
        assert!(newer("1.0.0", "1.0.0-beta.2"));
        assert!(newer("1.0.0-beta.10", "1.0.0-beta.2"));
        assert!(!newer("1.5.0", "2.0.0"), "a downgrade is not an update");
        assert!(!newer("2.0.0", "2.0.0"));
        assert!(newer("2.1", "2.0.9"));
        assert!(is_version("2.1.400") && is_version("1.0.0-beta.1+b7"));
        for bad in [
            "",
            "latest",
            "../../etc",
            "https://x/y.tgz",
            "github:x/y",
            "1.0 extra",
        ] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn npm_sources_are_told_apart_by_where_the_program_lives() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("node_modules/.bin");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("tool");
        std::fs::write(&program, "").unwrap();
        let prefix = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            source_of(&program),
            Source::NpmLocal {
                prefix: prefix.display().to_string()
            }
        );
        let other = dir.path().join("tool");
        std::fs::write(&other, "").unwrap();
        assert_eq!(source_of(&other), Source::Other);
    }
}
