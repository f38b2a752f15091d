//! The inbound pipeline. Each message from a room is decided once, by pure functions of the
//! message, the bridge's view of the roster (ACL, settings, the rate limiter's answer) and the
//! store's answer: [`admit`] before the store is asked, [`decide`] after it. The decision's
//! effects (audit, event, answer, ack, queue wake) are then applied in one place,
//! [`Bridge::apply`]. Commands go on to [`Bridge::command`] (authorization, confirmations, the
//! executor), whose result is a decision applied the same way.

use crate::acl::{LOCAL, TALK_ROLE, needs_confirmation};
use crate::confirm;
use crate::events::Event;
use crate::store::{Accepted, Queueing, StoreError};
use crate::view::View;
use crate::{Bridge, Verdict};
use mosaic_connector::{Inbound, Markdown};
use mosaic_exec::{Actor, Outcome, Surface, authorize, render};
use mosaic_grammar::FleetCommand;
use mosaic_grammar::chat::{ChatInput, parse};
use mosaic_roster::{AclRole, BridgeSettings};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do about one inbound message: its verdict and every effect, applied by
/// [`Bridge::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    /// What the caller is told.
    pub verdict: Verdict,
    /// The audit record's outcome, when the message is audited.
    pub audit: Option<String>,
    /// Whether a `command` event carries the audit outcome.
    pub event: bool,
    /// The answer posted in the message's room.
    pub answer: Option<String>,
    /// Whether the room's live cursor moves to this message (it was stored).
    pub cursor: bool,
    /// The command line audited instead of the message's own (the confirmed command).
    pub line: Option<String>,
}

impl Decision {
    fn new(verdict: Verdict) -> Decision {
        Decision {
            verdict,
            audit: None,
            event: false,
            answer: None,
            cursor: false,
            line: None,
        }
    }

    fn audit(mut self, outcome: impl Into<String>) -> Decision {
        self.audit = Some(outcome.into());
        self
    }

    fn answer(mut self, text: impl Into<String>) -> Decision {
        self.answer = Some(text.into());
        self
    }

    fn event(mut self) -> Decision {
        self.event = true;
        self
    }

    /// Refused: audited, and answered with the user's role.
    fn refused(why: String, role: AclRole) -> Decision {
        let answer = format!("{why}; you are {}", role.as_str());
        Decision::new(Verdict::Refused(why.clone()))
            .audit(why)
            .answer(answer)
    }
}

/// A message the view lets through: who sent it and what it is.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The sender's role.
    pub role: AclRole,
    /// The parsed message.
    pub input: ChatInput,
    /// Whether the store queues it for the orchestrator.
    pub queue: bool,
}

/// What happens after the store answered: done, or a command to run.
#[derive(Debug)]
pub(crate) enum Next {
    /// Decided.
    Done(Decision),
    /// A command from a known user, to authorize, confirm and run.
    Command(AclRole, Box<FleetCommand>),
}

/// The message as audited: `(talk)` for talk, the trimmed line for anything else.
pub(crate) fn audit_line(inbound: &Inbound, input: &ChatInput) -> String {
    match input {
        ChatInput::Talk => "(talk)".to_owned(),
        _ => inbound.text.trim().to_owned(),
    }
}

