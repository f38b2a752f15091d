//! `fleet update`: harness updates that never cut a turn short. For each harness: wait until its
//! agents are idle (their hooks say so), stop them, install the new version, start them again
//! (resuming their conversations) and check that the new version runs; on any failure install
//! the previous version again and start them on it. Chat deliveries wait while an update runs
//! ([`in_progress`]); the orchestrator's harness goes last.

use crate::create_private_dir;
use crate::engine::Outcome;
use crate::error::FleetError;
use crate::harness::version_of;
use crate::paths::try_lock_exclusive;
use crate::status::{Activity, AgentState};
use crate::versions::{HarnessVersion, Source, version_number, versions};
use crate::{Fleet, Paths};
use mosaic_roster::{Harness, Role};
use serde::{Deserialize, Serialize};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an install command may take.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// How an update runs.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// The version to install (default: the newest).
    pub to: Option<String>,
    /// Update even when agents are still busy after `drain` (their turn is cut), or when the
    /// version is already installed (a reinstall).
    pub force: bool,
    /// Only say what would be done.
    pub dry_run: bool,
    /// How long to wait for the agents to finish their turns.
    pub drain: Duration,
    /// How long each agent may take to exit when asked.
    pub stop_timeout: Duration,
    /// How long each agent may take to be ready again.
    pub wait: Duration,
    /// The orchestrator asked for it (its own tools): its turn is this request, so the drain
    /// does not wait for it.
    pub by_orchestrator: bool,
}

/// One step of an update, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What happens, prefixed with the harness.
    pub text: String,
    /// What kind of step.
    pub kind: ProgressKind,
}

/// What kind of step a [`Progress`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKind {
    /// A step, kept in the report.
    Step,
    /// Chat should hear it: the update of a harness begins (its agents will restart) or ended.
    Announce,
    /// How a long wait stands (every second): a terminal shows it in place; elsewhere it can
    /// be left out.
    Waiting,
}

/// What happened to one harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HarnessUpdate {
    /// The harness.
    pub harness: String,
    /// The version installed before.
    pub from: Option<String>,
    /// The version asked for.
    pub to: Option<String>,
    /// Its running agents, stopped and started again (the orchestrator last).
    pub agents: Vec<String>,
    /// The end result.
    pub result: UpdateResult,
    /// Each step, in order.
    pub steps: Vec<String>,
}

/// The end result of updating one harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum UpdateResult {
    /// The version asked for is already installed.
    UpToDate,
    /// A dry run: this is what would be done.
    Planned,
    /// Installed, and its agents run the new version.
    Updated,
    /// Agents were still busy when the drain time ran out; nothing was changed.
    Busy {
        /// The agents still working.
        agents: Vec<String>,
    },
    /// The new version failed; the previous one is installed and running again.
    RolledBack {
        /// What failed.
        why: String,
    },
    /// It could not be updated (and, where a rollback was needed, that failed too).
    Failed {
        /// What failed.
        why: String,
    },
}

impl UpdateResult {
    /// Whether the command should fail because of this result.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            UpdateResult::Busy { .. }
                | UpdateResult::RolledBack { .. }
                | UpdateResult::Failed { .. }
        )
    }
}

fn lock_path(paths: &Paths) -> std::path::PathBuf {
    paths.state_dir.join("update.lock")
}

/// Whether an update runs now, in another process or thread (chat deliveries, sends and
/// starts wait for it to end).
pub fn in_progress(paths: &Paths) -> bool {
    !RUNNING_HERE.get() && crate::paths::locked_by_another(&lock_path(paths))
}

