//! The fleet engine: lifecycle of the roster's agents over one private tmux server.

use crate::error::FleetError;
use crate::harness::{
    LaunchFiles, Session, harness_of, hook_command, launch_argv, orchestrator_mcp_config,
    send_options,
};
use crate::paths::{
    AGENT_TOKEN_ENV, AgentToken, Paths, agent_workdir, lock_exclusive, write_atomic,
};
use crate::status::{
    Activity, AgentState, AgentStatus, FleetStatus, Observed, PS_SCHEMA, Source, timestamp,
};
use mosaic_roster::{Agent, CommsMode, LOCAL_HOST, Role, Roster, RosterError};
use mosaic_tmux::{ControlClient, ErrorKind, PaneInfo, SendOptions, SendReport, SessionSpec, Tmux};
use serde_yaml_ng::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Size of each agent's window.
const WINDOW_SIZE: (u16, u16) = (200, 50);

/// A loaded roster bound to its tmux server.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Where config and state live.
    pub paths: Paths,
    /// The roster as loaded.
    pub roster: Roster,
    /// The fleet's tmux server.
    pub tmux: Tmux,
    mosaic_exe: PathBuf,
}

/// What happened to one agent during start or stop. In JSON, an object tagged by `result`
/// (`started`, `exited_at_start`, …).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "result", rename_all = "snake_case")]
#[schemars(rename = "Lifecycle")]
pub enum Outcome {
    /// Started and drew its first screen.
    Started,
    /// Was already running; left alone.
    AlreadyRunning,
    /// Started but exited at once; its last screen lines are attached.
    ExitedAtStart {
        /// Exit status, if known.
        status: Option<i32>,
        /// The last lines of its pane.
        last_lines: String,
    },
    /// Started, but did not draw anything before the wait ran out (it may still be loading).
    Slow,
    /// Exited after being asked to.
    Stopped,
    /// Did not exit in time (or is not in the roster, so could not be asked) and was killed.
    Killed,
    /// Was not running.
    NotRunning,
}

impl Fleet {
    /// Loads the roster from `paths`; `mosaic_exe` is the program that runs the demo agent.
    pub fn open(paths: Paths, mosaic_exe: PathBuf) -> Result<Fleet, FleetError> {
        let roster = load_roster(&paths)?;
        Ok(Fleet::new(paths, roster, mosaic_exe))
    }

    /// Binds an already loaded roster (the daemon's live one) to its tmux server.
    pub fn new(paths: Paths, roster: Roster, mosaic_exe: PathBuf) -> Fleet {
        let tmux = Tmux::new(roster.tmux.socket.clone());
        Fleet {
            paths,
            roster,
            tmux,
            mosaic_exe,
        }
    }

    /// Like [`Fleet::open`], but when `roster.yaml` is missing or invalid falls back to the last
    /// good roster saved in the state directory, so what runs can always be stopped. The error
    /// that forced the fallback is returned beside the fleet.
    pub fn open_or_last_good(
        paths: Paths,
        mosaic_exe: PathBuf,
    ) -> Result<(Fleet, Option<FleetError>), FleetError> {
        let why = match Fleet::open(paths.clone(), mosaic_exe.clone()) {
            Ok(fleet) => return Ok((fleet, None)),
            Err(e @ (FleetError::Roster(_) | FleetError::NoRoster { .. })) => e,
            Err(e) => return Err(e),
        };
        let copy = paths.last_good_roster();
        match Roster::load(&copy) {
            Ok(roster) => Ok((Fleet::new(paths, roster, mosaic_exe), Some(why))),
            Err(_) => Err(why),
        }
    }

