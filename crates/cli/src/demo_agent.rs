//! `mosaic demo-agent`: a small scripted REPL that stands in for an AI harness where none is
//! installed. It is NOT an AI: it acknowledges each submitted message with a numbered reply.
//!
//! It behaves like the real harnesses where it matters to mosaic: raw-mode terminal, bracketed
//! paste (multi-line pastes stay one message until Enter), `/exit` to quit, and `/freeze SECS`
//! plays a frozen harness (it reads and draws nothing for that long), `/dialog` a permission
//! dialog that Enter would approve (as Claude Code's does). As the orchestrator
//! (`MOSAIC_ROLE=orchestrator`) inside a fleet, it also answers in chat (through the daemon, as
//! `mosaic reply` does), as a real orchestrator is told to: each chat message of a turn (several
//! arrive in one when they queued while it was busy) by its id; after `/quiet SECS` it instead
//! thinks for SECS and ends each turn with its answer as the final text of its idle hook
//! (`last_assistant_message`), as a harness that was not told to reply does. Each submitted message (each
//! chat message of a turn) is appended to `$MOSAIC_AGENT_STATE/demo-transcript.jsonl` with its
//! turn's number, so tests can check that text arrived exactly once and byte for byte.

use crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, Event, KeyCode, KeyEventKind, KeyModifiers, read,
};
use crossterm::execute;
use crossterm::terminal::{disable_raw_mode, enable_raw_mode};
use std::io::Write;
use std::path::PathBuf;

/// The transcript file name inside the agent's state directory.
pub const TRANSCRIPT: &str = "demo-transcript.jsonl";

/// Options of the demo agent.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Name to show in the banner.
    #[arg(long, default_value = "demo")]
    pub name: String,
    /// Model name to report (the demo uses none).
    #[arg(long)]
    pub model: Option<String>,
    /// Instructions to show (the demo follows none).
    #[arg(long)]
    pub instructions: Option<String>,
}

const PROMPT: &str = "demo> ";

/// What the demo agent's permission dialog (`/dialog`) shows, as its manifest lists it.
pub const DIALOG: &str = "Do you want to proceed?";

/// Runs the REPL until `/exit`, Ctrl-D on an empty line, or the terminal goes away.
pub fn run(paths: &mosaic_fleet::Paths, args: &DemoArgs) -> anyhow::Result<()> {
    let transcript =
        std::env::var_os("MOSAIC_AGENT_STATE").map(|d| PathBuf::from(d).join(TRANSCRIPT));
    let mut out = std::io::stdout();
    enable_raw_mode()?;
    execute!(out, EnableBracketedPaste)?;
    let result = repl(paths, args, transcript, &mut out);
    let _ = execute!(out, DisableBracketedPaste);
    let _ = disable_raw_mode();
    result
}

fn say(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.replace('\n', "\r\n").as_bytes())?;
    out.flush()
}

