//! `mosaic chat`: a terminal chat with the orchestrator through the daemon, with the same
//! grammar and ACL as any chat room (the local user is admin).

use crate::client::Daemon;
use anyhow::Result;
use mosaic_bridge::local::{history_path, read_history};
use mosaic_fleet::Paths;
use serde_json::json;
use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most messages shown from the time no `mosaic chat` was open.
const MISSED_SHOWN: usize = 50;

/// Reads lines from stdin and sends each; prints replies as they come, after what the room was
/// told while no `mosaic chat` was open (the local room's history since the last one shown).
pub fn run(paths: &Paths, daemon: Daemon, linger: Duration) -> Result<()> {
    let daemon = Arc::new(daemon);
    let listener = daemon.clone();
    let seen_file = paths.state_dir.join("local-room.seen");
    let printed = Arc::new(Mutex::new(HashSet::<String>::new()));
    let show = {
        let (printed, seen_file) = (printed.clone(), seen_file.clone());
        move |key: &str, text: &str| {
            if !printed.lock().unwrap().insert(key.to_owned()) {
                return;
            }
            let mut out = std::io::stdout().lock();
            // A terminal shows code blocks as they are: without their fences.
            for line in text.lines().filter(|l| !l.trim_start().starts_with("```")) {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
            let _ = mosaic_fleet::paths::write_atomic(&seen_file, key);
        }
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let live = show.clone();
    std::thread::spawn(move || {
        let _ = ready_tx.send(());
        let _ = listener.events(|event| {
            if event["type"] == "message_out" && event["connector"] == "local" {
                let text = event["text"].as_str().unwrap_or_default();
                let key = event["key"].as_str().unwrap_or_default();
                live(key, text);
            }
            true
        });
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(2));
    // Give the event stream a moment to connect before the first message can be answered.
    std::thread::sleep(Duration::from_millis(200));
    // What the room was told since the last message a `mosaic chat` showed.
    let seen = std::fs::read_to_string(&seen_file).unwrap_or_default();
    let history = read_history(paths);
    let since = history
        .iter()
        .rposition(|m| m.key == seen.trim())
        .map_or(0, |i| i + 1);
    let missed = &history[since..];
    if !missed.is_empty() {
        let skipped = missed.len().saturating_sub(MISSED_SHOWN);
        if skipped > 0 {
            println!(
                "({skipped} earlier messages not shown; they are in {})",
                history_path(paths).display()
            );
        }
        println!("(while no `mosaic chat` was open:)");
        for m in &missed[skipped..] {
            show(&m.key, &m.text);
        }
    }
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
