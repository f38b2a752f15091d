//! Harness hooks → what each agent is doing: kept for `ps` (the agent's `activity.json`),
//! announced on the event stream, pacing deliveries to the orchestrator, telling the room once
//! when the orchestrator waits on a person, and relaying the orchestrator's final answer when it
//! ended a turn without replying.

use crate::Bridge;
use crate::activity::HookState;
use crate::events::Event;
use mosaic_fleet::{Activity, Observed, Source};
use mosaic_roster::harness::{HookEffect, hook_effect};
use serde_json::Value;

/// Why a hook report was refused.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The roster in use has no such agent.
    #[error("no agent {0:?} in the roster")]
    UnknownAgent(String),
    /// Neither mosaic nor the agent's harness knows the event.
    #[error(
        "unknown hook event {event:?} for agent {agent}; expected busy, idle, waiting-for-input, ended, or an event its harness manifest lists under hooks"
    )]
    UnknownEvent {
        /// The agent.
        agent: String,
        /// The event name.
        event: String,
    },
}

/// The longest detail kept from a hook's payload.
const MAX_DETAIL: usize = 300;

/// How long a hook's `busy` stands before the screen may end it (a turn that ended with no hook).
const BUSY_GRACE_SECS: i64 = 30;

/// How often the screen of an agent waiting on a dialog is looked at.
const DIALOG_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether `screen` shows `harness` ready for a prompt with no dialog and no work in sight: its
/// manifest's `ready.screen`, and none of its `screen.permission`, `screen.waiting_for_input`
/// or `screen.busy` texts. False for a harness without a ready text (nothing to tell by).
fn dialog_closed(harness: &mosaic_roster::harness::Harness, screen: &str) -> bool {
    let Some(ready) = &harness.ready.screen else {
        return false;
    };
    let patterns = &harness.screen;
    let shows = |texts: &[String]| texts.iter().any(|t| screen.contains(t.as_str()));
    screen.contains(ready.as_str())
        && !shows(&patterns.permission)
        && !shows(&patterns.waiting_for_input)
        && !shows(&patterns.busy)
}

/// The field of a hook payload naming this call, so a copy sent again is taken once (the demo
/// agent sends one; harnesses' own payloads have none and are taken as they come).
pub const HOOK_CALL_ID: &str = "mosaic_hook_call";

impl Bridge {
    /// Records hook `event` of agent `agent` (the orchestrator when `None`) with its harness's
    /// `payload` (JSON, `null` when there is none). Returns the activity it means (none for a
    /// session that ended).
    pub fn hook(
        &self,
        agent: Option<&str>,
        event: &str,
        payload: &Value,
    ) -> Result<Option<Activity>, HookError> {
        let roster = self.inner.roster.get();
        let name = match agent {
            Some(a) => a.to_owned(),
            None => self.orchestrator_name(),
        };
        let Some(member) = roster.agent(&name) else {
            return Err(HookError::UnknownAgent(name));
        };
        // A hook sent again (its sender lost the answer, the daemon was restarting) whose first
        // copy was taken: nothing happens twice (a worker's answer is not posted again).
        let (call, taken) = self.hook_call(&name, payload);
        if taken {
            return Ok(None);
        }
        let result = self.hook_effects(&name, member, event, payload);
        if let Some(call) = &call
            && let Err(e) = self.write(|s| s.take_hook(call))
        {
            tracing::warn!(agent = %name, error = %e, "cannot keep a hook call's id");
        }
        result
    }

