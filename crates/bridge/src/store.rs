//! The bridge's durable state in SQLite (WAL): which inbound messages were seen, the queue for
//! the orchestrator, the outbox, pending confirmations, and small key/values. A connection
//! commits fully synced (`synchronous=FULL`) unless relaxed; the bridge's own connection is
//! relaxed and made durable by [`GroupCommit`] before anyone is told.
//!
//! A queued message's `status` goes `queued` → `delivering` (committed while it is prepared) →
//! `pasting` (committed just before the paste is sent to tmux) → `delivered`; a paste the pane
//! never confirmed goes to `held` and stays there until a person says `retry` (back to `queued`)
//! or `drop` (`dropped`): it is never pasted again on its own.
//!
//! Every state change a crash must not lose is one committed transaction, so a `kill -9` at any
//! moment leaves each message either not accepted, queued, being delivered (resolved at the next
//! start, see the delivery worker), or delivered.

use crate::confirm::Pending as PendingConfirmation;
use mosaic_connector::{Inbound, ReplyTo};
use mosaic_roster::AclRole;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// Whether the paste of a message a crash cut off may have been sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paste {
    /// Cut off before its paste was sent: queue it again.
    NotSent,
    /// Its paste may have been sent into this incarnation of the orchestrator's pane
    /// ([`mosaic_tmux::ControlClient::incarnation`]; unknown in rows from older versions): find
    /// it in the pane, or hold it for a person.
    MaybeSent {
        /// The pane's incarnation it was pasted into.
        into: Option<String>,
        /// The tmux paste buffer its text was loaded in (still loaded: never pasted; unknown in
        /// rows from older versions).
        buffer: Option<String>,
    },
}

/// A failed database operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("bridge database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file could not be created or made private.
    #[error("bridge database file: {0}")]
    Io(#[source] std::io::Error),
    /// No randomness for a message's envelope nonce.
    #[error("bridge database: no random nonce for the envelope: {0}")]
    Nonce(#[source] std::io::Error),
}

type Result<T> = std::result::Result<T, StoreError>;

/// One connection to the bridge database. Open one per thread.
pub struct Store {
    conn: Connection,
}

/// The result of accepting an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Seen before (a redelivery): nothing was stored.
    Duplicate,
    /// New; when queued for the orchestrator, its queue id and how many wait before it.
    New {
        /// Queue id, when the message was queued.
        queued: Option<i64>,
        /// Messages waiting before this one.
        ahead: usize,
    },
}

/// Whether [`Store::accept`] queues a message for the orchestrator, and as whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queueing {
    /// Recorded as seen only (a command, or a sender who may not talk).
    No,
    /// Queued without a recorded sender role (how versions before roles queued).
    Unattributed,
    /// Queued with the sender's ACL role and a fresh random nonce for its envelope.
    As(AclRole),
}

impl Queueing {
    /// Queued as `role` when `queue`, else [`Queueing::No`].
    pub fn when(queue: bool, role: AclRole) -> Queueing {
        if queue {
            Queueing::As(role)
        } else {
            Queueing::No
        }
    }
}

impl From<bool> for Queueing {
    fn from(queue: bool) -> Self {
        if queue {
            Queueing::Unattributed
        } else {
            Queueing::No
        }
    }
}

/// A message waiting for (or being delivered to) the orchestrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Queue id (also in the envelope, which makes it findable in the pane).
    pub id: i64,
    /// The message as received.
    pub inbound: Inbound,
    /// The sender's ACL role when it was accepted (absent in rows from before roles).
    pub role: Option<String>,
    /// A random value in the envelope, secret until the envelope is pasted: crash recovery
    /// looks for it, so no text typed earlier can pass for this message's envelope.
    pub nonce: Option<String>,
}

/// A message waiting to be posted to a chat room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Outbox id.
    pub id: i64,
    /// Connector to post through.
    pub connector: String,
    /// Room.
    pub room: String,
    /// Thread, if any.
    pub thread: Option<String>,
    /// What it answers, if anything.
    pub reply_to: Option<ReplyTo>,
    /// Text (already split to the platform's limit).
    pub text: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// The inbox columns [`queued_row`] reads, in its order.
const QUEUED_COLUMNS: &str =
    "id, connector, message_id, room, user, user_name, thread, text, role, nonce";

/// A [`Queued`] from a row of [`QUEUED_COLUMNS`].
fn queued_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Queued> {
    Ok(Queued {
        id: r.get(0)?,
        inbound: Inbound {
            connector: r.get(1)?,
            message_id: r.get(2)?,
            room: r.get(3)?,
            user: r.get(4)?,
            user_name: r.get(5)?,
            thread: r.get(6)?,
            native_command: false,
            text: r.get(7)?,
        },
        role: r.get(8)?,
        nonce: r.get(9)?,
    })
}

/// A stored `reply_to`: JSON, or a bare message id (rows written before replies were typed).
fn reply_to_from_column(raw: &str) -> ReplyTo {
    serde_json::from_str(raw).unwrap_or_else(|_| ReplyTo::Message(raw.to_owned()))
}

/// Creates `path` with mode 0600, or makes an existing one (and its SQLite companions) 0600.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Made here only when it does not exist: opening (and closing) a database file this process
    // already has open would drop SQLite's POSIX locks on it (they belong to the process, and
    // any close releases them), and another process closing its connection would then take
    // itself for the last one and delete the WAL under this one: its commits lost.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Group commit for a connection that commits without waiting for the disk
