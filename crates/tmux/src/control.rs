//! A tmux control-mode client (`tmux -C`): commands without a process spawn each, and the pane's
//! output as a live stream, which is how delivery is confirmed without polling the screen.

use crate::error::{ErrorKind, TmuxError};
use crate::sanitize::{quote_argument, sanitize};
use crate::server::{Tmux, exact, pane_target};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// How long to wait for a control-mode reply before giving up on tmux.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Tuning for [`ControlClient::send_text`].
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// How long to wait for the pasted text to show in the pane.
    pub paste_timeout: Duration,
    /// How long the pane must be quiet after the paste before Enter is pressed (lets harnesses
    /// that debounce pastes finish taking it, so Enter is not swallowed into the paste).
    pub settle: Duration,
    /// How long to wait for the pane to react to Enter before pressing it again.
    pub submit_timeout: Duration,
    /// How many times Enter may be pressed in all. The text itself is pasted exactly once.
    pub submit_attempts: u32,
    /// Texts a dialog of the harness shows (a permission prompt): while the screen shows one,
    /// nothing is typed, and Enter is never pressed (it would answer the dialog).
    pub dialogs: Vec<String>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            paste_timeout: Duration::from_secs(3),
            settle: Duration::from_millis(20),
            submit_timeout: Duration::from_secs(2),
            submit_attempts: 3,
            dialogs: Vec::new(),
        }
    }
}

/// What happened during a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// The text as it was pasted (after [`sanitize`]).
    pub pasted: String,
    /// Whether the pane showed the paste before Enter was pressed.
    pub echoed: bool,
    /// How many times Enter was pressed before the pane reacted.
    pub enter_presses: u32,
    /// The pane's first output after Enter: how it reacted.
    pub reaction: Vec<u8>,
}

enum Event {
    Reply(Result<String, String>),
    Output {
        pane: String,
        data: Vec<u8>,
    },
    Exit(String),
    /// [`Waker::wake`]: ends a [`ControlClient::next_output_or_wake`] wait.
    Wake,
}

/// Ends a [`ControlClient::next_output_or_wake`] wait from another thread (another source of
/// news than the pane: a hook). Cheap to clone.
#[derive(Clone)]
pub struct Waker(Sender<Event>);

impl Waker {
    /// Ends the client's current (or next) wait for output or news.
    pub fn wake(&self) {
        let _ = self.0.send(Event::Wake);
    }
}

/// A control-mode client attached to one session. Dropping it detaches.
pub struct ControlClient {
    tmux: Tmux,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Event>,
    waker: Waker,
    /// A wake arrived during a wait it does not end: the next wakeable wait ends at once.
    woken: bool,
    outputs: VecDeque<(String, Vec<u8>)>,
    pane: String,
    pane_dead: bool,
    incarnation: String,
}

static BUFFER_SEQ: AtomicU64 = AtomicU64::new(0);