    /// What hook `event` of agent `name` (`member` of the roster) does.
    fn hook_effects(
        &self,
        name: &str,
        member: &mosaic_roster::Agent,
        event: &str,
        payload: &Value,
    ) -> Result<Option<Activity>, HookError> {
        let name = name.to_owned();
        let effect =
            hook_effect(Some(&member.runtime), event).ok_or_else(|| HookError::UnknownEvent {
                agent: name.clone(),
                event: event.to_owned(),
            })?;
        let is_orchestrator = member.role == mosaic_roster::Role::Orchestrator;
        // The conversation its hooks name is the one its next launch resumes.
        if let Some(harness) = mosaic_roster::harness(&member.runtime)
            && let Err(e) =
                mosaic_fleet::harness::Session::record(&self.inner.paths, &name, &harness, payload)
        {
            tracing::warn!(agent = %name, error = %e, "cannot keep the agent's session");
        }
        let activity = match effect {
            HookEffect::Busy => Activity::Busy,
            HookEffect::Idle => Activity::Idle,
            HookEffect::WaitingForInput => Activity::WaitingForInput,
            HookEffect::Ended => {
                let _ = self.inner.events.send(Event::AgentState {
                    name,
                    state: "ended".into(),
                    source: Some(Source::Hook.as_str().into()),
                    detail: Some(event.to_owned()),
                });
                return Ok(None);
            }
        };
        self.observe(
            &name,
            is_orchestrator,
            activity,
            Source::Hook,
            Some(event),
            payload,
        );
        Ok(Some(activity))
    }

    /// Keeps what agent `name` is doing, as `source` says (with hook `event` and its `payload`),
    /// announces it, and paces the orchestrator's deliveries by it.
    fn observe(
        &self,
        name: &str,
        is_orchestrator: bool,
        activity: Activity,
        source: Source,
        event: Option<&str>,
        payload: &Value,
    ) {
        let name = name.to_owned();
        let detail = (activity == Activity::WaitingForInput).then(|| waiting_for(payload));
        let observed = Observed {
            activity,
            source,
            event: event.map(str::to_owned),
            detail: detail.clone(),
            at: chrono_now(),
        };
        if let Err(e) = observed.write(&self.inner.paths, &name) {
            tracing::warn!(agent = %name, error = %e, "cannot keep the agent's activity");
        }
        let previous = self
            .inner
            .observed
            .lock()
            .unwrap()
            .insert(name.clone(), activity);
        let _ = self.inner.events.send(Event::AgentState {
            name: name.clone(),
            state: activity.as_str().into(),
            source: Some(source.as_str().into()),
            detail: detail.clone(),
        });
        if is_orchestrator {
            self.inner.activity.hook(match activity {
                Activity::Idle => HookState::Idle,
                Activity::WaitingForInput => HookState::Waiting,
                _ => HookState::Busy,
            });
            if activity == Activity::WaitingForInput && previous != Some(activity) {
                self.tell_room_the_orchestrator_waits(&name, detail.as_deref(), None);
            }
            // A turn ends with its hook (with its final answer, or none); an idle screen (a hook
            // lost, or one still to come after a restart) leaves the answer owed.
            if activity == Activity::Idle && source == Source::Hook {
                self.relay_unanswered(&name, payload);
            }
            self.wake_delivery();
        } else if activity == Activity::WaitingForInput && previous != Some(activity) {
            let asks = detail.as_deref().unwrap_or("a decision");
            self.notify_orchestrator(&format!(
                "worker {name} is waiting for input at its terminal: {asks}"
            ));
        } else if activity == Activity::Idle
            && let Some(answer) = final_answer(payload)
        {
            let call = call_id(&name, payload);
            self.comms_post_once(call.as_deref(), &name, &format!("{name}: {answer}"));
        }
    }

