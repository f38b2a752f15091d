//! The one executor of fleet commands. Every surface — the CLI (`mosaic fleet …`), chat (the
//! bridge), the HTTP API and the orchestrator's MCP tools — parses or builds a typed
//! [`FleetCommand`], runs it here as an [`Actor`], and gets a typed [`Outcome`] or [`ExecError`]
//! that it renders its own way ([`render`]). Role checks happen here, with the one rule table
//! ([`required_role`]); confirmations of destructive commands are chat's concern (the bridge).

mod error;
mod outcome;
pub mod render;

pub use error::{ErrorKind, ExecError};
pub use outcome::{AgentOutcome, Outcome, PresetAgent, PresetInfo, PresetOrigin};

use mosaic_fleet::{Fleet, Paths, StatusReport, wizard, worker_from};
use mosaic_grammar::{CommsArg, CommsArgs, FleetCommand, PresetsAction};
use mosaic_roster::{AclRole, CommsMode, all_presets};
use std::path::PathBuf;
use std::time::Duration;

/// How long `add` and `restart` wait for a harness's first screen (the default of `start --wait`).
pub const START_WAIT: Duration = Duration::from_secs(mosaic_grammar::START_WAIT_SECS);

/// Where a command comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surface {
    /// `mosaic fleet …` in a terminal on the host.
    Cli,
    /// A chat message.
    Chat {
        /// Connector id.
        connector: String,
        /// The platform's user id.
        user: String,
    },
    /// The HTTP API (its bearer token).
    Api,
    /// The orchestrator's own tools (`POST /v1/commands`).
    Orchestrator,
    /// The orchestrator's MCP tools (`mosaic mcp`, through `POST /v1/commands`).
    Mcp,
}

/// Who asks: the surface and the role it acts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Where the command comes from.
    pub surface: Surface,
    /// What it may do.
    pub role: AclRole,
}

impl Actor {
    /// The owner at a terminal on the host: admin.
    pub fn cli() -> Actor {
        Actor {
            surface: Surface::Cli,
            role: AclRole::Admin,
        }
    }

    /// A client of the HTTP API, which holds the owner's token: admin.
    pub fn api() -> Actor {
        Actor {
            surface: Surface::Api,
            role: AclRole::Admin,
        }
    }
}

/// The role a command needs.
pub fn required_role(command: &FleetCommand) -> AclRole {
    match command {
        FleetCommand::Status {}
        | FleetCommand::Ps(_)
        | FleetCommand::Verify(_)
        | FleetCommand::Versions(_)
        | FleetCommand::Presets(_)
        | FleetCommand::Logs(_)
        | FleetCommand::Comms(CommsArgs { mode: None }) => AclRole::Viewer,
        FleetCommand::Send(_)
        | FleetCommand::Start(_)
        | FleetCommand::Stop(_)
        | FleetCommand::Restart(_)
        | FleetCommand::Attach(_)
        | FleetCommand::Confirm { .. } => AclRole::Operator,
        FleetCommand::Init(_)
        | FleetCommand::Update(_)
        | FleetCommand::Install(_)
        | FleetCommand::Add(_)
        | FleetCommand::Remove(_)
        | FleetCommand::Comms(CommsArgs { mode: Some(_) }) => AclRole::Admin,
    }
}

/// Whether `actor` may run `command`: [`ExecError::Forbidden`] when its role is too low.
pub fn authorize(command: &FleetCommand, actor: &Actor) -> Result<(), ExecError> {
    let needed = required_role(command);
    if actor.role < needed {
        return Err(ExecError::Forbidden {
            verb: command.verb(),
            needed,
            role: actor.role,
        });
    }
    Ok(())
}

/// Runs fleet commands against the fleet of one config and state directory.
#[derive(Debug, Clone)]
pub struct Executor {
    paths: Paths,
    mosaic_exe: PathBuf,
    /// The daemon's live roster, when this executor runs in the daemon.
    live: Option<mosaic_fleet::LiveRoster>,
}

impl Executor {
    /// An executor for the fleet in `paths`; `mosaic_exe` runs the demo agent and `mosaic mcp`.
    pub fn new(paths: Paths, mosaic_exe: PathBuf) -> Executor {
        Executor {
            paths,
            mosaic_exe,
            live: None,
        }
    }