thread_local! {
    /// Set while this thread runs an update (its own starts are not held back by it; the
    /// daemon's other threads, delivering chat, are).
    static RUNNING_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The agents an update stopped and has not started again (`STATE/update-stopped`): if the
/// update dies in between, they are started by [`recover_interrupted`].
fn stopped_path(paths: &Paths) -> std::path::PathBuf {
    paths.state_dir.join("update-stopped")
}

fn mark_stopped(paths: &Paths, agents: &[String]) {
    let _ = crate::paths::write_atomic(&stopped_path(paths), &agents.join("\n"));
}

fn clear_stopped(paths: &Paths) {
    let _ = std::fs::remove_file(stopped_path(paths));
}

/// Starts again the agents of an update that ended without doing so (killed, or its machine
/// rebooted): an update never leaves the fleet stopped. Returns them. Nothing while an update
/// runs.
pub fn recover_interrupted(fleet: &Fleet, wait: Duration) -> Vec<String> {
    let path = stopped_path(&fleet.paths);
    if !path.exists() || in_progress(&fleet.paths) {
        return Vec::new();
    }
    let agents: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|a| fleet.roster.agent(a).is_some())
        .map(str::to_owned)
        .collect();
    clear_stopped(&fleet.paths);
    if agents.is_empty() {
        return agents;
    }
    tracing::warn!(agents = %agents.join(", "), "an update ended without starting its agents again; starting them");
    if let Err(e) = fleet.start(&agents, wait) {
        tracing::error!(error = %e, "cannot start the agents an interrupted update stopped");
    }
    agents
}

