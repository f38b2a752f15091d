//! The forwarder: passes events to the bridge in order, each message once, and after every fresh
//! connection first what each room said while nobody listened, read back from
//! `conversations.history` and, for threads, `conversations.replies`.
//!
//! A room's catch-up starts from the newer of the bridge's cursor (the last message it took
//! there) and the connector's own high-water mark (the newest message handed over, kept with the
//! bridge as the connector's checkpoint, so rooms whose messages the bridge refuses, strangers'
//! say, are not read again and again). A room whose history cannot be read (a 429, a 5xx, a
//! timeout) stays pending from the same point and is tried again after Slack's `Retry-After` or
//! a growing backoff, while live events keep flowing; its mark in the checkpoint stays at that
//! point until it has been read.

use crate::socket::{Forward, Recent};
use crate::{HISTORY_PAGE, Http, Me, events, get_json, ts_of};
use mosaic_connector::{ConnectorError, Cursors, Inbound, InboundSink};
use serde_json::{Value, json};
use slack_morphism::prelude::*;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How many threads per room are remembered (and read back after a reconnect).
const THREADS_PER_ROOM: usize = 10;
/// The first wait before a failed catch-up is tried again (without a `Retry-After`).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries of a catch-up.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The most pages read of one history or thread in one catch-up.
const MAX_PAGES: usize = 50;

/// `(seconds, fraction)` of a ts, for ordering.
pub(crate) fn ts_key(ts: &str) -> (u64, u64) {
    let (s, f) = ts.split_once('.').unwrap_or((ts, "0"));
    (s.parse().unwrap_or(0), f.parse().unwrap_or(0))
}

/// Whether ts `a` is after ts `b`.
fn after(a: &str, b: &str) -> bool {
    ts_key(a) > ts_key(b)
}

