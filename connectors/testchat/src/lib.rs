//! TEST SUPPORT, not a product connector: "testchat", a chat platform made of files in one
//! directory, and its mosaic connector. It exists to prove the connector registry: it is added to
//! mosaic by this folder, one registration line (`crates/cli/src/connectors.rs`) and the cargo
//! feature `testchat`, and init, verify, the ACL and the daemon pick it up from its descriptor.
//!
//! The platform: users append JSON lines `{"id": N, "room", "user", "text"}` to `DIR/inbox.jsonl`
//! (ids grow); the bot's posts are appended to `DIR/outbox.jsonl` as `{"room", "text",
//! "reply_to", "key"}`, its acks to `DIR/acks.jsonl`. The platform's credential is the first line
//! of `DIR/token`: every call checks the bot's token against it (a wrong one is
//! [`ErrorKind::Auth`]). A file `DIR/fail-next-post` makes the next post fail (it is removed):
//! empty, with a 5xx-like error; `429 SECS`, with a rate limit asking to wait SECS; `400`, with
//! a rejection.

use async_trait::async_trait;
use mosaic_connector::registry::{BuildContext, ConnectorConfig, Question, QuestionKind, Typed};
use mosaic_connector::{
    Capabilities, Connector, ConnectorError, ErrorKind, Health, Inbound, Markdown, Outbound,
    RunContext,
};
use mosaic_roster::{SecretRef, SettingProblem};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The testchat connector type.
pub static TYPE: Typed<TestchatSettings> = Typed::new();

/// A testchat entry of the roster (`type: testchat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestchatSettings {
    /// The platform's directory.
    pub dir: String,
    /// Rooms bridged to the orchestrator.
    pub rooms: Vec<String>,
    /// Where the bot's token is.
    pub token: SecretRef,
}

impl ConnectorConfig for TestchatSettings {
    const TYPE: &'static str = "testchat";
    const SUMMARY: &'static str = "TEST SUPPORT: a chat platform made of files";

    fn questions() -> Vec<Question> {
        vec![
            Question {
                field: "dir",
                flag: "testchat-dir",
                value_name: "DIR",
                prompt: "testchat platform directory",
                kind: QuestionKind::Text { default: None },
            },
            Question {
                field: "rooms",
                flag: "target",
                value_name: "ID",
                prompt: "testchat rooms",
                kind: QuestionKind::List,
            },
            Question {
                field: "token",
                flag: "secret-env",
                value_name: "VAR",
                prompt: "testchat bot token",
                kind: QuestionKind::Secret {
                    default_env: "TESTCHAT_TOKEN",
                    file_flag: Some("secret-file"),
                },
            },
        ]
    }

    fn rooms(&self) -> (&'static str, Vec<String>) {
        ("rooms", self.rooms.clone())
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("token", &self.token)]
    }

    fn validate(&self) -> Vec<SettingProblem> {
        if Path::new(&self.dir).is_absolute() {
            Vec::new()
        } else {
            vec![SettingProblem::new(
                "dir",
                format!(
                    "{} must be an absolute path",
                    mosaic_roster::redact::shown(&self.dir)
                ),
            )]
        }
    }

    fn check_secret(&self, _field: &str, value: &str) -> Result<(), (String, String)> {
        if value.starts_with("tc-") {
            Ok(())
        } else {
            Err((
                "does not hold a testchat token (tc-…)".into(),
                "copy the token from DIR/token".into(),
            ))
        }
    }

    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Connector>, ConnectorError> {
        let id = ctx.id;
        let token = self
            .token
            .resolve()
            .map_err(|e| ConnectorError::new(ErrorKind::Auth, format!("testchat token: {e}")))?;
        Ok(Arc::new(TestchatConnector {
            id: id.to_owned(),
            dir: PathBuf::from(&self.dir),
            token,
        }))
    }
}

/// One line of `inbox.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserMessage {
    /// Platform message id (grows).
    pub id: u64,
    /// Room.
    pub room: String,
    /// Author.
    pub user: String,
    /// Text.
    pub text: String,
}

/// The connector.
pub struct TestchatConnector {
    id: String,
    dir: PathBuf,
    token: String,
}

impl TestchatConnector {
    fn authorize(&self) -> Result<(), ConnectorError> {
        let expected = std::fs::read_to_string(self.dir.join("token")).unwrap_or_default();
        if expected.lines().next().unwrap_or("").trim() == self.token {
            Ok(())
        } else {
            Err(ConnectorError::new(
                ErrorKind::Auth,
                "testchat: the token was refused",
            ))
        }
    }

    fn append(&self, file: &str, line: &serde_json::Value) -> Result<(), ConnectorError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(file))
            .map_err(|e| ConnectorError::new(ErrorKind::Retryable, e))?;
        // One write a line: a kill cannot leave half a line for the next to run into.
        f.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| ConnectorError::new(ErrorKind::Retryable, e))
    }
}

/// Appends a user's message to the platform (what a test does as the user); returns its id.
pub fn post(dir: &Path, room: &str, user: &str, text: &str) -> u64 {
    let inbox = dir.join("inbox.jsonl");
    let id = std::fs::read_to_string(&inbox)
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0)
        + 1;
    let line = serde_json::to_string(&UserMessage {
        id,
        room: room.into(),
        user: user.into(),
        text: text.into(),
    })
    .expect("serializes");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(inbox)
        .expect("inbox is writable");
    f.write_all(format!("{line}\n").as_bytes())
        .expect("inbox is writable");
    id
}

