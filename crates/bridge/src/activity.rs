//! Is the orchestrator busy? Harness hooks say so when they are installed; otherwise the pane's
//! own output stream does: the harness's idle prompt, or a quiet period.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the pane must be quiet to count as idle when nothing better is known.
pub const QUIET_PERIOD: Duration = Duration::from_secs(2);

/// What a harness hook reported, for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookState {
    /// The harness took a prompt and is working (Claude Code `UserPromptSubmit`).
    Busy,
    /// It waits on a person (a permission dialog): no chat message is typed into it.
    Waiting,
    /// The harness finished its turn (Claude Code `Stop`, Codex `agent-turn-complete`).
    Idle,
}

/// The orchestrator's activity, shared by the delivery worker and the hook endpoint.
pub struct Activity {
    inner: Mutex<Inner>,
    idle_prompt: Option<Vec<u8>>,
    busy_timeout: Duration,
}

struct Inner {
    busy_since: Option<Instant>,
    last_output: Instant,
    tail: Vec<u8>,
    output_since_busy: bool,
    hook: Option<(HookState, Instant)>,
    /// Just (re)started: not ready until an idle hook or its ready screen says so.
    starting: bool,
}

impl Activity {
    /// Tracks an agent whose harness prints `idle_prompt` when it waits for input (if known).
    pub fn new(idle_prompt: Option<&str>, busy_timeout: Duration) -> Activity {
        Activity {
            inner: Mutex::new(Inner {
                busy_since: None,
                last_output: Instant::now(),
                tail: Vec::new(),
                output_since_busy: false,
                hook: None,
                starting: false,
            }),
            idle_prompt: idle_prompt.map(|p| p.as_bytes().to_vec()),
            busy_timeout,
        }
    }

    /// Something was typed in (a chat message or a notice): busy until it says or shows
    /// otherwise.
    pub fn busy(&self) {
        let mut i = self.inner.lock().unwrap();
        i.busy_since = Some(Instant::now());
        i.output_since_busy = false;
        i.tail.clear();
    }

    /// A delivery failed before the agent took anything: it is not busy because of it.
    pub fn abandoned(&self) {
        let mut i = self.inner.lock().unwrap();
        i.busy_since = None;
    }

    /// The pane printed `data`.
    pub fn output(&self, data: &[u8]) {
        let mut i = self.inner.lock().unwrap();
        i.last_output = Instant::now();
        i.output_since_busy = true;
        i.tail.extend_from_slice(data);
        let keep = 256;
        if i.tail.len() > keep {
            let cut = i.tail.len() - keep;
            i.tail.drain(..cut);
        }
    }

    /// The agent was (re)started: nothing is delivered until it is ready (an idle hook, or
    /// [`Activity::ready`] when its screen shows it).
    pub fn starting(&self) {
        let mut i = self.inner.lock().unwrap();
        i.starting = true;
        i.hook = None;
    }

    /// Whether it is still starting.
    pub fn is_starting(&self) -> bool {
        self.inner.lock().unwrap().starting
    }

    /// Its screen shows it is ready.
    pub fn ready(&self) {
        self.inner.lock().unwrap().starting = false;
    }

    /// A harness hook reported `state`.
    pub fn hook(&self, state: HookState) {
        let mut i = self.inner.lock().unwrap();
        if state == HookState::Idle {
            i.starting = false;
        }
        i.hook = Some((state, Instant::now()));
        if state != HookState::Idle && i.busy_since.is_none() {
            i.busy_since = Some(Instant::now());
        }
    }

    /// The harness is known to report hooks (it did before this daemon started): they are
    /// authoritative from now on, as after its first hook (its screen may show a prompt while
    /// it still works on a turn).
    pub fn reports_hooks(&self) {
        let mut i = self.inner.lock().unwrap();
        if i.hook.is_none() {
            i.hook = Some((HookState::Idle, Instant::now()));
        }
    }

    /// Whether the agent can take the next message now.
    pub fn is_idle(&self) -> bool {
        let mut i = self.inner.lock().unwrap();
        if i.starting {
            return false;
        }
        let Some(since) = i.busy_since else {
            return true;
        };
        let idle = match i.hook {
            // Hooks are authoritative once the harness has sent any.
            Some((HookState::Idle, at)) if at >= since => true,
            Some(_) => false,
            None => match &self.idle_prompt {
                Some(prompt) => {
                    i.output_since_busy && trim_trailing_controls(&i.tail).ends_with(prompt)
                }
                None => i.output_since_busy && i.last_output.elapsed() >= QUIET_PERIOD,
            },
        } || since.elapsed() >= self.busy_timeout;
        if idle {
            i.busy_since = None;
        }
        idle
    }
}

/// The tail of the output without trailing escape sequences (cursor moves after a prompt).
fn trim_trailing_controls(tail: &[u8]) -> &[u8] {
    let mut end = tail.len();
    while end > 0 && (tail[end - 1] == b'\r' || tail[end - 1] == b'\n') {
        end -= 1;
    }
    &tail[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_prompt_ends_a_turn() {
        let a = Activity::new(Some("demo> "), Duration::from_secs(600));
        assert!(a.is_idle());
        a.busy();
        assert!(!a.is_idle());
        a.output(b"\r\n[demo reply #1] ...\r\n");
        assert!(!a.is_idle());
        a.output(b"demo> ");
        assert!(a.is_idle());
    }

    #[test]
    fn hooks_override_the_screen() {
        let a = Activity::new(Some("demo> "), Duration::from_secs(600));
        a.hook(HookState::Busy);
        a.busy();
        a.output(b"demo> ");
        assert!(!a.is_idle(), "the hook said busy");
        a.hook(HookState::Idle);
        assert!(a.is_idle());
    }

    #[test]
    fn a_starting_agent_takes_nothing_until_it_is_ready() {
        let a = Activity::new(Some("demo> "), Duration::from_millis(1));
        a.starting();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!a.is_idle(), "not even after the busy timeout");
        a.ready();
        assert!(a.is_idle());
        a.starting();
        a.hook(HookState::Idle);
        assert!(a.is_idle(), "an idle hook says it is ready");
    }

    #[test]
    fn a_stuck_agent_times_out() {
        let a = Activity::new(None, Duration::from_millis(10));
        a.busy();
        assert!(!a.is_idle());
        std::thread::sleep(Duration::from_millis(20));
        assert!(a.is_idle());
    }
}