/// The view's verdict before the store is asked: a bridged room, a known user, within the rate
/// (`rate_ok` is asked only for a known user on a platform; the local user is not limited).
pub(crate) fn admit(
    inbound: &Inbound,
    input: ChatInput,
    view: &View,
    rate_ok: impl FnOnce() -> bool,
) -> Result<Admitted, Decision> {
    if !view.acl.room_allowed(&inbound.connector, &inbound.room) {
        let why = "ignored: room not bridged".to_owned();
        let d = Decision::new(Verdict::Ignored(why.clone())).audit(why);
        // A native command waits for an answer (Discord shows "thinking" for 15 minutes).
        return Err(if inbound.native_command {
            d.answer("this channel is not bridged to the fleet: use /fleet where the orchestrator listens")
        } else {
            d
        });
    }
    let Some(role) = view.acl.role(&inbound.connector, &inbound.user) else {
        // Deny by default; strangers get no answer, except to a native command, whose platform
        // shows "thinking" until one comes.
        let why = "refused: user not in the acl".to_owned();
        let d = Decision::new(Verdict::Refused(why.clone()))
            .audit(why)
            .event();
        return Err(if inbound.native_command {
            d.answer(
                "you are not allowed to command this fleet (ask its admin to add you to the acl)",
            )
        } else {
            d
        });
    };
    if inbound.connector != LOCAL && !rate_ok() {
        let why = "rate-limited".to_owned();
        return Err(Decision::new(Verdict::Refused(why.clone()))
            .audit(why)
            .answer(format!(
                "slow down: at most {} messages a minute; this one was not taken",
                view.settings.rate_per_minute
            )));
    }
    let queue = matches!(input, ChatInput::Talk) && role >= TALK_ROLE;
    Ok(Admitted { role, input, queue })
}

/// When each room was last told the orchestrator is busy: at most once a minute (a burst of
/// 1,000 is one notice, not 980).
#[derive(Default)]
pub(crate) struct BusyNotices {
    told: Mutex<HashMap<(String, String), Instant>>,
}

/// How long a room told the orchestrator is busy is not told again.
const BUSY_NOTICE_EVERY: Duration = Duration::from_secs(60);

impl BusyNotices {
    /// Whether a message from `inbound`'s room with `ahead` messages before it should tell its
    /// sender their place: past `threshold`, unless the room was told in the last minute.
    pub(crate) fn due(&self, inbound: &Inbound, ahead: usize, threshold: usize) -> bool {
        self.due_at(inbound, ahead, threshold, Instant::now())
    }

    fn due_at(&self, inbound: &Inbound, ahead: usize, threshold: usize, now: Instant) -> bool {
        if ahead < threshold {
            return false;
        }
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        told.retain(|_, at| now.duration_since(*at) < BUSY_NOTICE_EVERY);
        let room = (inbound.connector.clone(), inbound.room.clone());
        if told.contains_key(&room) {
            return false;
        }
        told.insert(room, now);
        true
    }
}

/// The decision once the store answered.
pub(crate) fn decide(
    inbound: &Inbound,
    admitted: Admitted,
    stored: Result<Accepted, &StoreError>,
    settings: &BridgeSettings,
    busy: &BusyNotices,
    markdown: Markdown,
) -> Next {
    let accepted = match stored {
        // Not stored, so not accepted: the platform (or API client) must deliver it again.
        Err(e) => return Next::Done(Decision::new(Verdict::Failed(e.to_string()))),
        Ok(a) => a,
    };
    let Accepted::New { queued, ahead } = accepted else {
        return Next::Done(Decision::new(Verdict::Duplicate));
    };
    let cursor = !inbound.native_command;
    let decision = match admitted.input {
        ChatInput::Talk => match queued {
            Some(id) => {
                let d = Decision::new(Verdict::Queued { id, ahead });
                if busy.due(inbound, ahead, settings.queue_notice) {
                    d.answer(format!("the orchestrator is busy: your message is queued behind {ahead} others and will be delivered in order (as will what you send meanwhile)"))
                } else {
                    d
                }
            }
            None => Decision::refused(
                format!(
                    "refused: talking to the orchestrator needs role {}",
                    TALK_ROLE.as_str()
                ),
                admitted.role,
            ),
        },
        ChatInput::Help(text) => Decision::new(Verdict::Answered)
            .audit("ok")
            .answer(render::chat(&Outcome::Help { text }, markdown, false)),
        ChatInput::Invalid(e) => Decision::new(Verdict::Answered)
            .audit("error: invalid command")
            .answer(format!("```\n{}\n```", e.message)),
        ChatInput::Command(command) => return Next::Command(admitted.role, command),
    };
    Next::Done(Decision { cursor, ..decision })
}

