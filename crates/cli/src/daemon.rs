//! `mosaic up`: the daemon. Starts the fleet if needed, runs the bridge and its connectors, and
//! serves the API on loopback.

use crate::client::{DAEMON_FILE, TOKEN_FILE};
use anyhow::{Context, Result, bail};
use mosaic_api::{ApiState, serve};
use mosaic_bridge::local::LocalConnector;
use mosaic_bridge::{Bridge, BridgeConfig};
use mosaic_connector::Connector;
use mosaic_connector::registry::connector_type;
use mosaic_fleet::{Fleet, LiveRoster, Paths, create_private_dir, render};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn up(paths: &Paths, exe: PathBuf, listen: Option<String>, allow_remote: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(paths, exe, listen, allow_remote))
}

async fn run(
    paths: &Paths,
    exe: PathBuf,
    listen: Option<String>,
    allow_remote: bool,
) -> Result<()> {
    let live = LiveRoster::open(paths.clone())?;
    let fleet = Fleet::new(paths.clone(), (*live.get()).clone(), exe.clone());
    let addr = listen.unwrap_or_else(|| fleet.roster.bridge.api_listen.clone());
    if let Some(warning) = mosaic_api::check_listen(&addr, allow_remote)? {
        eprintln!("{warning}");
    }
    create_private_dir(&paths.state_dir)?;
    if let Some(pid) = running_pid(&paths.state_dir) {
        bail!(
            "a mosaic daemon (pid {pid}) already runs for {}",
            paths.state_dir.display()
        );
    }
    let outcomes = {
        let fleet = fleet.clone();
        tokio::task::spawn_blocking(move || fleet.start(&[], Duration::from_secs(30))).await??
    };
    print!("{}", render::outcomes(&outcomes));
    let token = ensure_token(&paths.state_dir)?;
    let mut connectors: Vec<Arc<dyn Connector>> = vec![Arc::new(LocalConnector)];
    for entry in &fleet.roster.connectors {
        // Roster validation has refused a type this build lacks.
        let Some(connector_type) = connector_type(&entry.kind) else {
            continue;
        };
        match connector_type.build(entry) {
            Ok(connector) => connectors.push(connector),
            Err(e) => eprintln!(
                "warning: the {} connector cannot start: {e}; its rooms are not bridged (see `mosaic fleet verify`)",
                entry.id()
            ),
        }
    }
    let bridge = Bridge::new(
        BridgeConfig {
            paths: paths.clone(),
            mosaic_exe: exe.clone(),
            roster: live,
        },
        connectors,
    )?;
    let tasks = bridge.start();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let info = serde_json::json!({ "url": url, "pid": std::process::id() });
    mosaic_fleet::paths::write_atomic(&paths.state_dir.join(DAEMON_FILE), &info.to_string())?;
    let orchestrator = fleet
        .roster
        .orchestrator()
        .map(|o| o.name.clone())
        .unwrap_or_default();
    println!(
        "mosaic up: fleet {} running; API on {url}; talk to {orchestrator} with `mosaic chat`",
        fleet.roster.fleet
    );
    let state = ApiState {
        bridge: bridge.clone(),
        paths: paths.clone(),
        mosaic_exe: exe,
        token: Arc::new(token),
    };
    serve(listener, state, shutdown_signal()).await?;
    bridge.shutdown();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    let _ = std::fs::remove_file(paths.state_dir.join(DAEMON_FILE));
    println!("mosaic up: stopped (the fleet keeps running; `mosaic fleet stop` stops it)");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The pid in daemon.json, if that process is alive.
fn running_pid(state: &Path) -> Option<u32> {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join(DAEMON_FILE)).ok()?).ok()?;
    let pid = info["pid"].as_u64()? as u32;
    (pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
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