/// The bot's posts in `room`, oldest first.
pub fn posted(dir: &Path, room: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join("outbox.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["room"] == room)
        .map(|v| v["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[async_trait]
impl Connector for TestchatConnector {
    fn id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: 1000,
            markdown: Markdown::CommonMark,
            threads: false,
            native_commands: false,
            reactions: true,
        }
    }

    async fn run(&self, mut ctx: RunContext) -> Result<(), ConnectorError> {
        self.authorize()?;
        ctx.health.set(Health::Up);
        // History: everything after each room's cursor is (re)read on a fresh session.
        let mut after: std::collections::HashMap<String, u64> = ctx
            .cursors
            .current()
            .into_iter()
            .filter_map(|(room, id)| Some((room, id.parse().ok()?)))
            .collect();
        loop {
            let text = std::fs::read_to_string(self.dir.join("inbox.jsonl")).unwrap_or_default();
            for line in text.lines() {
                let Ok(m) = serde_json::from_str::<UserMessage>(line) else {
                    continue;
                };
                if after.get(&m.room).is_some_and(|last| m.id <= *last) {
                    continue;
                }
                after.insert(m.room.clone(), m.id);
                let inbound = Inbound {
                    connector: self.id.clone(),
                    message_id: m.id.to_string(),
                    room: m.room,
                    user: m.user.clone(),
                    user_name: m.user,
                    text: m.text,
                    thread: None,
                    native_command: false,
                };
                if ctx.inbound.send(inbound).await.is_err() {
                    return Ok(());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = ctx.shutdown.wait() => return Ok(()),
                _ = ctx.inbound.closed() => return Ok(()),
            }
        }
    }

    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError> {
        self.authorize()?;
        let fail = self.dir.join("fail-next-post");
        if let Ok(how) = std::fs::read_to_string(&fail)
            && std::fs::remove_file(&fail).is_ok()
        {
            let mut words = how.split_whitespace();
            return Err(match (words.next(), words.next().map(str::parse::<f64>)) {
                (Some("429"), Some(Ok(secs))) => ConnectorError::new(
                    ErrorKind::RateLimited {
                        retry_after: Duration::from_secs_f64(secs),
                    },
                    "testchat: 429",
                ),
                (Some("400"), _) => ConnectorError::new(ErrorKind::Fatal, "testchat: 400"),
                _ => ConnectorError::new(ErrorKind::Retryable, "testchat: 503"),
            });
        }
        self.append(
            "outbox.jsonl",
            &serde_json::json!({
                "room": message.room,
                "text": message.text,
                "reply_to": message.reply_to,
                "key": message.key,
            }),
        )?;
        Ok(message.key.clone())
    }

    async fn ack(&self, room: &str, message_id: &str) -> Result<(), ConnectorError> {
        self.authorize()?;
        self.append(
            "acks.jsonl",
            &serde_json::json!({"room": room, "message_id": message_id}),
        )
    }
}

/// The platform side of a testchat directory for the compliance suites: room `lobby`, user
/// `ann`, a token file `tc-secret`.
pub struct TestchatPlatform {
    dir: tempfile::TempDir,
    connector: Arc<dyn Connector>,
}

impl TestchatPlatform {
    /// A fresh platform directory and its connector.
    pub fn new() -> TestchatPlatform {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("token"), "tc-secret\n").expect("token written");
        let connector = Arc::new(TestchatConnector {
            id: "testchat".into(),
            dir: dir.path().to_owned(),
            token: "tc-secret".into(),
        });
        TestchatPlatform { dir, connector }
    }

    /// The platform's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the next post fail: `""` transient, `"429 SECS"` rate limited, `"400"` rejected.
    pub fn fail_next_post(&self, how: &str) {
        std::fs::write(self.dir().join("fail-next-post"), how).expect("written");
    }
}

impl Default for TestchatPlatform {
    fn default() -> Self {
        TestchatPlatform::new()
    }
}

#[async_trait]
impl mosaic_connector::compliance::Platform for TestchatPlatform {
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
        post(self.dir(), room, user, text).to_string()
    }
    async fn posted(&self, room: &str) -> Vec<String> {
        posted(self.dir(), room)
    }
    async fn acked(&self, room: &str, message_id: &str) -> bool {
        std::fs::read_to_string(self.dir().join("acks.jsonl"))
            .unwrap_or_default()
            .contains(&format!(r#""message_id":"{message_id}","room":"{room}""#))
    }
    async fn fail_next_posts(&self, _n: usize) {
        self.fail_next_post("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_bridge::compliance::{BridgedPlatform, Refusal, run_bridged_suite};
    use mosaic_connector::compliance::run_suite;

    #[async_trait]
    impl BridgedPlatform for TestchatPlatform {
        fn register(&self) {
            mosaic_connector::registry::register(&TYPE);
        }
        fn roster_entry(&self) -> String {
            format!(
                "{{type: testchat, dir: '{}', rooms: [lobby], token: {{env: TESTCHAT_TOKEN}}}}",
                self.dir().display()
            )
        }
        fn stranger(&self) -> String {
            "mallory".into()
        }
        async fn refuse_next_post(&self, refusal: Refusal) {
            self.fail_next_post(&match refusal {
                Refusal::RateLimited(d) => format!("429 {}", d.as_secs_f64()),
                Refusal::Rejected => "400".into(),
            });
        }
        async fn post_native(&self, _room: &str, _user: &str, _line: &str) -> Option<String> {
            None
        }
        async fn native_answers(&self, _room: &str) -> Vec<String> {
            Vec::new()
        }
    }

    #[tokio::test]
    async fn testchat_passes_the_compliance_suite() {
        run_suite(&TestchatPlatform::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn testchat_passes_the_bridged_compliance_suite() {
        run_bridged_suite(&TestchatPlatform::new()).await;
    }
}
