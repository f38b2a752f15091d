//! The bridge half of the compliance suite (feature `test-util`): the connector under test, run
//! by the real bridge against its platform, must serve what users expect of every platform —
//! strangers refused, native commands answered (a refusal too), replies split to the limit and
//! rendered for the platform's markdown, a rate-limited post retried after the platform's delay,
//! a rejected post not retried, and nothing lost across a bridge restart.
//!
//! A connector crate implements [`BridgedPlatform`] for its fake platform (on top of the
//! connector-level [`Platform`]) and calls [`run_bridged_suite`]. The first half
//! ([`mosaic_connector::compliance::run_suite`]) drives the connector alone.

use crate::events::Event;
use crate::split::split_for;
use crate::{Bridge, BridgeConfig, Target};
use async_trait::async_trait;
use mosaic_connector::compliance::Platform;
use mosaic_connector::fake::FakePlatform;
use mosaic_connector::render::render;
use mosaic_connector::{Connector, ErrorKind, ReplyTo};
use mosaic_fleet::{LiveRoster, Paths};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How the platform refuses the next post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// "Slow down": a rate limit asking to wait this long (HTTP 429 with `retry_after`).
    RateLimited(Duration),
    /// A request the platform will never accept (HTTP 400).
    Rejected,
}

/// The platform side of a connector under test, as the bridge sees it.
#[async_trait]
pub trait BridgedPlatform: Platform {
    /// Registers the connector's type, so its roster entry is understood.
    fn register(&self);
    /// The connector's roster entry (a YAML flow mapping) bridging [`Platform::room`]; its id
    /// is the connector's id.
    fn roster_entry(&self) -> String;
    /// A user of the platform the roster does not know.
    fn stranger(&self) -> String;
    /// Makes the platform refuse the next post of a message.
    async fn refuse_next_post(&self, refusal: Refusal);
    /// The user runs the native command `line` (`/fleet …`) in `room`; `None` when the
    /// platform has no native commands.
    async fn post_native(&self, room: &str, user: &str, line: &str) -> Option<String>;
    /// The answers to native commands given in `room`, oldest first.
    async fn native_answers(&self, room: &str) -> Vec<String>;
}

#[async_trait]
impl BridgedPlatform for FakePlatform {
    fn register(&self) {
        mosaic_connector::registry::register(&mosaic_connector::fake::TYPE);
    }
    fn roster_entry(&self) -> String {
        format!("{{type: fake, id: {}, rooms: [room-1]}}", self.0.id())
    }
    fn stranger(&self) -> String {
        "stranger-1".into()
    }
    async fn refuse_next_post(&self, refusal: Refusal) {
        let kind = match refusal {
            Refusal::RateLimited(retry_after) => ErrorKind::RateLimited { retry_after },
            Refusal::Rejected => ErrorKind::Fatal,
        };
        self.0.fail_next_sends(1, kind);
    }
    async fn post_native(&self, _room: &str, _user: &str, _line: &str) -> Option<String> {
        None
    }
    async fn native_answers(&self, _room: &str) -> Vec<String> {
        Vec::new()
    }
}

const WAIT: Duration = Duration::from_secs(15);
static SEQ: AtomicU32 = AtomicU32::new(0);

struct Running {
    bridge: Bridge,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    events: broadcast::Receiver<Event>,
}

impl Running {
    async fn start(paths: &Paths, connector: Arc<dyn Connector>) -> Running {
        let bridge = Bridge::new(
            BridgeConfig {
                paths: paths.clone(),
                mosaic_exe: "/nonexistent/mosaic".into(),
                roster: LiveRoster::open(paths.clone()).expect("the suite's roster is valid"),
            },
            vec![connector],
        )
        .expect("the bridge opens its state");
        let events = bridge.events();
        let tasks = bridge.start();
        Running {
            bridge,
            tasks,
            events,
        }
    }

    async fn stop(mut self) {
        self.bridge.shutdown();
        for t in std::mem::take(&mut self.tasks) {
            let _ = tokio::time::timeout(WAIT, t).await;
        }
    }

    /// Waits for the message `text` to be taken for the orchestrator.
    async fn taken(&mut self, text: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("rule: {text:?} reaches the bridge"));
            if let Ok(Event::MessageIn { text: t, .. }) = ev
                && t == text
            {
                return;
            }
        }
    }
}

/// A failed rule must not leave the bridge's blocking delivery worker running (the test's
/// runtime would wait for it forever).
impl Drop for Running {
    fn drop(&mut self) {
        self.bridge.shutdown();
    }
}

