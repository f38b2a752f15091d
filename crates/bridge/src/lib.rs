//! The mosaic bridge: chat rooms on one side, the orchestrator's tmux pane on the other.
//!
//! Every inbound message is deduplicated by `(connector, message id)` and checked against the
//! [`acl`]. Commands in the fleet grammar (`/fleet …`, `!fleet …`) run through the fleet engine
//! and are answered in the same room; anything else from an allowed user is acknowledged at once,
//! queued durably, and typed into the orchestrator's pane in order when it is idle
//! ([`delivery`]). Replies go through a durable outbox retried with backoff while a connector is
//! down. Every command and refusal is written to the audit log.

pub mod acl;
pub mod activity;
pub mod audit;
pub mod delivery;
pub mod events;
pub mod local;
pub mod split;
pub mod store;

use crate::acl::{Acl, LOCAL, RateLimiter, TALK_ROLE, needs_confirmation};
use crate::activity::{Activity, HookState};
use crate::audit::AuditLog;
use crate::delivery::{CONVERSATION_KEY, DeliveryWorker};
use crate::events::Event;
use crate::split::split_for;
use crate::store::{Accepted, Queueing, Store, now_ms};
use mosaic_connector::{
    Connector, Cursors, Health, HealthReporter, Inbound, Markdown, Outbound, ReplyTo, RunContext,
    Shutdown,
};
use mosaic_exec::{Actor, ExecError, Executor, Outcome, Surface, authorize, render};
use mosaic_fleet::{Fleet, FleetError, LiveRoster, Paths, Reload};
use mosaic_grammar::FleetCommand;
use mosaic_grammar::chat::{ChatInput, parse};
use mosaic_roster::{AclRole, BridgeSettings, Roster, runtime};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;

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

/// What the bridge takes from the roster in use, rebuilt on each change.
struct View {
    acl: Acl,
    settings: BridgeSettings,
    rate: Arc<RateLimiter>,
}

impl View {
    /// The view of `roster`, keeping `old`'s rate counts while the rate is unchanged.
    fn of(roster: &Roster, old: Option<&View>) -> View {
        let settings = roster.bridge.clone();
        let rate = match old {
            Some(v) if v.settings.rate_per_minute == settings.rate_per_minute => v.rate.clone(),
            _ => Arc::new(RateLimiter::new(settings.rate_per_minute)),
        };
        View {
            acl: Acl::from_roster(roster),
            settings,
            rate,
        }
    }
}

struct PendingConfirm {
    command: FleetCommand,
    line: String,
    inbound: Inbound,
    expires: Instant,
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
    store: Mutex<Store>,
    connectors: HashMap<String, Arc<dyn Connector>>,
    /// Each connector's health, as it reports it.
    health: HashMap<String, HealthReporter>,
    /// Each connector's live cursors (the last message taken per room).
    cursors: HashMap<String, watch::Sender<Vec<(String, String)>>>,
    /// Set to stop the connectors.
    shutdown: watch::Sender<bool>,
    events: broadcast::Sender<Event>,
    wake_delivery: Mutex<std::sync::mpsc::Sender<()>>,
    delivery_wake_rx: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    wake_outbox: Notify,
    activity: Arc<Activity>,
    confirmations: Mutex<HashMap<String, PendingConfirm>>,
    stop: Arc<AtomicBool>,
}

const CONFIRM_TTL: Duration = Duration::from_secs(120);