impl Fleet {
    /// Updates the harnesses named (every installed harness the roster uses when empty),
    /// reporting each step to `progress` as it happens.
    pub fn update(
        &self,
        names: &[String],
        options: &UpdateOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Vec<HarnessUpdate>, FleetError> {
        if let Some(to) = &options.to
            && !crate::versions::is_version(to)
        {
            return Err(FleetError::Refused(format!(
                "--to {}: a version is digits and dots (letters, `-` and `+` after the first digit), like 2.1.400",
                mosaic_roster::redact::shown(to)
            )));
        }
        crate::versions::check_names(names).map_err(FleetError::Refused)?;
        create_private_dir(&self.paths.state_dir)?;
        let path = lock_path(&self.paths);
        let _update = if options.dry_run {
            None
        } else {
            Some(
                // A moment's patience: a check ([`in_progress`]) holds it shared for an instant.
                try_lock_exclusive(&path, Duration::from_secs(1))
                    .map_err(|e| FleetError::io(&path, e))?
                    .ok_or_else(|| FleetError::Refused("an update is already running".into()))?,
            )
        };
        let _running = RunningHere::mark();
        let mut chosen = versions(Some(&self.roster), names);
        if names.is_empty() {
            chosen.retain(|v| !v.agents.is_empty() && v.source != Source::NotInstalled);
        }
        // The orchestrator's harness goes last: chat keeps its orchestrator while others update.
        let orchestrator = self.roster.orchestrator().map(|a| a.name.clone());
        chosen.sort_by_key(|v| orchestrator.as_ref().is_some_and(|o| v.agents.contains(o)));
        let mut out = Vec::new();
        for info in chosen {
            let harness = mosaic_roster::harness(&info.harness).expect("listed by versions");
            let mut update = HarnessUpdate {
                harness: info.harness.clone(),
                from: info.installed.clone(),
                to: options.to.clone().or_else(|| info.latest.clone()),
                agents: Vec::new(),
                result: UpdateResult::Planned,
                steps: Vec::new(),
            };
            let mut step = |update: &mut HarnessUpdate, text: String, kind: ProgressKind| {
                progress(&Progress {
                    text: format!("{}: {text}", update.harness),
                    kind,
                });
                if kind == ProgressKind::Step {
                    update.steps.push(text);
                }
            };
            update.result = self.update_one(&harness, &info, options, &mut update, &mut step)?;
            // What runs now, for `ps`.
            let installed = match update.result {
                UpdateResult::UpToDate | UpdateResult::Planned | UpdateResult::Busy { .. } => {
                    info.installed.clone()
                }
                _ => installed_version(&harness),
            };
            crate::versions::remember(
                &self.paths,
                &[HarnessVersion {
                    installed,
                    ..info.clone()
                }],
            );
            if !matches!(
                update.result,
                UpdateResult::UpToDate | UpdateResult::Planned
            ) {
                progress(&Progress {
                    text: crate::render::update_summary(&update),
                    kind: ProgressKind::Announce,
                });
            }
            out.push(update);
        }
        Ok(out)
    }

    fn update_one(
        &self,
        harness: &Harness,
        info: &HarnessVersion,
        options: &UpdateOptions,
        update: &mut HarnessUpdate,
        step: &mut dyn FnMut(&mut HarnessUpdate, String, ProgressKind),
    ) -> Result<UpdateResult, FleetError> {
        let Some(target) = update.to.clone() else {
            return Ok(UpdateResult::Failed {
                why: "the newest version is unknown (offline?); give --to VERSION".into(),
            });
        };
        if info.source == Source::NotInstalled {
            return Ok(UpdateResult::Failed {
                why: format!("{} is not installed (not on PATH)", harness.program()),
            });
        }
        let Some(install) = install_command(harness, &info.source, &target) else {
            return Ok(UpdateResult::Failed {
                why: "there is no way to install it: its manifest has no `update` command and it is not from npm".into(),
            });
        };
        // Without --to, only a newer version is an update (never a downgrade).
        let current = info.installed.as_deref();
        let wanted =
            options.to.is_some() || current.is_none_or(|c| crate::versions::newer(&target, c));
        if (current == Some(target.as_str()) || !wanted) && !options.force {
            return Ok(UpdateResult::UpToDate);
        }
        // What is installed must be known: it is what a failure rolls back to.
        if current.is_none() && !options.force {
            return Ok(UpdateResult::Failed {
                why: format!(
                    "the installed version is unknown (`{}` did not say it in time), so a failure could not be rolled back; nothing was changed (--force updates anyway)",
                    harness.program()
                ),
            });
        }
        // Its running agents, the orchestrator last.
        let status = self.ps()?;
        let mut running: Vec<&crate::AgentStatus> = status
            .agents
            .iter()
            .filter(|a| a.runtime == harness.name && a.state == AgentState::Running)
            .collect();
        running.sort_by_key(|a| a.role == Role::Orchestrator.as_str());
        update.agents = running.iter().map(|a| a.name.clone()).collect();
        let from = info.installed.clone().unwrap_or_else(|| "unknown".into());
        step(
            update,
            format!(
                "{from} → {target}: {}; then `{}`",
                if update.agents.is_empty() {
                    "no agent runs it".to_owned()
                } else {
                    format!("drain and restart {}", update.agents.join(", "))
                },
                install.join(" ")
            ),
            ProgressKind::Step,
        );
        if options.dry_run {
            return Ok(UpdateResult::Planned);
        }
        step(
            update,
            format!(
                "updating {from} → {target}{}; chat messages wait until it is done",
                if update.agents.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {} finish their turns, then restart on their conversations",
                        update.agents.join(", ")
                    )
                }
            ),
            ProgressKind::Announce,
        );
        // Drain: every agent finishes its turn.
        if !update.agents.is_empty() {
            step(
                update,
                "waiting for its agents to finish their turns".into(),
                ProgressKind::Step,
            );
            let orchestrator = self.roster.orchestrator().map(|a| a.name.clone());
            let agents: Vec<String> = update
                .agents
                .iter()
                .filter(|a| !(options.by_orchestrator && orchestrator.as_ref() == Some(a)))
                .cloned()
                .collect();
            let busy = self.drain(&agents, options.drain, &mut |waiting| {
                step(update, waiting, ProgressKind::Waiting)
            })?;
            if !busy.is_empty() {
                if !options.force {
                    step(
                        update,
                        format!(
                            "still busy after {} s: {}",
                            options.drain.as_secs(),
                            busy.join(", ")
                        ),
                        ProgressKind::Step,
                    );
                    return Ok(UpdateResult::Busy { agents: busy });
                }
                step(
                    update,
                    format!("--force: cutting the turns of {}", busy.join(", ")),
                    ProgressKind::Step,
                );
            }
            mark_stopped(&self.paths, &update.agents);
            self.stop(&update.agents, options.stop_timeout)?;
            step(
                update,
                format!("stopped {}", update.agents.join(", ")),
                ProgressKind::Step,
            );
        }
        let log = self.paths.state_dir.join("update-install.log");
        let failure = match run_install(&install, &log, &mut |waiting| {
            step(update, waiting, ProgressKind::Waiting)
        }) {
            Err(why) => Some(format!("`{}` failed: {why}", install.join(" "))),
            Ok(()) => {
                step(
                    update,
                    format!("installed with `{}`", install.join(" ")),
                    ProgressKind::Step,
                );
                self.relaunch_on(harness, &target, &update.agents, options)
            }
        };
        let Some(why) = failure else {
            step(
                update,
                format!(
                    "{} {} {target}",
                    describe(&update.agents),
                    runs(&update.agents)
                ),
                ProgressKind::Step,
            );
            clear_stopped(&self.paths);
            return Ok(UpdateResult::Updated);
        };
        step(update, why.clone(), ProgressKind::Step);
        // Back to what was installed: an install that failed may have changed nothing (npm
        // offline), then the agents only start again.
        let previous = info.installed.clone().unwrap_or_default();
        let now = installed_version(harness);
        let rolled = if now.as_deref() == Some(previous.as_str()) {
            self.relaunch_on(harness, &previous, &update.agents, options)
        } else if previous.is_empty() {
            Some("the previous version is unknown, so it cannot be reinstalled".to_owned())
        } else {
            let _ = self.stop(&update.agents, options.stop_timeout);
            let back =
                install_command(harness, &info.source, &previous).expect("installable above");
            let log = self.paths.state_dir.join("update-install.log");
            match run_install(&back, &log, &mut |waiting| {
                step(update, waiting, ProgressKind::Waiting)
            }) {
                Err(e) => Some(format!("reinstalling {previous} failed too: {e}")),
                Ok(()) => self.relaunch_on(harness, &previous, &update.agents, options),
            }
        };
        let Some(e) = rolled else {
            step(
                update,
                format!(
                    "rolled back: {} {} {previous} again",
                    describe(&update.agents),
                    runs(&update.agents)
                ),
                ProgressKind::Step,
            );
            clear_stopped(&self.paths);
            return Ok(UpdateResult::RolledBack { why });
        };
        step(update, e.clone(), ProgressKind::Step);
        // Whatever is installed now, the agents that ran before are started again on it: an
        // update never leaves the fleet stopped.
        if !update.agents.is_empty() {
            let started = self.start(&update.agents, options.wait);
            step(
                update,
                match started {
                    Ok(_) => format!(
                        "started {} again on what is installed ({})",
                        update.agents.join(", "),
                        installed_version(harness)
                            .as_deref()
                            .unwrap_or("version unknown")
                    ),
                    Err(e) => format!("starting {} failed: {e}", update.agents.join(", ")),
                },
                ProgressKind::Step,
            );
        }
        clear_stopped(&self.paths);
        Ok(UpdateResult::Failed {
            why: format!("{why}; {e}"),
        })
    }

    /// Checks that `harness` reports `version` and starts `agents` on it: `None`, or what failed.
    fn relaunch_on(
        &self,
        harness: &Harness,
        version: &str,
        agents: &[String],
        options: &UpdateOptions,
    ) -> Option<String> {
        let found = installed_version(harness);
        if found.as_deref() != Some(version) {
            return Some(format!(
                "{} reports version {} after the install, not {version}",
                harness.program(),
                found.as_deref().unwrap_or("unknown")
            ));
        }
        if agents.is_empty() {
            return None;
        }
        match self.start(agents, options.wait) {
            Err(e) => Some(format!("starting {} failed: {e}", agents.join(", "))),
            Ok(outcomes) => {
                let bad: Vec<String> = outcomes
                    .iter()
                    .filter(|(_, o)| !matches!(o, Outcome::Started | Outcome::AlreadyRunning))
                    .map(|(name, o)| format!("{name} {}", start_failure(o)))
                    .collect();
                (!bad.is_empty()).then(|| format!("on {version}: {}", bad.join("; ")))
            }
        }
    }

    /// Waits up to `patience` for `agents` to be idle, saying every second who it waits for;
    /// the ones still working.
    fn drain(
        &self,
        agents: &[String],
        patience: Duration,
        waiting: &mut dyn FnMut(String),
    ) -> Result<Vec<String>, FleetError> {
        let started = Instant::now();
        let deadline = started + patience;
        let mut said = started;
        loop {
            let status = self.ps()?;
            let busy: Vec<String> = status
                .agents
                .iter()
                .filter(|a| agents.contains(&a.name) && a.state == AgentState::Running)
                // No report at all (no daemon receives its hooks): nothing says it works.
                .filter(|a| a.activity.is_some_and(|act| act != Activity::Idle))
                .map(|a| a.name.clone())
                .collect();
            if busy.is_empty() || Instant::now() >= deadline {
                return Ok(busy);
            }
            if said.elapsed() >= Duration::from_secs(1) {
                said = Instant::now();
                waiting(format!(
                    "waiting for {} to finish ({} s of {} s)",
                    busy.join(", "),
                    started.elapsed().as_secs(),
                    patience.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Marks this thread as running an update ([`RUNNING_HERE`]) until dropped.
struct RunningHere;

impl RunningHere {
    fn mark() -> RunningHere {
        RUNNING_HERE.set(true);
        RunningHere
    }
}

impl Drop for RunningHere {
    fn drop(&mut self) {
        RUNNING_HERE.set(false);
    }
}

/// The version the harness's program reports now.
fn installed_version(harness: &Harness) -> Option<String> {
    crate::harness::program_path(harness)
        .as_deref()
        .and_then(|p| version_of(harness, p))
        .and_then(|printed| version_number(&printed))
}

/// The verb for `agents`: "runs" for it or one agent, "run" for several.
fn runs(agents: &[String]) -> &'static str {
    if agents.len() > 1 { "run" } else { "runs" }
}

/// What went wrong with a start, in words.
fn start_failure(outcome: &Outcome) -> String {
    match outcome {
        Outcome::ExitedAtStart { status, last_lines } => format!(
            "exited at start (status {}): {}",
            status.map_or("unknown".into(), |s| s.to_string()),
            last_lines
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("Pane is dead"))
                .unwrap_or_default()
        ),
        Outcome::Slow => "did not draw its screen in time".into(),
        other => format!("{other:?}"),
    }
}

fn describe(agents: &[String]) -> String {
    if agents.is_empty() {
        "it".into()
    } else {
        agents.join(", ")
    }
}

/// The command that installs `version` of `harness`: its manifest's `update` (with
/// `{version}`), else npm, globally or in the local prefix it came from.
pub fn install_command(harness: &Harness, source: &Source, version: &str) -> Option<Vec<String>> {
    if let Some(update) = &harness.update {
        return Some(
            update
                .iter()
                .map(|a| a.replace("{version}", version))
                .collect(),
        );
    }
    let package = harness.package.npm.as_ref()?;
    let spec = format!("{package}@{version}");
    match source {
        Source::NpmGlobal { .. } => Some(vec![
            "npm".into(),
            "install".into(),
            "--global".into(),
            spec,
        ]),
        Source::NpmLocal { prefix } => Some(vec![
            "npm".into(),
            "install".into(),
            "--prefix".into(),
            prefix.clone(),
            spec,
        ]),
        Source::Other | Source::NotInstalled => None,
    }
}

/// Runs an install command to its end (at most [`INSTALL_TIMEOUT`]), its output into `log`
/// (read as it comes: a chatty installer never blocks on a full pipe), saying every second how
/// long it has run; `Err` with its last lines.
fn run_install(
    command: &[String],
    log: &std::path::Path,
    waiting: &mut dyn FnMut(String),
) -> Result<(), String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    // It dies with the update (a killed update must not leave it installing behind its back):
    // util-linux's `setpriv --pdeathsig`, where the system has it.
    let mut install = match crate::paths::which("setpriv") {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).args(command);
            c
        }
        None => {
            let mut c = Command::new(&command[0]);
            c.args(&command[1..]);
            c
        }
    };
    install.stdin(Stdio::null()).stdout(file).stderr(err);
    let mut child = install.spawn().map_err(|e| format!("cannot run it: {e}"))?;
    let started = Instant::now();
    let deadline = started + INSTALL_TIMEOUT;
    let mut said = started;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                if said.elapsed() >= Duration::from_secs(1) {
                    said = Instant::now();
                    waiting(format!("installing ({} s)", started.elapsed().as_secs()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no end after {} s (its output: {})",
                    INSTALL_TIMEOUT.as_secs(),
                    log.display()
                ));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = last[last.len().saturating_sub(3)..].join(" / ");
    Err(format!("{status} ({tail}; all of it: {})", log.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_installs_go_where_the_installed_one_is() {
        let claude = mosaic_roster::harness("claude").unwrap();
        assert_eq!(
            install_command(
                &claude,
                &Source::NpmLocal {
                    prefix: "/opt/h".into()
                },
                "2.1.400"
            ),
            Some(vec![
                "npm".into(),
                "install".into(),
                "--prefix".into(),
                "/opt/h".into(),
                "@anthropic-ai/claude-code@2.1.400".into()
            ])
        );
        assert_eq!(
            install_command(
                &claude,
                &Source::NpmGlobal {
                    prefix: "/usr".into()
                },
                "1.0.0"
            )
            .unwrap()[2],
            "--global"
        );
        assert_eq!(install_command(&claude, &Source::Other, "1.0.0"), None);
    }
}
