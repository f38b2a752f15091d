//! The spool: `mosaic reply` while the daemon is down keeps the reply in `STATE/spool/`, and
//! `mosaic hook` keeps a worker's hook that carries its final answer in `STATE/spool/hooks/`;
//! the daemon posts both, oldest first, when it starts.

use anyhow::{Context, Result};
use mosaic_api::wire::ReplyRequest;
use mosaic_bridge::Bridge;
use mosaic_fleet::Paths;
use mosaic_fleet::paths::AgentToken;
use std::path::PathBuf;

fn dir(paths: &Paths) -> PathBuf {
    paths.state_dir.join("spool")
}

fn hooks_dir(paths: &Paths) -> PathBuf {
    dir(paths).join("hooks")
}

/// A hook kept while the daemon was away.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct KeptHook {
    /// The agent whose hook it is.
    pub agent: String,
    /// The hook's event, as reported.
    pub event: String,
    /// The harness's payload, with its call id ([`mosaic_bridge::HOOK_CALL_ID`]).
    pub payload: serde_json::Value,
}

/// Keeps `hook` in `STATE/spool/hooks/` (mode 0600); returns its file.
pub fn keep_hook(paths: &Paths, hook: &KeptHook) -> Result<PathBuf> {
    let path = spool_file(paths, &hooks_dir(paths), "hook")?;
    mosaic_fleet::paths::write_atomic(&path, &serde_json::to_string(hook)?)
        .with_context(|| format!("cannot keep the hook in {}", path.display()))?;
    Ok(path)
}

/// Relays every kept hook's final answer through `bridge`, oldest first (each once for its
/// call id, also when a copy reached the daemon too), then lets it go; one that cannot be read
/// is moved to `spool/failed/`.
pub fn relay_kept_hooks(paths: &Paths, bridge: &Bridge) {
    for file in spooled(&hooks_dir(paths)) {
        let kept = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<KeptHook>(&t).map_err(|e| e.to_string()));
        match kept {
            Ok(hook) => {
                let posted = bridge.relay_kept_answer(&hook.agent, &hook.payload);
                tracing::info!(file = %file.display(), agent = %hook.agent, posted, "relayed a kept hook's answer");
                let _ = std::fs::remove_file(&file);
            }
            Err(why) => move_to_failed(paths, &file, &why),
        }
    }
}

