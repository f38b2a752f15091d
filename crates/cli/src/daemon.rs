//! `mosaic up`: the daemon, a set of components started in order and stopped in reverse: the
//! bridge (connectors, outbox, delivery), the fleet supervisor, the roster watcher and the API
//! server. Start-up checks come first: one daemon per state directory (an flock on
//! `daemon.lock`), then the API address is bound; only then is the fleet started, so a daemon
//! that cannot run never touches the fleet, prints why and exits non-zero.

use crate::client::{DAEMON_FILE, LOCK_FILE, TOKEN_FILE};
use anyhow::{Context, Result, bail};
use mosaic_api::{ApiState, serve};
use mosaic_bridge::local::LocalConnector;
use mosaic_bridge::{Bridge, BridgeConfig};
use mosaic_connector::Connector;
use mosaic_connector::registry::connector_type;
use mosaic_fleet::paths::{FileLock, try_lock_exclusive};
use mosaic_fleet::{Fleet, LiveRoster, Paths, Supervisor, create_private_dir, render};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long each component may take to stop before it is abandoned (the whole daemon stops
/// well within 5 s).
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn up(paths: &Paths, exe: PathBuf, listen: Option<String>, allow_remote: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(paths, exe, listen, allow_remote));
    // Blocking work still under way (a fleet start, a tmux call) must not keep the process.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// A running part of the daemon: how to ask it to stop, and its tasks.
struct Component {
    name: &'static str,
    stop: Box<dyn FnOnce() + Send>,
    tasks: Vec<JoinHandle<()>>,
}

impl Component {
    /// Asks it to stop and waits for its tasks ([`STOP_GRACE`] at most).
    async fn stop(self) {
        (self.stop)();
        let all = async {
            for t in self.tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
            tracing::warn!(component = self.name, "did not stop in time; leaving it");
        }
    }
}

async fn run(
    paths: &Paths,
    exe: PathBuf,
    listen: Option<String>,
    allow_remote: bool,
) -> Result<()> {
    let shutdown = shutdown_signal()?;
    create_private_dir(&paths.state_dir)?;
    let _lock = lock(&paths.state_dir)?;
    let live = LiveRoster::open(paths.clone())?;
    let fleet = Fleet::new(paths.clone(), (*live.get()).clone(), exe.clone());
    // `ps` and the rest ask tmux through a control client on the orchestrator's session (kept
    // by the delivery worker already), not a tmux process each time.
    if let Some(orchestrator) = fleet.roster.orchestrator() {
        fleet.tmux.query_through(&orchestrator.name);
    }
    let addr = listen.unwrap_or_else(|| fleet.roster.bridge.api_listen.clone());
    if let Some(warning) = mosaic_api::check_listen(&addr, allow_remote)? {
        eprintln!("{warning}");
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr:?}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let token = ensure_token(&paths.state_dir)?;
    let bridge = Bridge::new(
        BridgeConfig {
            paths: paths.clone(),
            mosaic_exe: exe.clone(),
            roster: live.clone(),
        },
        connectors(&fleet),
    )?;
    // Started in this order, stopped in the reverse one.
    let bridge_running = bridge_component(&bridge);
    // Replies `mosaic reply` kept while the daemon was away (the lock is held: no new ones),
    // and the final answers of workers' hooks `mosaic hook` kept.
    crate::spool::post_all(paths, &bridge);
    crate::spool::relay_kept_hooks(paths, &bridge);
    let mut components = vec![bridge_running];
    // The API is up before any agent starts: an agent's hooks, `mosaic reply` and MCP tools
    // reach it from its first moment.
    let state = ApiState {
        bridge: bridge.clone(),
        paths: paths.clone(),
        token: Arc::new(token),
    };
    let (api, api_stop) = api_component(listener, state);
    components.push(api);
    // `fleet` says whether the daemon's start of the fleet is done (scripts can wait for it).
    let info = |fleet: &str| {
        serde_json::json!({ "url": url, "pid": std::process::id(), "fleet": fleet }).to_string()
    };
    let info_file = paths.state_dir.join(DAEMON_FILE);
    mosaic_fleet::paths::write_atomic(&info_file, &info("starting"))?;
    let outcomes = {
        let fleet = fleet.clone();
        let started = tokio::task::spawn_blocking(move || {
            // A harness update running now stops and starts agents itself: its end comes first.
            if mosaic_fleet::update::in_progress(&fleet.paths) {
                tracing::info!("a harness update is running; the fleet starts when it ends");
                while mosaic_fleet::update::in_progress(&fleet.paths) {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            fleet.start(&[], Duration::from_secs(30))
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(anyhow::Error::from));
        match started {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let _ = std::fs::remove_file(paths.state_dir.join(DAEMON_FILE));
                return Err(e);
            }
        }
    };
    print!("{}", render::outcomes(&outcomes));
    mosaic_fleet::paths::write_atomic(&info_file, &info("started"))?;
    // The supervisor watches the fleet once it has been started.
    components.push(supervisor_component(&bridge, &live, &exe));
    components.push(roster_component(&bridge));
    components.push(update_check_component(&bridge, &live, paths));
    components.push(prune_component(&live, paths));
    let orchestrator = fleet
        .roster
        .orchestrator()
        .map(|o| o.name.clone())
        .unwrap_or_default();
    println!(
        "mosaic up: fleet \"{}\" running; API on {url}; talk to {orchestrator} with `mosaic chat`",
        fleet.roster.fleet
    );
    tracing::info!(
        fleet = %fleet.roster.fleet,
        url = %url,
        pid = std::process::id(),
        agent = %orchestrator,
        "daemon started"
    );
    tokio::select! {
        _ = shutdown => {}
        // The API server failed: stop everything.
        _ = api_stop => {}
    }
    tracing::info!("daemon stopping");
    // Event streams end with the bridge: no client keeps the API server (or the daemon) alive.
    bridge.shutdown();
    while let Some(c) = components.pop() {
        c.stop().await;
    }
    let _ = std::fs::remove_file(paths.state_dir.join(DAEMON_FILE));
    tracing::info!("daemon stopped");
    println!("mosaic up: stopped (the fleet keeps running; `mosaic fleet stop` stops it)");
    Ok(())
}

/// Takes the state directory's daemon lock (an flock, released by the kernel when this process
/// ends, however it ends), or says which daemon holds it.
fn lock(state: &Path) -> Result<FileLock> {
    let path = state.join(LOCK_FILE);
    // A client checking whether a daemon runs holds the lock for an instant: try for a while.
    match try_lock_exclusive(&path, Duration::from_millis(500))
        .with_context(|| format!("cannot lock {}", path.display()))?
    {
        Some(lock) => Ok(lock),
        None => {
            let pid = std::fs::read_to_string(state.join(DAEMON_FILE))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["pid"].as_u64())
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default();
            bail!(
                "a mosaic daemon{pid} already runs for {}; stop it first",
                state.display()
            )
        }
    }
}

/// The local connector and every roster connector this build can start.
fn connectors(fleet: &Fleet) -> Vec<Arc<dyn Connector>> {
    let mut connectors: Vec<Arc<dyn Connector>> = vec![Arc::new(LocalConnector::new(&fleet.paths))];
    for entry in &fleet.roster.connectors {
        // Roster validation has refused a type this build lacks.
        let Some(connector_type) = connector_type(&entry.kind) else {
            continue;
        };
        let users: Vec<String> = fleet
            .roster
            .acl
            .iter()
            .filter(|a| a.connector == entry.id())
            .map(|a| a.user.clone())
            .collect();
        match connector_type.build(entry, &fleet.paths.state_dir, &users) {
            Ok(connector) => connectors.push(connector),
            Err(e) => tracing::warn!(
                connector = %entry.id(),
                error = %e,
                "the connector cannot start; its rooms are not bridged (see `mosaic fleet verify`)"
            ),
        }
    }
    connectors
}

/// The bridge: connectors, outbox, delivery.
fn bridge_component(bridge: &Bridge) -> Component {
    let tasks = bridge.start();
    let bridge = bridge.clone();
    Component {
        name: "bridge",
        stop: Box::new(move || bridge.shutdown()),
        tasks,
    }
}

/// The fleet supervisor, reporting through the bridge's event stream.
fn supervisor_component(bridge: &Bridge, live: &LiveRoster, exe: &Path) -> Component {
    let supervisor = Supervisor::new(live.clone(), exe.to_owned());
    let stop = Arc::new(AtomicBool::new(false));
    let (bridge, stopped) = (bridge.clone(), stop.clone());
    let task = tokio::task::spawn_blocking(move || {
        supervisor.run(&stopped, |change| bridge.supervisor_change(change))
    });
    Component {
        name: "supervisor",
        stop: Box::new(move || stop.store(true, Ordering::Relaxed)),
        tasks: vec![task],
    }
}

/// How long after start-up the first update check runs (the fleet settles first).
const FIRST_UPDATE_CHECK: Duration = Duration::from_secs(60);

/// The update check (`update: {check: daily}` in the roster): asks for newer harness versions
/// and tells the chat rooms once per new version. Updating stays an explicit act.
fn update_check_component(bridge: &Bridge, live: &LiveRoster, paths: &Paths) -> Component {
    let stop = Arc::new(AtomicBool::new(false));
    let (bridge, live, paths, stopped) =
        (bridge.clone(), live.clone(), paths.clone(), stop.clone());
    let task = tokio::task::spawn_blocking(move || {
        let mut next = std::time::Instant::now() + first_update_check();
        while !stopped.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if std::time::Instant::now() < next {
                continue;
            }
            let roster = live.get();
            let Some(every) = roster.update.check.every() else {
                next = std::time::Instant::now() + Duration::from_secs(60);
                continue;
            };
            for line in mosaic_fleet::versions::announcements(&paths, &roster) {
                tracing::info!(announcement = %line, "a newer harness version");
                bridge.tell_rooms(&line);
            }
            next = std::time::Instant::now() + every;
        }
    });
    Component {
        name: "update check",
        stop: Box::new(move || stop.store(true, Ordering::Relaxed)),
        tasks: vec![task],
    }
}

/// The first update check's delay: [`FIRST_UPDATE_CHECK`], or `MOSAIC_FIRST_UPDATE_CHECK_SECS`
/// (tests).
fn first_update_check() -> Duration {
    std::env::var("MOSAIC_FIRST_UPDATE_CHECK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(FIRST_UPDATE_CHECK, Duration::from_secs)
}

/// How often the bridge's database is pruned (the first time when the daemon starts).
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Prunes the bridge's database of what it handled more than `bridge.history_days` ago (see
/// [`mosaic_bridge::store::Store::prune`]): when the daemon starts, then once a day. Its own
/// connection, small transactions: the bridge's writes hardly wait.
fn prune_component(live: &LiveRoster, paths: &Paths) -> Component {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (live, db) = (
        live.clone(),
        mosaic_bridge::store::database(&paths.state_dir),
    );
    let task = tokio::spawn(async move {
        loop {
            let days = live.get().bridge.history_days;
            let db = db.clone();
            let pruned = tokio::task::spawn_blocking(move || {
                let store = mosaic_bridge::store::Store::open(&db)?;
                store.relax_durability()?;
                let day: i64 = 24 * 60 * 60 * 1000;
                store.prune(mosaic_bridge::store::now_ms() - i64::from(days) * day)
            })
            .await;
            match pruned {
                Ok(Ok(p)) => tracing::info!(
                    days,
                    seen = p.seen,
                    messages = p.messages,
                    replies = p.replies,
                    "pruned the bridge's database"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune the bridge's database"),
                Err(e) => tracing::warn!(error = %e, "the bridge's database pruning failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = stopped.changed() => return,
            }
        }
    });
    Component {
        name: "database pruning",
        stop: Box::new(move || {
            stop.send_replace(true);
        }),
        tasks: vec![task],
    }
}

/// The roster watcher: `roster.yaml` changes reach the bridge's ACL and settings.
fn roster_component(bridge: &Bridge) -> Component {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let bridge = bridge.clone();
    let task = tokio::spawn(async move { bridge.watch_roster(stopped).await });
    Component {
        name: "roster watcher",
        stop: Box::new(move || {
            stop.send_replace(true);
        }),
        tasks: vec![task],
    }
}

/// The API server, and a future that resolves if it stops on its own (it failed).
fn api_component(
    listener: tokio::net::TcpListener,
    state: ApiState,
) -> (Component, tokio::sync::oneshot::Receiver<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ended, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listener, state, async move {
            let _ = stopped.await;
        })
        .await
        {
            tracing::error!(error = %e, "the API server failed");
        }
        let _ = ended.send(());
    });
    let component = Component {
        name: "API server",
        stop: Box::new(move || {
            let _ = stop.send(());
        }),
        tasks: vec![task],
    };
    (component, ended_rx)
}

/// SIGTERM or SIGINT, caught from the moment this is called (a signal during start-up is kept
/// and acted on once the fleet has started).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Reads the API token, creating a random one (mode 0600) the first time.
fn ensure_token(state: &Path) -> Result<String> {
    let path = state.join(TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    let token = mosaic_fleet::paths::random_hex(32)?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    use std::io::Write;
    f.write_all(token.as_bytes())?;
    Ok(token)
}
