//! A bridge running in the test process over a real fleet (real tmux, demo agents), with a fake
//! chat platform playing Telegram, and the real API on 127.0.0.1:0 so the `mosaic` binary's
//! `reply` and `mcp` talk to it as they would to `mosaic up`.

use super::{MOSAIC, Sandbox, wait_for};
use mosaic_bridge::local::LocalConnector;
use mosaic_bridge::{Bridge, BridgeConfig};
use mosaic_connector::fake::FakeConnector;
use mosaic_fleet::{LiveRoster, Paths};
use std::sync::Arc;

pub const ROOM: &str = "room-1";
pub const LIMIT: usize = 300;

pub struct BridgeHarness {
    pub s: Sandbox,
    /// Stops the supervisor and the roster watcher.
    stop: Arc<std::sync::atomic::AtomicBool>,
    stop_roster: tokio::sync::watch::Sender<bool>,
    pub fake: Arc<FakeConnector>,
    pub bridge: Bridge,
    pub url: String,
    pub token: String,
    pub rt: tokio::runtime::Runtime,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl BridgeHarness {
    /// A `general` fleet with a Telegram-like fake connector on `room-1` and users
    /// `admin-1`, `op-1` and `viewer-1`.
    pub fn new(extra_bridge_settings: &str) -> BridgeHarness {
        Self::with_seed(extra_bridge_settings, |_| {})
    }

    /// Like [`BridgeHarness::new`], running `seed` on the started fleet before the bridge starts
    /// (to leave state as a crashed daemon would).
    pub fn with_seed(extra_bridge_settings: &str, seed: impl FnOnce(&Sandbox)) -> BridgeHarness {
        let s = Sandbox::new();
        s.init("general");
        let mut roster = std::fs::read_to_string(s.roster_path()).unwrap();
        roster.push_str(&format!(
            "connectors:\n- type: testchat\n  id: telegram\n  dir: /nonexistent\n  rooms: [\"{ROOM}\"]\n  token: {{env: FAKE_TELEGRAM_TOKEN}}\nacl:\n- {{connector: telegram, user: admin-1, role: admin}}\n- {{connector: telegram, user: op-1, role: operator}}\n- {{connector: telegram, user: viewer-1, role: viewer}}\n{extra_bridge_settings}"
        ));
        std::fs::write(s.roster_path(), roster).unwrap();
        s.ok(&["fleet", "start"]);
        seed(&s);
        let paths = Paths {
            config_dir: s.config(),
            state_dir: s.state(),
        };
        let roster = LiveRoster::open(paths.clone()).unwrap();
        let supervisor = mosaic_fleet::Supervisor::new(roster.clone(), MOSAIC.into());
        let fake = Arc::new(FakeConnector::new("telegram", LIMIT));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bridge = Bridge::new(
            BridgeConfig {
                paths: paths.clone(),
                mosaic_exe: MOSAIC.into(),
                roster,
            },
            vec![fake.clone(), Arc::new(LocalConnector::new(&paths))],
        )
        .unwrap();
        let token = format!("test-token-{}", std::process::id());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The daemon's components: the bridge, the fleet supervisor and the roster watcher.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop_roster, roster_stopped) = tokio::sync::watch::channel(false);
        let url = rt.block_on(async {
            bridge.start();
            let (b, stopped) = (bridge.clone(), stop.clone());
            tokio::task::spawn_blocking(move || supervisor.run(&stopped, |c| b.announce(c.into())));
            let b = bridge.clone();
            tokio::spawn(async move { b.watch_roster(roster_stopped).await });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let state = mosaic_api::ApiState {
                bridge: bridge.clone(),
                paths,
                token: Arc::new(token.clone()),
            };
            tokio::spawn(mosaic_api::serve(listener, state, async move {
                let _ = rx.await;
            }));
            url
        });
        std::fs::write(
            s.state().join("daemon.json"),
            serde_json::json!({ "url": url, "pid": std::process::id() }).to_string(),
        )
        .unwrap();
        std::fs::write(s.state().join("api.token"), &token).unwrap();
        BridgeHarness {
            s,
            stop,
            stop_roster,
            fake,
            bridge,
            url,
            token,
            rt,
            shutdown: Some(tx),
        }
    }

    /// A user posts in the bridged room (or another one).
    pub fn post(&self, user: &str, text: &str) -> String {
        self.fake.post(ROOM, user, text)
    }

    /// Texts the bridge posted in the room, oldest first.
    pub fn sent(&self) -> Vec<String> {
        self.fake
            .sent()
            .into_iter()
            .filter(|m| m.room == ROOM)
            .map(|m| m.text)
            .collect()
    }

    /// Waits for a posted message containing `needle` and returns it.
    pub fn wait_sent(&self, needle: &str) -> String {
        wait_for(&format!("a reply containing {needle:?}"), || {
            self.sent().iter().any(|t| t.contains(needle))
        });
        self.sent()
            .into_iter()
            .find(|t| t.contains(needle))
            .unwrap()
    }

    /// The audit log's records.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.s.state().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for BridgeHarness {
    fn drop(&mut self) {
        self.bridge.shutdown();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.stop_roster.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The code in a "send `/fleet confirm CODE`" answer.
pub fn confirm_code(ask: &str) -> String {
    ask.split("/fleet confirm ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("a confirmation code")
        .to_owned()
}
