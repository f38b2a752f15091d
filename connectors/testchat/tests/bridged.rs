//! testchat under the real bridge: the bridged half of the compliance suite.

use async_trait::async_trait;
use mosaic_bridge::compliance::{BridgedPlatform, Refusal, run_bridged_suite};
use mosaic_connector::Connector;
use mosaic_connector::compliance::Platform;
use mosaic_connector::registry::ConnectorType;
use mosaic_roster::ConnectorEntry;
use std::sync::Arc;

struct Files {
    dir: tempfile::TempDir,
    connector: Arc<dyn Connector>,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "tc-secret\n").unwrap();
        // SAFETY of the test: the variable is only read by this process's connector build.
        let entry: ConnectorEntry = serde_yaml_ng::from_str(&format!(
            "{{type: testchat, dir: '{}', rooms: [lobby], token: {{file: '{}'}}}}",
            dir.path().display(),
            dir.path().join("token").display()
        ))
        .unwrap();
        let connector = mosaic_testchat::TYPE.build(&entry).unwrap();
        Files { dir, connector }
    }
}

#[async_trait]
impl Platform for Files {
    fn connector(&self) -> Arc<dyn Connector> {
        self.connector.clone()
    }
    fn room(&self) -> String {
        "lobby".into()
    }
    fn user(&self) -> String {
        "ann".into()
    }
    async fn post(&self, room: &str, user: &str, text: &str) -> String {
        mosaic_testchat::post(self.dir.path(), room, user, text).to_string()
    }
    async fn posted(&self, room: &str) -> Vec<String> {
        mosaic_testchat::posted(self.dir.path(), room)
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        std::fs::read_to_string(self.dir.path().join("acks.jsonl"))
            .unwrap_or_default()
            .contains(&format!(r#""message_id":"{message_id}","room":"{room}""#))
    }
    async fn fail_next_posts(&self, _n: usize) {
        std::fs::write(self.dir.path().join("fail-next-post"), "").unwrap();
    }
}

#[async_trait]
impl BridgedPlatform for Files {
    fn register(&self) {
        mosaic_connector::registry::register(&mosaic_testchat::TYPE);
    }
    fn roster_entry(&self) -> String {
        format!(
            "{{type: testchat, dir: '{}', rooms: [lobby], token: {{env: TESTCHAT_TOKEN}}}}",
            self.dir.path().display()
        )
    }
    fn stranger(&self) -> String {
        "mallory".into()
    }
    async fn refuse_next_post(&self, refusal: Refusal) {
        let how = match refusal {
            Refusal::RateLimited(d) => format!("429 {}", d.as_secs_f64()),
            Refusal::Rejected => "400".into(),
        };
        std::fs::write(self.dir.path().join("fail-next-post"), how).unwrap();
    }
    async fn post_native(&self, _room: &str, _user: &str, _line: &str) -> Option<String> {
        None
    }
    async fn native_answers(&self, _room: &str) -> Vec<String> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testchat_passes_the_bridged_compliance_suite() {
    run_bridged_suite(&Files::new()).await;
}
