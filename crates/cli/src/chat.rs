//! `mosaic chat`: a terminal chat with the orchestrator through the daemon, with the same
//! grammar and ACL as any chat room (the local user is admin).

use crate::client::Daemon;
use anyhow::Result;
use mosaic_bridge::local::{history_path, read_history};
use mosaic_fleet::Paths;
use rustyline::ExternalPrinter;
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
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    // In a terminal, a line editor (arrows, history, Ctrl-L) reads what is typed, and replies
    // are printed above the line being edited.
    let mut editor = if interactive {
        Some(LineEditor::open(paths)?)
    } else {
        None
    };
    let print: Arc<Mutex<Printer>> = match &mut editor {
        Some(editor) => {
            let mut printer = editor.printer()?;
            Arc::new(Mutex::new(Box::new(move |text: String| {
                let _ = printer.print(text);
            })))
        }
        None => Arc::new(Mutex::new(Box::new(print_line))),
    };
    let printed = Arc::new(Mutex::new(HashSet::<String>::new()));
    let show = {
        let (printed, seen_file, print) = (printed.clone(), seen_file.clone(), print.clone());
        move |key: &str, text: &str| {
            if !printed.lock().unwrap().insert(key.to_owned()) {
                return;
            }
            // A terminal shows code blocks as they are: without their fences.
            let shown: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("```"))
                .collect();
            (print.lock().unwrap())(shown.join("\n"));
            let _ = mosaic_fleet::paths::write_atomic(&seen_file, key);
        }
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let live = show.clone();
    // The room's history as it was when this chat opened: what is posted later is shown live,
    // or read from the history when the stream fell behind a burst (`lagged`).
    let opened_at = read_history(paths).len();
    let history_paths = paths.clone();
    std::thread::spawn(move || {
        let _ = ready_tx.send(());
        let _ = listener.events(|event| {
            if event["type"] == "message_out" && event["connector"] == "local" {
                let text = event["text"].as_str().unwrap_or_default();
                let key = event["key"].as_str().unwrap_or_default();
                live(key, text);
            } else if event["type"] == "lagged" {
                for m in read_history(&history_paths).iter().skip(opened_at) {
                    live(&m.key, &m.text);
                }
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
        let say = |text: String| (print.lock().unwrap())(text);
        if skipped > 0 {
            say(format!(
                "({skipped} earlier messages not shown; they are in {})",
                history_path(paths).display()
            ));
        }
        say("(while no `mosaic chat` was open:)".into());
        for m in &missed[skipped..] {
            show(&m.key, &m.text);
        }
    }
    if interactive {
        println!("Talking to the orchestrator. `/fleet help` lists commands; Ctrl-D quits.");
    }
    let pid = std::process::id();
    let lines: Box<dyn Iterator<Item = Result<String>>> = match editor.as_mut() {
        Some(editor) => Box::new(std::iter::from_fn(move || editor.read())),
        None => Box::new(
            std::io::stdin()
                .lock()
                .lines()
                .map(|l| l.map_err(anyhow::Error::from)),
        ),
    };
    let mut n = 0;
    for line in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
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
        let say = |text: String| (print.lock().unwrap())(text);
        match result {
            Ok(v) if v["verdict"]["status"] == "queued" && interactive => say(format!(
                "  (queued for the orchestrator, #{})",
                v["verdict"]["queue_id"]
            )),
            Ok(_) => {}
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    if editor.is_some() {
        // No line is edited any more: what comes while lingering is printed as it is.
        *print.lock().unwrap() = Box::new(print_line);
    }
    std::thread::sleep(linger);
    Ok(())
}

/// Where chat text is printed: above the edited line, or on standard output.
type Printer = Box<dyn FnMut(String) + Send>;

/// Prints `text` and a newline on standard output.
fn print_line(text: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// The terminal's line editor: arrows, history (kept in `STATE/chat-history`, 0600), Ctrl-L.
struct LineEditor {
    editor: rustyline::DefaultEditor,
    history: std::path::PathBuf,
}

/// The most lines kept in the chat history.
const HISTORY_LINES: usize = 1000;

impl LineEditor {
    fn open(paths: &Paths) -> Result<LineEditor> {
        let config = rustyline::Config::builder()
            .max_history_size(HISTORY_LINES)?
            .auto_add_history(true)
            .build();
        let mut editor = rustyline::DefaultEditor::with_config(config)?;
        let history = paths.state_dir.join("chat-history");
        // None yet is fine: it is written on the way out.
        let _ = editor.load_history(&history);
        Ok(LineEditor { editor, history })
    }

    /// A printer that shows text above the line being edited, from any thread.
    fn printer(&mut self) -> Result<impl ExternalPrinter + Send + 'static> {
        Ok(self.editor.create_external_printer()?)
    }

    /// The next line; `None` at Ctrl-D. Ctrl-C drops the line being typed.
    fn read(&mut self) -> Option<Result<String>> {
        loop {
            match self.editor.readline("> ") {
                Ok(line) => {
                    self.save();
                    return Some(Ok(line));
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(rustyline::error::ReadlineError::Eof) => return None,
                Err(e) => return Some(Err(e.into())),
            }
        }
    }

    /// Keeps the history for the next `mosaic chat` (private: it is what the owner typed).
    /// Called after each line, so a terminal closed without Ctrl-D loses nothing. The file is
    /// made 0600 before anything is written to it.
    fn save(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        if mosaic_fleet::create_private_dir(self.history.parent().unwrap_or(&self.history)).is_err()
        {
            return;
        }
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.history);
        let _ = std::fs::set_permissions(
            &self.history,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        );
        let _ = self.editor.save_history(&self.history);
    }
}