fn repl(
    paths: &mosaic_fleet::Paths,
    args: &DemoArgs,
    transcript: Option<PathBuf>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    say(
        out,
        &format!(
            "mosaic demo agent \"{}\" - a scripted stand-in for an AI harness (not an AI).\n",
            args.name
        ),
    )?;
    if let Some(m) = &args.model {
        say(out, &format!("model: {m} (reported only)\n"))?;
    }
    if let Some(i) = &args.instructions {
        say(
            out,
            &format!("instructions: {}\n", i.lines().next().unwrap_or("")),
        )?;
    }
    say(
        out,
        &format!("Type or paste a message and press Enter; /exit quits.\n{PROMPT}"),
    )?;
    let daemon = DaemonLink::start(paths);
    daemon.report("started");
    let mut input = String::new();
    let mut count = 0u64;
    let mut turn = 0u64;
    // `/dialog` plays a harness's permission dialog: Enter or `y` approves, `n` or Escape
    // refuses; a paste is ignored.
    let mut dialog = false;
    // `/quiet SECS`: each turn thinks SECS, then ends with its answer in the idle hook only.
    let mut quiet: Option<u64> = None;
    loop {
        let event = match read() {
            Ok(e) => e,
            Err(_) => return Ok(()),
        };
        if dialog {
            if let Event::Key(key) = event
                && key.kind != KeyEventKind::Release
            {
                let answer = match key.code {
                    KeyCode::Enter | KeyCode::Char('y') => Some("approved"),
                    KeyCode::Esc | KeyCode::Char('n') => Some("refused"),
                    _ => None,
                };
                if let Some(answer) = answer {
                    dialog = false;
                    // Gone from the screen once answered, as a TUI's dialog is.
                    say(out, &format!("\r\x1b[2K{answer}\n{PROMPT}"))?;
                }
            }
            continue;
        }
        match event {
            Event::Paste(text) => {
                let text = text.replace("\r\n", "\n").replace('\r', "\n");
                input.push_str(&text);
                say(out, &text)?;
            }
            Event::Key(key) if key.kind != KeyEventKind::Release => match key.code {
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    input.clear();
                    say(out, &format!("^C\n{PROMPT}"))?;
                }
                KeyCode::Char('d')
                    if key.modifiers.contains(KeyModifiers::CONTROL) && input.is_empty() =>
                {
                    return Ok(());
                }
                KeyCode::Char(c) => {
                    input.push(c);
                    say(out, &c.to_string())?;
                }
                KeyCode::Tab => {
                    input.push('\t');
                    say(out, "\t")?;
                }
                KeyCode::Backspace if input.pop().is_some() => say(out, "\x08 \x08")?,
                KeyCode::Enter => {
                    let message = std::mem::take(&mut input);
                    if message.trim() == "/exit" {
                        say(out, "\nbye\n")?;
                        return Ok(());
                    }
                    if message.trim().is_empty() {
                        say(out, &format!("\n{PROMPT}"))?;
                        continue;
                    }
                    // Plays a frozen harness (for fault tests): reads and draws nothing for a
                    // while (60 s at most).
                    if let Some(secs) = message.trim().strip_prefix("/freeze ") {
                        let secs = secs.trim().parse::<u64>().unwrap_or(5).min(60);
                        say(out, &format!("\nfrozen for {secs} s\n{PROMPT}"))?;
                        std::thread::sleep(std::time::Duration::from_secs(secs));
                        continue;
                    }
                    if let Some(secs) = message.trim().strip_prefix("/quiet ") {
                        quiet = Some(secs.trim().parse::<u64>().unwrap_or(0).min(60));
                        say(out, &format!("\nquiet from now on\n{PROMPT}"))?;
                        continue;
                    }
                    if message.trim() == "/dialog" {
                        dialog = true;
                        say(out, &format!("\n{DIALOG} (y/n) "))?;
                        continue;
                    }
                    daemon.report("busy");
                    turn += 1;
                    // Chat messages that queued while it was busy come in one turn, each on a
                    // line of its own: each is recorded and answered, as a real orchestrator
                    // answers each by its id.
                    let messages = if is_orchestrator() {
                        chat_messages(&message)
                    } else {
                        vec![message]
                    };
                    let mut replies = Vec::with_capacity(messages.len());
                    for message in &messages {
                        count += 1;
                        if let Some(path) = &transcript {
                            let line =
                                serde_json::json!({ "n": count, "turn": turn, "text": message });
                            let mut f = std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(path)?;
                            // One write per message, so readers never see half of one.
                            f.write_all(format!("{line}\n").as_bytes())?;
                        }
                        replies.push((reply_line(count, message), envelope_id(message)));
                    }
                    let shown: Vec<&str> = replies.iter().map(|(r, _)| r.as_str()).collect();
                    if is_orchestrator()
                        && let Some(secs) = quiet
                    {
                        say(out, "\n(thinking)")?;
                        std::thread::sleep(std::time::Duration::from_secs(secs));
                        say(out, &format!("\n{}\n{PROMPT}", shown.join("\n")))?;
                        let answer =
                            serde_json::json!({ "last_assistant_message": shown.join("\n") });
                        daemon.send(Call::Hook("idle", answer));
                        continue;
                    }
                    say(out, &format!("\n{}\n{PROMPT}", shown.join("\n")))?;
                    if is_orchestrator() {
                        // It answers in chat, as a real orchestrator is told to, then ends
                        // its turn.
                        if daemon_up() {
                            for (text, to) in replies {
                                daemon.send(Call::Reply { text, to });
                            }
                        }
                        daemon.report("idle");
                    } else {
                        // A worker's turn ends with its answer, as Claude Code's Stop hook
                        // hands it (`last_assistant_message`).
                        let reply = replies.pop().map(|(r, _)| r).unwrap_or_default();
                        let answer = serde_json::json!({ "last_assistant_message": reply });
                        daemon.send(Call::Hook("idle", answer));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// This agent's name, from the token the fleet gave it.
fn own_name() -> Option<String> {
    let token = std::env::var(mosaic_fleet::paths::AGENT_TOKEN_ENV).ok()?;
    mosaic_fleet::paths::AgentToken::parse(&token).map(|(name, _)| name.to_owned())
}

/// How long a hook is sent again while the daemon is away.
const HOOK_RETRY: std::time::Duration = std::time::Duration::from_secs(20);

/// What the demo agent tells the daemon.
enum Call {
    /// A hook event, with its payload.
    Hook(&'static str, serde_json::Value),
    /// A chat reply (as the orchestrator), to chat message `to` when it answers one.
    Reply { text: String, to: Option<u64> },
}

/// The demo agent's line to the daemon: hook events (as a real harness reports them, to
/// `POST /v1/hooks`, with the agent's own token) and, as the orchestrator, its chat replies (as
/// `mosaic reply` posts them, kept in the spool when the daemon is away). Sent in order from a
/// thread of its own over one kept-alive connection, so the REPL never waits and no process is
/// started per message; only inside a fleet (with an agent token).
struct DaemonLink(Option<std::sync::mpsc::Sender<Call>>);

impl DaemonLink {
    fn start(paths: &mosaic_fleet::Paths) -> DaemonLink {
        if std::env::var_os(mosaic_fleet::paths::AGENT_TOKEN_ENV).is_none() {
            return DaemonLink(None);
        }
        let paths = paths.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Call>();
        std::thread::spawn(move || {
            let mut daemon: Option<crate::client::Daemon> = None;
            // Hook call ids: this run's random tag and a count.
            let run = mosaic_fleet::paths::random_hex(6).unwrap_or_default();
            let mut calls = 0u64;
            for call in rx {
                if daemon.is_none() {
                    daemon = crate::client::Daemon::locate_quick(
                        &paths,
                        std::time::Duration::from_secs(5),
                    )
                    .ok();
                }
                let ok = match call {
                    // Sent again while the daemon is away (restarting), under an id of its own,
                    // so a copy the daemon had taken before it died is not taken twice (a
                    // worker's final answer rides on it).
                    Call::Hook(event, mut payload) => {
                        calls += 1;
                        if !payload.is_object() {
                            payload = serde_json::json!({});
                        }
                        payload[mosaic_bridge::HOOK_CALL_ID] = format!("{run}-{calls}").into();
                        let body = serde_json::json!({ "event": event, "payload": payload });
                        let give_up = std::time::Instant::now() + HOOK_RETRY;
                        let sent = loop {
                            if daemon
                                .as_ref()
                                .is_some_and(|d| d.post("/v1/hooks", body.clone()).is_ok())
                            {
                                break true;
                            }
                            // No daemon at all (its file is gone): nobody to tell now.
                            if !daemon_up() || std::time::Instant::now() >= give_up {
                                break false;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(200));
                            daemon = crate::client::Daemon::locate_quick(
                                &paths,
                                std::time::Duration::from_secs(5),
                            )
                            .ok();
                        };
                        // A final answer is kept for the daemon's next start, as `mosaic hook`
                        // keeps it.
                        if !sent
                            && mosaic_bridge::final_answer(&payload).is_some()
                            && let Some(agent) = own_name()
                        {
                            let kept = crate::spool::KeptHook {
                                agent,
                                event: event.to_owned(),
                                payload,
                            };
                            let _ = crate::spool::keep_hook(&paths, &kept);
                        }
                        sent
                    }
                    Call::Reply { text, to } => {
                        let request = mosaic_api::wire::ReplyRequest {
                            text,
                            room: None,
                            to: to.map(|n| n as i64),
                        };
                        let located = daemon
                            .as_ref()
                            .ok_or_else(|| anyhow::anyhow!("the daemon is not running"));
                        matches!(
                            crate::spool::post_or_keep(&paths, located, &request),
                            Ok(crate::spool::Replied::Queued(_))
                        )
                    }
                };
                // Found again for the next call: the daemon may have restarted elsewhere.
                if !ok {
                    daemon = None;
                }
            }
        });
        DaemonLink(Some(tx))
    }

    fn send(&self, call: Call) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(call);
        }
    }

    fn report(&self, event: &'static str) {
        self.send(Call::Hook(event, serde_json::Value::Null));
    }
}

/// Whether the fleet's daemon runs (its `daemon.json` is there): chat exists only then.
fn daemon_up() -> bool {
    std::env::var_os("MOSAIC_STATE")
        .is_some_and(|s| PathBuf::from(s).join(crate::client::DAEMON_FILE).exists())
}

/// Whether this demo agent is the fleet's orchestrator (`MOSAIC_ROLE`).
fn is_orchestrator() -> bool {
    std::env::var("MOSAIC_ROLE").is_ok_and(|r| r == "orchestrator")
}

/// The chat message id in a delivered envelope (`[chat #N from …`), if the message is one.
fn envelope_id(message: &str) -> Option<u64> {
    let rest = message.trim_start().strip_prefix("[chat #")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    // `#ID from` or, with the message's nonce, `#ID:NONCE from`.
    let after = &rest[digits.len()..];
    let after = after
        .strip_prefix(':')
        .map(|a| a.trim_start_matches(|c: char| c.is_ascii_alphanumeric()))
        .unwrap_or(after);
    after
        .starts_with(" from ")
        .then(|| digits.parse().ok())
        .flatten()
}

/// The chat messages in one submitted turn: a new one starts at each line that starts with an
/// envelope (`[chat #N…] `; the lines that continue a message are indented, so none of them can);
/// text before the first envelope (typed by hand) is a message of its own.
fn chat_messages(submitted: &str) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for line in submitted.split('\n') {
        match messages.last_mut() {
            Some(current) if envelope_id(line).is_none() || !line.starts_with("[chat #") => {
                current.push('\n');
                current.push_str(line);
            }
            _ => messages.push(line.to_owned()),
        }
    }
    messages
}

/// The demo agent's reply to message number `n`.
pub fn reply_line(n: u64, message: &str) -> String {
    let first: String = message
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect();
    format!(
        "[demo reply #{n}] received {} chars in {} lines: {first}",
        message.chars().count(),
        message.lines().count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_split_at_envelopes_only() {
        let turn = "[chat #1:ab from a (operator) on local/local] one\n  [chat #9 from x] quoted\n\n  more\n[chat #2:cd from b (admin) on local/local] two";
        assert_eq!(
            chat_messages(turn),
            [
                "[chat #1:ab from a (operator) on local/local] one\n  [chat #9 from x] quoted\n\n  more",
                "[chat #2:cd from b (admin) on local/local] two"
            ]
        );
        assert_eq!(chat_messages("typed by hand"), ["typed by hand"]);
        assert_eq!(
            chat_messages("hand\n[chat #3 from c on t/r] three"),
            ["hand", "[chat #3 from c on t/r] three"]
        );
        // Not an envelope: the same message.
        assert_eq!(chat_messages("a\n[chat #x] b"), ["a\n[chat #x] b"]);
    }
}