impl ControlClient {
    /// Attaches to `session` (read-only clients can watch but not type).
    pub fn attach(tmux: &Tmux, session: &str, read_only: bool) -> Result<ControlClient, TmuxError> {
        // No session is created or killed until tmux has identified this client (see
        // [`Tmux::topology_turn`]): its answers below say it has.
        let _turn = tmux.topology_turn();
        let mut cmd = tmux.command();
        cmd.arg("-C").arg("attach-session");
        if read_only {
            cmd.arg("-r");
        }
        // The attach and the question about its pane in one go: two replies, no extra round trip.
        let info_format = "#{pane_id} #{pane_dead} #{pid}/#{pane_id}/#{pane_pid}";
        let mut child = cmd
            .args([
                "-t",
                &exact(session),
                ";",
                "display-message",
                "-p",
                "-t",
                &pane_target(session),
                info_format,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TmuxError::io("tmux -C", e))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, rx) = channel();
        let waker = Waker(tx.clone());
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut block: Option<Vec<u8>> = None;
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.ends_with(b"\n") {
                    line.pop();
                }
                let event = match (&mut block, line.as_slice()) {
                    (None, l) if l.starts_with(b"%begin ") => {
                        block = Some(Vec::new());
                        None
                    }
                    (Some(body), l) if l.starts_with(b"%end ") || l.starts_with(b"%error ") => {
                        let text = String::from_utf8_lossy(body).into_owned();
                        let ok = l.starts_with(b"%end ");
                        block = None;
                        Some(Event::Reply(if ok { Ok(text) } else { Err(text) }))
                    }
                    (Some(body), l) => {
                        body.extend_from_slice(l);
                        body.push(b'\n');
                        None
                    }
                    (None, l) if l.starts_with(b"%output ") => parse_output(&l[8..]),
                    (None, l) if l.starts_with(b"%exit") => {
                        Some(Event::Exit(String::from_utf8_lossy(l).into_owned()))
                    }
                    (None, _) => None,
                };
                if let Some(ev) = event
                    && tx.send(ev).is_err()
                {
                    return;
                }
            }
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            let _ = tx.send(Event::Exit(err));
        });
        let mut client = ControlClient {
            tmux: tmux.clone(),
            child,
            stdin: None,
            events: rx,
            waker,
            woken: false,
            outputs: VecDeque::new(),
            pane: String::new(),
            pane_dead: false,
            incarnation: String::new(),
        };
        // The attach itself answers first.
        client.reply().map_err(|e| match e.kind {
            ErrorKind::Failed | ErrorKind::Io => TmuxError::from_stderr(&e.message),
            _ => e,
        })?;
        client.stdin = client.child.stdin.take();
        let info = client.reply()?;
        let mut info = info.split_whitespace();
        client.pane = info.next().unwrap_or_default().to_owned();
        client.pane_dead = info.next() == Some("1");
        client.incarnation = info.next().unwrap_or_default().to_owned();
        // Attaching is announced to the other control clients (`%client-session-changed`) from
        // tmux's next loop: one more round trip before the turn is let go (see send_text).
        client.command("display-message -p .")?;
        Ok(client)
    }

    /// The id of the attached session's active pane (`%3`).
    pub fn pane(&self) -> &str {
        &self.pane
    }

    /// This pane in this tmux server with this program in it (`SERVER_PID/%PANE/PANE_PID`): it
    /// changes when the server or the pane's program is restarted, and input typed into an
    /// earlier incarnation and not yet read is gone with it.
    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    /// Whether this client still writes to the program it attached to (one round trip): the
    /// session, the pane and its program are the same and alive.
    pub fn is_current(&mut self) -> bool {
        self.ensure_alive().is_ok()
    }

    /// Whether the pane's program had exited when the client attached.
    pub fn pane_dead(&self) -> bool {
        self.pane_dead
    }

    /// Runs one tmux command line and returns its output. Arguments that carry user text must be
    /// quoted with [`quote_argument`].
    pub fn command(&mut self, line: &str) -> Result<String, TmuxError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| TmuxError::new(ErrorKind::Io, "control client is closed"))?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.write_all(b"\n"))
            .and_then(|_| stdin.flush())
            .map_err(|e| TmuxError::io("tmux -C", e))?;
        self.reply()
    }

    fn reply(&mut self) -> Result<String, TmuxError> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Reply(Ok(out))) => return Ok(out),
                Ok(Event::Reply(Err(msg))) => return Err(TmuxError::from_stderr(&msg)),
                Ok(Event::Output { pane, data }) => self.outputs.push_back((pane, data)),
                Ok(Event::Wake) => self.woken = true,
                Ok(Event::Exit(why)) => {
                    return Err(TmuxError::new(ErrorKind::Failed, why.trim().to_owned()));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(TmuxError::new(ErrorKind::Timeout, "tmux did not answer"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(TmuxError::new(ErrorKind::Io, "tmux control client ended"));
                }
            }
        }
    }

    /// The next output the attached pane printed, waiting until `deadline`. `Ok(None)` on timeout;
    /// an error once the session or client is gone.
    pub fn next_output(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, TmuxError> {
        self.wait_output(deadline, false)
    }

    /// Like [`next_output`](Self::next_output), but also ends (with `Ok(None)`) when this
    /// client's [`Waker`] is woken.
    pub fn next_output_or_wake(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, TmuxError> {
        self.wait_output(deadline, true)
    }

    /// What wakes [`next_output_or_wake`](Self::next_output_or_wake) from another thread.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    fn wait_output(
        &mut self,
        deadline: Instant,
        wakeable: bool,
    ) -> Result<Option<Vec<u8>>, TmuxError> {
        loop {
            if let Some(pos) = self.outputs.iter().position(|(p, _)| *p == self.pane) {
                return Ok(self.outputs.remove(pos).map(|(_, d)| d));
            }
            self.outputs.clear();
            if wakeable && std::mem::take(&mut self.woken) {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Output { pane, data }) => self.outputs.push_back((pane, data)),
                Ok(Event::Reply(_)) => {}
                Ok(Event::Wake) => self.woken = true,
                Ok(Event::Exit(why)) => {
                    return Err(TmuxError::new(
                        ErrorKind::NoSession,
                        format!("session ended {}", why.trim()),
                    ));
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(TmuxError::new(ErrorKind::Io, "tmux control client ended"));
                }
            }
        }
    }

    /// Fails with [`ErrorKind::PaneDead`] when the program this client attached to has exited
    /// (asked before every write: tmux before 3.5 crashes when a control client writes to a dead
    /// pane), or was replaced by another (its [`incarnation`](Self::incarnation) changed): what
    /// is typed next goes to the incarnation recorded at attach or nowhere.
    fn ensure_alive(&mut self) -> Result<(), TmuxError> {
        let info = self.command(&format!(
            "display-message -p -t {} '#{{pane_dead}} #{{pid}}/#{{pane_id}}/#{{pane_pid}}'",
            self.pane
        ))?;
        let mut info = info.split_whitespace();
        if info.next() == Some("1") {
            self.pane_dead = true;
            return Err(TmuxError::new(
                ErrorKind::PaneDead,
                "the agent's program has exited; nothing was typed into its pane",
            ));
        }
        if info.next() != Some(self.incarnation.as_str()) {
            return Err(TmuxError::new(
                ErrorKind::PaneDead,
                "the agent's program was restarted since this client attached; nothing was typed into its pane",
            ));
        }
        Ok(())
    }

    /// Presses Enter in the pane, unless its program has exited ([`ErrorKind::PaneDead`]).
    pub fn press_enter(&mut self) -> Result<(), TmuxError> {
        self.ensure_alive()?;
        self.command(&format!("send-keys -t {} Enter", self.pane))
            .map(drop)
    }

    /// Whether the pane's program has exited (a question to tmux; false when it cannot tell).
    fn pane_is_dead(&mut self) -> bool {
        self.ensure_alive()
            .is_err_and(|e| e.kind == ErrorKind::PaneDead)
    }

    /// The pane's visible screen, as text.
    pub fn screen(&mut self) -> Result<String, TmuxError> {
        self.command(&format!("capture-pane -p -J -t {}", self.pane))
    }

    /// The first of `dialogs` the pane's screen shows, if any (one `capture-pane`; none when
    /// `dialogs` is empty).
    fn dialog_shown<'a>(&mut self, dialogs: &'a [String]) -> Result<Option<&'a str>, TmuxError> {
        if dialogs.is_empty() {
            return Ok(None);
        }
        let screen = self.screen()?;
        Ok(dialogs
            .iter()
            .find(|d| !d.is_empty() && screen.contains(d.as_str()))
            .map(String::as_str))
    }

    /// Presses one key by its tmux name (`C-c`, `Escape`): letters, digits and `-` only, never
    /// first, so a name can never carry another command or option.
    pub fn press_key(&mut self, key: &str) -> Result<(), TmuxError> {
        if key.is_empty()
            || key.starts_with('-')
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(TmuxError::new(
                ErrorKind::Failed,
                format!("{key:?} is not a tmux key name"),
            ));
        }
        self.ensure_alive()?;
        self.command(&format!("send-keys -t {} {key}", self.pane))
            .map(drop)
    }

    /// Waits until the pane has been quiet for `quiet`, at most until `deadline`.
    fn settle(&mut self, quiet: Duration, deadline: Instant) -> Result<(), TmuxError> {
        while Instant::now() < deadline {
            let until = (Instant::now() + quiet).min(deadline);
            if self.next_output(until)?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// After a crash cut a send off between its record and its paste (see
    /// [`ControlClient::send_text_marked`]): whether paste buffer `buffer` is still loaded, so
    /// its text was never pasted; it is then deleted. False when it is gone (it was pasted).
    pub fn take_back_paste(&mut self, buffer: &str) -> Result<bool, TmuxError> {
        let _turn = self.tmux.topology_turn();
        let loaded = self.command("list-buffers -F '#{buffer_name}'")?;
        if !loaded.lines().any(|name| name == buffer) {
            return Ok(false);
        }
        self.command(&format!(
            "delete-buffer -b {} ; display-message -p .",
            quote_argument(buffer)
        ))?;
        self.reply()?;
        Ok(true)
    }

    /// Types `text` into the pane and submits it: the sanitized text goes into a paste buffer as
    /// one quoted argument, is pasted once as a bracketed paste, then Enter is pressed until the
    /// pane reacts (at most `submit_attempts` times). The text is never pasted twice.
    pub fn send_text(&mut self, text: &str, opts: &SendOptions) -> Result<SendReport, TmuxError> {
        self.send_text_marked(text, opts, |_| true)
    }

    /// [`ControlClient::send_text`], calling `before_paste` with the name of the paste buffer
    /// once every check passed and the text is loaded in it, right before the paste command is
    /// written (nothing is pasted when it returns false): a caller keeps "maybe pasted" there,
    /// with the buffer's name. A crash after that record leaves the buffer loaded until the
    /// paste (which deletes it) ran: [`ControlClient::take_back_paste`] tells the two apart.
    pub fn send_text_marked(
        &mut self,
        text: &str,
        opts: &SendOptions,
        before_paste: impl FnOnce(&str) -> bool,
    ) -> Result<SendReport, TmuxError> {
        let pasted = sanitize(text);
        if pasted.is_empty() {
            return Err(TmuxError::new(
                ErrorKind::Failed,
                "nothing to send: the text is empty",
            ));
        }
        let buffer = format!(
            "mosaic-{}-{}",
            std::process::id(),
            BUFFER_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // Output the pane drew before this send is not its reaction to it.
        while self.next_output(Instant::now())?.is_some() {}
        self.outputs.clear();
        let pane = self.pane.clone();
        self.ensure_alive()?;
        if let Some(dialog) = self.dialog_shown(&opts.dialogs)? {
            return Err(TmuxError::new(
                ErrorKind::DialogShown,
                format!("the agent shows a dialog ({dialog:?}); nothing was typed"),
            ));
        }
        // Loaded, then recorded by the caller, then pasted (`-d`: the paste deletes the buffer),
        // so a buffer still loaded after a crash was never pasted.
        // Setting and deleting a buffer notifies every control client
        // (`%paste-buffer-changed`), one still identifying included, which crashes tmux 3.5a
        // (see [`Tmux::topology_turn`]): under the turn, until tmux has sent those notifications,
        // which it queues for its next loop: one more command (in the paste's line) makes sure
        // they are out.
        {
            let _turn = self.tmux.topology_turn();
            self.command(&format!(
                "set-buffer -b {buffer} -- {}",
                quote_argument(&pasted)
            ))?;
            if !before_paste(&buffer) {
                self.command(&format!("delete-buffer -b {buffer} ; display-message -p ."))?;
                self.reply()?;
                return Err(TmuxError::new(
                    ErrorKind::Failed,
                    "the paste was called off before it was typed",
                ));
            }
            self.command(&format!(
                "paste-buffer -p -d -b {buffer} -t {pane} ; display-message -p ."
            ))?;
            self.reply()?;
        }
        let paste_deadline = Instant::now() + opts.paste_timeout;
        let echoed = self.next_output(paste_deadline)?.is_some();
        if echoed && !opts.settle.is_zero() {
            self.settle(opts.settle, paste_deadline)?;
        }
        // A dialog that opened meanwhile would take the Enter as its answer.
        if let Some(dialog) = self.dialog_shown(&opts.dialogs)? {
            return Err(TmuxError::new(
                ErrorKind::DialogAppeared,
                format!(
                    "a dialog ({dialog:?}) opened while the text was pasted; Enter was not pressed"
                ),
            ));
        }
        for attempt in 1..=opts.submit_attempts.max(1) {
            match self.press_enter() {
                // The program ended after an Enter it was given (`/exit`): that was its reaction.
                Err(e) if e.kind == ErrorKind::PaneDead && attempt > 1 => {
                    return Ok(SendReport {
                        pasted,
                        echoed,
                        enter_presses: attempt - 1,
                        reaction: Vec::new(),
                    });
                }
                other => other?,
            }
            let reaction = match self.next_output(Instant::now() + opts.submit_timeout) {
                Ok(reaction) => reaction,
                Err(_) if self.pane_is_dead() => Some(Vec::new()),
                Err(e) => return Err(e),
            };
            if let Some(reaction) = reaction {
                return Ok(SendReport {
                    pasted,
                    echoed,
                    enter_presses: attempt,
                    reaction,
                });
            }
        }
        Err(TmuxError::new(
            ErrorKind::Timeout,
            format!(
                "the text was pasted once{} and Enter pressed {} times, but the agent showed no reaction; it was not pasted again",
                if echoed { "" } else { " (no echo)" },
                opts.submit_attempts.max(1)
            ),
        ))
    }
}

impl Drop for ControlClient {
    fn drop(&mut self) {
        // Leaving is announced to every other control client, which crashes tmux 3.5a if one
        // is still identifying: leave in the topology turn, and keep it until the server has
        // forgotten this client (see [`Tmux::wait_clients_gone`]).
        let _turn = self.tmux.topology_turn();
        // Closing stdin detaches the client and tmux exits at once; reap it.
        drop(self.stdin.take());
        let _ = self.child.wait();
        let pid = self.child.id().to_string();
        self.tmux
            .wait_clients_gone(|_name, client_pid| client_pid == pid);
    }
}

/// Parses `%output %ID DATA`, undoing tmux's octal escapes (`\015`, `\\`).
fn parse_output(rest: &[u8]) -> Option<Event> {
    let space = rest.iter().position(|b| *b == b' ')?;
    let pane = String::from_utf8_lossy(&rest[..space]).into_owned();
    let raw = &rest[space + 1..];
    let mut data = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\'
            && raw.len() - i > 3
            && raw[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            data.push((raw[i + 1] - b'0') * 64 + (raw[i + 2] - b'0') * 8 + (raw[i + 3] - b'0'));
            i += 4;
        } else {
            data.push(raw[i]);
            i += 1;
        }
    }
    Some(Event::Output { pane, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_escapes_are_decoded() {
        let Some(Event::Output { pane, data }) = parse_output(b"%1 hi\\015\\012\\134x") else {
            panic!()
        };
        assert_eq!(pane, "%1");
        assert_eq!(data, b"hi\r\n\\x");
    }
}
