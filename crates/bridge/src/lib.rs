//! The mosaic bridge: chat rooms on one side, the orchestrator's tmux pane on the other.
//!
//! Every inbound message is deduplicated by `(connector, message id)` and checked against the
//! [`acl`] by the [`inbound`] pipeline, which decides once and applies the decision's effects in
//! one place. Commands in the fleet grammar (`/fleet …`, `!fleet …`) run through the executor and
//! are answered in the same room (destructive ones after a [`confirm`]ation kept in the
//! database); anything else from an allowed user is acknowledged at once, queued durably, and
//! typed into the orchestrator's pane in order when it is idle ([`delivery`]). Replies go
//! through a durable [`outbox`] retried with backoff while a connector is down. Every command and
//! refusal is written to the audit log.

pub mod acl;
pub mod activity;
mod hooks;
pub use hooks::{HOOK_CALL_ID, HookError, final_answer};
pub mod audit;
mod comms;
#[cfg(feature = "test-util")]
pub mod compliance;
pub mod confirm;
mod connectors;
pub mod delivery;
pub mod events;
mod inbound;
pub mod local;
mod outbox;
pub use outbox::ReplyError;
pub mod split;
pub mod store;
mod view;

use crate::activity::Activity;
use crate::audit::AuditLog;
use crate::delivery::DeliveryWorker;
use crate::events::Event;
use crate::store::Store;
use crate::view::View;
use mosaic_connector::{Connector, Health, HealthReporter, Inbound, Markdown, ReplyTo};
use mosaic_exec::{Actor, ExecError, Executor, Outcome, Surface};
use mosaic_fleet::{Fleet, LiveRoster, Paths};
use mosaic_grammar::FleetCommand;
use mosaic_roster::{AclRole, Role};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;

/// How many events the stream keeps for a reader that is behind (a burst of messages makes
/// about four each); one further behind is told [`Event::Lagged`].
const EVENTS_KEPT: usize = 4096;

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A file (audit log) could not be opened.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where a reply goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// Connector id.
    pub connector: String,
    /// Room.
    pub room: String,
    /// Thread, if any.
    pub thread: Option<String>,
    /// What the reply answers, if anything.
    #[serde(default)]
    pub reply_to: Option<ReplyTo>,
}

impl Target {
    /// The room of `inbound`, answering it (through the platform's own channel for a native
    /// command).
    pub fn answering(inbound: &Inbound) -> Target {
        let id = inbound.message_id.clone();
        Target {
            connector: inbound.connector.clone(),
            room: inbound.room.clone(),
            thread: inbound.thread.clone(),
            reply_to: Some(if inbound.native_command {
                ReplyTo::Native(id)
            } else {
                ReplyTo::Message(id)
            }),
        }
    }
}

/// What happened to an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Queued for the orchestrator with this id, behind `ahead` others.
    Queued {
        /// Queue id.
        id: i64,
        /// Messages before it.
        ahead: usize,
    },
    /// Seen before; nothing done.
    Duplicate,
    /// A command or help, answered in the room.
    Answered,
    /// Waiting for `/fleet confirm CODE`.
    AwaitingConfirmation(String),
    /// Refused (audited; the user is told when they are known).
    Refused(String),
    /// Not from a bridged room (audited, not answered).
    Ignored(String),
    /// Could not be stored (the database failed): not accepted, so it must be sent again.
    Failed(String),
}

/// What the bridge needs to know.
pub struct BridgeConfig {
    /// Config and state directories.
    pub paths: Paths,
    /// The `mosaic` executable (runs the demo agent).
    pub mosaic_exe: PathBuf,
    /// The daemon's live roster: the ACL, rooms and settings follow it as it changes.
    pub roster: LiveRoster,
}

