//! The connectors' side of the bridge: each connector's run loop (restarted with backoff while
//! its errors are retryable), platform acks, and "typing" while the orchestrator works.

use crate::Verdict;
use crate::events::Event;
use crate::{Bridge, backoff};
use mosaic_connector::{
    CHECKPOINT_ROOM, Connector, Cursors, Handoff, Health, Inbound, InboundSink, RunContext,
    Shutdown,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

impl Bridge {
    /// Logs each change of a connector's health until the bridge stops.
    pub(crate) async fn log_health(&self, id: String) {
        let mut health = self.inner.health[&id].subscribe();
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut last = Health::Starting;
        loop {
            let now = health.borrow_and_update().clone();
            if now != last {
                let (state, detail) = match &now {
                    Health::Starting => ("starting", ""),
                    Health::Up => ("up", ""),
                    Health::Degraded(d) => ("degraded", d.as_str()),
                    Health::Down(d) => ("down", d.as_str()),
                };
                tracing::info!(connector = %id, state, detail, "connector state changed");
                last = now;
            }
            tokio::select! {
                changed = health.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    pub(crate) async fn connector_loop(&self, connector: Arc<dyn Connector>) {
        let mut failures = 0u32;
        while !self.inner.stop.load(Ordering::Relaxed) {
            let (tx, mut rx) = mpsc::channel::<Handoff>(256);
            let me = self.clone();
            let id = connector.id().to_owned();
            let forward = {
                let id = id.clone();
                tokio::spawn(async move {
                    // Whether a message since the last checkpoint could not be stored.
                    let mut lost = false;
                    while let Some(handoff) = rx.recv().await {
                        match handoff {
                            Handoff::Message(ev) => {
                                lost |= matches!(me.accept(ev).await, Verdict::Failed(_));
                            }
                            Handoff::Checkpoint { value, committed } => {
                                let kept = !std::mem::take(&mut lost) && me.checkpoint(&id, &value);
                                let _ = committed.send(kept);
                            }
                        }
                    }
                })
            };
            let health = self.inner.health[&id].clone();
            let ctx = RunContext {
                inbound: InboundSink::new(tx),
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
                    let delay = e.retry_after().unwrap_or_else(|| backoff(failures));
                    tracing::warn!(
                        connector = %connector.id(),
                        error = %e,
                        retry_in_ms = delay.as_millis() as u64,
                        "connector failed; retrying"
                    );
                    delay
                }
                Err(e) => {
                    tracing::error!(
                        connector = %connector.id(),
                        error = %e,
                        "connector stopped (fix its configuration and restart `mosaic up`)"
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

    /// Keeps a connector's checkpoint in the store and its live cursors; `false` when the store
    /// failed.
    fn checkpoint(&self, connector: &str, value: &str) -> bool {
        let stored = self.write(|s| s.set_cursor(connector, CHECKPOINT_ROOM, value));
        if let Err(e) = stored {
            tracing::error!(connector, error = %e, "cannot keep a connector's checkpoint");
            return false;
        }
        if let Some(cursors) = self.inner.cursors.get(connector) {
            cursors.send_modify(|points| {
                match points.iter_mut().find(|(room, _)| room == CHECKPOINT_ROOM) {
                    Some(point) => point.1 = value.to_owned(),
                    None => points.push((CHECKPOINT_ROOM.to_owned(), value.to_owned())),
                }
            });
        }
        true
    }

    pub(crate) fn ack(&self, inbound: &Inbound) {
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

    /// While the orchestrator works on a delivered message, shows "typing" in its room (every 8 s,
    /// at most 2 minutes).
    pub(crate) async fn typing_loop(&self, mut delivered: mpsc::UnboundedReceiver<Inbound>) {
        while let Some(inbound) = delivered.recv().await {
            let Some(connector) = self.inner.connectors.get(&inbound.connector).cloned() else {
                continue;
            };
            let activity = self.inner.activity.clone();
            tokio::spawn(async move {
                for _ in 0..15 {
                    let typing = connector
                        .typing(&inbound.room, inbound.thread.as_deref())
                        .await;
                    if typing.is_err() {
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
}