    /// Watches the agents a hook said wait on a dialog, or busy for longer than
    /// [`BUSY_GRACE_SECS`], and those still starting with no hook, until the bridge stops. A dialog can close, and a turn end, with no
    /// hook (Claude Code reports nothing after a refused permission or an Escape): once the
    /// agent's screen shows its ready text again and neither a dialog nor work (its manifest's
    /// `screen.busy`; a harness without those is left to its hooks), it is idle (source
    /// `screen`), so its chat messages are not held for nothing.
    pub(crate) async fn dialog_loop(self) {
        while !self.inner.stop.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::time::sleep(DIALOG_POLL).await;
            let mut watched: Vec<(String, Activity)> = self
                .inner
                .observed
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, a)| matches!(a, Activity::WaitingForInput | Activity::Busy))
                .map(|(n, a)| (n.clone(), *a))
                .collect();
            // Launched with no hook since (started while no daemon ran, or a harness whose first
            // hook comes with its first prompt): ready once its screen says so.
            for agent in &self.inner.roster.get().agents {
                if Observed::read(&self.inner.paths, &agent.name)
                    .is_some_and(|o| o.activity == Activity::Starting)
                {
                    watched.push((agent.name.clone(), Activity::Starting));
                }
            }
            for (name, activity) in watched {
                let roster = self.inner.roster.get();
                let Some(member) = roster.agent(&name) else {
                    continue;
                };
                let Some(harness) = mosaic_roster::harness::harness(&member.runtime) else {
                    continue;
                };
                // A busy turn that ended with no hook (Claude Code interrupted with Escape):
                // only for a harness whose screen tells busy from idle, after a grace period.
                if activity == Activity::Busy
                    && (harness.screen.busy.is_empty()
                        || Observed::read(&self.inner.paths, &name)
                            .is_none_or(|o| chrono_now() - o.at < BUSY_GRACE_SECS))
                {
                    continue;
                }
                let is_orchestrator = member.role == mosaic_roster::Role::Orchestrator;
                let fleet = self.fleet();
                let who = name.clone();
                let screen = tokio::task::spawn_blocking(move || fleet.capture(&who, false)).await;
                let Ok(Ok(screen)) = screen else {
                    continue;
                };
                // A hook may have said something newer meanwhile: only what was watched ends here.
                let unchanged = if activity == Activity::Starting {
                    Observed::read(&self.inner.paths, &name)
                        .is_some_and(|o| o.activity == Activity::Starting)
                } else {
                    self.inner.observed.lock().unwrap().get(&name).copied() == Some(activity)
                };
                if unchanged && dialog_closed(&harness, &screen) {
                    self.observe(
                        &name,
                        is_orchestrator,
                        Activity::Idle,
                        Source::Screen,
                        None,
                        &Value::Null,
                    );
                }
            }
        }
    }

    /// The orchestrator waits on a person (a permission dialog): the room of the message it is
    /// working on hears it once, with what it asks, and that chat messages wait.
    pub(crate) fn tell_room_the_orchestrator_waits(
        &self,
        name: &str,
        detail: Option<&str>,
        room: Option<crate::Target>,
    ) {
        let asks = detail.map(|d| format!(": {d}")).unwrap_or_default();
        let text = format!(
            "{name} is waiting for input at its terminal{asks}. Someone with access to the machine must answer it (`mosaic fleet attach {name}`); chat messages wait until then."
        );
        if let Err(e) = self.reply(&text, room) {
            tracing::warn!(agent = %name, error = %e, "cannot tell the room the orchestrator waits");
        }
    }

    /// The orchestrator (`agent`) ended a turn that answered a chat message without replying:
    /// its final text (the hook's `last_assistant_message`) goes to that message's room, once
    /// (once for the hook's call id, and only while the turn owes an answer: kept in the
    /// database, so also when the daemon restarted meanwhile). Returns whether it was queued.
    fn relay_unanswered(&self, agent: &str, payload: &Value) -> bool {
        let call = call_id(agent, payload);
        let relayed = match final_answer(payload) {
            Some(text) => {
                self.reply_as(text, None, crate::outbox::Answer::Relayed(call.as_deref()))
            }
            None => Ok(0),
        };
        match relayed {
            Ok(n) if n > 0 => return true,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot relay the orchestrator's final answer"),
        }
        // The turn is over either way: a later turn (a notice) never answers this message.
        if let Err(e) = self.commit(|s| s.answered()) {
            tracing::warn!(error = %e, "cannot mark the orchestrator's turn answered");
        }
        false
    }

    /// Posts the final answer an agent's hook carried while the daemon was away (`mosaic hook`
    /// keeps such a hook), once for the hook's call id: a worker's in `comms: matrix`, in its
    /// room; the orchestrator's in the room of the turn it answered, if that turn still owes an
    /// answer (and the orchestrator is idle again: that turn ended). Nothing else of a worker's
    /// hook is applied: the activity it reported is long past. Returns whether it was kept for
    /// posting.
    pub fn relay_kept_answer(&self, agent: &str, payload: &Value) -> bool {
        match self.agent_role(agent) {
            Some(mosaic_roster::Role::Worker) => {}
            Some(mosaic_roster::Role::Orchestrator) => {
                let relayed = self.relay_unanswered(agent, payload);
                // The turn it ended while the daemon was away is over: chat may go on.
                self.inner.activity.hook(HookState::Idle);
                self.wake_delivery();
                return relayed;
            }
            None => return false,
        }
        let Some(answer) = final_answer(payload) else {
            return false;
        };
        let (call, taken) = self.hook_call(agent, payload);
        !taken && self.comms_post_once(call.as_deref(), agent, &format!("{agent}: {answer}"))
    }

    /// The call id of agent `agent`'s hook `payload` (`AGENT/ID`, when it has one), and whether
    /// a copy of that call was taken already.
    fn hook_call(&self, agent: &str, payload: &Value) -> (Option<String>, bool) {
        let call = call_id(agent, payload);
        let taken = call.as_deref().is_some_and(|call| {
            self.inner
                .store
                .lock()
                .unwrap()
                .hook_taken(call)
                .unwrap_or(false)
        });
        (call, taken)
    }
}