impl Bridge {
    /// Handles one inbound message: dedup, ACL, grammar, queue or answer.
    pub async fn accept(&self, inbound: Inbound) -> Verdict {
        let input = parse(&inbound.text);
        let line = audit_line(&inbound, &input);
        let view = self.view();
        let admitted = match admit(&inbound, input, &view, || {
            view.rate.allow(&inbound.connector, &inbound.user)
        }) {
            Ok(a) => a,
            Err(decision) => return self.apply(&inbound, &line, decision),
        };
        let stored =
            self.write(|s| s.accept(&inbound, Queueing::when(admitted.queue, admitted.role)));
        let markdown = self.markdown(&inbound.connector);
        match decide(
            &inbound,
            admitted,
            stored.as_ref().map(Clone::clone),
            &view.settings,
            &self.inner.busy_notices,
            markdown,
        ) {
            Next::Done(decision) => {
                if let Err(e) = &stored {
                    tracing::error!(
                        connector = %inbound.connector,
                        room = %inbound.room,
                        error = %e,
                        "cannot store a message"
                    );
                }
                self.apply(&inbound, &line, decision)
            }
            Next::Command(role, command) => {
                self.advance_cursor(&inbound);
                let decision = self.command(&inbound, role, *command, line.clone()).await;
                self.apply(&inbound, &line, decision)
            }
        }
    }

    /// Applies a decision's effects, in this order: the room's cursor, the audit record, the
    /// events, the queue wake and the platform ack (a queued message), the answer.
    pub(crate) fn apply(&self, inbound: &Inbound, line: &str, decision: Decision) -> Verdict {
        let inner = &self.inner;
        let line = decision.line.as_deref().unwrap_or(line);
        if decision.cursor {
            self.advance_cursor(inbound);
        }
        if let Some(outcome) = &decision.audit {
            inner.audit.record(
                &inbound.connector,
                &inbound.user,
                &inbound.room,
                line,
                outcome,
            );
            if decision.event {
                let _ = inner.events.send(Event::Command {
                    connector: inbound.connector.clone(),
                    user: inbound.user.clone(),
                    command: line.to_owned(),
                    outcome: outcome.clone(),
                });
            }
        }
        if let Verdict::Queued { id, .. } = decision.verdict {
            let _ = inner.events.send(Event::MessageIn {
                id,
                connector: inbound.connector.clone(),
                room: inbound.room.clone(),
                user: inbound.user.clone(),
                text: inbound.text.clone(),
            });
            self.wake_delivery();
            self.ack(inbound);
        }
        if let Some(answer) = &decision.answer {
            self.respond(inbound, answer);
        }
        decision.verdict
    }

    /// Moves the live cursor of the message's room to it (what a connector resumes after).
    fn advance_cursor(&self, inbound: &Inbound) {
        if inbound.native_command {
            return;
        }
        if let Some(cursors) = self.inner.cursors.get(&inbound.connector) {
            let (room, id) = (&inbound.room, &inbound.message_id);
            cursors.send_modify(|points| match points.iter_mut().find(|(r, _)| r == room) {
                Some(point) => point.1 = id.clone(),
                None => points.push((room.clone(), id.clone())),
            });
        }
    }