/// ([`Store::relax_durability`]): after a commit, [`GroupCommit::sync_through`] makes it durable
/// (as `synchronous=FULL` would at the commit) with one `fdatasync` of the WAL for every commit
/// made meanwhile, by any connection. Callers commit under their store's lock, take a
/// [`GroupCommit::committed`] ticket before letting it go, and sync after: what commits while one
/// caller waits for the disk is made durable by the next sync, together.
pub struct GroupCommit {
    /// The database's WAL, held open for as long as this lives (never reopened and closed: a
    /// close would drop the process's POSIX locks on the file, see [`private_file`]).
    wal: std::fs::File,
    committed: std::sync::atomic::AtomicU64,
    synced: std::sync::Mutex<u64>,
    syncs: std::sync::atomic::AtomicU64,
    /// Tickets [`GroupCommit::sync_soon`] was given, for the thread that syncs them.
    soon: std::sync::Mutex<std::sync::mpsc::Sender<u64>>,
}

/// How long a commit nobody waits for may stay off the disk, unless another sync covers it first.
const SYNC_SOON: std::time::Duration = std::time::Duration::from_millis(10);

impl GroupCommit {
    /// For the database at `path`, already open in WAL mode (its `-wal` file exists).
    pub fn open(path: &Path) -> Result<std::sync::Arc<GroupCommit>> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let (soon, tickets) = std::sync::mpsc::channel::<u64>();
        let group = std::sync::Arc::new(GroupCommit {
            wal: std::fs::File::open(wal).map_err(StoreError::Io)?,
            committed: std::sync::atomic::AtomicU64::new(0),
            synced: std::sync::Mutex::new(0),
            syncs: std::sync::atomic::AtomicU64::new(0),
            soon: std::sync::Mutex::new(soon),
        });
        // Ends when the group is dropped (its sender with it).
        let weak = std::sync::Arc::downgrade(&group);
        std::thread::Builder::new()
            .name("mosaic-sync-soon".into())
            .spawn(move || {
                while let Ok(mut ticket) = tickets.recv() {
                    std::thread::sleep(SYNC_SOON);
                    while let Ok(later) = tickets.try_recv() {
                        ticket = ticket.max(later);
                    }
                    let Some(group) = weak.upgrade() else { return };
                    if let Err(e) = group.sync_through(ticket) {
                        tracing::error!(error = %e, "cannot sync the bridge's database");
                    }
                }
            })
            .map_err(StoreError::Io)?;
        Ok(group)
    }

    /// A ticket for the commit just made (take it under the lock the commit was made under).
    pub fn committed(&self) -> u64 {
        self.committed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Returns once the commit with `ticket` (and every one before it) is on disk.
    pub fn sync_through(&self, ticket: u64) -> Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= ticket {
            return Ok(());
        }
        // Every commit with a ticket up to here has been written to the WAL.
        let through = self.committed.load(std::sync::atomic::Ordering::SeqCst);
        self.wal.sync_data().map_err(StoreError::Io)?;
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *synced = through;
        Ok(())
    }

    /// Makes the commit with `ticket` durable soon (within [`SYNC_SOON`], or with the next sync
    /// anyone makes) without waiting for it: for a commit whose only audience dies with the
    /// machine.
    pub fn sync_soon(&self, ticket: u64) {
        let _ = self
            .soon
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(ticket);
    }

    /// How many times the WAL was synced so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What [`Store::prune`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Message ids kept to drop repeats.
    pub seen: usize,
    /// Delivered or dropped chat messages.
    pub messages: usize,
    /// Posted or failed replies.
    pub replies: usize,
}

/// `kv` key set (with the conversation, by [`Store::mark_delivering`]) while the turn last
/// delivered to the orchestrator owes its room an answer: kept across restarts, so a final
/// answer that comes after one is still relayed, once.
const UNANSWERED_KEY: &str = "unanswered";

/// Moves the `seen` time of inbox message `?1`'s id to `?2`, when it was handled: the id is
/// kept for `bridge.history_days` after that, not after its arrival.
const SEEN_HANDLED: &str = "UPDATE seen SET at = ?2
     WHERE (connector, message_id) = (SELECT connector, message_id FROM inbox WHERE id = ?1)";

/// Rows one prune transaction deletes at most (the bridge's writes wait for one at most).
const PRUNE_BATCH: usize = 500;

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The bridge's database in the state directory `state_dir`.
pub fn database(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("bridge.db")
}