pub(crate) struct Forwarder {
    inbound: InboundSink,
    cursors: Cursors,
    client: Arc<SlackClient<Http>>,
    bot: SlackApiToken,
    me: Me,
    id: String,
    limit: Duration,
    seen: Recent,
    /// Rooms still to be caught up, with the ts to read from.
    pending: BTreeMap<String, String>,
    /// The newest ts handed over per room.
    marks: BTreeMap<String, String>,
    /// The marks of the last checkpoint the bridge kept.
    committed: BTreeMap<String, String>,
    /// Recently active threads per room (parent ts, newest first).
    threads: BTreeMap<String, VecDeque<String>>,
    /// The last checkpoint value the bridge kept.
    last_value: String,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Forwarder {
    pub(crate) fn new(
        inbound: InboundSink,
        cursors: Cursors,
        client: Arc<SlackClient<Http>>,
        bot: SlackApiToken,
        me: Me,
        id: String,
        limit: Duration,
    ) -> Forwarder {
        let last_value = cursors.checkpoint().unwrap_or_default();
        let saved: Value = serde_json::from_str(&last_value).unwrap_or(Value::Null);
        let marks: BTreeMap<String, String> =
            serde_json::from_value(saved["rooms"].clone()).unwrap_or_default();
        let threads = serde_json::from_value(saved["threads"].clone()).unwrap_or_default();
        Forwarder {
            inbound,
            cursors,
            client,
            bot,
            me,
            id,
            limit,
            seen: Recent::new(),
            pending: BTreeMap::new(),
            committed: marks.clone(),
            marks,
            threads,
            last_value,
            retry_at: None,
            backoff: FIRST_BACKOFF,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Forward>) {
        loop {
            // The next event, or (when a catch-up is to be tried again) the retry, whichever is
            // first.
            let item = match self.retry_at {
                Some(at) => tokio::select! {
                    item = rx.recv() => item.map(Some),
                    _ = tokio::time::sleep_until(at) => Some(None),
                },
                None => rx.recv().await.map(Some),
            };
            let going = match item {
                None => return,
                Some(Some(Forward::Event(ev))) => self.hand(vec![ev]).await,
                Some(Some(Forward::CatchUp)) => {
                    self.plan();
                    self.catch_up().await
                }
                Some(None) => {
                    self.retry_at = None;
                    self.catch_up().await
                }
            };
            if !going {
                return;
            }
            if rx.is_empty() && !self.commit().await {
                return;
            }
        }
    }

    /// Marks every room the bridge or the connector has a point in as pending, from the newer
    /// of the two (a room already pending keeps its older point).
    fn plan(&mut self) {
        let mut points = self.marks.clone();
        for (room, last) in self.cursors.current() {
            let ts = ts_of(&last).to_owned();
            if !last.contains(':') {
                continue;
            }
            match points.get(&room) {
                Some(mark) if !after(&ts, mark) => {}
                _ => {
                    points.insert(room, ts);
                }
            }
        }
        for (room, ts) in points {
            self.pending.entry(room).or_insert(ts);
        }
    }

    /// Catches up the pending rooms; a room that cannot be read now stays pending and a retry
    /// is scheduled. `false` once the bridge stopped taking messages.
    async fn catch_up(&mut self) -> bool {
        let rooms: Vec<(String, String)> = self
            .pending
            .iter()
            .map(|(r, t)| (r.clone(), t.clone()))
            .collect();
        for (room, oldest) in rooms {
            match self.fetch(&room, &oldest).await {
                Ok(found) => {
                    self.pending.remove(&room);
                    self.backoff = FIRST_BACKOFF;
                    if !self.hand(found).await {
                        return false;
                    }
                }
                Err(e) if e.is_retryable() => {
                    let wait = e.retry_after().unwrap_or(self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    self.retry_at = Some(Instant::now() + wait);
                    tracing::warn!(connector = %self.id, room, error = %e, ?wait,
                        "slack: cannot read the messages a room missed yet; trying again");
                    return true;
                }
                Err(e) => {
                    self.pending.remove(&room);
                    tracing::warn!(connector = %self.id, room, error = %e,
                        "slack: cannot read the messages a room missed; giving up on them");
                }
            }
        }
        self.retry_at = None;
        true
    }

    /// What `room` said after `oldest` (thread replies included), oldest first.
    async fn fetch(&mut self, room: &str, oldest: &str) -> Result<Vec<Inbound>, ConnectorError> {
        let mut found = Vec::new();
        // Threads with a reply after `oldest` (the message at `oldest` itself included: it is
        // read back with `inclusive`, as it may be a thread's parent).
        let mut parents: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = get_json(
                &self.client,
                &self.bot,
                self.limit,
                "conversations.history",
                &[
                    ("channel", Some(room.to_owned())),
                    ("oldest", Some(oldest.to_owned())),
                    ("inclusive", Some("true".to_owned())),
                    ("limit", Some(HISTORY_PAGE.to_string())),
                    ("cursor", cursor.clone()),
                ],
            )
            .await?;
            for m in page["messages"].as_array().into_iter().flatten() {
                let ts = m["ts"].as_str().unwrap_or_default();
                if m["latest_reply"].as_str().is_some_and(|r| after(r, oldest)) {
                    parents.push(ts.to_owned());
                }
                if after(ts, oldest)
                    && let Some(ev) = events::message(&self.id, &self.me, Some(room), m)
                {
                    found.push(ev);
                }
            }
            cursor = next_cursor(&page);
            if page["has_more"] != true || cursor.is_none() {
                break;
            }
        }
        for t in self.threads.get(room).into_iter().flatten() {
            if !parents.contains(t) {
                parents.push(t.clone());
            }
        }
        for parent in parents {
            let mut cursor: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let page = get_json(
                    &self.client,
                    &self.bot,
                    self.limit,
                    "conversations.replies",
                    &[
                        ("channel", Some(room.to_owned())),
                        ("ts", Some(parent.clone())),
                        ("oldest", Some(oldest.to_owned())),
                        ("limit", Some(HISTORY_PAGE.to_string())),
                        ("cursor", cursor.clone()),
                    ],
                )
                .await;
                let page = match page {
                    Ok(page) => page,
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) => {
                        // thread_not_found (a deleted parent), …: nothing to read there.
                        tracing::debug!(connector = %self.id, room, parent, error = %e,
                            "slack: cannot read a thread's replies");
                        break;
                    }
                };
                for m in page["messages"].as_array().into_iter().flatten() {
                    let ts = m["ts"].as_str().unwrap_or_default();
                    if ts != parent
                        && after(ts, oldest)
                        && let Some(ev) = events::message(&self.id, &self.me, Some(room), m)
                    {
                        found.push(ev);
                    }
                }
                cursor = next_cursor(&page);
                if page["has_more"] != true || cursor.is_none() {
                    break;
                }
            }
        }
        let mut ids = HashSet::new();
        found.retain(|ev| ids.insert(ev.message_id.clone()));
        found.sort_by_key(|ev| ts_key(ts_of(&ev.message_id)));
        Ok(found)
    }