async fn until(rule: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "rule: {rule}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The suite's private tmux socket: whatever the bridge's workers left there (a server, a stale
/// socket file) is removed when the suite ends, passed or failed.
struct Socket(String);

impl Drop for Socket {
    fn drop(&mut self) {
        let tmux = mosaic_tmux::Tmux::new(self.0.clone());
        let _ = tmux.kill_server();
        // The bridge is stopped: nothing can be starting a server here, so a socket file nobody
        // listens on is stale.
        let path = tmux.socket_path();
        if std::os::unix::net::UnixStream::connect(&path).is_err() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn write_roster(paths: &Paths, platform: &dyn BridgedPlatform, id: &str) -> Socket {
    let socket = format!(
        "mosaic-compliance-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let roster = format!(
        "version: 1\nfleet: compliance\ntmux:\n  socket: {socket}\nagents:\n- {{name: mos, role: orchestrator, runtime: demo, restart: never}}\nconnectors:\n- {}\nacl:\n- {{connector: {id}, user: '{}', role: admin}}\n",
        platform.roster_entry(),
        platform.user()
    );
    std::fs::create_dir_all(&paths.config_dir).expect("config dir");
    std::fs::write(paths.roster(), roster).expect("roster written");
    Socket(socket)
}

/// Runs every bridged rule; panics with a message naming the failed rule.
pub async fn run_bridged_suite(platform: &dyn BridgedPlatform) {
    platform.register();
    let dir = tempfile::tempdir().expect("a temp dir");
    let paths = Paths {
        config_dir: dir.path().join("config"),
        state_dir: dir.path().join("state"),
    };
    let connector = platform.connector();
    let id = connector.id().to_owned();
    let caps = connector.capabilities();
    let _socket = write_roster(&paths, platform, &id);
    let (room, user) = (platform.room(), platform.user());
    let mut running = Running::start(&paths, connector.clone()).await;
    until("the connector reports Up under the bridge", async || {
        running
            .bridge
            .health()
            .iter()
            .any(|(c, h)| *c == id && *h == mosaic_connector::Health::Up)
    })
    .await;

    // An allowed user's message is taken (and acknowledged on the platform).
    let first = platform.post(&room, &user, "compliance: hello").await;
    running.taken("compliance: hello").await;
    until("an allowed user's message is acknowledged", async || {
        platform.acked(&room, &first).await
    })
    .await;

    // A stranger is refused without an answer, and audited.
    let before = platform.posted(&room).await.len();
    platform
        .post(&room, &platform.stranger(), "compliance: let me in")
        .await;
    let audit = paths.state_dir.join("audit.jsonl");
    until("a stranger is audited as refused", async || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .contains("refused: user not in the acl")
    })
    .await;
    assert_eq!(
        platform.posted(&room).await.len(),
        before,
        "rule: a stranger gets no answer to a typed message"
    );

    // A native command is answered through the platform's own channel; so is a refusal.
    if let Some(_native) = platform.post_native(&room, &user, "/fleet ps").await {
        until("a native command is answered", async || {
            platform
                .native_answers(&room)
                .await
                .iter()
                .any(|a| a.contains("mos") && a.contains("orchestrator"))
        })
        .await;
        platform
            .post_native(&room, &platform.stranger(), "/fleet ps")
            .await;
        until(
            "a stranger's native command is answered with a refusal",
            async || {
                platform
                    .native_answers(&room)
                    .await
                    .iter()
                    .any(|a| a.contains("not allowed"))
            },
        )
        .await;
    }

    let target = Target {
        connector: id.clone(),
        room: room.clone(),
        thread: None,
        reply_to: Some(ReplyTo::Message(first.clone())),
    };

    // A long reply with markdown arrives split to the limit, rendered for the platform, in order.
    let line = "**bold** and `code` - v1.2 (done)!\n";
    let long = line.repeat(caps.max_message_len * 5 / 2 / line.len() + 1);
    // The bridge sends a reply without its trailing whitespace.
    let expected: Vec<String> = split_for(long.trim_end(), &caps)
        .iter()
        .map(|p| render(p, caps.markdown).text)
        .collect();
    assert!(
        expected.len() >= 3,
        "rule: the suite's reply needs splitting"
    );
    let before = platform.posted(&room).await.len();
    running
        .bridge
        .reply(&long, Some(target.clone()))
        .expect("rule: a reply is queued");
    until("every part of a long reply is posted", async || {
        platform.posted(&room).await.len() >= before + expected.len()
    })
    .await;
    let posted = platform.posted(&room).await[before..].to_vec();
    assert_eq!(
        posted, expected,
        "rule: a long reply arrives split and rendered for {:?}, in order",
        caps.markdown
    );
    for p in &posted {
        assert!(
            p.chars().count() <= caps.max_message_len,
            "rule: no part is over the platform's limit"
        );
    }

    // A rate-limited post is retried after the platform's delay, and posted once.
    let delay = Duration::from_millis(400);
    platform.refuse_next_post(Refusal::RateLimited(delay)).await;
    let asked = Instant::now();
    running
        .bridge
        .reply("compliance: after a rate limit", Some(target.clone()))
        .expect("queued");
    until("a rate-limited reply is posted", async || {
        platform
            .posted(&room)
            .await
            .iter()
            .any(|p| p.contains("after a rate limit"))
    })
    .await;
    assert!(
        asked.elapsed() >= delay,
        "rule: a rate-limited post waits for the platform's retry_after"
    );

    // A rejected post is not retried; the next one goes out.
    platform.refuse_next_post(Refusal::Rejected).await;
    running
        .bridge
        .reply("compliance: rejected", Some(target.clone()))
        .expect("queued");
    running
        .bridge
        .reply("compliance: after the rejection", Some(target.clone()))
        .expect("queued");
    until("the reply after a rejected one is posted", async || {
        platform
            .posted(&room)
            .await
            .iter()
            .any(|p| p.contains("after the rejection"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = platform.posted(&room).await;
    assert_eq!(
        all.iter()
            .filter(|p| p.contains("after a rate limit"))
            .count(),
        1,
        "rule: a retried post is posted once"
    );
    assert!(
        !all.iter().any(|p| p.contains("compliance: rejected")),
        "rule: a post the platform rejected is not retried"
    );

    // Nothing said while the bridge is down is lost: after a restart it is taken, once.
    running.stop().await;
    platform
        .post(&room, &user, "compliance: said while down")
        .await;
    let mut running = Running::start(&paths, connector).await;
    running.taken("compliance: said while down").await;
    let mut again = running.bridge.events();
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(ev) = again.try_recv() {
        if let Event::MessageIn { text, .. } = ev {
            assert!(
                text != "compliance: hello" && text != "compliance: said while down",
                "rule: nothing is taken twice after a restart ({text:?})"
            );
        }
    }
    running.stop().await;
}
