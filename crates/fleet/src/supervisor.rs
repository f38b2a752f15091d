//! The fleet supervisor: watches the fleet's agents (one tmux call a second for the whole fleet),
//! reports every lifecycle change, and applies each agent's restart policy — to an agent whose
//! harness died (`dead`), and to an agent that stopped without anyone asking (`stopped` with no
//! stop request, e.g. after the fleet's tmux server died).

use crate::{AgentState, AgentStatus, Fleet, LiveRoster};
use mosaic_roster::RestartPolicy;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Restarts allowed in [`CRASH_WINDOW`] before an agent counts as crash-looping.
pub const CRASH_LIMIT: usize = 5;
/// The window [`CRASH_LIMIT`] counts in.
pub const CRASH_WINDOW: Duration = Duration::from_secs(300);
/// How long a restart waits for the agent's first screen.
const START_WAIT: Duration = Duration::from_secs(mosaic_grammar::START_WAIT_SECS);

/// What the supervisor saw or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An agent's lifecycle state changed.
    State {
        /// Agent name.
        name: String,
        /// Its new state.
        state: AgentState,
    },
    /// An agent left the fleet.
    Removed(String),
    /// An agent was restarted by its policy.
    Restarted(String),
    /// An agent keeps dying ([`CRASH_LIMIT`] restarts in [`CRASH_WINDOW`]); it is left alone.
    CrashLooping(String),
}

/// Watches the fleet of a live roster and restarts what its policies say.
pub struct Supervisor {
    roster: LiveRoster,
    exe: PathBuf,
    known: HashMap<String, AgentState>,
    restarts: HashMap<String, Vec<Instant>>,
}

impl Supervisor {
    /// A supervisor for the fleet of `roster`; `exe` is the `mosaic` executable agents run with.
    pub fn new(roster: LiveRoster, exe: PathBuf) -> Supervisor {
        Supervisor {
            roster,
            exe,
            known: HashMap::new(),
            restarts: HashMap::new(),
        }
    }

    /// Looks once a second until `stop` is set. Blocking: give it its own thread.
    pub fn run(mut self, stop: &AtomicBool, mut report: impl FnMut(Change)) {
        while !stop.load(Ordering::Relaxed) {
            self.tick(&mut report);
            for _ in 0..10 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// One look at the fleet: reports changes and restarts agents that need it.
    pub fn tick(&mut self, report: &mut dyn FnMut(Change)) {
        let fleet = Fleet::new(
            self.roster.paths().clone(),
            (*self.roster.get()).clone(),
            self.exe.clone(),
        );
        // A harness update stops and starts agents itself; one that died in between is finished
        // here (its agents started again).
        if crate::update::in_progress(&fleet.paths) {
            return;
        }
        crate::update::recover_interrupted(&fleet, Duration::from_secs(30));
        let Ok(status) = fleet.ps() else {
            return;
        };
        let mut now = HashMap::new();
        for agent in status.agents {
            let before = self.known.get(&agent.name).copied();
            if before != Some(agent.state) {
                tracing::info!(agent = %agent.name, state = agent.state.as_str(), "agent state changed");
                report(Change::State {
                    name: agent.name.clone(),
                    state: agent.state,
                });
                if self.lost(&fleet, &agent, before) {
                    self.apply_restart_policy(&fleet, &agent, report);
                }
            }
            now.insert(agent.name, agent.state);
        }
        for name in self.known.keys().filter(|n| !now.contains_key(*n)) {
            report(Change::Removed(name.clone()));
        }
        self.known = now;
    }

    /// Whether `agent` went away without anyone asking: its harness died, or it was running and
    /// its session is gone (the tmux server died), with no stop request (a stop or restart in
    /// progress leaves the harness dead for a moment on purpose).
    fn lost(&self, fleet: &Fleet, agent: &AgentStatus, before: Option<AgentState>) -> bool {
        let asked = || fleet.paths.stop_requested(&agent.name).exists();
        match agent.state {
            AgentState::Dead | AgentState::Exited => !asked(),
            AgentState::Stopped => before == Some(AgentState::Running) && !asked(),
            _ => false,
        }
    }

    /// Restarts an agent that went away, as its `restart` policy says: `always`, `on-failure`
    /// (anything but exit status 0; a lost session is a failure), or `never`. More than
    /// [`CRASH_LIMIT`] restarts in [`CRASH_WINDOW`] is a crash loop: the agent is left alone.
    fn apply_restart_policy(
        &mut self,
        fleet: &Fleet,
        agent: &AgentStatus,
        report: &mut dyn FnMut(Change),
    ) {
        let Some(policy) = fleet.roster.agent(&agent.name).map(|a| a.restart) else {
            return;
        };
        let wanted = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => agent.exit_status != Some(0),
            RestartPolicy::Never => false,
        };
        if !wanted {
            return;
        }
        let history = self.restarts.entry(agent.name.clone()).or_default();
        history.retain(|t| t.elapsed() < CRASH_WINDOW);
        if history.len() >= CRASH_LIMIT {
            tracing::warn!(
                agent = %agent.name,
                "the agent keeps dying ({CRASH_LIMIT} restarts in 5 minutes); leaving it dead (see `mosaic fleet logs`)"
            );
            report(Change::CrashLooping(agent.name.clone()));
            return;
        }
        history.push(Instant::now());
        // Someone else may have started it meanwhile (`already running`): not a restart.
        if let Ok(outcomes) = fleet.start(std::slice::from_ref(&agent.name), START_WAIT)
            && outcomes.iter().any(|(_, o)| *o == crate::Outcome::Started)
        {
            tracing::info!(agent = %agent.name, "restarted an agent by its restart policy");
            report(Change::Restarted(agent.name.clone()));
        }
    }
}
