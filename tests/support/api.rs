//! The daemon as the adversarial tests drive it: `mosaic up` with a testchat connector, and a
//! client for its HTTP API.

use super::*;
use serde_json::{Value, json};
use std::process::Child;

/// A running `mosaic up`, killed (SIGKILL) when dropped.
pub struct Daemon(pub Child);

impl Daemon {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Kills it (`kill -9`) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A test may have stopped it (SIGSTOP): a stopped process is killed all the same.
        self.kill9();
    }
}

/// The daemon's HTTP API, with the owner's token.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub auth: String,
}

impl Api {
    /// `POST path` with `body`: its status and JSON answer, or the transport's error.
    pub fn try_post(&self, path: &str, body: Value) -> Result<(u16, Value), ureq::Error> {
        let mut r = http_agent()
            .post(format!("{}{path}", self.url))
            .header("Authorization", &self.auth)
            .send_json(body)?;
        let v = r.body_mut().read_json::<Value>().unwrap_or_default();
        Ok((r.status().as_u16(), v))
    }

    /// [`Api::try_post`] to a daemon that answers.
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.try_post(path, body).unwrap()
    }

    /// `POST path` that must succeed (2xx): its answer.
    pub fn ok(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body);
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }

    /// `GET path`, which must answer 200: its JSON answer.
    pub fn get(&self, path: &str) -> Value {
        let mut r = http_agent()
            .get(format!("{}{path}", self.url))
            .header("Authorization", &self.auth)
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.body_mut().read_json().unwrap()
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Value {
        self.get("/v1/health")
    }

    /// Posts a chat message in the local room under client id `id`: its queue id (-1 if none).
    pub fn chat(&self, id: &str, text: &str) -> i64 {
        let v = self.ok("/v1/chat", json!({ "id": id, "text": text }));
        v["verdict"]["queue_id"].as_i64().unwrap_or(-1)
    }

    /// Reports hook `event` of `agent`.
    pub fn hook(&self, agent: &str, event: &str) {
        self.ok("/v1/hooks", json!({ "event": event, "agent": agent }));
    }
}

/// Spawns `mosaic up` for sandbox `s` (testchat's token given, `env` added; its log appended to
/// `up.log` in the sandbox) without waiting for it.
pub fn spawn_up(s: &Sandbox, env: &[(&str, String)]) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.dir.path().join("up.log"))
        .unwrap();
    let child = s
        .command(&["up", "--listen", "127.0.0.1:0"])
        .env("TESTCHAT_TOKEN", "tc-secret")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon(child)
}

/// Waits until `daemon` (just spawned) says in `daemon.json` that its fleet started; its API.
pub fn started(s: &Sandbox, daemon: Daemon) -> (Daemon, Api) {
    let info = s.state().join("daemon.json");
    let pid = u64::from(daemon.pid());
    wait_for_secs("the daemon to start", DAEMON_START_SECS, || {
        serde_json::from_str::<Value>(&read_opt(&info))
            .is_ok_and(|v| v["pid"].as_u64() == Some(pid) && v["fleet"] == "started")
    });
    let info: Value = serde_json::from_str(&read(&info)).unwrap();
    let token = read(&s.state().join("api.token"));
    let api = Api {
        url: info["url"].as_str().unwrap().to_owned(),
        auth: format!("Bearer {}", token.trim()),
    };
    (daemon, api)
}

/// Starts `mosaic up` for sandbox `s` ([`spawn_up`]) and waits until its fleet started.
pub fn up_with(s: &Sandbox, env: &[(&str, String)]) -> (Daemon, Api) {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    started(s, spawn_up(s, env))
}

/// Starts `mosaic up` again after a crash, as a person or a supervisor does: the dead daemon's
/// `daemon.json` stays until the new one writes its own (the demo agent resends its hooks while
/// it is there).
pub fn restart(s: &Sandbox) -> (Daemon, Api) {
    started(s, spawn_up(s, &[]))
}

/// [`up_with`] with no more environment.
pub fn up(s: &Sandbox) -> (Daemon, Api) {
    up_with(s, &[])
}
