//! `mosaic chat`: a terminal chat with the orchestrator through the daemon, with the same
//! grammar and ACL as any chat room (the local user is admin).

use crate::client::Daemon;
use anyhow::Result;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

/// Reads lines from stdin and sends each; prints replies as they come.
pub fn run(daemon: Daemon, linger: Duration) -> Result<()> {
    let daemon = std::sync::Arc::new(daemon);
    let listener = daemon.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = ready_tx.send(());
        let _ = listener.events(|event| {
            if event["type"] == "message_out" && event["connector"] == "local" {
                let text = event["text"].as_str().unwrap_or_default();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            true
        });
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(2));
    // Give the event stream a moment to connect before the first message can be answered.
    std::thread::sleep(Duration::from_millis(200));
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!("Talking to the orchestrator. `/fleet help` lists commands; Ctrl-D quits.");
    }
    let pid = std::process::id();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let id = format!("chat-{pid}-{}-{n}", chrono::Utc::now().timestamp_millis());
        // The same id on every attempt: the daemon takes a message at most once.
        let mut result = daemon.post("/v1/chat", json!({ "text": line, "id": id }));
        for _ in 0..3 {
            if result.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            result = daemon.post("/v1/chat", json!({ "text": line, "id": id }));
        }
        match result {
            Ok(v) if v["verdict"]["status"] == "queued" && interactive => println!(
                "  (queued for the orchestrator, #{})",
                v["verdict"]["queue_id"]
            ),
            Ok(_) => {}
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    std::thread::sleep(linger);
    Ok(())
}
