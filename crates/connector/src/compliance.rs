//! The compliance suite every connector passes against its fake platform (feature `test-util`).
//!
//! A connector crate implements [`Platform`] for its fake server and calls [`run_suite`] from a
//! test. The suite drives the real connector code through the platform's own API.

use crate::{
    Connector, Cursors, Handoff, Health, HealthReporter, Inbound, InboundSink, Outbound,
    RunContext, Shutdown,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The platform side of a connector under test.
#[async_trait]
pub trait Platform: Send + Sync {
    /// The connector under test, configured for this platform.
    fn connector(&self) -> Arc<dyn Connector>;
    /// A room the connector serves.
    fn room(&self) -> String;
    /// A user who may talk in that room.
    fn user(&self) -> String;
    /// The user posts `text` in `room`; returns the platform's message id.
    async fn post(&self, room: &str, user: &str, text: &str) -> String;
    /// Texts the bot posted in `room`, oldest first.
    async fn posted(&self, room: &str) -> Vec<String>;
    /// Whether the bot acknowledged `message_id` in `room`.
    async fn acked(&self, room: &str, message_id: &str) -> bool;
    /// Makes the platform refuse the next `n` posts with a transient (5xx-like) failure.
    async fn fail_next_posts(&self, n: usize);
}

/// A [`RunContext`] for a connector run outside the bridge: with `cursors` fixed, the receiver
/// of its health, and the trigger of its shutdown. Messages reach `inbound` in order; each
/// checkpoint is kept once the messages before it were handed to `inbound` (call it from a
/// tokio runtime).
pub fn context(
    inbound: mpsc::Sender<Inbound>,
    cursors: Vec<(String, String)>,
) -> (RunContext, watch::Receiver<Health>, watch::Sender<bool>) {
    let (health, health_rx) = HealthReporter::new();
    let (stop, shutdown) = Shutdown::new();
    let (sink, mut handoffs) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(handoff) = handoffs.recv().await {
            match handoff {
                Handoff::Message(message) => {
                    if inbound.send(message).await.is_err() {
                        return;
                    }
                }
                Handoff::Checkpoint { committed, .. } => {
                    let _ = committed.send(true);
                }
            }
        }
    });
    let ctx = RunContext {
        inbound: InboundSink::new(sink),
        cursors: Cursors::fixed(cursors),
        health,
        shutdown,
    };
    (ctx, health_rx, stop)
}

const WAIT: Duration = Duration::from_secs(10);

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the connector yielded no event within 10 s")
        .expect("the connector stopped")
}

fn outbound(room: &str, text: &str, key: &str) -> Outbound {
    Outbound {
        room: room.to_owned(),
        text: text.to_owned(),
        html: None,
        reply_to: None,
        thread: None,
        key: key.to_owned(),
    }
}

/// Runs every compliance check; panics with a message naming the failed rule.
pub async fn run_suite(platform: &dyn Platform) {
    let connector = platform.connector();
    let caps = connector.capabilities();
    assert!(
        caps.max_message_len >= 500,
        "rule: max_message_len is the platform's real limit (got {})",
        caps.max_message_len
    );
    let (tx, mut rx) = mpsc::channel(64);
    let (ctx, health_rx, stop) = context(tx, Vec::new());
    let runner = {
        let c = connector.clone();
        tokio::spawn(async move { c.run(ctx).await })
    };
    let current = || health_rx.borrow().clone();
    let (room, user) = (platform.room(), platform.user());
    // Health: Up once connected and serving (messages sent before that are the platform's to keep).
    let deadline = tokio::time::Instant::now() + WAIT;
    while current() != Health::Up {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rule: health becomes Up once connected (got {:?})",
            current()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Inbound: what a user says arrives once, with its ids and text intact.
    let text = "hello mosaic\nsecond line with ünïcödé and `code`";
    let id = platform.post(&room, &user, text).await;
    let ev = next(&mut rx).await;
    assert_eq!(
        (ev.connector.as_str(), ev.message_id.as_str()),
        (connector.id(), id.as_str()),
        "rule: inbound ids"
    );
    assert_eq!(
        (ev.room.as_str(), ev.user.as_str(), ev.text.as_str()),
        (room.as_str(), user.as_str(), text),
        "rule: inbound fields"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while current() != Health::Up {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rule: health is Up while serving (got {:?})",
            current()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Ack: the message can be acknowledged.
    connector.ack(&room, &id).await.expect("rule: ack succeeds");
    assert!(
        platform.acked(&room, &id).await,
        "rule: the platform shows the ack"
    );

    // Outbound: text arrives intact, in order, up to the declared limit.
    let long: String = "x".repeat(caps.max_message_len);
    for (i, t) in ["first reply", "multi\nline **reply**", long.as_str()]
        .iter()
        .enumerate()
    {
        let sent_id = connector
            .send(&outbound(&room, t, &format!("k{i}")))
            .await
            .expect("rule: send succeeds");
        assert!(!sent_id.is_empty(), "rule: send returns the platform's id");
    }
    let posted = platform.posted(&room).await;
    assert_eq!(posted.len(), 3, "rule: each send posts exactly one message");
    assert_eq!(posted[0], "first reply");
    assert_eq!(posted[1], "multi\nline **reply**");
    assert_eq!(
        posted[2].chars().count(),
        caps.max_message_len,
        "rule: a message of max_message_len arrives whole"
    );

    // Failure: a transient platform failure is reported as retryable, and nothing is posted.
    platform.fail_next_posts(1).await;
    let err = connector
        .send(&outbound(&room, "during an outage", "k9"))
        .await
        .expect_err("rule: a refused post is an error");
    assert!(
        err.is_retryable(),
        "rule: a transient failure is retryable (got {:?})",
        err.kind
    );
    assert_eq!(
        platform.posted(&room).await.len(),
        3,
        "rule: a failed send posts nothing"
    );
    connector
        .send(&outbound(&room, "after the outage", "k9"))
        .await
        .expect("rule: sending works again after the outage");

    // A second message still arrives while the first connection is serving.
    let id2 = platform.post(&room, &user, "again").await;
    assert_eq!(
        next(&mut rx).await.message_id,
        id2,
        "rule: every message arrives"
    );

    stop.send_replace(true);
    let result = tokio::time::timeout(WAIT, runner)
        .await
        .expect("rule: run returns once shutdown is asked for")
        .expect("run does not panic");
    assert!(
        result.is_ok(),
        "rule: a shutdown is not an error ({result:?})"
    );
    drop(rx);
}
