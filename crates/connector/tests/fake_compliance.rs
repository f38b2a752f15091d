//! The fake connector passes the shared compliance suite (as every real connector must).

use async_trait::async_trait;
use mosaic_connector::compliance::{Platform, run_suite};
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
        self.0
            .sent()
            .into_iter()
            .filter(|m| m.room == room)
            .map(|m| m.text)
            .collect()
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        self.0
            .acks()
            .contains(&(room.to_owned(), message_id.to_owned()))
    }
    async fn fail_next_posts(&self, n: usize) {
        self.0.fail_next_sends(n, ErrorKind::Retryable);
    }
}

#[tokio::test]
async fn the_fake_connector_is_compliant() {
    run_suite(&FakePlatform(Arc::new(FakeConnector::new("fake", 2000)))).await;
}