    /// The agent called `name`, or an error listing the known names.
    pub fn agent(&self, name: &str) -> Result<&Agent, FleetError> {
        self.roster
            .agent(name)
            .ok_or_else(|| FleetError::UnknownAgent {
                name: name.to_owned(),
                known: self
                    .roster
                    .agents
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The sessions of this fleet, by session name, in one tmux call.
    fn panes(&self) -> Result<HashMap<String, PaneInfo>, FleetError> {
        Ok(self
            .tmux
            .list_panes()?
            .into_iter()
            .filter(|p| p.fleet == self.roster.fleet)
            .map(|p| (p.session.clone(), p))
            .collect())
    }

    /// The whole fleet's state, read with one tmux call (and each agent's `activity.json`).
    pub fn ps(&self) -> Result<FleetStatus, FleetError> {
        let mut panes = self.panes()?;
        let known_versions = crate::versions::known(&self.paths);
        let mut agents: Vec<AgentStatus> = self
            .roster
            .agents
            .iter()
            .map(|a| {
                let pane = panes.remove(&a.name);
                let mut status = status_of(
                    &a.name,
                    a.role.as_str(),
                    &a.runtime,
                    a.model.clone(),
                    &a.host,
                    pane.as_ref(),
                    false,
                );
                if let (Some(pane), AgentState::Running) = (&pane, status.state) {
                    self.observe(&mut status, pane);
                }
                status.harness_version = known_versions.get(&a.runtime).cloned();
                status
            })
            .collect();
        let mut orphans: Vec<_> = panes.into_values().collect();
        orphans.sort_by(|a, b| a.session.cmp(&b.session));
        agents.extend(orphans.iter().map(|p| {
            status_of(
                &p.session,
                "unknown",
                "unknown",
                None,
                LOCAL_HOST,
                Some(p),
                true,
            )
        }));
        Ok(FleetStatus {
            schema: PS_SCHEMA.into(),
            fleet: self.roster.fleet.clone(),
            socket: self.tmux.socket().to_owned(),
            generated_at: timestamp(chrono::Utc::now().timestamp()).unwrap_or_default(),
            agents,
        })
    }

    /// Adds what the running agent of `status` is doing, as last observed.
    fn observe(&self, status: &mut AgentStatus, pane: &PaneInfo) {
        let Some(seen) = Observed::read(&self.paths, &status.name) else {
            return;
        };
        let now = chrono::Utc::now().timestamp();
        // Launched, and nothing reported since: starting for a while; after that unknown (no
        // daemon runs to receive its hooks, or its hooks do not work).
        if seen.source == Source::Process && now - seen.at > STARTING_AT_MOST_SECS {
            return;
        }
        let stale_after = i64::try_from(self.roster.bridge.busy_timeout_secs).unwrap_or(i64::MAX);
        status.activity = Some(seen.shown(now, Some(pane.activity), stale_after));
        status.activity_source = Some(seen.source);
        status.activity_detail = seen.detail.or(seen.event);
    }

    /// The roster agents named (all when `names` is empty), rejecting unknown names.
    fn select(&self, names: &[String]) -> Result<Vec<&Agent>, FleetError> {
        if names.is_empty() {
            return Ok(self.roster.agents.iter().collect());
        }
        names.iter().map(|n| self.agent(n)).collect()
    }

    /// Starts the named agents (all when empty) that are not running, then waits up to `wait` for
    /// each to draw its first screen, so callers never race a half-started harness.
    pub fn start(
        &self,
        names: &[String],
        wait: Duration,
    ) -> Result<Vec<(String, Outcome)>, FleetError> {
        let agents = self.select(names)?;
        self.refuse_during_update("start")?;
        let _lifecycle = self.lifecycle_lock()?;
        let panes = self.panes()?;
        let mut outcomes = Vec::new();
        let mut started = Vec::new();
        let mut resumed = Vec::new();
        for agent in agents {
            if agent.host != LOCAL_HOST {
                return Err(FleetError::RemoteHost {
                    name: agent.name.clone(),
                    host: agent.host.clone(),
                });
            }
            let pane = panes.get(&agent.name);
            if pane.is_some_and(|p| !p.dead) {
                outcomes.push((agent.name.clone(), Outcome::AlreadyRunning));
                continue;
            }
            if self.resumes(agent) {
                resumed.push(agent.name.clone());
            }
            let spec = self.session_spec(agent)?;
            match pane {
                // A dead harness is started again in its own pane: no session is killed.
                Some(_) => self.tmux.respawn_pane(&spec)?,
                None => self.tmux.new_session(&spec)?,
            }
            started.push(agent.name.clone());
        }
        outcomes.extend(self.await_launched(started, &resumed, wait)?);
        Ok(outcomes)
    }

    /// Refuses `verb` while a harness update runs elsewhere: it stops and starts agents itself,
    /// and one started meanwhile would run the old version.
    fn refuse_during_update(&self, verb: &str) -> Result<(), FleetError> {
        if crate::update::in_progress(&self.paths) {
            return Err(FleetError::Refused(format!(
                "a harness update is running (it stops and starts agents itself); {verb} again when it ends"
            )));
        }
        Ok(())
    }

    /// Whether `agent`'s next launch resumes its last conversation.
    fn resumes(&self, agent: &Agent) -> bool {
        harness_of(agent).is_ok_and(|h| Session::to_resume(&self.paths, agent, &h).is_some())
    }

    /// Waits for the agents just launched to be ready; one that `resumed` its last
    /// conversation and exited at once (the conversation is gone, or cannot be resumed here) is
    /// launched again afresh. Its session is forgotten only if the fresh launch works: when it
    /// exits at once too, the harness is at fault (a broken version), not the conversation,
    /// which is kept for the next launch.
    fn await_launched(
        &self,
        started: Vec<String>,
        resumed: &[String],
        wait: Duration,
    ) -> Result<Vec<(String, Outcome)>, FleetError> {
        let mut outcomes = self.await_first_screen(started, wait)?;
        let mut again = Vec::new();
        for (name, outcome) in &outcomes {
            if matches!(outcome, Outcome::ExitedAtStart { .. }) && resumed.contains(name) {
                let agent = self.agent(name)?;
                tracing::warn!(agent = %name, "its last conversation could not be resumed; starting afresh");
                let kept = Session::set_aside(&self.paths, name);
                let spec = self.session_spec(agent)?;
                match self.tmux.respawn_pane(&spec) {
                    Err(e) if matches!(e.kind, ErrorKind::NoSession | ErrorKind::NoServer) => {
                        self.tmux.new_session(&spec)?
                    }
                    other => other?,
                }
                again.push((name.clone(), kept));
            }
        }
        if again.is_empty() {
            return Ok(outcomes);
        }
        outcomes.retain(|(name, _)| !again.iter().any(|(a, _)| a == name));
        let names = again.iter().map(|(a, _)| a.clone()).collect();
        let fresh = self.await_first_screen(names, wait)?;
        for (name, outcome) in &fresh {
            let kept = again
                .iter()
                .find(|(a, _)| a == name)
                .and_then(|(_, k)| k.as_deref());
            if matches!(outcome, Outcome::ExitedAtStart { .. })
                && let Some(session) = kept
            {
                Session::restore(&self.paths, name, session);
            }
        }
        outcomes.extend(fresh);
        Ok(outcomes)
    }

    fn session_spec(&self, agent: &Agent) -> Result<SessionSpec, FleetError> {
        let state = self.paths.agent_state(&agent.name);
        create_private_dir(&state)?;
        let _ = std::fs::remove_file(self.paths.stop_requested(&agent.name));
        let token = AgentToken::ensure(&self.paths, &agent.name)
            .map_err(|e| FleetError::io(&self.paths.agent_token(&agent.name), e))?;
        // An orchestrator whose harness takes an MCP config file gets mosaic's tools that way.
        let harness = harness_of(agent).map_err(FleetError::Refused)?;
        let mcp_config = (agent.role == Role::Orchestrator && harness.wants_mcp_config())
            .then(|| state.join("mcp.json"));
        if let Some(path) = &mcp_config {
            std::fs::write(path, orchestrator_mcp_config(&self.mosaic_exe))
                .map_err(|e| FleetError::io(path, e))?;
        }
        // The harness's hooks file (its hook settings, or an extension), written afresh.
        let hooks_file = match &harness.hooks_file {
            Some(file) => {
                let path = state.join(&file.name);
                let text = file.render(
                    &hook_command(&self.mosaic_exe, &agent.name),
                    &self.mosaic_exe.display().to_string(),
                    &agent.name,
                );
                write_atomic(&path, &text).map_err(|e| FleetError::io(&path, e))?;
                Some(path)
            }
            None => None,
        };
        // What the agent is doing is known again from its own hooks once it runs: until its
        // harness reports, one that has hooks is starting.
        Observed::clear(&self.paths, &agent.name);
        if !harness.hooks.is_empty() {
            let starting = Observed {
                activity: Activity::Starting,
                source: Source::Process,
                event: None,
                detail: None,
                at: chrono::Utc::now().timestamp(),
            };
            let _ = starting.write(&self.paths, &agent.name);
        }
        // Back to its last conversation, unless that could not be resumed ([`Fleet::launched`]).
        let session = Session::to_resume(&self.paths, agent, &harness);
        let files = LaunchFiles {
            mcp_config: mcp_config.as_deref(),
            hooks_file: hooks_file.as_deref(),
            session: session.as_deref(),
        };
        let argv = launch_argv(agent, &self.mosaic_exe, files).map_err(FleetError::Refused)?;
        let workdir = self.workdir_of(agent)?;
        let mut env: Vec<(String, String)> = vec![
            ("MOSAIC_AGENT".into(), agent.name.clone()),
            ("MOSAIC_FLEET".into(), self.roster.fleet.clone()),
            ("MOSAIC_ROLE".into(), agent.role.as_str().into()),
            (
                "MOSAIC_CONFIG".into(),
                self.paths.config_dir.display().to_string(),
            ),
            (
                "MOSAIC_STATE".into(),
                self.paths.state_dir.display().to_string(),
            ),
            ("MOSAIC_SOCKET".into(), self.tmux.socket().to_owned()),
            ("MOSAIC_AGENT_STATE".into(), state.display().to_string()),
            // mosaic's absolute path: the agent's PATH may not have it (see orchestrator_rules).
            ("MOSAIC_BIN".into(), self.mosaic_exe.display().to_string()),
            // Its own API token: the daemon grants it what the agent's role may do, no more.
            (AGENT_TOKEN_ENV.into(), token.presented()),
        ];
        env.extend(harness.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(agent.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(SessionSpec {
            name: agent.name.clone(),
            fleet: self.roster.fleet.clone(),
            workdir: Some(workdir),
            env,
            argv,
            size: WINDOW_SIZE,
        })
    }

    /// The agent's working directory, which must exist.
    fn workdir_of(&self, agent: &Agent) -> Result<PathBuf, FleetError> {
        let workdir = agent_workdir(agent);
        if !workdir.is_dir() {
            return Err(FleetError::Refused(format!(
                "agent {}: working directory {} does not exist; create it or change `workdir` in {}",
                agent.name,
                workdir.display(),
                self.paths.roster().display()
            )));
        }
        Ok(workdir)
    }

    fn await_first_screen(
        &self,
        mut waiting: Vec<String>,
        wait: Duration,
    ) -> Result<Vec<(String, Outcome)>, FleetError> {
        let deadline = deadline_after(wait);
        let mut outcomes = Vec::new();
        while !waiting.is_empty() {
            let panes = self.panes()?;
            waiting.retain(|name| match panes.get(name) {
                Some(p) if p.dead => {
                    let last_lines = self
                        .tmux
                        .capture(name, true)
                        .map(|t| last_lines(&t, 8))
                        .unwrap_or_default();
                    outcomes.push((
                        name.clone(),
                        Outcome::ExitedAtStart {
                            status: p.dead_status,
                            last_lines,
                        },
                    ));
                    false
                }
                Some(p) if p.cursor != (0, 0) && self.shows_ready(name) => {
                    outcomes.push((name.clone(), Outcome::Started));
                    false
                }
                None => {
                    outcomes.push((
                        name.clone(),
                        Outcome::ExitedAtStart {
                            status: None,
                            last_lines: String::new(),
                        },
                    ));
                    false
                }
                Some(_) => true,
            });
            if Instant::now() >= deadline {
                outcomes.extend(waiting.drain(..).map(|n| (n, Outcome::Slow)));
            } else if !waiting.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(outcomes)
    }

    /// Whether the agent's screen shows its harness's ready text (its manifest's `ready.screen`);
    /// a harness without one is ready once it has drawn anything.
    fn shows_ready(&self, name: &str) -> bool {
        let text = self
            .roster
            .agent(name)
            .and_then(|a| mosaic_roster::harness(&a.runtime))
            .and_then(|h| h.ready.screen.clone());
        match text {
            None => true,
            Some(text) => self
                .tmux
                .capture(name, false)
                .is_ok_and(|screen| screen.contains(&text)),
        }
    }

    /// Waits for, then holds, the fleet's lifecycle lock (an flock in the state directory, so
    /// across processes): a start and a stop of one fleet never interleave, and never leave two
    /// tmux servers behind one socket. Released when the returned file is dropped.
    fn lifecycle_lock(&self) -> Result<crate::paths::FileLock, FleetError> {
        create_private_dir(&self.paths.state_dir)?;
        let path = self.paths.state_dir.join("lifecycle.lock");
        crate::paths::lock_exclusive(&path).map_err(|e| FleetError::io(&path, e))
    }

    /// Stops the named agents (all sessions of the fleet when empty, orphans included): each
    /// harness is asked to exit, and whatever still runs after `timeout` is killed.
    pub fn stop(
        &self,
        names: &[String],
        timeout: Duration,
    ) -> Result<Vec<(String, Outcome)>, FleetError> {
        let _lifecycle = self.lifecycle_lock()?;
        let panes = self.panes()?;
        let targets: Vec<String> = if names.is_empty() {
            let mut all: Vec<String> = self.roster.agents.iter().map(|a| a.name.clone()).collect();
            let mut orphans: Vec<String> = panes
                .keys()
                .filter(|s| self.roster.agent(s).is_none())
                .cloned()
                .collect();
            orphans.sort();
            all.extend(orphans);
            all
        } else {
            // A session of this fleet whose agent left the roster (an orphan) is stopped by name too.
            names
                .iter()
                .map(|n| {
                    if panes.contains_key(n) {
                        Ok(n.clone())
                    } else {
                        self.agent(n).map(|a| a.name.clone())
                    }
                })
                .collect::<Result<_, _>>()?
        };
        for name in targets.iter().filter(|n| self.roster.agent(n).is_some()) {
            self.request_stop(name)?;
        }
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        for name in &targets {
            match panes.get(name) {
                None => {
                    outcomes.insert(name.clone(), Outcome::NotRunning);
                }
                Some(p) if p.dead => {
                    outcomes.insert(name.clone(), Outcome::Stopped);
                }
                Some(_) => match self.roster.agent(name) {
                    // Best effort: a harness that ignores its exit command is killed below.
                    Some(agent) => self.ask_to_exit(agent),
                    // Not in the roster: no known way to ask it to exit.
                    None => {
                        outcomes.insert(name.clone(), Outcome::Killed);
                    }
                },
            }
        }
        let deadline = deadline_after(timeout);
        loop {
            let panes = self.panes()?;
            let (alive, exited): (Vec<&String>, Vec<&String>) = targets
                .iter()
                .filter(|n| !outcomes.contains_key(*n))
                .partition(|n| panes.get(*n).is_some_and(|p| !p.dead));
            for name in exited {
                outcomes.insert(name.clone(), Outcome::Stopped);
            }
            if alive.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for name in alive {
                    outcomes.insert(name.clone(), Outcome::Killed);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for name in &targets {
            if outcomes[name] != Outcome::NotRunning {
                self.tmux.kill_session(name)?;
            }
        }
        if self.tmux.list_panes()?.is_empty() {
            self.tmux.kill_server()?;
        }
        Ok(targets
            .into_iter()
            .map(|n| {
                let o = outcomes.remove(&n).expect("every target has an outcome");
                (n, o)
            })
            .collect())
    }

    /// Marks `name` as stopped on purpose: the supervisor leaves it alone until it is started.
    fn request_stop(&self, name: &str) -> Result<(), FleetError> {
        create_private_dir(&self.paths.agent_state(name))?;
        let marker = self.paths.stop_requested(name);
        std::fs::write(&marker, b"").map_err(|e| FleetError::io(&marker, e))
    }

    /// Types the harness's exit command into `agent`'s pane, best effort (nothing is typed into
    /// a dead pane; a harness that ignores it is killed by the caller).
    fn ask_to_exit(&self, agent: &Agent) {
        let Ok(harness) = harness_of(agent) else {
            return;
        };
        let exit_text = harness.exit.text.as_str();
        let quick = SendOptions {
            paste_timeout: Duration::from_millis(500),
            submit_timeout: Duration::from_millis(300),
            submit_attempts: 1,
            ..send_options(&agent.runtime)
        };
        let writer = pane_writer(self.tmux.socket(), &agent.name);
        let _turn = writer.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(mut client) = ControlClient::attach(&self.tmux, &agent.name, false) else {
            return;
        };
        // Clear a draft first, or the exit text would be appended to it and sent to the model.
        for key in &harness.exit.clear {
            if client.press_key(key).is_err() {
                return;
            }
        }
        if !harness.exit.clear.is_empty() {
            std::thread::sleep(Duration::from_millis(harness.exit.clear_settle_ms));
        }
        // A program that quit on the clear key is not typed into (a dead pane refuses it).
        let _ = client.send_text(exit_text, &quick);
    }

    /// Stops `name` (waiting up to `timeout` for a graceful exit) and starts it again (waiting up
    /// to `wait` for its first screen): the outcomes of both, in order. A running agent is
    /// restarted in its own pane (`respawn-pane -k`): its session and the people attached to it
    /// stay. Control clients (the daemon's delivery worker) are detached first and reconnect:
    /// tmux 3.5a can crash (SIGSEGV, every agent lost) when a pane is respawned under one.
    pub fn restart(
        &self,
        name: &str,
        timeout: Duration,
        wait: Duration,
    ) -> Result<Vec<(String, Outcome)>, FleetError> {
        let agent = self.agent(name)?;
        if agent.host != LOCAL_HOST {
            return Err(FleetError::RemoteHost {
                name: agent.name.clone(),
                host: agent.host.clone(),
            });
        }
        self.refuse_during_update("restart")?;
        let lifecycle = self.lifecycle_lock()?;
        let stopped = match self.panes()?.get(name) {
            None => {
                drop(lifecycle);
                let name = [name.to_owned()];
                let mut outcomes = vec![(name[0].clone(), Outcome::NotRunning)];
                outcomes.extend(self.start(&name, wait)?);
                return Ok(outcomes);
            }
            Some(p) if p.dead => Outcome::Stopped,
            Some(_) => {
                self.request_stop(name)?;
                self.ask_to_exit(agent);
                let deadline = Instant::now() + timeout;
                loop {
                    if self.panes()?.get(name).is_none_or(|p| p.dead) {
                        break Outcome::Stopped;
                    }
                    if Instant::now() >= deadline {
                        break Outcome::Killed;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let resumed: Vec<String> = self
            .resumes(agent)
            .then(|| name.to_owned())
            .into_iter()
            .collect();
        let spec = self.session_spec(agent)?;
        match self.tmux.respawn_pane(&spec) {
            // The session went away meanwhile (its program exited with the server's last pane).
            Err(e) if matches!(e.kind, ErrorKind::NoSession | ErrorKind::NoServer) => {
                self.tmux.new_session(&spec)?
            }
            other => other?,
        }
        let mut outcomes = vec![(name.to_owned(), stopped)];
        outcomes.extend(self.await_launched(vec![name.to_owned()], &resumed, wait)?);
        Ok(outcomes)
    }

    /// Types `text` into a running agent and submits it once (holding the pane's writer turn,
    /// see [`pane_writer`]). Refused while its own hook says it waits on a person (a permission
    /// or choice dialog): the Enter would answer the dialog, and the text would be lost.
    pub fn send(&self, name: &str, text: &str) -> Result<SendReport, FleetError> {
        let agent = self.agent(name)?;
        if crate::update::in_progress(&self.paths) {
            return Err(FleetError::Refused(format!(
                "a harness update is running (agents are being restarted); nothing was typed into {name}: send again when it ends"
            )));
        }
        if let Some(seen) = Observed::read(&self.paths, name)
            && seen.activity == Activity::WaitingForInput
        {
            let asks = seen.detail.map(|d| format!(": {d}")).unwrap_or_default();
            return Err(FleetError::Refused(format!(
                "{name} is waiting for input at its terminal{asks}; nothing was typed (it would answer that). Answer it there (`mosaic fleet attach {name}`), then send again"
            )));
        }
        let writer = pane_writer(self.tmux.socket(), name);
        let mut turn = writer.lock().unwrap_or_else(|e| e.into_inner());
        let not_running = |state: AgentState| FleetError::NotRunning {
            name: name.to_owned(),
            state: state.as_str(),
        };
        let mut client = turn.client(&self.tmux, name).map_err(|e| match e.kind {
            ErrorKind::NoSession | ErrorKind::NoServer => not_running(AgentState::Stopped),
            _ => e.into(),
        })?;
        if client.pane_dead() {
            return Err(not_running(AgentState::Dead));
        }
        let sent = client.send_text(text, &send_options(&agent.runtime));
        turn.keep(client);
        sent.map_err(|e| match e.kind {
            ErrorKind::PaneDead => not_running(AgentState::Dead),
            _ => e.into(),
        })
    }

    /// The agent's pane text: the screen, or all scrollback with `history`.
    pub fn capture(&self, name: &str, history: bool) -> Result<String, FleetError> {
        self.agent(name)?;
        if !self.panes()?.contains_key(name) {
            return Err(FleetError::NotRunning {
                name: name.to_owned(),
                state: AgentState::Stopped.as_str(),
            });
        }
        Ok(self.tmux.capture(name, history)?)
    }

    /// Streams the agent's raw pane output to `out` until the session ends.
    pub fn follow(&self, name: &str, out: &mut dyn std::io::Write) -> Result<(), FleetError> {
        self.agent(name)?;
        let mut client = ControlClient::attach(&self.tmux, name, true)?;
        loop {
            match client.next_output(Instant::now() + Duration::from_secs(3600)) {
                Ok(Some(data)) => {
                    if out.write_all(&data).and_then(|_| out.flush()).is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => {}
                Err(_) => return Ok(()),
            }
        }
    }

    /// Adds `agent` to the roster file (validated as a whole before writing). Checks first that
    /// it could start (its harness is installed, its working directory exists), so a failed add
    /// writes nothing and can simply be retried.
    pub fn add(&mut self, agent: Agent) -> Result<(), FleetError> {
        if agent.role == Role::Orchestrator {
            return Err(FleetError::SecondOrchestrator);
        }
        mosaic_roster::check_name(&agent.name).map_err(|why| FleetError::BadName {
            name: agent.name.clone(),
            why: why.to_string(),
        })?;
        if mosaic_roster::harness(&agent.runtime).is_none() {
            return Err(FleetError::UnknownRuntime {
                runtime: agent.runtime.clone(),
                known: mosaic_roster::harness_names().join(", "),
            });
        }
        launch_argv(&agent, &self.mosaic_exe, LaunchFiles::default())
            .map_err(FleetError::Refused)?;
        self.workdir_of(&agent)?;
        if self.roster.agent(&agent.name).is_some() {
            return Err(FleetError::AgentExists {
                name: agent.name.clone(),
            });
        }
        let value = serde_yaml_ng::to_value(&agent).expect("agents serialize");
        let path = self.paths.roster();
        self.edit_roster(|current, doc| {
            let agents = agents_of(doc, &path)?;
            if current.agent(&agent.name).is_some() {
                return Err(FleetError::AgentExists {
                    name: agent.name.clone(),
                });
            }
            agents.push(value);
            Ok(())
        })
    }

    /// Stops `name` and removes it from the roster. The orchestrator cannot be removed.
    pub fn remove(&mut self, name: &str, timeout: Duration) -> Result<Outcome, FleetError> {
        if self.agent(name)?.role == Role::Orchestrator {
            return Err(FleetError::RemoveOrchestrator {
                name: name.to_owned(),
            });
        }
        let outcome = self.stop(&[name.to_owned()], timeout)?.remove(0).1;
        let path = self.paths.roster();
        self.edit_roster(|_, doc| {
            agents_of(doc, &path)?.retain(|a| a.get("name").and_then(Value::as_str) != Some(name));
            Ok(())
        })?;
        Ok(outcome)
    }

    /// Switches how agents talk to each other (`comms` in the roster). Returns false when the
    /// roster already had `mode` (nothing written). Agents keep running: the daemon follows the
    /// roster and posts their traffic the new way from its next message on.
    pub fn set_comms(&mut self, mode: CommsMode) -> Result<bool, FleetError> {
        if mode == CommsMode::Matrix && !self.roster.connectors.iter().any(|c| c.kind == "matrix") {
            return Err(FleetError::Refused(
                "comms: matrix needs a connector of type matrix in the roster (add one with `mosaic fleet init --connector matrix`); roster.yaml is unchanged".into(),
            ));
        }
        let mut changed = false;
        self.edit_roster(|current, doc| {
            changed = current.comms != mode;
            if let Some(map) = doc.as_mapping_mut() {
                map.insert("comms".into(), mode.as_str().into());
            }
            Ok(())
        })?;
        Ok(changed)
    }

    /// Applies `change` (given the roster as it is now) to the roster file's YAML document,
    /// keeping the file's leading comments, and reloads; nothing is written if `change` refuses
    /// or the result is invalid. Holds the roster lock throughout, so concurrent edits (other
    /// processes included) never lose each other's changes.
    fn edit_roster(
        &mut self,
        change: impl FnOnce(&Roster, &mut Value) -> Result<(), FleetError>,
    ) -> Result<(), FleetError> {
        let path = self.paths.roster();
        let _lock = lock_roster(&self.paths)?;
        let text = Roster::read_text(&path)?;
        let current = Roster::parse(&text, &path.display().to_string())?;
        let mut doc: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| FleetError::Refused(format!("{}: {e}", path.display())))?;
        change(&current, &mut doc)?;
        let new_text = format!(
            "{}{}",
            leading_comments(&text),
            serde_yaml_ng::to_string(&doc).expect("values serialize")
        );
        let roster = Roster::parse(&new_text, &path.display().to_string())?;
        write_atomic(&path, &new_text).map_err(|e| FleetError::io(&path, e))?;
        remember_good(&self.paths, &new_text);
        self.roster = roster;
        Ok(())
    }
}

/// The agent list of a roster document.
fn agents_of<'a>(doc: &'a mut Value, path: &Path) -> Result<&'a mut Vec<Value>, FleetError> {
    doc.get_mut("agents")
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| FleetError::Refused(format!("{}: `agents` is not a list", path.display())))
}

/// Takes the roster lock (`roster.yaml.lock`), held until the guard is dropped.
pub(crate) fn lock_roster(paths: &Paths) -> Result<crate::paths::FileLock, FleetError> {
    let path = paths.roster_lock();
    lock_exclusive(&path).map_err(|e| FleetError::io(&path, e))
}

/// Reads and validates `roster.yaml`, keeping a copy of it as the last good roster.
pub(crate) fn load_roster(paths: &Paths) -> Result<Roster, FleetError> {
    let (roster, text) = read_roster(paths)?;
    remember_good(paths, &text);
    Ok(roster)
}

/// Reads and validates `roster.yaml`, returning its text too.
pub(crate) fn read_roster(paths: &Paths) -> Result<(Roster, String), FleetError> {
    let path = paths.roster();
    let text = match Roster::read_text(&path) {
        Ok(t) => t,
        Err(RosterError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(FleetError::NoRoster {
                path: path.display().to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let roster = Roster::parse(&text, &path.display().to_string())?;
    Ok((roster, text))
}

/// Saves `text` (a roster that validated) as the last good roster. Best effort: the copy only
/// matters for stopping the fleet while `roster.yaml` is broken, and an unwritable state
/// directory shows up in every other command anyway.
pub(crate) fn remember_good(paths: &Paths, text: &str) {
    let copy = paths.last_good_roster();
    if std::fs::read_to_string(&copy).ok().as_deref() != Some(text) {
        let _ = create_private_dir(&paths.state_dir).map(|_| write_atomic(&copy, text));
    }
}

/// The worker `mosaic fleet add` (or `/fleet add`) describes.
pub fn worker_from(args: &mosaic_grammar::AddArgs) -> Result<Agent, FleetError> {
    let env = args
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| FleetError::BadEnv { entry: kv.clone() })
        })
        .collect::<Result<_, _>>()?;
    Ok(Agent {
        name: args.name.clone(),
        role: Role::Worker,
        runtime: args.runtime.clone(),
        model: args.model.clone(),
        workdir: args.workdir.clone(),
        instructions: args.instructions.clone(),
        env,
        restart: Default::default(),
        host: LOCAL_HOST.into(),
        resume: true,
    })
}

/// The comment block at the top of a YAML file, kept when mosaic rewrites it.
pub fn leading_comments(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// How long an agent launched with hooks counts as `starting` when none has reported.
const STARTING_AT_MOST_SECS: i64 = 60;

fn status_of(
    name: &str,
    role: &str,
    runtime: &str,
    model: Option<String>,
    host: &str,
    pane: Option<&PaneInfo>,
    orphan: bool,
) -> AgentStatus {
    let state = match pane {
        _ if orphan => AgentState::Orphan,
        None => AgentState::Stopped,
        Some(p) if p.dead && p.dead_status == Some(0) => AgentState::Exited,
        Some(p) if p.dead => AgentState::Dead,
        Some(_) => AgentState::Running,
    };
    AgentStatus {
        name: name.to_owned(),
        role: role.to_owned(),
        runtime: runtime.to_owned(),
        model,
        host: host.to_owned(),
        session: name.to_owned(),
        pid: pane.filter(|p| !p.dead).map(|p| p.pid),
        state,
        exit_status: pane.filter(|p| p.dead).and_then(|p| p.dead_status),
        exit_signal: pane.filter(|p| p.dead).and_then(|p| p.dead_signal),
        started_at: pane.and_then(|p| timestamp(p.created)),
        last_activity: pane.and_then(|p| timestamp(p.activity)),
        attached: pane.is_some_and(|p| p.attached > 0),
        activity: None,
        activity_source: None,
        activity_detail: None,
        harness_version: None,
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The turn every write to the pane of `agent` on tmux socket `socket` takes in this process,
/// so a pane has one writer at a time: a paste and its Enter are never interleaved with another
/// write (with the daemon running, every write to a pane goes through it).
pub fn pane_writer(socket: &str, agent: &str) -> Arc<Mutex<PaneWriter>> {
    pane_writers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((socket.to_owned(), agent.to_owned()))
        .or_default()
        .clone()
}

type PaneWriters = Mutex<HashMap<(String, String), Arc<Mutex<PaneWriter>>>>;

/// This process's pane writers, by tmux socket and agent.
fn pane_writers() -> &'static PaneWriters {
    static WRITERS: std::sync::OnceLock<PaneWriters> = std::sync::OnceLock::new();
    WRITERS.get_or_init(Default::default)
}

/// How long a pane's kept control client may stay unused before it is let go.
const KEPT_CLIENT_IDLE: Duration = Duration::from_secs(10);

/// A pane's writer turn (see [`pane_writer`]), and the control client its sends reuse while
/// the process keeps one (the daemon: no attach per send). Let go after [`KEPT_CLIENT_IDLE`]
/// unused.
#[derive(Default)]
pub struct PaneWriter {
    kept: Option<(ControlClient, Instant)>,
}

impl PaneWriter {
    /// The kept client when it still writes to the pane's current program, else a new one
    /// attached to `session` (kept for the next send by [`PaneWriter::keep`]).
    fn client(
        &mut self,
        tmux: &Tmux,
        session: &str,
    ) -> Result<ControlClient, mosaic_tmux::TmuxError> {
        if let Some((mut client, _)) = self.kept.take()
            && client.is_current()
        {
            return Ok(client);
        }
        ControlClient::attach(tmux, session, false)
    }

    /// Keeps `client` for the next send to this pane, and lets it go once unused for a while.
    fn keep(&mut self, client: ControlClient) {
        self.kept = Some((client, Instant::now()));
        start_kept_client_reaper();
    }
}

/// Lets kept control clients go once unused for [`KEPT_CLIENT_IDLE`] (one thread per process,
/// started with the first kept client).
fn start_kept_client_reaper() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(KEPT_CLIENT_IDLE / 2);
                let writers: Vec<Arc<Mutex<PaneWriter>>> = pane_writers()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect();
                for writer in writers {
                    // A writer busy right now is looked at next time.
                    if let Ok(mut w) = writer.try_lock()
                        && w.kept
                            .as_ref()
                            .is_some_and(|(_, at)| at.elapsed() > KEPT_CLIENT_IDLE)
                    {
                        w.kept = None;
                    }
                }
            }
        });
    });
}

/// Creates a directory readable only by the user.
pub fn create_private_dir(dir: &std::path::Path) -> Result<(), FleetError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| FleetError::io(dir, e))
}

/// `now + wait`, or a day from now when that overflows (callers bound their waits; this keeps a
/// huge one from panicking).
fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(86_400))
}