    /// Reads the roster from `live` (the daemon's, which it keeps following the file) for the
    /// verbs that only read it (`ps`, `status`, `send`, `logs`), instead of parsing the file
    /// for each.
    pub fn with_live_roster(mut self, live: mosaic_fleet::LiveRoster) -> Executor {
        self.live = Some(live);
        self
    }

    fn open(&self) -> Result<Fleet, ExecError> {
        Ok(Fleet::open(self.paths.clone(), self.mosaic_exe.clone())?)
    }

    /// The fleet for a verb that only reads the roster: the live roster in use (its owner, the
    /// daemon's bridge, re-reads the file: a reload here would take the change from it, and its
    /// ACL would never follow), or the file parsed.
    fn open_to_read(&self) -> Result<Fleet, ExecError> {
        match &self.live {
            Some(live) => Ok(Fleet::new(
                self.paths.clone(),
                (*live.get()).clone(),
                self.mosaic_exe.clone(),
            )),
            None => self.open(),
        }
    }

    /// Runs `command` for `actor`: refused when the actor's role is too low, and for verbs that
    /// need a terminal on the host (the CLI runs those itself). Blocking: async callers use
    /// `spawn_blocking`.
    pub fn exec(&self, command: &FleetCommand, actor: &Actor) -> Result<Outcome, ExecError> {
        self.exec_reporting(command, actor, &mut |_| {})
    }

    /// [`Executor::exec`], telling chat (through `tell`) what it should hear of a long command
    /// as it happens: an update beginning and ending.
    pub fn exec_telling(
        &self,
        command: &FleetCommand,
        actor: &Actor,
        tell: &(dyn Fn(&str) + Sync),
    ) -> Result<Outcome, ExecError> {
        self.exec_reporting(command, actor, &mut |step| {
            if step.kind == mosaic_fleet::update::ProgressKind::Announce {
                tell(&step.text);
            }
        })
    }

