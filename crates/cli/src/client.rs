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

/// How long a call waits for the daemon's answer (`MOSAIC_DAEMON_TIMEOUT`, in seconds, says
/// otherwise): a daemon that accepts connections but does not answer (stopped, wedged) must not
/// hang the command forever.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fleet command run by the daemon (`/v1/commands`) may take: it may start agents or
/// install a harness ([`mosaic_fleet::update::INSTALL_TIMEOUT`]).
pub const COMMAND_TIMEOUT: Duration =
    Duration::from_secs(mosaic_fleet::update::INSTALL_TIMEOUT.as_secs() + 60);

/// A running daemon's API.
pub struct Daemon {
    url: String,
    token: String,
    agent: ureq::Agent,
    /// How long a call waits for its answer.
    limit: Duration,
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

/// The daemon took the call but gave no answer in time: what was asked may or may not have been
/// done (unlike [`Unreachable`], where nothing reached it).
#[derive(Debug)]
pub struct NoAnswer(String);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoAnswer {}

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

    /// Finds the daemon of this state directory; its calls wait [`answer_timeout`] for an answer.
    pub fn locate(paths: &Paths) -> Result<Daemon> {
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
            .build()
            .into();
        Ok(Daemon {
            url: info["url"].as_str().unwrap_or_default().to_owned(),
            token: token.trim().to_owned(),
            agent,
            limit: answer_timeout(),
        })
    }

    /// Finds the daemon, giving up on any call that takes longer than `limit` (a hook must never
    /// hang its harness on a daemon that accepts connections but does not answer).
    pub fn locate_quick(paths: &Paths, limit: Duration) -> Result<Daemon> {
        Ok(Self::locate(paths)?.with_limit(limit))
    }

    /// The same daemon, its calls waiting at most `limit` for an answer.
    pub fn with_limit(self, limit: Duration) -> Daemon {
        Daemon { limit, ..self }
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
        match e {
            // The call reached the daemon (the kernel takes a connection for a stopped process)
            // and timed out after: it may have been done.
            ureq::Error::Timeout(t)
                if !matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect) =>
            {
                NoAnswer(format!(
                "the daemon at {} did not answer within {} s (stopped or stuck? `mosaic down` and `mosaic up` restart it)",
                self.url,
                self.limit.as_secs_f64()
            ))
            .into()
            }
            e => Unreachable(format!(
                "cannot reach the daemon at {}: {e} (is `mosaic up` running?)",
                self.url
            ))
            .into(),
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        let request = self
            .agent
            .post(format!("{}{path}", self.url))
            .config()
            .timeout_global(Some(self.limit))
            .build()
            .header("Authorization", self.auth());
        Self::check(request.send_json(&body).map_err(|e| self.unreachable(e))?)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value> {
        let request = self
            .agent
            .get(format!("{}{path}", self.url))
            .config()
            .timeout_global(Some(self.limit))
            .build()
            .header("Authorization", self.auth());
        Self::check(request.call().map_err(|e| self.unreachable(e))?)
    }

    /// The event stream (as long as it lasts: no time limit): calls `each` with every event until it returns false or the stream ends.
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

/// How long a call waits for the daemon's answer: [`ANSWER_TIMEOUT`], or
/// `MOSAIC_DAEMON_TIMEOUT` seconds.
/// A value that is not a positive number of seconds is ignored; one over a day is a day.
pub fn answer_timeout() -> Duration {
    std::env::var("MOSAIC_DAEMON_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s.min(LONGEST_ANSWER.as_secs_f64())).ok())
        .unwrap_or(ANSWER_TIMEOUT)
}

/// The longest [`answer_timeout`] (a larger one overflows the clock's arithmetic).
const LONGEST_ANSWER: Duration = Duration::from_secs(24 * 60 * 60);