/// The `.json` files of spool directory `dir`, oldest first.
fn spooled(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// A new file in spool directory `dir` (made private), named so the oldest sorts first.
fn spool_file(paths: &Paths, dir: &std::path::Path, kind: &str) -> Result<PathBuf> {
    mosaic_fleet::create_private_dir(&paths.state_dir)?;
    mosaic_fleet::create_private_dir(&self::dir(paths))?;
    mosaic_fleet::create_private_dir(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    Ok(dir.join(format!("{kind}-{nanos:020}-{}.json", std::process::id())))
}

/// Moves spool file `file`, which cannot be used (`why`), to `spool/failed/`, and logs it.
fn move_to_failed(paths: &Paths, file: &std::path::Path, why: &str) {
    tracing::warn!(file = %file.display(), error = %why, "a kept reply or hook cannot be posted; moved to spool/failed");
    let failed = dir(paths).join("failed");
    let _ = mosaic_fleet::create_private_dir(&failed);
    if let Some(name) = file.file_name() {
        let _ = std::fs::rename(file, failed.join(name));
    }
}

/// What became of a reply.
pub enum Replied {
    /// The daemon queued it as this many messages.
    Queued(usize),
    /// The daemon is away: it was kept in this spool file, to be posted when it starts.
    Kept(PathBuf),
}

/// Posts `request` to the daemon (`daemon`, as located), or keeps it in the spool when the
/// daemon is not running, so nothing is lost: what `mosaic reply` does.
pub fn post_or_keep(
    paths: &Paths,
    daemon: Result<&crate::client::Daemon>,
    request: &ReplyRequest,
) -> Result<Replied> {
    let posted = daemon.and_then(|d| d.post("/v1/reply", serde_json::to_value(request)?));
    match posted {
        Ok(answer) => {
            let accepted: mosaic_api::wire::ReplyAccepted =
                serde_json::from_value(answer).context("the daemon's answer to a reply")?;
            Ok(Replied::Queued(accepted.queued_messages))
        }
        Err(e)
            if crate::client::Daemon::running(paths).is_none()
                && (e.downcast_ref::<crate::client::Unreachable>().is_some()
                    || !paths.state_dir.join(crate::client::DAEMON_FILE).exists()) =>
        {
            may_keep(paths)?;
            Ok(Replied::Kept(keep(paths, request)?))
        }
        Err(e) if e.is::<crate::client::NoAnswer>() => Err(e.context(
            "the reply may or may not have been queued: look at the room before replying again",
        )),
        Err(e) => Err(e),
    }
}

/// Whether this caller may keep a reply while the daemon is away: the owner, or the
/// orchestrator by its own token (the daemon refuses a worker's reply; it cannot ask it now).
pub fn may_keep(paths: &Paths) -> Result<()> {
    let Some(presented) = crate::client::agent_token() else {
        return Ok(());
    };
    let orchestrator = AgentToken::parse(&presented).is_some_and(|(name, secret)| {
        AgentToken::read(paths, name).is_some_and(|t| t.matches(secret))
            && mosaic_fleet::LiveRoster::open(paths.clone())
                .ok()
                .and_then(|live| live.get().agent(name).map(|a| a.role))
                == Some(mosaic_roster::Role::Orchestrator)
    });
    if !orchestrator {
        anyhow::bail!("only the orchestrator replies in chat; this agent's reply was not kept");
    }
    Ok(())
}

/// Keeps `request` in the spool (mode 0600); returns its file. A reply to a chat message that
/// was never received is refused now, not when the daemon starts.
pub fn keep(paths: &Paths, request: &ReplyRequest) -> Result<PathBuf> {
    if let Some(room) = &request.room {
        let roster = mosaic_roster::Roster::load(&paths.roster())
            .context("the roster says which rooms are bridged")?;
        let bridged = room.split_once(':').is_some_and(|(connector, id)| {
            mosaic_bridge::acl::Acl::from_roster(&roster).room_allowed(connector, id)
        });
        if !bridged {
            anyhow::bail!(
                "{room:?} is not a bridged room (CONNECTOR:ROOM, one the roster's connectors name, or local:local); the reply was not kept"
            );
        }
    }
    if let Some(to) = request.to {
        let db = mosaic_bridge::store::database(&paths.state_dir);
        let known = mosaic_bridge::store::knows_message(&db, to)
            .with_context(|| format!("cannot read {}", db.display()))?;
        if !known {
            anyhow::bail!(
                "there is no chat message #{to} to answer (the N of `[chat #N:…`); the reply was not kept"
            );
        }
    }
    let path = spool_file(paths, &dir(paths), "reply")?;
    mosaic_fleet::paths::write_atomic(&path, &serde_json::to_string(request)?)
        .with_context(|| format!("cannot keep the reply in {}", path.display()))?;
    Ok(path)
}

/// Posts every kept reply through `bridge`, oldest first. A reply that cannot be posted (its
/// room is gone, nobody wrote yet) is moved to `spool/failed/` and logged; nothing is dropped.
pub fn post_all(paths: &Paths, bridge: &Bridge) {
    for file in spooled(&dir(paths)) {
        let posted = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<ReplyRequest>(&t).map_err(|e| e.to_string()))
            // Kept by the orchestrator or the owner (the file does not say): as the
            // orchestrator's, it answers the turn.
            .and_then(|r| mosaic_api::post_reply(bridge, &r, true).map_err(|(_, why)| why));
        match posted {
            Ok(parts) => {
                tracing::info!(file = %file.display(), parts, "posted a kept reply");
                let _ = std::fs::remove_file(&file);
            }
            Err(why) => move_to_failed(paths, &file, &why),
        }
    }
}
