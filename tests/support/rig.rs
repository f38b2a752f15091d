//! The real-harness rig: Claude Code, Codex and pi from npm (installed by
//! `deploy/install-harnesses.sh`, cached outside the clone) against the scripted model server
//! (TEST SUPPORT, `crates/scripted-model`), in a sandbox whose HOME holds only what each harness
//! needs to start offline with no dialog.

use super::*;
use std::sync::OnceLock;

/// The folder holding the real harnesses' executables (installs them the first time).
pub fn harness_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new("bash")
            .arg(root.join("deploy/install-harnesses.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "deploy/install-harnesses.sh failed: the real-harness tests need Node.js 20+ with npm"
        );
        PathBuf::from(text(&out.stdout).trim())
    })
    .clone()
}

/// `PATH` with the real harnesses first.
pub fn path_with_harnesses() -> String {
    format!(
        "{}:{}",
        harness_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A scripted model server on loopback for this test (stops with the test process).
pub fn model() -> mosaic_scripted_model::Running {
    mosaic_scripted_model::Running::start().expect("the scripted model server starts")
}

/// Runs `mosaic ARGS` in the sandbox with the real harnesses on `PATH` (so a fleet start finds
/// them); its stdout, failing the test with both outputs if it failed.
pub fn ok_with_harnesses(s: &Sandbox, args: &[&str]) -> String {
    s.ok_with(args, &[("PATH", path_with_harnesses())])
}

/// A marker no other run shares: `PREFIX-` and hex digits (process id and clock).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}{:x}", std::process::id(), nanos)
}

/// The command line of process `pid` (its arguments, as the kernel shows them).
pub fn cmdline(pid: u64) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The session mosaic keeps for `agent` (the one its next launch resumes), if any.
pub fn kept_session(s: &Sandbox, agent: &str) -> Option<String> {
    std::fs::read_to_string(s.state().join("agents").join(agent).join("session"))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Whether `text` is a UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `(agent, state)` of each `agent_state` event on the daemon's event stream, as they come.
pub fn event_stream(s: &Sandbox) -> std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> {
    let info: serde_json::Value =
        serde_json::from_str(&read(&s.state().join("daemon.json"))).unwrap();
    let url = format!("{}/v1/events", info["url"].as_str().unwrap());
    let token = read(&s.state().join("api.token"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (connected, is_connected) = std::sync::mpsc::channel();
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut response = ureq::get(&url)
            .header("Authorization", format!("Bearer {}", token.trim()))
            .call()
            .unwrap();
        let _ = connected.send(());
        let reader = std::io::BufReader::new(response.body_mut().as_reader());
        for line in std::io::BufRead::lines(reader) {
            let Ok(line) = line else { break };
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                continue;
            };
            if event["type"] == "agent_state" {
                sink.lock().unwrap().push((
                    event["name"].as_str().unwrap_or_default().to_owned(),
                    event["state"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    });
    is_connected
        .recv_timeout(Duration::from_secs(10))
        .expect("the event stream connects");
    seen
}

/// The command tmux started in `agent`'s pane (its last launch), as tmux shows it: arguments
/// joined by spaces, quoted where needed. For a harness that renames its process (pi sets
/// `process.title`, which overwrites `/proc/PID/cmdline`).
pub fn start_command(s: &Sandbox, agent: &str) -> String {
    s.tmux()
        .run(&[
            "display-message",
            "-p",
            "-t",
            &format!("={agent}:"),
            "#{pane_start_command}",
        ])
        .unwrap()
        .trim_end()
        .to_owned()
}

/// Asserts that a resumed harness sent the model its earlier turn: the first prompt
/// (`remember the word ALPHA`) and the model's answer to it (`noted ALPHA`), as `(role, text)`
/// pairs of the request's conversation.
pub fn assert_resumed(conversation: &[(String, String)], alpha: &str) {
    assert!(
        conversation
            .iter()
            .any(|(role, t)| role == "user" && t.contains(&format!("remember the word {alpha}"))),
        "the first prompt is in the resumed conversation: {conversation:#?}"
    );
    assert!(
        conversation
            .iter()
            .any(|(role, t)| role == "assistant" && t.contains(&format!("noted {alpha}"))),
        "and the model's answer to it: {conversation:#?}"
    );
}
