//! The in-memory fake connector passes the bridged half of the compliance suite too (it stands
//! in for a platform in the bridge's own tests, so it must behave like one).

use async_trait::async_trait;
use mosaic_bridge::compliance::{BridgedPlatform, Refusal, run_bridged_suite};
use mosaic_connector::compliance::Platform;
use mosaic_connector::fake::FakeConnector;
use mosaic_connector::{Connector, ErrorKind};
use std::sync::Arc;

struct FakePlatform(Arc<FakeConnector>);

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

#[async_trait]
impl BridgedPlatform for FakePlatform {
    fn register(&self) {
        // The fake has no type of its own; a testchat entry with its id bridges its room.
        mosaic_connector::registry::register(&mosaic_testchat::TYPE);
    }
    fn roster_entry(&self) -> String {
        "{type: testchat, id: fake, dir: /nonexistent, rooms: [room-1], token: {env: T}}".into()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_connector_passes_the_bridged_suite() {
    run_bridged_suite(&FakePlatform(Arc::new(FakeConnector::new("fake", 2000)))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_rendered_for_telegram_markdown_under_the_bridge() {
    let fake =
        FakeConnector::new("fake", 500).with_markdown(mosaic_connector::Markdown::TelegramV2);
    let platform = FakePlatform(Arc::new(fake));
    run_bridged_suite(&platform).await;
    // The suite's long reply reached the platform escaped, never as raw CommonMark.
    let sent = platform.posted("room-1").await;
    assert!(
        sent.iter()
            .any(|t| t.contains("*bold* and `code` \\- v1\\.2 \\(done\\)\\!")),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|t| t.contains("**bold**")), "{sent:?}");
}