impl Bridge {
    /// Opens the bridge's database and audit log in the state directory.
    pub fn new(
        config: BridgeConfig,
        connectors: Vec<Arc<dyn Connector>>,
    ) -> Result<Bridge, BridgeError> {
        mosaic_fleet::create_private_dir(&config.paths.state_dir)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let db = config.paths.state_dir.join("bridge.db");
        let store = Store::open(&db)?;
        let mut cursors = HashMap::new();
        for c in &connectors {
            cursors.insert(c.id().to_owned(), watch::channel(store.cursors(c.id())?).0);
        }
        let audit = AuditLog::open(&config.paths.state_dir.join("audit.jsonl"))?;
        let (wake_tx, wake_rx) = std::sync::mpsc::channel();
        let roster = config.roster.get();
        let idle_prompt = roster
            .orchestrator()
            .and_then(|o| runtime(&o.runtime))
            .and_then(|r| r.idle_prompt);
        let view = View::of(&roster, None);
        Ok(Bridge {
            inner: Arc::new(Inner {
                activity: Arc::new(Activity::new(
                    idle_prompt,
                    Duration::from_secs(view.settings.busy_timeout_secs),
                )),
                view: RwLock::new(Arc::new(view)),
                roster: config.roster,
                executor: Executor::new(config.paths.clone(), config.mosaic_exe.clone()),
                paths: config.paths,
                exe: config.mosaic_exe,
                audit,
                db,
                store: Mutex::new(store),
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
                events: broadcast::channel(1024).0,
                wake_delivery: Mutex::new(wake_tx),
                delivery_wake_rx: Mutex::new(Some(wake_rx)),
                wake_outbox: Notify::new(),
                confirmations: Mutex::new(HashMap::new()),
                stop: Arc::new(AtomicBool::new(false)),
            }),
        })
    }