/// Whether chat message `id` (the N of `[chat #N:…`) was ever received, read from the database
/// at `path` while the daemon may be down (without creating it: a missing database knows none).
pub fn knows_message(path: &Path, id: i64) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn
        .query_row("SELECT 1 FROM inbox WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    /// The file (and SQLite's `-wal` and `-shm` files, which take its mode) is private: mode
    /// 0600, also when an older version created it readable by others.
    pub fn open(path: &Path) -> Result<Store> {
        private_file(path).map_err(StoreError::Io)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS seen (
                 connector TEXT NOT NULL, message_id TEXT NOT NULL, at INTEGER NOT NULL,
                 PRIMARY KEY (connector, message_id));
             CREATE TABLE IF NOT EXISTS inbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, connector TEXT NOT NULL, message_id TEXT NOT NULL,
                 room TEXT NOT NULL, user TEXT NOT NULL, user_name TEXT NOT NULL, thread TEXT, text TEXT NOT NULL,
                 status TEXT NOT NULL DEFAULT 'queued', created INTEGER NOT NULL, delivered INTEGER);
             CREATE INDEX IF NOT EXISTS inbox_status ON inbox (status, id);
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, connector TEXT NOT NULL, room TEXT NOT NULL, thread TEXT,
                 reply_to TEXT, text TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
                 attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                 created INTEGER NOT NULL, platform_id TEXT);
             CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status, id);
             CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS cursor (
                 connector TEXT NOT NULL, room TEXT NOT NULL, message_id TEXT NOT NULL,
                 PRIMARY KEY (connector, room));
             CREATE TABLE IF NOT EXISTS confirmation (
                 code TEXT PRIMARY KEY, connector TEXT NOT NULL, user TEXT NOT NULL,
                 command TEXT NOT NULL, line TEXT NOT NULL, expires INTEGER NOT NULL);",
        )?;
        for column in ["role", "nonce", "pasted_into", "pasted_buffer"] {
            let present: i64 = conn.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('inbox') WHERE name = ?1",
                [column],
                |r| r.get(0),
            )?;
            if present == 0 {
                conn.execute_batch(&format!("ALTER TABLE inbox ADD COLUMN {column} TEXT"))?;
            }
        }
        Ok(Store { conn })
    }

    /// Records `inbound` as seen and, as `queue` says, queues it for the orchestrator, in one
    /// transaction. A message seen before is a [`Accepted::Duplicate`].
    pub fn accept(&mut self, inbound: &Inbound, queue: impl Into<Queueing>) -> Result<Accepted> {
        let queue = queue.into();
        let tx = self.conn.transaction()?;
        let fresh = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO seen (connector, message_id, at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![inbound.connector, inbound.message_id, now_ms()])?;
        if fresh == 0 {
            return Ok(Accepted::Duplicate);
        }
        if !inbound.native_command {
            // Where to pick up in this room after a restart (see Connector::resume_after).
            tx.prepare_cached(
                "INSERT INTO cursor (connector, room, message_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT(connector, room) DO UPDATE SET message_id = ?3",
            )?
            .execute(params![inbound.connector, inbound.room, inbound.message_id])?;
        }
        let (queued, ahead) = if queue != Queueing::No {
            let (role, nonce) = match queue {
                Queueing::As(role) => (
                    Some(role.as_str()),
                    Some(mosaic_fleet::paths::random_hex(6).map_err(StoreError::Nonce)?),
                ),
                _ => (None, None),
            };
            let ahead: i64 = tx.prepare_cached("SELECT COUNT(*) FROM inbox WHERE status IN ('queued','delivering','pasting','held')")?.query_row([],
                |r| r.get(0),
            )?;
            tx.prepare_cached("INSERT INTO inbox (connector, message_id, room, user, user_name, thread, text, created, role, nonce)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")?.execute(params![
                    inbound.connector,
                    inbound.message_id,
                    inbound.room,
                    inbound.user,
                    inbound.user_name,
                    inbound.thread,
                    inbound.text,
                    now_ms(),
                    role,
                    nonce
                ],
            )?;
            (Some(tx.last_insert_rowid()), ahead as usize)
        } else {
            (None, 0)
        };
        tx.commit()?;
        Ok(Accepted::New { queued, ahead })
    }

    fn queued_with(&self, status: &str) -> Result<Vec<Queued>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {QUEUED_COLUMNS} FROM inbox WHERE status = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([status], queued_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The chat message with queue id `id` (as in its envelope `[chat #ID:…`), whatever its
    /// status.
    pub fn queued(&self, id: i64) -> Result<Option<Queued>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {QUEUED_COLUMNS} FROM inbox WHERE id = ?1"))?
            .query_row([id], queued_row)
            .optional()?)
    }

    /// The oldest message waiting for the orchestrator (one index lookup, whatever the queue's
    /// length).
    pub fn next_queued(&self) -> Result<Option<Queued>> {
        Ok(self.next_batch(1, 0, |_| 0)?.pop())
    }

    /// The oldest messages waiting for the orchestrator that can go in one turn: at most
    /// `max_messages`, all from the oldest one's room (and thread), so an answer without a
    /// message id still lands where each of them came from, and at most `max_bytes` as
    /// `size_of` counts a message (as it is pasted: in its envelope, with its line break) unless
    /// the first alone is longer. One index range read, whatever the queue's length.
    pub fn next_batch(
        &self,
        max_messages: usize,
        max_bytes: usize,
        size_of: impl Fn(&Queued) -> usize,
    ) -> Result<Vec<Queued>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {QUEUED_COLUMNS} FROM inbox WHERE status = 'queued' ORDER BY id LIMIT ?1"
        ))?;
        let mut rows = stmt.query_map([max_messages.max(1) as i64], queued_row)?;
        let mut batch: Vec<Queued> = Vec::new();
        let mut bytes = 0;
        while let Some(q) = rows.next().transpose()? {
            if let Some(first) = batch.first() {
                let same_origin = (&q.inbound.connector, &q.inbound.room, &q.inbound.thread)
                    == (
                        &first.inbound.connector,
                        &first.inbound.room,
                        &first.inbound.thread,
                    );
                if !same_origin || bytes + size_of(&q) > max_bytes {
                    break;
                }
            }
            bytes += size_of(&q);
            batch.push(q);
        }
        Ok(batch)
    }

    /// Whether any message waits for the orchestrator (one index lookup).
    pub fn has_queued(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM inbox WHERE status = 'queued' LIMIT 1")?
            .query_row([], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Whether any message is held (one index lookup).
    pub fn has_held(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM inbox WHERE status = 'held' LIMIT 1")?
            .query_row([], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Messages whose delivery was under way when the bridge last stopped.
    pub fn in_delivery(&self) -> Result<Vec<(Queued, Paste)>> {
        let mut cut: Vec<(Queued, Paste)> = self
            .queued_with("delivering")?
            .into_iter()
            .map(|q| (q, Paste::NotSent))
            .collect();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {QUEUED_COLUMNS}, pasted_into, pasted_buffer FROM inbox WHERE status = 'pasting' ORDER BY id"
        ))?;
        let pasting = stmt.query_map([], |r| {
            Ok((
                queued_row(r)?,
                Paste::MaybeSent {
                    into: r.get(10)?,
                    buffer: r.get(11)?,
                },
            ))
        })?;
        for row in pasting {
            cut.push(row?);
        }
        cut.sort_by_key(|(q, _)| q.id);
        Ok(cut)
    }

    /// Marks messages as being pasted from tmux paste buffer `buffer` into the pane's
    /// incarnation `into`, in one transaction: committed just before the paste is sent to tmux,
    /// so a crash recovery knows they may be in that pane even where the pane does not show them
    /// (a frozen harness has not read them yet), unless the buffer is still loaded.
    pub fn mark_pasting(&mut self, ids: &[i64], into: &str, buffer: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE inbox SET status = 'pasting', pasted_into = ?2, pasted_buffer = ?3 WHERE id = ?1",
            )?;
            for id in ids {
                update.execute(params![id, into, buffer])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// How many messages wait for the orchestrator.
    pub fn queue_len(&self) -> Result<usize> {
        let n: i64 = self.conn.prepare_cached("SELECT COUNT(*) FROM inbox WHERE status IN ('queued','delivering','pasting','held')")?.query_row([],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Whether hook call `call` was taken before (its effects happened).
    pub fn hook_taken(&self, call: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM seen WHERE connector = ' hook' AND message_id = ?1")?
            .query_row([call], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Records hook call `call` as taken (after its effects).
    pub fn take_hook(&self, call: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO seen (connector, message_id, at) VALUES (' hook', ?1, ?2)",
            )?
            .execute(params![call, now_ms()])?;
        Ok(())
    }

    /// Marks queued messages (one turn's) as being delivered and keeps where their replies go
    /// ([`CONVERSATION_KEY`](crate::delivery::CONVERSATION_KEY) = `conversation`), in one
    /// transaction, before the paste.
    pub fn mark_delivering(&mut self, ids: &[i64], conversation: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut update =
                tx.prepare_cached("UPDATE inbox SET status = 'delivering' WHERE id = ?1")?;
            for id in ids {
                update.execute([id])?;
            }
        }
        let mut set = tx.prepare_cached(
            "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
        )?;
        set.execute(params![crate::delivery::CONVERSATION_KEY, conversation])?;
        set.execute(params![UNANSWERED_KEY, "1"])?;
        drop(set);
        tx.commit()?;
        Ok(())
    }

    /// Whether the turn last delivered to the orchestrator still owes its room an answer (the
    /// orchestrator may still be working on it).
    pub fn owes_answer(&self) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
            .query_row([UNANSWERED_KEY], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The turn last delivered to the orchestrator is answered (it replied, its final answer
    /// was relayed, or its turn ended or failed): true if it still owed one until now.
    pub fn answered(&self) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM kv WHERE key = ?1")?
            .execute([UNANSWERED_KEY])?;
        Ok(n == 1)
    }

    /// Durable against a crash of this process, not of the machine: commits no longer wait for
    /// the disk (`synchronous=NORMAL`; SQLite's WAL keeps them through a `kill -9`). For the
    /// delivery worker's own connection: its states only matter while the tmux server they
    /// describe lives, and a machine that lost power lost that too. What the platforms are told
    /// (a message taken, a reply sent) is committed by the bridge's connection, fully synced.
    pub fn relax_durability(&self) -> Result<()> {
        self.conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
        Ok(())
    }

    /// Marks messages delivered, in one transaction: handled now (see [`Store::prune`]).
    pub fn mark_delivered(&mut self, ids: &[i64]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE inbox SET status = 'delivered', delivered = ?2 WHERE id = ?1",
            )?;
            let mut seen = tx.prepare_cached(SEEN_HANDLED)?;
            let now = now_ms();
            for id in ids {
                update.execute(params![id, now])?;
                seen.execute(params![id, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Puts a message back in the queue (its delivery did not happen).
    pub fn mark_queued(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE inbox SET status = 'queued' WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Holds a message whose paste the pane never confirmed: it is not delivered again until a
    /// person decides ([`Store::resolve_held`]).
    pub fn mark_held(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE inbox SET status = 'held' WHERE id = ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Messages held after an unconfirmed paste, oldest first.
    pub fn held(&self) -> Result<Vec<Queued>> {
        self.queued_with("held")
    }

    /// A person's decision on a held message: `retry` queues it again (it is pasted once more),
    /// otherwise it is dropped. False when `id` is not held.
    pub fn resolve_held(&mut self, id: i64, retry: bool) -> Result<bool> {
        if retry {
            let n = self
                .conn
                .prepare_cached(
                    "UPDATE inbox SET status = 'queued' WHERE id = ?1 AND status = 'held'",
                )?
                .execute([id])?;
            return Ok(n == 1);
        }
        // Dropped: handled now (see [`Store::prune`]).
        let tx = self.conn.transaction()?;
        let now = now_ms();
        let n = tx
            .prepare_cached(
                "UPDATE inbox SET status = 'dropped', delivered = ?2 WHERE id = ?1 AND status = 'held'",
            )?
            .execute(params![id, now])?;
        if n == 1 {
            tx.prepare_cached(SEEN_HANDLED)?.execute(params![id, now])?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Keeps a command waiting for `/fleet confirm CODE` (expired ones are removed).
    pub fn put_confirmation(&self, p: &PendingConfirmation) -> Result<()> {
        let command = serde_json::to_string(&p.command).expect("a command serializes");
        self.conn
            .prepare_cached("DELETE FROM confirmation WHERE expires <= ?1")?
            .execute([now_ms()])?;
        self.conn.prepare_cached("INSERT OR REPLACE INTO confirmation (code, connector, user, command, line, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![p.code, p.connector, p.user, command, p.line, p.expires_ms],
        )?;
        Ok(())
    }

    /// Takes (removes and returns) the unexpired confirmation `code` asked for by `user` of
    /// `connector`; someone else's code, an expired one or an unknown one is `None`.
    pub fn take_confirmation(
        &mut self,
        code: &str,
        connector: &str,
        user: &str,
        now: i64,
    ) -> Result<Option<PendingConfirmation>> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached("DELETE FROM confirmation WHERE expires <= ?1")?
            .execute([now])?;
        let row: Option<(String, String, i64)> = tx
            .prepare_cached(
                "SELECT command, line, expires FROM confirmation
                 WHERE code = ?1 AND connector = ?2 AND user = ?3",
            )?
            .query_row(params![code, connector, user], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((command, line, expires_ms)) = row else {
            tx.commit()?;
            return Ok(None);
        };
        tx.prepare_cached("DELETE FROM confirmation WHERE code = ?1")?
            .execute([code])?;
        tx.commit()?;
        // A row this build cannot read (written by another version) is as good as expired.
        Ok(serde_json::from_str(&command)
            .ok()
            .map(|command| PendingConfirmation {
                code: code.to_owned(),
                connector: connector.to_owned(),
                user: user.to_owned(),
                command,
                line,
                expires_ms,
            }))
    }

    /// Adds messages for one room to the outbox, in order, in one transaction.
    pub fn enqueue_out(
        &mut self,
        connector: &str,
        room: &str,
        thread: Option<&str>,
        reply_to: Option<&ReplyTo>,
        texts: &[String],
    ) -> Result<Vec<i64>> {
        self.enqueue_out_once(None, connector, room, thread, reply_to, texts)
    }

    /// [`Store::enqueue_out`], and when `call` is a hook call's id, records it as taken in the
    /// same transaction: a call taken before queues nothing (empty ids).
    pub fn enqueue_out_once(
        &mut self,
        call: Option<&str>,
        connector: &str,
        room: &str,
        thread: Option<&str>,
        reply_to: Option<&ReplyTo>,
        texts: &[String],
    ) -> Result<Vec<i64>> {
        let reply_to = reply_to.map(|r| serde_json::to_string(r).expect("serializes"));
        let tx = self.conn.transaction()?;
        if let Some(call) = call {
            let fresh = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO seen (connector, message_id, at) VALUES (' hook', ?1, ?2)",
                )?
                .execute(params![call, now_ms()])?;
            if fresh == 0 {
                return Ok(Vec::new());
            }
        }
        let mut ids = Vec::with_capacity(texts.len());
        for text in texts {
            tx.prepare_cached("INSERT INTO outbox (connector, room, thread, reply_to, text, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![connector, room, thread, reply_to, text, now_ms()],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Outbox messages not yet posted, oldest first, with whether each is due at `now`.
    pub fn pending_out(&self, now: i64) -> Result<Vec<(Pending, bool)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, connector, room, thread, reply_to, text, attempts, next_at FROM outbox WHERE status = 'pending' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let next_at: i64 = r.get(7)?;
            Ok((
                Pending {
                    id: r.get(0)?,
                    connector: r.get(1)?,
                    room: r.get(2)?,
                    thread: r.get(3)?,
                    reply_to: r
                        .get::<_, Option<String>>(4)?
                        .map(|raw| reply_to_from_column(&raw)),
                    text: r.get(5)?,
                    attempts: r.get(6)?,
                },
                next_at <= now,
            ))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The rooms of `connector` the outbox ever held messages for (posted or not).
    pub fn rooms_posted_in(&self, connector: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT room FROM outbox WHERE connector = ?1 ORDER BY room",
        )?;
        let rooms = stmt.query_map([connector], |r| r.get(0))?;
        Ok(rooms.collect::<std::result::Result<_, _>>()?)
    }

    /// Marks an outbox message posted.
    pub fn out_sent(&self, id: i64, platform_id: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE outbox SET status = 'sent', platform_id = ?2 WHERE id = ?1")?
            .execute(params![id, platform_id])?;
        Ok(())
    }

    /// Schedules another attempt at `next_at` (ms since the epoch).
    pub fn out_retry(&self, id: i64, attempts: u32, next_at: i64, error: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET attempts = ?2, next_at = ?3, last_error = ?4 WHERE id = ?1",
            )?
            .execute(params![id, attempts, next_at, error])?;
        Ok(())
    }

    /// Gives up on an outbox message that can never be posted.
    pub fn out_failed(&self, id: i64, error: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE outbox SET status = 'failed', last_error = ?2 WHERE id = ?1")?
            .execute(params![id, error])?;
        Ok(())
    }

    /// Removes what was handled before `before` (ms since the epoch): the message ids seen (a
    /// platform's repeat of a message handled before then is no longer recognised), chat
    /// messages delivered or dropped before then, posted and failed replies (the newest of each room stays: it says the room
    /// was posted in), and expired confirmations. Nothing still to do is touched: queued, held,
    /// pasting or pending rows stay whatever their age. Runs in small transactions, so the
    /// bridge's own writes never wait long behind it.
    pub fn prune(&self, before: i64) -> Result<Pruned> {
        // Handled: delivered or dropped then (`delivered`; rows of older versions have only
        // their arrival). An id is kept as long as its message may still come (still to do),
        // and for `before` after it was handled (its `at` is moved then).
        let messages = self.delete_in_batches(
            "DELETE FROM inbox WHERE id IN (SELECT id FROM inbox
                 WHERE status IN ('delivered', 'dropped') AND COALESCE(delivered, created) < ?1
                 LIMIT ?2)",
            before,
        )?;
        let seen = self.delete_in_batches(
            "DELETE FROM seen WHERE rowid IN (SELECT rowid FROM seen WHERE at < ?1
                 AND NOT EXISTS (SELECT 1 FROM inbox
                     WHERE status IN ('queued', 'delivering', 'pasting', 'held')
                     AND inbox.connector = seen.connector AND inbox.message_id = seen.message_id)
                 LIMIT ?2)",
            before,
        )?;
        let newest: Vec<String> = self
            .conn
            .prepare("SELECT MAX(id) FROM outbox GROUP BY connector, room")?
            .query_map([], |r| r.get::<_, i64>(0))?
            .map(|id| id.map(|id| id.to_string()))
            .collect::<std::result::Result<_, _>>()?;
        let replies = self.delete_in_batches(
            &format!(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                     WHERE status IN ('sent', 'failed') AND created < ?1 AND id NOT IN ({}) LIMIT ?2)",
                newest.join(",")
            ),
            before,
        )?;
        self.conn
            .prepare_cached("DELETE FROM confirmation WHERE expires <= ?1")?
            .execute([now_ms()])?;
        Ok(Pruned {
            seen,
            messages,
            replies,
        })
    }

    /// Runs `delete` (with `?1` = `before` and `?2` = a batch's size) until it deletes nothing,
    /// each batch its own transaction; how many rows went.
    fn delete_in_batches(&self, delete: &str, before: i64) -> Result<usize> {
        let mut statement = self.conn.prepare(delete)?;
        let mut deleted = 0;
        loop {
            let n = statement.execute(params![before, PRUNE_BATCH])?;
            deleted += n;
            if n < PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }

    /// Sets a small value.
    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        self.conn.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2")?.execute(params![key, value],
        )?;
        Ok(())
    }

    /// Sets the cursor of `room` of `connector` (a connector's checkpoint is kept under
    /// [`mosaic_connector::CHECKPOINT_ROOM`]).
    pub fn set_cursor(&self, connector: &str, room: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO cursor (connector, room, message_id) VALUES (?1, ?2, ?3)
             ON CONFLICT(connector, room) DO UPDATE SET message_id = ?3",
            )?
            .execute(params![connector, room, value])?;
        Ok(())
    }

    /// The last message taken in each room of `connector`, as `(room, message id)`.
    pub fn cursors(&self, connector: &str) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT room, message_id FROM cursor WHERE connector = ?1 ORDER BY room",
        )?;
        let rows = stmt.query_map([connector], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Reads a small value.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many outbox rows another process (python's sqlite3) sees in `db`.
    fn rows_seen_by_another_process(db: &Path) -> String {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('SELECT COUNT(*) FROM outbox').fetchone()[0]); c.close()",
            ])
            .arg(db)
            .output()
            .expect("python3 runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    /// The daemon opens the database twice (the bridge, then the delivery worker): the second
    /// open must not drop the first one's locks, or another process closing its connection
    /// (`sqlite3` in a shell, a reader) deletes the WAL under the daemon and its later commits
    /// are lost.
    #[test]
    fn a_second_open_keeps_the_first_ones_commits_visible_to_other_processes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let mut bridge = Store::open(&db).unwrap();
        bridge
            .enqueue_out("c", "r", None, None, &["one".into()])
            .unwrap();
        let _worker = Store::open(&db).unwrap();
        assert_eq!(rows_seen_by_another_process(&db), "1");
        bridge
            .enqueue_out("c", "r", None, None, &["two".into()])
            .unwrap();
        assert_eq!(rows_seen_by_another_process(&db), "2");
    }

    fn msg(id: &str) -> Inbound {
        Inbound {
            connector: "fake".into(),
            message_id: id.into(),
            room: "r".into(),
            user: "u".into(),
            user_name: "U".into(),
            text: format!("text {id}"),
            thread: None,
            native_command: false,
        }
    }

    /// Pruning removes what was handled before the cutoff, and only that: what is still to do
    /// (queued, held, pending) stays whatever its age, and each room's newest reply stays.
    #[test]
    fn prune_removes_only_what_was_handled_before_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("b.db")).unwrap();
        for id in ["old-delivered", "old-held", "old-queued", "new-delivered"] {
            s.accept(&msg(id), true).unwrap();
        }
        s.mark_delivered(&[1, 4]).unwrap();
        s.mark_held(2).unwrap();
        // Replies posted long ago: two in room r (its newest row, still pending, stays and says
        // r was posted in), the only one in room q (stays: the newest of q).
        for (room, text) in [("r", "r1"), ("r", "r2"), ("q", "q1"), ("r", "pending")] {
            s.enqueue_out("fake", room, None, None, &[text.into()])
                .unwrap();
        }
        for id in [1, 2, 3] {
            s.out_sent(id, "p").unwrap();
        }
        let (old, cutoff) = (now_ms() - 40 * 86_400_000, now_ms() - 30 * 86_400_000);
        s.conn
            .execute_batch(&format!(
                "UPDATE seen SET at = {old} WHERE message_id != 'new-delivered';
                 UPDATE inbox SET created = {old} WHERE message_id != 'new-delivered';
                 UPDATE inbox SET delivered = {old} WHERE message_id = 'old-delivered';
                 UPDATE outbox SET created = {old};"
            ))
            .unwrap();
        assert_eq!(
            s.prune(cutoff).unwrap(),
            Pruned {
                seen: 1,
                messages: 1,
                replies: 2
            }
        );
        let left = |sql: &str| -> Vec<String> {
            let mut st = s.conn.prepare(sql).unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            left("SELECT message_id FROM inbox ORDER BY id"),
            ["old-held", "old-queued", "new-delivered"]
        );
        assert_eq!(
            left("SELECT text FROM outbox ORDER BY id"),
            ["q1", "pending"]
        );
        // The ids of messages still to do stay, however old.
        assert_eq!(
            left("SELECT message_id FROM seen ORDER BY rowid"),
            ["old-held", "old-queued", "new-delivered"]
        );
        // A repeat of a recent message is still dropped; one of a pruned one is taken again.
        for id in ["new-delivered", "old-held", "old-queued"] {
            assert_eq!(s.accept(&msg(id), true).unwrap(), Accepted::Duplicate);
        }
        assert!(matches!(
            s.accept(&msg("old-delivered"), true).unwrap(),
            Accepted::New { .. }
        ));
        // Nothing more to prune: a second run removes nothing.
        assert_eq!(s.prune(cutoff).unwrap(), Pruned::default());
    }

    /// A message that arrived long ago but was handled (delivered, dropped) just now is kept,
    /// and so is its id: history counts from the handling.
    #[test]
    fn prune_counts_from_when_a_message_was_handled() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("b.db")).unwrap();
        for id in ["waited", "held-then-dropped"] {
            s.accept(&msg(id), true).unwrap();
        }
        let (old, cutoff) = (now_ms() - 40 * 86_400_000, now_ms() - 30 * 86_400_000);
        s.conn
            .execute_batch(&format!(
                "UPDATE seen SET at = {old}; UPDATE inbox SET created = {old};"
            ))
            .unwrap();
        s.mark_delivered(&[1]).unwrap();
        s.mark_held(2).unwrap();
        assert!(s.resolve_held(2, false).unwrap());
        assert_eq!(s.prune(cutoff).unwrap(), Pruned::default());
        for id in ["waited", "held-then-dropped"] {
            assert_eq!(s.accept(&msg(id), true).unwrap(), Accepted::Duplicate);
        }
        assert!(s.queued(1).unwrap().is_some());
    }

    /// Pruning goes in batches: more rows than one batch all go.
    #[test]
    fn prune_goes_through_more_than_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("b.db")).unwrap();
        for i in 0..(PRUNE_BATCH * 2 + 7) {
            s.accept(&msg(&format!("m{i}")), false).unwrap();
        }
        s.conn.execute_batch("UPDATE seen SET at = 0").unwrap();
        assert_eq!(s.prune(1).unwrap().seen, PRUNE_BATCH * 2 + 7);
    }

    #[test]
    fn accept_dedups_and_queues_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("b.db")).unwrap();
        assert_eq!(
            s.accept(&msg("a"), true).unwrap(),
            Accepted::New {
                queued: Some(1),
                ahead: 0
            }
        );
        assert_eq!(s.accept(&msg("a"), true).unwrap(), Accepted::Duplicate);
        assert_eq!(
            s.accept(&msg("b"), true).unwrap(),
            Accepted::New {
                queued: Some(2),
                ahead: 1
            }
        );
        assert_eq!(
            s.accept(&msg("c"), false).unwrap(),
            Accepted::New {
                queued: None,
                ahead: 0
            }
        );
        let first = s.next_queued().unwrap().unwrap();
        assert_eq!(first.inbound.message_id, "a");
        s.mark_delivering(&[first.id], "{}").unwrap();
        assert_eq!(s.next_queued().unwrap().unwrap().inbound.message_id, "b");
        // A reopened store sees the same state (what a restart after kill -9 sees).
        drop(s);
        let mut s = Store::open(&dir.path().join("b.db")).unwrap();
        assert_eq!(s.in_delivery().unwrap().len(), 1);
        s.mark_pasting(&[first.id], "7/%0/8", "mosaic-1-1").unwrap();
        assert_eq!(
            s.in_delivery().unwrap()[0].1,
            Paste::MaybeSent {
                into: Some("7/%0/8".into()),
                buffer: Some("mosaic-1-1".into())
            }
        );
        assert_eq!(s.queue_len().unwrap(), 2);
        assert_eq!(
            s.cursors("fake").unwrap(),
            [("r".to_owned(), "c".to_owned())],
            "the last message taken in the room"
        );
        s.mark_delivered(&[1]).unwrap();
        assert_eq!(s.queue_len().unwrap(), 1);
    }

    #[test]
    fn a_turn_takes_the_oldest_messages_of_one_room_within_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("b.db")).unwrap();
        let in_room = |id: &str, room: &str, text: &str| Inbound {
            room: room.into(),
            text: text.into(),
            ..msg(id)
        };
        for (id, room, text) in [
            ("a", "r", "12345"),
            ("b", "r", "12345"),
            ("c", "r", "12345"),
            ("d", "other", "x"),
            ("e", "r", "y"),
        ] {
            s.accept(&in_room(id, room, text), true).unwrap();
        }
        let text_len = |q: &Queued| q.inbound.text.len();
        let ids = |batch: Vec<Queued>| -> Vec<String> {
            batch.into_iter().map(|q| q.inbound.message_id).collect()
        };
        // Stops before another room, whatever the bounds.
        assert_eq!(
            ids(s.next_batch(100, 1 << 20, text_len).unwrap()),
            ["a", "b", "c"]
        );
        assert_eq!(ids(s.next_batch(2, 1 << 20, text_len).unwrap()), ["a", "b"]);
        assert_eq!(ids(s.next_batch(100, 12, text_len).unwrap()), ["a", "b"]);
        // The first goes alone when it is longer than the byte bound.
        assert_eq!(ids(s.next_batch(100, 1, text_len).unwrap()), ["a"]);
        s.mark_delivering(&[1, 2, 3], "{}").unwrap();
        s.mark_pasting(&[1, 2, 3], "1/%0/2", "mosaic-1-2").unwrap();
        assert_eq!(s.in_delivery().unwrap().len(), 3);
        s.mark_delivered(&[1, 2, 3]).unwrap();
        assert_eq!(ids(s.next_batch(100, 1 << 20, text_len).unwrap()), ["d"]);
        s.mark_delivered(&[4]).unwrap();
        assert_eq!(ids(s.next_batch(100, 1 << 20, text_len).unwrap()), ["e"]);
    }

    #[test]
    fn group_commit_makes_concurrent_commits_durable_with_fewer_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let store = std::sync::Mutex::new(Store::open(&db).unwrap());
        store.lock().unwrap().relax_durability().unwrap();
        let group = GroupCommit::open(&db).unwrap();
        let commits = 400;
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (store, group) = (&store, &group);
                scope.spawn(move || {
                    for i in 0..commits / 4 {
                        let ticket = {
                            let mut s = store.lock().unwrap();
                            s.accept(&msg(&format!("{t}-{i}")), true).unwrap();
                            group.committed()
                        };
                        group.sync_through(ticket).unwrap();
                    }
                });
            }
        });
        assert_eq!(store.lock().unwrap().queue_len().unwrap(), commits);
        assert!(group.syncs() >= 1);
        assert!(
            group.syncs() < commits as u64,
            "{} syncs for {commits} commits",
            group.syncs()
        );
    }

    #[test]
    fn a_commit_nobody_waits_for_is_synced_soon_or_by_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let mut store = Store::open(&db).unwrap();
        store.relax_durability().unwrap();
        let group = GroupCommit::open(&db).unwrap();
        store.accept(&msg("alone"), true).unwrap();
        group.sync_soon(group.committed());
        let t = std::time::Instant::now();
        while group.syncs() == 0 {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "never synced"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Covered by a sync someone waits for: the later one finds it done.
        store.accept(&msg("covered"), true).unwrap();
        let soon = group.committed();
        group.sync_soon(soon);
        store.accept(&msg("waited for"), true).unwrap();
        group.sync_through(group.committed()).unwrap();
        let synced = group.syncs();
        std::thread::sleep(SYNC_SOON * 5);
        assert_eq!(
            group.syncs(),
            synced,
            "the sync waited for covered the earlier one"
        );
        drop(group);
    }

    #[test]
    fn outbox_retries_are_scheduled() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("b.db")).unwrap();
        let ids = s
            .enqueue_out("fake", "r", None, None, &["one".into(), "two".into()])
            .unwrap();
        assert_eq!(ids.len(), 2);
        s.out_retry(ids[0], 1, now_ms() + 60_000, "down").unwrap();
        let pending = s.pending_out(now_ms()).unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|(p, due)| (p.text.as_str(), *due))
                .collect::<Vec<_>>(),
            [("one", false), ("two", true)]
        );
        s.out_sent(ids[1], "p2").unwrap();
        s.out_failed(ids[0], "bad").unwrap();
        assert!(s.pending_out(now_ms()).unwrap().is_empty());
        s.set("k", "v1").unwrap();
        s.set("k", "v2").unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some("v2"));
    }
}