/// The running bridge. Cheap to clone.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    paths: Paths,
    exe: PathBuf,
    roster: LiveRoster,
    view: RwLock<Arc<View>>,
    executor: Executor,
    audit: AuditLog,
    db: PathBuf,
    /// The bridge's connection: commits without waiting for the disk, made durable by
    /// `group_commit` before anyone is told (through [`Bridge::write`]).
    store: Mutex<Store>,
    group_commit: Arc<store::GroupCommit>,
    /// The outbox worker's own connection: it marks what was posted (or failed) without waiting
    /// for the disk ([`Store::relax_durability`]): a `kill -9` loses none of it, a power loss
    /// can only make a message be posted again. What is queued to be posted is committed by
    /// `store`, fully synced.
    outbox_store: Mutex<Store>,
    connectors: HashMap<String, Arc<dyn Connector>>,
    /// Each connector's health, as it reports it.
    health: HashMap<String, HealthReporter>,
    /// Each connector's live cursors (the last message taken per room).
    cursors: HashMap<String, watch::Sender<Vec<(String, String)>>>,
    /// Set to stop the connectors.
    shutdown: watch::Sender<bool>,
    events: broadcast::Sender<Event>,
    wake_delivery: Mutex<std::sync::mpsc::Sender<()>>,
    /// The delivery worker's tmux client's waker, while it has one.
    delivery_waker: Arc<Mutex<Option<mosaic_tmux::Waker>>>,
    delivery_wake_rx: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    wake_outbox: Notify,
    activity: Arc<Activity>,
    /// Each agent's activity as its hooks last said (to tell changes once).
    observed: Mutex<HashMap<String, mosaic_fleet::Activity>>,
    /// When rooms were told the orchestrator is busy (at most once a minute each).
    busy_notices: inbound::BusyNotices,
    /// Notices for the orchestrator, typed in by the delivery worker.
    notices: Arc<Mutex<std::collections::VecDeque<String>>>,
    /// Each agent's comms room, by connector and agent, as its connector named it.
    agent_rooms: Mutex<HashMap<(String, String), String>>,
    stop: Arc<AtomicBool>,
}

impl Bridge {
    /// Opens the bridge's database and audit log in the state directory.
    pub fn new(
        config: BridgeConfig,
        connectors: Vec<Arc<dyn Connector>>,
    ) -> Result<Bridge, BridgeError> {
        mosaic_fleet::create_private_dir(&config.paths.state_dir)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let db = store::database(&config.paths.state_dir);
        let store = Store::open(&db)?;
        store.relax_durability()?;
        let group_commit = store::GroupCommit::open(&db)?;
        let outbox_store = Store::open(&db)?;
        outbox_store.relax_durability()?;
        let mut cursors = HashMap::new();
        for c in &connectors {
            cursors.insert(c.id().to_owned(), watch::channel(store.cursors(c.id())?).0);
        }
        let audit = AuditLog::open(&config.paths.state_dir.join("audit.jsonl"))?;
        let (wake_tx, wake_rx) = std::sync::mpsc::channel();
        let roster = config.roster.get();
        let idle_prompt = roster
            .orchestrator()
            .and_then(|o| mosaic_roster::harness(&o.runtime))
            .and_then(|h| h.screen.idle_prompt.clone());
        let view = View::of(&roster, None);
        Ok(Bridge {
            inner: Arc::new(Inner {
                activity: Arc::new(Activity::new(
                    idle_prompt.as_deref(),
                    Duration::from_secs(view.settings.busy_timeout_secs),
                )),
                view: RwLock::new(Arc::new(view)),
                executor: Executor::new(config.paths.clone(), config.mosaic_exe.clone())
                    .with_live_roster(config.roster.clone()),
                roster: config.roster,
                paths: config.paths,
                exe: config.mosaic_exe,
                audit,
                db,
                store: Mutex::new(store),
                group_commit,
                outbox_store: Mutex::new(outbox_store),
                health: connectors
                    .iter()
                    .map(|c| (c.id().to_owned(), HealthReporter::new().0))
                    .collect(),
                cursors,
                shutdown: watch::channel(false).0,
                connectors: connectors
                    .into_iter()
                    .map(|c| (c.id().to_owned(), c))
                    .collect(),
                events: broadcast::channel(EVENTS_KEPT).0,
                wake_delivery: Mutex::new(wake_tx),
                delivery_waker: Arc::new(Mutex::new(None)),
                delivery_wake_rx: Mutex::new(Some(wake_rx)),
                wake_outbox: Notify::new(),
                observed: Mutex::new(HashMap::new()),
                busy_notices: inbound::BusyNotices::default(),
                notices: Arc::default(),
                agent_rooms: Mutex::default(),
                stop: Arc::new(AtomicBool::new(false)),
            }),
        })
    }