    /// [`Executor::exec`], telling `progress` each step of a long command (`update`) as it
    /// happens.
    pub fn exec_reporting(
        &self,
        command: &FleetCommand,
        actor: &Actor,
        progress: &mut dyn FnMut(&mosaic_fleet::update::Progress),
    ) -> Result<Outcome, ExecError> {
        authorize(command, actor)?;
        let secs = Duration::from_secs;
        Ok(match command {
            FleetCommand::Status {} => {
                let fleet = self.open_to_read()?;
                Outcome::Status {
                    report: StatusReport::new(&fleet.roster, fleet.ps()?),
                }
            }
            FleetCommand::Ps(_) => Outcome::Ps {
                status: self.open_to_read()?.ps()?,
            },
            FleetCommand::Verify(_) => Outcome::Verify {
                checks: mosaic_fleet::verify::verify(&self.paths, &self.mosaic_exe),
            },
            FleetCommand::Presets(args) => {
                let user_dir = self.paths.presets_dir();
                let (presets, errors) = all_presets(Some(&user_dir));
                match &args.action {
                    None => Outcome::Presets {
                        presets: presets.iter().map(PresetInfo::from).collect(),
                        user_dir: user_dir.display().to_string(),
                        skipped: errors.iter().map(ToString::to_string).collect(),
                    },
                    Some(PresetsAction::Show { name }) => {
                        let known: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
                        let Some(p) = presets.iter().find(|p| &p.name == name) else {
                            return Err(ExecError::NoPreset {
                                name: name.clone(),
                                known: known.join(", "),
                            });
                        };
                        Outcome::Preset {
                            name: p.name.clone(),
                            text: p.text.clone(),
                        }
                    }
                }
            }
            FleetCommand::Start(args) => Outcome::Started {
                agents: AgentOutcome::from_pairs(
                    self.open()?.start(&args.agents, secs(args.wait))?,
                ),
            },
            FleetCommand::Stop(args) => {
                // Stopping what runs must work even when roster.yaml is broken or gone.
                let (fleet, fallback) =
                    Fleet::open_or_last_good(self.paths.clone(), self.mosaic_exe.clone())?;
                let fallback = fallback.map(|why| {
                    format!(
                        "{why}\nstopping with the last good roster, {}",
                        self.paths.last_good_roster().display()
                    )
                });
                Outcome::Stopped {
                    agents: AgentOutcome::from_pairs(fleet.stop(&args.agents, secs(args.timeout))?),
                    fallback,
                }
            }
            FleetCommand::Versions(args) => {
                mosaic_fleet::versions::check_names(&args.harnesses)
                    .map_err(mosaic_fleet::FleetError::Refused)?;
                let harnesses = mosaic_fleet::versions::versions(
                    self.open().ok().as_ref().map(|f| &f.roster),
                    &args.harnesses,
                );
                mosaic_fleet::versions::remember(&self.paths, &harnesses);
                Outcome::Versions { harnesses }
            }
            FleetCommand::Update(args) => {
                let options = mosaic_fleet::update::UpdateOptions {
                    to: args.to.clone(),
                    force: args.force,
                    dry_run: args.dry_run,
                    drain: secs(args.drain),
                    stop_timeout: secs(mosaic_grammar::STOP_TIMEOUT_SECS),
                    wait: START_WAIT,
                    by_orchestrator: matches!(actor.surface, Surface::Orchestrator | Surface::Mcp),
                };
                Outcome::Updated {
                    harnesses: self.open()?.update(&args.harnesses, &options, progress)?,
                }
            }
            FleetCommand::Restart(args) => Outcome::Restarted {
                agents: AgentOutcome::from_pairs(self.open()?.restart(
                    &args.name,
                    secs(args.timeout),
                    START_WAIT,
                )?),
            },
            FleetCommand::Send(args) => {
                let report = self
                    .open_to_read()?
                    .send(&args.name, &args.text.join(" "))?;
                Outcome::Sent {
                    agent: args.name.clone(),
                    pasted_chars: report.pasted.chars().count(),
                    enter_presses: report.enter_presses,
                }
            }
            FleetCommand::Comms(CommsArgs { mode }) => {
                let mut fleet = self.open()?;
                let changed = match mode {
                    Some(CommsArg::Tmux) => fleet.set_comms(CommsMode::Tmux)?,
                    Some(CommsArg::Matrix) => fleet.set_comms(CommsMode::Matrix)?,
                    None => false,
                };
                Outcome::Comms {
                    mode: fleet.roster.comms.as_str().to_owned(),
                    changed,
                }
            }
            FleetCommand::Add(args) => {
                let mut fleet = self.open()?;
                fleet.add(worker_from(args)?)?;
                let started = if args.no_start {
                    None
                } else {
                    Some(AgentOutcome::from_pairs(
                        fleet.start(std::slice::from_ref(&args.name), START_WAIT)?,
                    ))
                };
                Outcome::Added {
                    agent: args.name.clone(),
                    roster: self.paths.roster().display().to_string(),
                    started,
                }
            }
            FleetCommand::Remove(args) => {
                let result = self.open()?.remove(&args.name, secs(args.timeout))?;
                Outcome::Removed {
                    agent: args.name.clone(),
                    roster: self.paths.roster().display().to_string(),
                    stopped: AgentOutcome {
                        agent: args.name.clone(),
                        result,
                    },
                }
            }
            // Without a terminal the wizard asks nothing: flags, else defaults.
            FleetCommand::Init(args) => {
                let mut args = args.clone();
                args.yes = true;
                let mut report = Vec::new();
                wizard::run(&self.paths, &args, false, &mut report)?;
                Outcome::Init {
                    report: String::from_utf8_lossy(&report).into_owned(),
                }
            }
            FleetCommand::Logs(args) if !args.follow => Outcome::Logs {
                agent: args.name.clone(),
                text: self.open_to_read()?.capture(&args.name, !args.screen)?,
            },
            FleetCommand::Logs(_) | FleetCommand::Attach(_) | FleetCommand::Install(_) => {
                return Err(ExecError::NeedsTerminal {
                    verb: command.verb(),
                });
            }
            FleetCommand::Confirm { .. } => {
                return Err(match actor.surface {
                    Surface::Cli => ExecError::ConfirmOutsideChat,
                    _ => ExecError::NothingToConfirm,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests;