    /// Starts the delivery worker, the outbox and every connector. Returns the tasks; call
    /// [`Bridge::shutdown`] to stop them.
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
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
                delivered: delivered_tx,
            };
            tasks.push(tokio::task::spawn_blocking(move || worker.run()));
        }
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.outbox_loop().await }));
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.watch_agents().await }));
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.watch_roster().await }));
        for connector in self.inner.connectors.values() {
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
        let _ = self.inner.wake_delivery.lock().unwrap().send(());
    }

    /// The event stream.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Records a harness hook for the orchestrator.
    pub fn hook(&self, state: HookState) {
        self.inner.activity.hook(state);
        let label = match state {
            HookState::Busy => "busy",
            HookState::Idle => "idle",
        };
        let name = self.orchestrator_name();
        let _ = self.inner.events.send(Event::AgentState {
            name,
            state: label.into(),
        });
        let _ = self.inner.wake_delivery.lock().unwrap().send(());
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

    /// What the bridge takes from the roster in use.
    fn view(&self) -> Arc<View> {
        self.inner
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads `roster.yaml` if it changed: a valid roster is swapped in (ACL, rooms and
    /// settings with it) and announced; an invalid one is reported and the old one kept.
    async fn refresh_roster(&self) {
        let live = self.inner.roster.clone();
        let Ok(reload) = tokio::task::spawn_blocking(move || live.reload()).await else {
            return;
        };
        match reload {
            Reload::Unchanged => {}
            Reload::Changed(roster) => {
                let view = View::of(&roster, Some(&self.view()));
                *self.inner.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
                let _ = self.inner.events.send(Event::RosterChanged {
                    agents: roster.agents.iter().map(|a| a.name.clone()).collect(),
                });
            }
            Reload::Invalid(e) => {
                eprintln!("mosaic: {e}\nmosaic: keeping the last good roster until it is fixed");
                let _ = self.inner.events.send(Event::RosterInvalid {
                    problems: problem_lines(&e),
                });
            }
        }
    }

    /// Follows `roster.yaml`: one `stat` a second, a re-read when it changed.
    async fn watch_roster(&self) {
        while !self.inner.stop.load(Ordering::Relaxed) {
            self.refresh_roster().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
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

    async fn connector_loop(&self, connector: Arc<dyn Connector>) {
        let mut failures = 0u32;
        while !self.inner.stop.load(Ordering::Relaxed) {
            let (tx, mut rx) = mpsc::channel::<Inbound>(256);
            let me = self.clone();
            let forward = tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    me.accept(ev).await;
                }
            });
            let id = connector.id().to_owned();
            let health = self.inner.health[&id].clone();
            let ctx = RunContext {
                inbound: tx,
                cursors: Cursors::new(self.inner.cursors[&id].subscribe()),
                health: health.clone(),
                shutdown: Shutdown::from_receiver(self.inner.shutdown.subscribe()),
            };
            let result = connector.run(ctx).await;
            let _ = forward.await;
            if let Err(e) = &result {
                health.set(Health::Down(e.to_string()));
            }
            let delay = match result {
                Ok(()) => {
                    failures = 0;
                    Duration::from_millis(500)
                }
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    e.retry_after().unwrap_or_else(|| backoff(failures))
                }
                Err(e) => {
                    eprintln!(
                        "mosaic: connector {} stopped: {e} (fix its configuration and restart `mosaic up`)",
                        connector.id()
                    );
                    return;
                }
            };
            if self.inner.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Handles one inbound message: dedup, ACL, grammar, queue or answer.
    pub async fn accept(&self, inbound: Inbound) -> Verdict {
        let inner = &self.inner;
        let (conn, user, room) = (
            inbound.connector.clone(),
            inbound.user.clone(),
            inbound.room.clone(),
        );
        let input = parse(&inbound.text);
        let view = self.view();
        let line = match &input {
            ChatInput::Talk => "(talk)".to_owned(),
            _ => inbound.text.trim().to_owned(),
        };
        if !view.acl.room_allowed(&conn, &room) {
            let why = "ignored: room not bridged".to_owned();
            inner.audit.record(&conn, &user, &room, &line, &why);
            return Verdict::Ignored(why);
        }
        let role = view.acl.role(&conn, &user);
        let is_talk = matches!(input, ChatInput::Talk);
        let Some(role) = role else {
            // Deny by default; strangers get no answer, except to a native command, whose
            // platform shows "thinking" until one comes.
            let why = "refused: user not in the acl".to_owned();
            inner.audit.record(&conn, &user, &room, &line, &why);
            self.event_command(&inbound, &line, &why);
            if inbound.native_command {
                self.respond(&inbound, "you are not allowed to command this fleet (ask its admin to add you to the acl)");
            }
            return Verdict::Refused(why);
        };
        // The local user (an authenticated API client on this machine) is not rate limited.
        if conn != LOCAL && !view.rate.allow(&conn, &user) {
            let why = "rate-limited".to_owned();
            inner.audit.record(&conn, &user, &room, &line, &why);
            self.respond(
                &inbound,
                &format!(
                    "slow down: at most {} messages a minute; this one was not taken",
                    view.settings.rate_per_minute
                ),
            );
            return Verdict::Refused(why);
        }
        let accepted = match inner
            .store
            .lock()
            .unwrap()
            .accept(&inbound, Queueing::when(is_talk && role >= TALK_ROLE, role))
        {
            Ok(a) => a,
            Err(e) => {
                // Not stored, so not accepted: the platform (or API client) must deliver it again.
                eprintln!("mosaic: cannot store a message from {conn}/{room}: {e}");
                return Verdict::Failed(e.to_string());
            }
        };
        let Accepted::New { queued, ahead } = accepted else {
            return Verdict::Duplicate;
        };
        if !inbound.native_command
            && let Some(cursors) = inner.cursors.get(&conn)
        {
            cursors.send_modify(|points| match points.iter_mut().find(|(r, _)| *r == room) {
                Some(point) => point.1 = inbound.message_id.clone(),
                None => points.push((room.clone(), inbound.message_id.clone())),
            });
        }
        match input {
            ChatInput::Talk => {
                let Some(id) = queued else {
                    let why = format!(
                        "refused: talking to the orchestrator needs role {}",
                        TALK_ROLE.as_str()
                    );
                    inner.audit.record(&conn, &user, &room, &line, &why);
                    self.respond(&inbound, &format!("{why}; you are {}", role.as_str()));
                    return Verdict::Refused(why);
                };
                let _ = inner.wake_delivery.lock().unwrap().send(());
                let _ = inner.events.send(Event::MessageIn {
                    id,
                    connector: conn.clone(),
                    room: room.clone(),
                    user: user.clone(),
                    text: inbound.text.clone(),
                });
                self.ack(&inbound);
                if ahead >= view.settings.queue_notice {
                    self.respond(&inbound, &format!("the orchestrator is busy: your message is queued behind {ahead} others and will be delivered in order"));
                }
                Verdict::Queued { id, ahead }
            }
            ChatInput::Help(text) => {
                let help = render::chat(&Outcome::Help { text }, self.markdown(&conn), false);
                self.respond(&inbound, &help);
                inner.audit.record(&conn, &user, &room, &line, "ok");
                Verdict::Answered
            }
            ChatInput::Invalid(e) => {
                self.respond(&inbound, &format!("```\n{}\n```", e.message));
                inner
                    .audit
                    .record(&conn, &user, &room, &line, "error: invalid command");
                Verdict::Answered
            }
            ChatInput::Command(command) => self.command(inbound, role, *command, line).await,
        }
    }

    async fn command(
        &self,
        inbound: Inbound,
        role: AclRole,
        command: FleetCommand,
        line: String,
    ) -> Verdict {
        let inner = &self.inner;
        let (conn, user, room) = (
            inbound.connector.clone(),
            inbound.user.clone(),
            inbound.room.clone(),
        );
        let actor = Actor {
            surface: Surface::Chat {
                connector: conn.clone(),
                user: user.clone(),
            },
            role,
        };
        // Checked before any confirmation is asked for; the executor checks again.
        if let Err(refusal) = authorize(&command, &actor) {
            let why = refusal.to_string();
            inner.audit.record(&conn, &user, &room, &line, &why);
            self.event_command(&inbound, &line, &why);
            self.respond(&inbound, &format!("{why}; you are {}", role.as_str()));
            return Verdict::Refused(why);
        }
        let (command, line) = match command {
            FleetCommand::Confirm { code } => {
                let pending = {
                    let mut map = inner.confirmations.lock().unwrap();
                    map.retain(|_, p| p.expires > Instant::now());
                    match map.get(&code) {
                        Some(p) if p.inbound.connector == conn && p.inbound.user == user => {
                            map.remove(&code)
                        }
                        _ => None,
                    }
                };
                let Some(p) = pending else {
                    let why =
                        "error: no such confirmation (wrong code, someone else's, or expired)"
                            .to_owned();
                    inner.audit.record(&conn, &user, &room, &line, &why);
                    self.respond(&inbound, &why);
                    return Verdict::Answered;
                };
                (p.command, p.line)
            }
            command if needs_confirmation(&command) && conn != LOCAL => {
                let code = confirmation_code();
                let mut pending = inner.confirmations.lock().unwrap();
                pending.retain(|_, p| p.expires > Instant::now());
                pending.insert(
                    code.clone(),
                    PendingConfirm {
                        command,
                        line: line.clone(),
                        inbound: inbound.clone(),
                        expires: Instant::now() + CONFIRM_TTL,
                    },
                );
                drop(pending);
                inner
                    .audit
                    .record(&conn, &user, &room, &line, "awaiting confirmation");
                self.respond(&inbound, &format!("`{line}` cannot be undone. To go ahead, send `/fleet confirm {code}` within 2 minutes."));
                return Verdict::AwaitingConfirmation(code);
            }
            command => (command, line),
        };
        let json = render::wants_json(&command);
        let markdown = self.markdown(&conn);
        let result = self.exec(command, actor).await;
        self.refresh_roster().await;
        let (reply, outcome) = match result {
            Ok(done) => (render::chat(&done, markdown, json), "ok".to_owned()),
            Err(e) => (format!("error: {e}"), format!("error: {e}")),
        };
        inner.audit.record(&conn, &user, &room, &line, &outcome);
        self.event_command(&inbound, &line, &outcome);
        self.respond(&inbound, &reply);
        Verdict::Answered
    }

    /// Runs `command` through the executor on a blocking thread.
    async fn exec(&self, command: FleetCommand, actor: Actor) -> Result<Outcome, ExecError> {
        let executor = self.inner.executor.clone();
        tokio::task::spawn_blocking(move || executor.exec(&command, &actor))
            .await
            .unwrap_or_else(|e| Err(ExecError::Internal(Box::new(e))))
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
        self.refresh_roster().await;
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

    /// Posts `text` from the orchestrator: to `target`, or else to where the last delivered
    /// message came from. Split at the platform's limit. Returns how many messages were queued.
    pub fn reply(&self, text: &str, target: Option<Target>) -> Result<usize, String> {
        let text = text.trim_end();
        if text.is_empty() {
            return Err("nothing to send: the text is empty".into());
        }
        let target = match target {
            Some(t) => t,
            None => {
                let stored = self
                    .inner
                    .store
                    .lock()
                    .unwrap()
                    .get(CONVERSATION_KEY)
                    .map_err(|e| e.to_string())?;
                let stored = stored.ok_or("no conversation yet: nobody has written to the orchestrator; pass --room CONNECTOR:ROOM")?;
                serde_json::from_str(&stored).map_err(|e| e.to_string())?
            }
        };
        let Some(connector) = self.inner.connectors.get(&target.connector) else {
            return Err(format!("no connector {:?} is running", target.connector));
        };
        let view = self.view();
        if !view.acl.room_allowed(&target.connector, &target.room) {
            return Err(format!(
                "room {:?} of {} is not bridged",
                target.room, target.connector
            ));
        }
        let parts = split_for(text, &connector.capabilities());
        self.inner
            .store
            .lock()
            .unwrap()
            .enqueue_out(
                &target.connector,
                &target.room,
                target.thread.as_deref(),
                target.reply_to.as_ref(),
                &parts,
            )
            .map_err(|e| e.to_string())?;
        self.inner.wake_outbox.notify_one();
        Ok(parts.len())
    }

    /// Answers an inbound message in its room and thread.
    fn respond(&self, inbound: &Inbound, text: &str) {
        if let Err(e) = self.reply(text, Some(Target::answering(inbound))) {
            eprintln!(
                "mosaic: cannot answer in {}/{}: {e}",
                inbound.connector, inbound.room
            );
        }
    }

    fn ack(&self, inbound: &Inbound) {
        let Some(connector) = self.inner.connectors.get(&inbound.connector).cloned() else {
            return;
        };
        let (events, inbound) = (self.inner.events.clone(), inbound.clone());
        tokio::spawn(async move {
            for attempt in 1..=3u32 {
                match connector.ack(&inbound.room, &inbound.message_id).await {
                    Ok(()) => {
                        let _ = events.send(Event::Acked {
                            connector: inbound.connector,
                            room: inbound.room,
                            message_id: inbound.message_id,
                        });
                        return;
                    }
                    Err(e) if e.is_retryable() && attempt < 3 => {
                        tokio::time::sleep(e.retry_after().unwrap_or(backoff(attempt))).await
                    }
                    Err(_) => return,
                }
            }
        });
    }

    fn event_command(&self, inbound: &Inbound, line: &str, outcome: &str) {
        let _ = self.inner.events.send(Event::Command {
            connector: inbound.connector.clone(),
            user: inbound.user.clone(),
            command: line.to_owned(),
            outcome: outcome.to_owned(),
        });
    }

    /// While the orchestrator works on a delivered message, shows "typing" in its room (every 8 s,
    /// at most 2 minutes).
    async fn typing_loop(&self, mut delivered: mpsc::UnboundedReceiver<Inbound>) {
        while let Some(inbound) = delivered.recv().await {
            let Some(connector) = self.inner.connectors.get(&inbound.connector).cloned() else {
                continue;
            };
            let activity = self.inner.activity.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    if connector.typing(&inbound.room).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    if activity.is_idle() {
                        return;
                    }
                }
            });
        }
    }

    /// Emits an `agent_state` event whenever an agent's lifecycle state changes (one tmux call a
    /// second for the whole fleet).
    async fn watch_agents(&self) {
        let mut known: HashMap<String, String> = HashMap::new();
        let mut restarts: HashMap<String, Vec<Instant>> = HashMap::new();
        while !self.inner.stop.load(Ordering::Relaxed) {
            let fleet = self.fleet();
            let seen = tokio::task::spawn_blocking(move || fleet.ps().ok().map(|s| (fleet, s)))
                .await
                .ok()
                .flatten();
            if let Some((fleet, status)) = seen {
                let mut now: HashMap<String, String> = HashMap::new();
                for agent in status.agents {
                    let state = agent.state.as_str().to_owned();
                    if known.get(&agent.name) != Some(&state) {
                        let _ = self.inner.events.send(Event::AgentState {
                            name: agent.name.clone(),
                            state: state.clone(),
                        });
                        if agent.state == mosaic_fleet::AgentState::Dead {
                            self.apply_restart_policy(
                                &fleet,
                                &agent,
                                restarts.entry(agent.name.clone()).or_default(),
                            )
                            .await;
                        }
                    }
                    now.insert(agent.name, state);
                }
                for name in known.keys().filter(|n| !now.contains_key(*n)) {
                    let _ = self.inner.events.send(Event::AgentState {
                        name: name.clone(),
                        state: "removed".into(),
                    });
                }
                known = now;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Restarts an agent that died, as its `restart` policy says: `always`, `on-failure`
    /// (anything but exit status 0), or `never`. More than five restarts in five minutes is a
    /// crash loop: the agent is left dead and reported.
    async fn apply_restart_policy(
        &self,
        fleet: &Fleet,
        agent: &mosaic_fleet::AgentStatus,
        history: &mut Vec<Instant>,
    ) {
        use mosaic_roster::RestartPolicy;
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
        history.retain(|t| t.elapsed() < Duration::from_secs(300));
        if history.len() >= 5 {
            eprintln!(
                "mosaic: {} keeps dying (5 restarts in 5 minutes); leaving it dead (see `mosaic fleet logs {}`)",
                agent.name, agent.name
            );
            let _ = self.inner.events.send(Event::AgentState {
                name: agent.name.clone(),
                state: "crash-looping".into(),
            });
            return;
        }
        history.push(Instant::now());
        let (fleet, name) = (fleet.clone(), agent.name.clone());
        let started = tokio::task::spawn_blocking(move || {
            fleet.start(std::slice::from_ref(&name), mosaic_exec::START_WAIT)
        })
        .await;
        if let Ok(Ok(_)) = started {
            let _ = self.inner.events.send(Event::AgentState {
                name: agent.name.clone(),
                state: "restarted".into(),
            });
        }
    }

    async fn outbox_loop(&self) {
        let inner = &self.inner;
        while !inner.stop.load(Ordering::Relaxed) {
            let notified = inner.wake_outbox.notified();
            let pending = inner
                .store
                .lock()
                .unwrap()
                .pending_out(now_ms())
                .unwrap_or_default();
            let mut blocked: HashSet<String> = HashSet::new();
            for (p, due) in pending {
                if blocked.contains(&p.connector) {
                    continue;
                }
                if !due {
                    // Keep order per connector: later messages wait for this one.
                    blocked.insert(p.connector.clone());
                    continue;
                }
                let Some(connector) = inner.connectors.get(&p.connector).cloned() else {
                    let _ = inner
                        .store
                        .lock()
                        .unwrap()
                        .out_failed(p.id, "connector not running");
                    continue;
                };
                let rendered =
                    mosaic_connector::render::render(&p.text, connector.capabilities().markdown);
                let out = Outbound {
                    room: p.room.clone(),
                    text: rendered.text,
                    html: rendered.html,
                    reply_to: p.reply_to.clone(),
                    thread: p.thread.clone(),
                    key: format!("mosaic-out-{}", p.id),
                };
                match connector.send(&out).await {
                    Ok(platform_id) => {
                        let _ = inner.store.lock().unwrap().out_sent(p.id, &platform_id);
                        let _ = inner.events.send(Event::MessageOut {
                            id: p.id,
                            connector: p.connector,
                            room: p.room,
                            text: p.text,
                        });
                    }
                    Err(e) if e.is_retryable() => {
                        let delay = e.retry_after().unwrap_or_else(|| backoff(p.attempts + 1));
                        let _ = inner.store.lock().unwrap().out_retry(
                            p.id,
                            p.attempts + 1,
                            now_ms() + delay.as_millis() as i64,
                            &e.to_string(),
                        );
                        blocked.insert(p.connector);
                    }
                    Err(e) => {
                        eprintln!(
                            "mosaic: giving up on a message to {}/{}: {e}",
                            p.connector, p.room
                        );
                        let _ = inner.store.lock().unwrap().out_failed(p.id, &e.to_string());
                    }
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

/// Where a roster is wrong, one line each (`file:line:column: field: message`).
fn problem_lines(e: &FleetError) -> Vec<String> {
    match e {
        FleetError::Roster(r) if r.problems().is_some() => r
            .to_string()
            .lines()
            .skip(1)
            .map(|l| l.trim().to_owned())
            .collect(),
        e => vec![e.to_string()],
    }
}

/// Exponential backoff: 100 ms doubling, at most 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(8))).min(Duration::from_secs(30))
}

fn confirmation_code() -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:06x}", h.finish() & 0xff_ffff)
}