    /// Decides a command from a known user: refused, waiting for a confirmation, or run.
    async fn command(
        &self,
        inbound: &Inbound,
        role: AclRole,
        command: FleetCommand,
        line: String,
    ) -> Decision {
        let (conn, user) = (inbound.connector.clone(), inbound.user.clone());
        let actor = Actor {
            surface: Surface::Chat {
                connector: conn.clone(),
                user: user.clone(),
            },
            role,
        };
        // Checked before any confirmation is asked for; the executor checks again.
        if let Err(refusal) = authorize(&command, &actor) {
            return Decision::refused(refusal.to_string(), role).event();
        }
        let (command, line) = match command {
            FleetCommand::Confirm { code } => {
                let taken = self.write(|s| confirm::take(s, &code, &conn, &user));
                match taken {
                    Ok(Some(p)) => (p.command, p.line),
                    Ok(None) => {
                        let why =
                            "error: no such confirmation (wrong code, someone else's, or expired)";
                        return Decision::new(Verdict::Answered).audit(why).answer(why);
                    }
                    Err(e) => {
                        let why = format!("error: {e}");
                        return Decision::new(Verdict::Answered).audit(&why).answer(why);
                    }
                }
            }
            command if needs_confirmation(&command) && conn != LOCAL => {
                // An init is tried as a dry run first: a wrong answer is said now, not after
                // the confirmation, and the confirmation shows what would change.
                let mut plan = String::new();
                if let FleetCommand::Init(args) = &command {
                    let mut dry = args.clone();
                    dry.dry_run = true;
                    match self.exec(FleetCommand::Init(dry), actor.clone()).await {
                        Err(e) => {
                            let why = format!("error: {e}");
                            return Decision::new(Verdict::Answered).audit(&why).answer(why);
                        }
                        Ok(Outcome::Init { report }) => {
                            plan = format!("\n```\n{}\n```", report.trim_end());
                        }
                        Ok(_) => {}
                    }
                }
                let asked = self.write(|s| confirm::ask(s, &conn, &user, command, &line));
                return match asked {
                    Ok(code) => Decision::new(Verdict::AwaitingConfirmation(code.clone()))
                        .audit("awaiting confirmation")
                        .answer(format!("`{line}` cannot be undone. To go ahead, send `/fleet confirm {code}` within 2 minutes.{plan}")),
                    Err(e) => {
                        let why = format!("error: {e}");
                        Decision::new(Verdict::Answered).audit(&why).answer(why)
                    }
                };
            }
            command => (command, line),
        };
        let json = render::wants_json(&command);
        let markdown = self.markdown(&conn);
        let result = self.exec(command, actor).await;
        let (reply, outcome) = match result {
            Ok(done) => (render::chat(&done, markdown, json), "ok".to_owned()),
            Err(e) => (format!("error: {e}"), format!("error: {e}")),
        };
        // The audit line is the command that ran (the confirmed one, after `/fleet confirm`).
        Decision {
            line: Some(line),
            ..Decision::new(Verdict::Answered)
                .audit(outcome)
                .event()
                .answer(reply)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        mosaic_connector::registry::register(&mosaic_testchat::TYPE);
        let roster = mosaic_roster::Roster::parse(
            "version: 1\nfleet: f\nagents:\n- {name: mos, role: orchestrator, runtime: demo}\nconnectors:\n- {type: testchat, id: tg, dir: /x, rooms: ['42'], token: {env: T}}\nacl:\n- {connector: tg, user: op, role: operator}\n- {connector: tg, user: viewer, role: viewer}\nbridge: {queue_notice: 2}\n",
            "r",
        )
        .unwrap();
        View::of(&roster, None)
    }

    fn msg(connector: &str, room: &str, user: &str, text: &str) -> Inbound {
        Inbound {
            connector: connector.into(),
            message_id: "m1".into(),
            room: room.into(),
            user: user.into(),
            user_name: user.into(),
            text: text.into(),
            thread: None,
            native_command: false,
        }
    }

    #[test]
    fn a_room_is_told_the_orchestrator_is_busy_at_most_once_a_minute() {
        let busy = BusyNotices::default();
        let (a, b) = (msg("tg", "1", "op", "x"), msg("tg", "2", "op", "x"));
        let t = Instant::now();
        assert!(!busy.due_at(&a, 19, 20, t), "a short queue tells nothing");
        assert!(
            busy.due_at(&a, 20, 20, t),
            "the first past the threshold is told"
        );
        let later = t + Duration::from_secs(59);
        assert!(
            !busy.due_at(&a, 900, 20, later),
            "then not again within the minute"
        );
        assert!(busy.due_at(&b, 22, 20, later), "another room is told, once");
        assert!(!busy.due_at(&b, 23, 20, later));
        let minute = t + Duration::from_secs(60);
        assert!(busy.due_at(&a, 21, 20, minute), "a minute on, told again");
        assert!(!busy.due_at(&b, 21, 20, minute));
    }

    fn admitted(m: &Inbound, rate_ok: bool) -> Result<Admitted, Decision> {
        admit(m, parse(&m.text), &view(), || rate_ok)
    }

    fn decided(m: &Inbound, stored: Result<Accepted, &StoreError>) -> Decision {
        let a = admitted(m, true).unwrap();
        match decide(
            m,
            a,
            stored,
            &view().settings,
            &BusyNotices::default(),
            Markdown::CommonMark,
        ) {
            Next::Done(d) => d,
            Next::Command(..) => panic!("a command"),
        }
    }

    #[test]
    fn the_view_refuses_before_the_store_is_asked() {
        let d = admitted(&msg("tg", "43", "op", "hi"), true).unwrap_err();
        assert_eq!(
            (d.verdict, d.audit.as_deref(), d.answer, d.event),
            (
                Verdict::Ignored("ignored: room not bridged".into()),
                Some("ignored: room not bridged"),
                None,
                false
            ),
            "another room: audited, never answered"
        );
        let native_elsewhere = Inbound {
            native_command: true,
            ..msg("tg", "43", "op", "/fleet ps")
        };
        let d = admitted(&native_elsewhere, true).unwrap_err();
        assert!(
            d.answer.is_some_and(|a| a.contains("not bridged")),
            "a native command in another room is answered (its platform waits for one)"
        );
        let stranger = msg("tg", "42", "eve", "/fleet ps");
        let d = admitted(&stranger, true).unwrap_err();
        assert!(d.event && d.answer.is_none(), "a stranger gets no answer");
        let native = Inbound {
            native_command: true,
            ..stranger
        };
        assert!(
            admitted(&native, true).unwrap_err().answer.is_some(),
            "except to a native command, which waits for one"
        );
        let d = admitted(&msg("tg", "42", "op", "hi"), false).unwrap_err();
        assert_eq!(d.verdict, Verdict::Refused("rate-limited".into()));
        assert!(d.answer.unwrap().contains("slow down"));
        let local = msg(LOCAL, LOCAL, LOCAL, "hi");
        let a = admit(&local, parse("hi"), &view(), || {
            panic!("the local user is not limited")
        });
        assert!(a.unwrap().queue);
    }

    #[test]
    fn the_store_answer_decides_the_rest() {
        let talk = msg("tg", "42", "op", "hi");
        assert_eq!(
            decided(&talk, Ok(Accepted::Duplicate)),
            Decision::new(Verdict::Duplicate),
            "a redelivery does nothing"
        );
        let d = decided(&talk, Err(&StoreError::from(rusqlite::Error::InvalidQuery)));
        assert!(matches!(d.verdict, Verdict::Failed(_)) && d.audit.is_none() && !d.cursor);
        let d = decided(
            &talk,
            Ok(Accepted::New {
                queued: Some(7),
                ahead: 1,
            }),
        );
        assert_eq!(d.verdict, Verdict::Queued { id: 7, ahead: 1 });
        assert!(d.cursor && d.answer.is_none() && d.audit.is_none());
        let d = decided(
            &talk,
            Ok(Accepted::New {
                queued: Some(8),
                ahead: 2,
            }),
        );
        assert!(d.answer.unwrap().contains("queued behind 2 others"));
        let viewer = msg("tg", "42", "viewer", "hi");
        let d = decided(
            &viewer,
            Ok(Accepted::New {
                queued: None,
                ahead: 0,
            }),
        );
        assert!(matches!(d.verdict, Verdict::Refused(_)));
        assert!(d.answer.unwrap().ends_with("you are viewer"));
        let help = msg("tg", "42", "viewer", "/fleet help");
        let d = decided(
            &help,
            Ok(Accepted::New {
                queued: None,
                ahead: 0,
            }),
        );
        assert_eq!(
            (d.verdict, d.audit.as_deref()),
            (Verdict::Answered, Some("ok"))
        );
    }
}
