//! What the bridge reports as it works: the daemon's event stream (`GET /v1/events`).

use serde::{Deserialize, Serialize};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A chat message was accepted for the orchestrator.
    MessageIn {
        /// Queue id.
        id: i64,
        /// Connector.
        connector: String,
        /// Room.
        room: String,
        /// User id.
        user: String,
        /// Text.
        text: String,
    },
    /// A received message was acknowledged in its room.
    Acked {
        /// Connector.
        connector: String,
        /// Room.
        room: String,
        /// The platform's message id.
        message_id: String,
    },
    /// A queued message was typed into the orchestrator's pane and submitted.
    Delivered {
        /// Queue id.
        id: i64,
        /// The orchestrator's name.
        agent: String,
    },
    /// A queued message was pasted into the orchestrator's pane but the pane never showed a
    /// reaction (a frozen orchestrator). It is not pasted again: it waits, and the queue behind
    /// it, until a person retries or drops it (`POST /v1/queue/{id}/retry` or `/drop`).
    Held {
        /// Queue id.
        id: i64,
        /// The orchestrator's name.
        agent: String,
        /// What went wrong.
        error: String,
    },
    /// A message was posted to a chat room.
    MessageOut {
        /// Outbox id.
        id: i64,
        /// The message's key as the connector got it (the local room's history uses it).
        key: String,
        /// Connector.
        connector: String,
        /// Room.
        room: String,
        /// Text.
        text: String,
    },
    /// A command from chat ran (or was refused).
    Command {
        /// Connector.
        connector: String,
        /// User id.
        user: String,
        /// The command line.
        command: String,
        /// Its outcome, as in the audit log.
        outcome: String,
    },
    /// An agent changed state: `running`, `dead`, `stopped`, `orphan`, `removed` (from the
    /// fleet, checked every second), `restarted` or `crash-looping` (its restart policy), or
    /// `idle`, `busy`, `waiting-for-input`, `ended` (from its harness's hooks).
    AgentState {
        /// Agent name.
        name: String,
        /// New state.
        state: String,
        /// Where it comes from: `hook`, else the fleet's process check.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// What it waits for, or the hook event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// `roster.yaml` changed and the new roster is in use (the ACL, rooms and settings too).
    RosterChanged {
        /// The agents of the new roster.
        agents: Vec<String>,
    },
    /// `roster.yaml` changed but is missing or invalid; the last good roster stays in use.
    RosterInvalid {
        /// What is wrong, one line each, as `file:line:column: field: message` where known.
        problems: Vec<String>,
    },
    /// This stream fell behind and `missed` events were dropped from it (a burst faster than
    /// the reader): what they told must be read again from state (`mosaic chat` re-reads the
    /// local room's history).
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

impl From<mosaic_fleet::Change> for Event {
    /// The supervisor's report as an `agent_state` event.
    fn from(change: mosaic_fleet::Change) -> Event {
        use mosaic_fleet::Change;
        let (name, state) = match change {
            Change::State { name, state } => (name, state.as_str().to_owned()),
            Change::Removed(name) => (name, "removed".to_owned()),
            Change::Restarted(name) => (name, "restarted".to_owned()),
            Change::CrashLooping(name) => (name, "crash-looping".to_owned()),
        };
        Event::AgentState {
            name,
            state,
            source: None,
            detail: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_a_type_tag() {
        let events = [
            Event::MessageIn {
                id: 1,
                connector: "local".into(),
                room: "local".into(),
                user: "local".into(),
                text: "hi".into(),
            },
            Event::Acked {
                connector: "c".into(),
                room: "r".into(),
                message_id: "m".into(),
            },
            Event::Lagged { missed: 3 },
            Event::Delivered {
                id: 1,
                agent: "mos".into(),
            },
            Event::MessageOut {
                id: 2,
                key: "mosaic-out-2".into(),
                connector: "c".into(),
                room: "r".into(),
                text: "yo".into(),
            },
            Event::Command {
                connector: "c".into(),
                user: "u".into(),
                command: "/fleet ps".into(),
                outcome: "ok".into(),
            },
            Event::AgentState {
                name: "mos".into(),
                state: "idle".into(),
                source: Some("hook".into()),
                detail: Some("Stop".into()),
            },
            Event::RosterChanged {
                agents: vec!["mos".into()],
            },
            Event::RosterInvalid {
                problems: vec!["roster.yaml:3:1: agents: expected a list".into()],
            },
        ];
        for e in events {
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.starts_with("{\"type\":"), "{json}");
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        }
    }
}