    /// Hands `events` to the bridge, each message once; `false` once the bridge stopped.
    async fn hand(&mut self, events: Vec<Inbound>) -> bool {
        for ev in events {
            if !ev.native_command {
                let ts = ts_of(&ev.message_id).to_owned();
                if self.marks.get(&ev.room).is_none_or(|m| after(&ts, m)) {
                    self.marks.insert(ev.room.clone(), ts);
                }
                if let Some(t) = &ev.thread {
                    let threads = self.threads.entry(ev.room.clone()).or_default();
                    threads.retain(|x| x != t);
                    threads.push_front(t.clone());
                    threads.truncate(THREADS_PER_ROOM);
                }
            }
            // app_mention and message both report a mention; retries repeat events.
            if (ev.native_command || self.seen.insert(&ev.message_id))
                && self.inbound.send(ev).await.is_err()
            {
                return false;
            }
        }
        true
    }

    /// The checkpoint: each room's mark (held back to where a pending room is to be read from)
    /// and the remembered threads.
    fn value(&self) -> String {
        let mut rooms = self.marks.clone();
        for (room, from) in &self.pending {
            match rooms.get(room) {
                Some(mark) if !after(mark, from) => {}
                _ => {
                    rooms.insert(room.clone(), from.clone());
                }
            }
        }
        json!({ "rooms": rooms, "threads": self.threads }).to_string()
    }

    /// Hands the bridge a checkpoint if it moved; `false` once the bridge stopped.
    async fn commit(&mut self) -> bool {
        let value = self.value();
        if value == self.last_value {
            return true;
        }
        match self.inbound.checkpoint(value.clone()).await {
            Ok(true) => {
                self.last_value = value;
                let saved: Value = serde_json::from_str(&self.last_value).unwrap_or_default();
                self.committed = serde_json::from_value(saved["rooms"].clone()).unwrap_or_default();
                true
            }
            Ok(false) => {
                // A message handed over since the last kept checkpoint was not stored: read
                // the rooms again from there.
                let cursors: BTreeMap<String, String> = self
                    .cursors
                    .current()
                    .into_iter()
                    .map(|(r, last)| (r, ts_of(&last).to_owned()))
                    .collect();
                for room in self.marks.keys() {
                    let Some(from) = self.committed.get(room).or(cursors.get(room)) else {
                        continue;
                    };
                    let entry = self
                        .pending
                        .entry(room.clone())
                        .or_insert_with(|| from.clone());
                    if after(entry, from) {
                        *entry = from.clone();
                    }
                }
                self.seen = Recent::new();
                // Not at once: a bridge that cannot store now may not on the next try either.
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                true
            }
            Err(_) => false,
        }
    }
}

fn next_cursor(page: &Value) -> Option<String> {
    page["response_metadata"]["next_cursor"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}