    /// Starts the delivery worker, the outbox and every connector. Returns the tasks; call
    /// [`Bridge::shutdown`] to stop them. The roster watcher ([`Bridge::watch_roster`]) and the
    /// fleet supervisor (`mosaic_fleet::Supervisor`) are separate components.
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let (dialog_tx, mut dialog_rx) = mpsc::unbounded_channel::<(Target, String)>();
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((room, shows)) = dialog_rx.recv().await {
                let name = me.orchestrator_name();
                me.tell_room_the_orchestrator_waits(&name, Some(&shows), Some(room));
            }
        }));
        let (delivered_tx, delivered_rx) = mpsc::unbounded_channel();
        let me = self.clone();
        tasks.push(tokio::spawn(
            async move { me.typing_loop(delivered_rx).await },
        ));
        if let Some(wake) = self.inner.delivery_wake_rx.lock().unwrap().take() {
            let me = self.clone();
            let worker = DeliveryWorker {
                db: self.inner.db.clone(),
                open_fleet: Box::new(move || Ok(me.fleet())),
                activity: self.inner.activity.clone(),
                events: self.inner.events.clone(),
                stop: self.inner.stop.clone(),
                wake,
                waker: self.inner.delivery_waker.clone(),
                delivered: delivered_tx,
                notices: self.inner.notices.clone(),
                dialog_seen: dialog_tx,
            };
            tasks.push(tokio::task::spawn_blocking(move || worker.run()));
        }
        // A comms mode switched while the daemon was down is told now.
        self.tell_comms_mode();
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.outbox_loop().await }));
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.dialog_loop().await }));
        for connector in self.inner.connectors.values() {
            let (me, id) = (self.clone(), connector.id().to_owned());
            tasks.push(tokio::spawn(async move { me.log_health(id).await }));
            let (me, connector) = (self.clone(), connector.clone());
            tasks.push(tokio::spawn(
                async move { me.connector_loop(connector).await },
            ));
        }
        tasks
    }

    /// Asks every task to stop.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.shutdown.send_replace(true);
        self.inner.wake_outbox.notify_waiters();
        self.wake_delivery();
    }

    /// Turns true when [`Bridge::shutdown`] is called: event streams end with it, so no client
    /// keeps a stopping daemon alive.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// The event stream.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Posts `text` in every bridged room (the local room included), as mosaic.
    pub fn tell_rooms(&self, text: &str) {
        let roster = self.inner.roster.get();
        let mut rooms: Vec<(String, String)> = vec![(acl::LOCAL.to_owned(), acl::LOCAL.to_owned())];
        for c in &roster.connectors {
            rooms.extend(c.rooms().into_iter().map(|r| (c.id().to_owned(), r)));
        }
        for (connector, room) in rooms {
            let target = Target {
                connector,
                room,
                thread: None,
                reply_to: None,
            };
            if let Err(e) = self.reply(text, Some(target)) {
                tracing::warn!(error = %e, "cannot tell a room");
            }
        }
    }

    /// Publishes an event from another component (the fleet supervisor's agent states).
    pub fn announce(&self, event: Event) {
        let _ = self.inner.events.send(event);
    }

    /// The supervisor's report: announced, and a worker that died, was restarted or keeps dying
    /// is told to the orchestrator once ([`Bridge::notify_orchestrator`]).
    pub fn supervisor_change(&self, change: mosaic_fleet::Change) {
        use mosaic_fleet::{AgentState, Change};
        let notice = match &change {
            Change::State {
                name,
                state: AgentState::Dead,
            } => Some((name.clone(), format!("worker {name} died"))),
            Change::State {
                name,
                state: AgentState::Exited,
            } => Some((name.clone(), format!("worker {name} exited"))),
            Change::Restarted(name) => Some((
                name.clone(),
                format!("worker {name} was restarted by its restart policy"),
            )),
            Change::CrashLooping(name) => Some((
                name.clone(),
                format!(
                    "worker {name} keeps dying and is left stopped; `mosaic fleet logs {name}` shows why"
                ),
            )),
            _ => None,
        };
        if let Some((name, text)) = notice
            && self.agent_role(&name) == Some(Role::Worker)
        {
            self.notify_orchestrator(&text);
        }
        self.announce(change.into());
    }

    /// Tells the orchestrator something about the fleet: typed into its pane as a
    /// `[fleet notice] …` line when it is idle, before the next chat message (zero tokens
    /// unless it acts on it).
    pub fn notify_orchestrator(&self, text: &str) {
        self.comms_post(&self.orchestrator_name(), &format!("[fleet notice] {text}"));
        self.inner
            .notices
            .lock()
            .unwrap()
            .push_back(text.to_owned());
        self.wake_delivery();
    }

    /// Runs `write` on the bridge's connection and returns once what it committed is on disk,
    /// synced together with whatever else committed meanwhile (group commit: one `fdatasync`
    /// for many). Every write someone is told about afterwards (a message taken, a reply
    /// queued, a checkpoint, a confirmation) goes through here.
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&mut Store) -> Result<T, store::StoreError>,
    ) -> Result<T, store::StoreError> {
        let (result, ticket) = self.run_write(write);
        let value = result?;
        self.inner.group_commit.sync_through(ticket)?;
        Ok(value)
    }

    /// Runs `write` on the bridge's connection; its result and the group-commit ticket of what
    /// it committed (taken under the connection's lock).
    fn run_write<T>(
        &self,
        write: impl FnOnce(&mut Store) -> Result<T, store::StoreError>,
    ) -> (Result<T, store::StoreError>, u64) {
        let mut store = self.inner.store.lock().unwrap();
        let result = write(&mut store);
        (result, self.inner.group_commit.committed())
    }

    /// Runs `write` on the bridge's connection and returns once it committed, without waiting
    /// for the disk: a `kill -9` loses none of it, and it is synced within 10 ms (or by the
    /// next group commit, whichever comes first).
    /// Only for writes whose only audience dies with the machine (the orchestrator's reply: see
    /// "What is on disk when" in docs/bridge.md), so a power loss cannot contradict what anyone
    /// outside it was told.
    pub(crate) fn commit<T>(
        &self,
        write: impl FnOnce(&mut Store) -> Result<T, store::StoreError>,
    ) -> Result<T, store::StoreError> {
        let (result, ticket) = self.run_write(write);
        let value = result?;
        self.inner.group_commit.sync_soon(ticket);
        Ok(value)
    }

    /// Tells the delivery worker to look at the queue now.
    pub(crate) fn wake_delivery(&self) {
        let _ = self.inner.wake_delivery.lock().unwrap().send(());
        if let Some(waker) = &*self.inner.delivery_waker.lock().unwrap() {
            waker.wake();
        }
    }

    /// Messages whose paste the orchestrator's pane never confirmed: they wait for a person's
    /// decision ([`Bridge::resolve_held`]) and hold the queue behind them.
    pub fn held(&self) -> Result<Vec<store::Queued>, store::StoreError> {
        self.inner.store.lock().unwrap().held()
    }

    /// A person's decision on a held message: `retry` pastes it once more, otherwise it is
    /// dropped. False when `id` is not held.
    pub fn resolve_held(&self, id: i64, retry: bool) -> Result<bool, store::StoreError> {
        let done = self.write(|s| s.resolve_held(id, retry))?;
        self.wake_delivery();
        Ok(done)
    }

    /// The role the orchestrator acts with (`bridge.orchestrator_role`).
    pub fn orchestrator_role(&self) -> AclRole {
        self.view().settings.orchestrator_role
    }

    /// The roster role of agent `name`, if the roster in use has it.
    pub fn agent_role(&self, name: &str) -> Option<Role> {
        self.inner.roster.get().agent(name).map(|a| a.role)
    }

    fn orchestrator_name(&self) -> String {
        self.inner
            .roster
            .get()
            .orchestrator()
            .map(|o| o.name.clone())
            .unwrap_or_default()
    }

    /// The fleet of the roster in use.
    fn fleet(&self) -> Fleet {
        Fleet::new(
            self.inner.paths.clone(),
            (*self.inner.roster.get()).clone(),
            self.inner.exe.clone(),
        )
    }

    /// Each connector's health.
    pub fn health(&self) -> Vec<(String, Health)> {
        let mut h: Vec<_> = self
            .inner
            .health
            .iter()
            .map(|(id, h)| (id.clone(), h.get()))
            .collect();
        h.sort_by(|a, b| a.0.cmp(&b.0));
        h
    }

    /// Messages waiting for the orchestrator.
    pub fn queue_len(&self) -> usize {
        self.inner.store.lock().unwrap().queue_len().unwrap_or(0)
    }

    /// Runs `command` as `actor` through the executor on a blocking thread: how the daemon runs
    /// every command, whichever surface asked (chat, the orchestrator's tools, the HTTP API).
    /// The roster in use follows what the command changed; text sent to an agent is also posted
    /// in its comms room in `comms: matrix` mode (the mode as the roster has it now).
    pub async fn exec(&self, command: FleetCommand, actor: Actor) -> Result<Outcome, ExecError> {
        // The roster as the file is now (one stat when unchanged): the executor reads it.
        self.refresh_roster().await;
        // Posted before it is typed, so the agent's answer comes after it in the room.
        let posted = match &command {
            FleetCommand::Send(args) if mosaic_exec::authorize(&command, &actor).is_ok() => {
                let speaker = comms::speaker(&actor, &self.orchestrator_name());
                let text = args.text.join(" ");
                let line = format!("{speaker} → {}:\n{}", args.name, comms::literal(&text));
                self.comms_post(&args.name, &line)
                    .then(|| args.name.clone())
            }
            _ => None,
        };
        let executor = self.inner.executor.clone();
        let bridge = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            executor.exec_telling(&command, &actor, &|text| bridge.tell_rooms(text))
        })
        .await
        .unwrap_or_else(|e| Err(ExecError::Internal(Box::new(e))));
        self.refresh_roster().await;
        if let (Some(agent), Err(e)) = (posted, &result) {
            self.comms_post(&agent, &format!("(not delivered to {agent}: {e})"));
        }
        result
    }

    /// The markdown dialect of a connector's platform (CommonMark when it is unknown).
    fn markdown(&self, connector: &str) -> Markdown {
        self.inner
            .connectors
            .get(connector)
            .map_or(Markdown::CommonMark, |c| c.capabilities().markdown)
    }

    /// Runs a command for the orchestrator's own tools (`surface` is [`Surface::Orchestrator`]
    /// or [`Surface::Mcp`]) under its configured role, and audits it as `line`.
    pub async fn orchestrator_command(
        &self,
        command: FleetCommand,
        line: &str,
        surface: Surface,
    ) -> Result<Outcome, ExecError> {
        let role = self.view().settings.orchestrator_role;
        let name = self.orchestrator_name();
        let result = self.exec(command, Actor { surface, role }).await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e @ ExecError::Forbidden { .. }) => {
                format!("{e}, the orchestrator has {}", role.as_str())
            }
            Err(e) => format!("error: {e}"),
        };
        self.inner
            .audit
            .record("orchestrator", &name, "-", line, &outcome);
        result
    }
}

/// Exponential backoff: 100 ms doubling, at most 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(8))).min(Duration::from_secs(30))
}
