//! An in-memory connector for tests of the bridge (feature `test-util`): tests play the
//! platform's side (users posting, outages) and read what the bridge posted.

use crate::compliance::Platform;
use crate::registry::{BuildContext, ConnectorConfig, Question, QuestionKind, Typed};
use crate::{
    Capabilities, Connector, ConnectorError, ErrorKind, Health, Inbound, Markdown, Outbound,
    RunContext,
};
use async_trait::async_trait;
use mosaic_roster::SecretRef;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::{Notify, mpsc};

/// A fake chat platform and its connector in one.
pub struct FakeConnector {
    id: String,
    capabilities: Capabilities,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Inbound>,
    sender: Option<mpsc::Sender<Inbound>>,
    sent: Vec<Outbound>,
    acks: Vec<(String, String)>,
    failures: VecDeque<ErrorKind>,
    next_id: u64,
    running: bool,
}

impl FakeConnector {
    /// A fake connector called `id` that accepts messages up to `max_message_len` characters.
    pub fn new(id: &str, max_message_len: usize) -> FakeConnector {
        FakeConnector {
            id: id.to_owned(),
            capabilities: Capabilities {
                max_message_len,
                markdown: Markdown::CommonMark,
                threads: true,
                native_commands: false,
                reactions: true,
            },
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    /// The same fake speaking another markdown dialect.
    pub fn with_markdown(mut self, markdown: Markdown) -> FakeConnector {
        self.capabilities.markdown = markdown;
        self
    }

    /// A user posts `text` in `room`; returns the new message's id.
    pub fn post(&self, room: &str, user: &str, text: &str) -> String {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = format!("m{}", st.next_id);
        st.pending.push_back(Inbound {
            connector: self.id.clone(),
            message_id: id.clone(),
            room: room.to_owned(),
            user: user.to_owned(),
            user_name: user.to_owned(),
            text: text.to_owned(),
            thread: None,
            native_command: false,
        });
        drop(st);
        self.changed.notify_waiters();
        id
    }

    /// Redelivers an already-posted message (platforms do after reconnects).
    pub fn redeliver(&self, inbound: Inbound) {
        self.state.lock().unwrap().pending.push_back(inbound);
        self.changed.notify_waiters();
    }

    /// The next `n` sends fail with `kind`.
    pub fn fail_next_sends(&self, n: usize, kind: ErrorKind) {
        self.state
            .lock()
            .unwrap()
            .failures
            .extend(std::iter::repeat_n(kind, n));
    }

    /// Whether `run` is serving.
    pub fn is_running(&self) -> bool {
        self.state.lock().unwrap().running
    }

    /// Everything posted so far, oldest first.
    pub fn sent(&self) -> Vec<Outbound> {
        self.state.lock().unwrap().sent.clone()
    }

    /// Every `(room, message id)` acknowledged so far.
    pub fn acks(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().acks.clone()
    }

    fn take_failure(&self) -> Option<ConnectorError> {
        self.state
            .lock()
            .unwrap()
            .failures
            .pop_front()
            .map(|k| ConnectorError::new(k, "injected failure"))
    }
}

#[async_trait]
impl Connector for FakeConnector {
    fn id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn run(&self, mut ctx: RunContext) -> Result<(), ConnectorError> {
        self.state.lock().unwrap().running = true;
        ctx.health.set(Health::Up);
        loop {
            let notified = self.changed.notified();
            let next = self.state.lock().unwrap().pending.pop_front();
            match next {
                Some(ev) => {
                    if ctx.inbound.send(ev).await.is_err() {
                        break;
                    }
                }
                None => tokio::select! {
                    _ = notified => {}
                    _ = ctx.inbound.closed() => break,
                    _ = ctx.shutdown.wait() => break,
                },
            }
        }
        let mut st = self.state.lock().unwrap();
        st.running = false;
        st.sender = None;
        ctx.health.set(Health::Down("stopped".into()));
        Ok(())
    }

    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError> {
        if let Some(e) = self.take_failure() {
            return Err(e);
        }
        if message.text.chars().count() > self.capabilities.max_message_len {
            return Err(ConnectorError::new(ErrorKind::Fatal, "message too long"));
        }
        let mut st = self.state.lock().unwrap();
        st.sent.push(message.clone());
        Ok(format!("sent{}", st.sent.len()))
    }

    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError> {
        self.state
            .lock()
            .unwrap()
            .acks
            .push((room.to_owned(), message_id.to_owned()));
        Ok(())
    }
}

/// The `fake` connector type, so a roster can name a fake's rooms (`{type: fake, id: ID,
/// rooms: [...]}`); its build makes a new [`FakeConnector`].
pub static TYPE: Typed<FakeSettings> = Typed::new();

/// A `fake` roster entry.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeSettings {
    /// The rooms it bridges.
    pub rooms: Vec<String>,
}

impl ConnectorConfig for FakeSettings {
    const TYPE: &'static str = "fake";
    const SUMMARY: &'static str = "TEST SUPPORT: an in-memory chat platform";

    fn questions() -> Vec<Question> {
        vec![Question {
            field: "rooms",
            flag: "target",
            value_name: "ID",
            prompt: "fake rooms",
            kind: QuestionKind::List,
        }]
    }

    fn rooms(&self) -> (&'static str, Vec<String>) {
        ("rooms", self.rooms.clone())
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        Vec::new()
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let id = ctx.id;
        Ok(Arc::new(FakeConnector::new(id, 2000)))
    }
}

/// The platform side of a [`FakeConnector`] for the compliance suite: room `room-1`, user
/// `user-1`.
pub struct FakePlatform(pub Arc<FakeConnector>);

#[async_trait]
impl Platform for FakePlatform {
    fn connector(&self) -> Arc<dyn Connector> {
        self.0.clone()
    }
    fn room(&self) -> String {
        "room-1".into()
    }
    fn user(&self) -> String {
        "user-1".into()
    }
    async fn post(&self, room: &str, user: &str, text: &str) -> String {
        self.0.post(room, user, text)
    }
    async fn posted(&self, room: &str) -> Vec<String> {
        let sent = self.0.sent().into_iter().filter(|m| m.room == room);
        sent.map(|m| m.text).collect()
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        let ack = (room.to_owned(), message_id.to_owned());
        self.0.acks().contains(&ack)
    }
    async fn fail_next_posts(&self, n: usize) {
        self.0.fail_next_sends(n, ErrorKind::Retryable);
    }
}
