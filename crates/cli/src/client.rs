//! Talking to the running daemon (`mosaic up`) through its API.

use anyhow::{Context, Result, bail};
use mosaic_fleet::Paths;
use mosaic_fleet::paths::AGENT_TOKEN_ENV;
use serde_json::Value;
use std::io::BufRead;
use std::time::Duration;

/// Where the daemon writes its address, and its token.
pub const DAEMON_FILE: &str = "daemon.json";
/// The API token file (mode 0600).
pub const TOKEN_FILE: &str = "api.token";
/// The lock file a running daemon holds (an flock): one daemon per state directory.
pub const LOCK_FILE: &str = "daemon.lock";

/// A running daemon's API.
pub struct Daemon {
    url: String,
    token: String,
    agent: ureq::Agent,
}

/// The daemon could not be reached at all (as opposed to answering with an error).
#[derive(Debug)]
pub struct Unreachable(String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// The agent's own token when this runs inside an agent (its harness was given
/// [`AGENT_TOKEN_ENV`]): the daemon then grants what the agent's role may do, no more.
pub fn agent_token() -> Option<String> {
    std::env::var(AGENT_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

impl Daemon {
    /// The daemon of this state directory if one runs (it holds the lock), else `None`. A
    /// stale `daemon.json` is not a running daemon.
    pub fn running(paths: &Paths) -> Option<Result<Daemon>> {
        let file = std::fs::File::open(paths.state_dir.join(LOCK_FILE)).ok()?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Err(rustix::io::Errno::WOULDBLOCK) => Some(Daemon::locate(paths)),
            _ => None,
        }
    }

    /// Finds the daemon of this state directory.
    pub fn locate(paths: &Paths) -> Result<Daemon> {
        Self::locate_with(paths, None)
    }

    /// Finds the daemon, giving up on any call that takes longer than `limit` (a hook must never
    /// hang its harness on a daemon that accepts connections but does not answer).
    pub fn locate_quick(paths: &Paths, limit: Duration) -> Result<Daemon> {
        Self::locate_with(paths, Some(limit))
    }

    fn locate_with(paths: &Paths, limit: Option<Duration>) -> Result<Daemon> {
        let info = std::fs::read_to_string(paths.state_dir.join(DAEMON_FILE)).map_err(|_| {
            anyhow::anyhow!("the mosaic daemon is not running (start it with `mosaic up`)")
        })?;
        let info: Value =
            serde_json::from_str(&info).context("daemon.json is corrupt; restart `mosaic up`")?;
        let token = match agent_token() {
            Some(token) => token,
            None => std::fs::read_to_string(paths.state_dir.join(TOKEN_FILE))
                .context("cannot read the API token")?,
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(limit)
            .build()
            .into();
        Ok(Daemon {
            url: info["url"].as_str().unwrap_or_default().to_owned(),
            token: token.trim().to_owned(),
            agent,
        })
    }

    fn check(mut response: ureq::http::Response<ureq::Body>) -> Result<Value> {
        let status = response.status();
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]
                .as_str()
                .or(body["verdict"]["error"].as_str())
                .unwrap_or("request failed");
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok(body)
    }

    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        Unreachable(format!(
            "cannot reach the daemon at {}: {e} (is `mosaic up` running?)",
            self.url
        ))
        .into()
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        let request = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Authorization", self.auth());
        Self::check(request.send_json(&body).map_err(|e| self.unreachable(e))?)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value> {
        let request = self
            .agent
            .get(format!("{}{path}", self.url))
            .header("Authorization", self.auth());
        Self::check(request.call().map_err(|e| self.unreachable(e))?)
    }

    /// The event stream: calls `each` with every event until it returns false or the stream ends.
    pub fn events(&self, mut each: impl FnMut(Value) -> bool) -> Result<()> {
        let response = self
            .agent
            .get(format!("{}/v1/events", self.url))
            .header("Authorization", self.auth())
            .call()
            .map_err(|e| self.unreachable(e))?;
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line?;
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(event) = serde_json::from_str(data.trim_start())
                && !each(event)
            {
                break;
            }
        }
        Ok(())
    }
}