/// The id of agent `agent`'s hook call `payload` as kept (`AGENT/ID`), when it has one.
fn call_id(agent: &str, payload: &Value) -> Option<String> {
    payload[HOOK_CALL_ID]
        .as_str()
        .map(|id| format!("{agent}/{id}"))
}

/// The text an agent ended its turn with, as its hook hands it: Claude Code's and Codex's Stop
/// hooks and pi's extension (`last_assistant_message`), Codex's notify
/// (`last-assistant-message`).
pub fn final_answer(payload: &Value) -> Option<&str> {
    payload["last_assistant_message"]
        .as_str()
        .or(payload["last-assistant-message"].as_str())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// What a waiting harness asks, from its hook payload: Claude Code's `message` or its tool and
/// command, pi's dialog title, else a generic phrase.
fn waiting_for(payload: &Value) -> String {
    let command = payload["tool_input"]["command"].as_str();
    let text = match (
        payload["message"].as_str(),
        payload["tool_name"].as_str(),
        command,
        payload["title"].as_str(),
    ) {
        (Some(m), _, _, _) if !m.trim().is_empty() => m.to_owned(),
        (_, Some(tool), Some(cmd), _) => format!("permission to run {tool}: {cmd}"),
        (_, Some(tool), None, _) => format!("permission to use {tool}"),
        (_, _, _, Some(title)) => title.to_owned(),
        _ => "a decision".to_owned(),
    };
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_dialog_is_closed_when_the_ready_screen_is_back_without_it() {
        let claude = mosaic_roster::harness::harness("claude").unwrap();
        // Claude Code 2.1.332's screens (trimmed): its permission dialog, at work, and after
        // a person refused the dialog with Escape.
        let dialog = " Bash command\n touch x\n Do you want to proceed?\n ❯ 1. Yes\n   2. No\n Esc to cancel · Tab to amend\n";
        let busy = "✶ Burrowing…\n❯ \n  ⏸ manual mode on · esc to interrupt\n";
        let refused = "  Did not run 1 call\n  ⎿  Interrupted · What should Claude do instead?\n❯ \n  ⏸ manual mode on · ? for shortcuts\n";
        assert!(!dialog_closed(&claude, dialog));
        assert!(!dialog_closed(&claude, busy));
        assert!(dialog_closed(&claude, refused));
        assert!(!dialog_closed(&claude, &format!("{refused}{dialog}")));
    }

    #[test]
    fn what_a_waiting_harness_asks_comes_from_its_payload() {
        assert_eq!(
            waiting_for(&json!({"tool_name": "Bash", "tool_input": {"command": "rm -rf x"}})),
            "permission to run Bash: rm -rf x"
        );
        assert_eq!(
            waiting_for(&json!({"message": "Claude needs your permission to use Bash"})),
            "Claude needs your permission to use Bash"
        );
        assert_eq!(waiting_for(&json!({"title": "Probe asks"})), "Probe asks");
        assert_eq!(waiting_for(&Value::Null), "a decision");
        let long = waiting_for(&json!({"message": "x\n".repeat(400)}));
        assert!(long.chars().count() <= MAX_DETAIL + 1 && !long.contains('\n'));
    }
}
