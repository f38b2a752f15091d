//! The API's request and response bodies as types: the daemon writes them, the CLI reads them,
//! and their JSON Schemas are published under docs/schema/ (checked by tests/schemas.rs).

use mosaic_connector::Health;
use serde::{Deserialize, Serialize};

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthReport {
    /// The API's name and version (`mosaic.api/v1`).
    pub api: String,
    /// Each connector's connection.
    pub connectors: Vec<ConnectorHealth>,
    /// Messages waiting for the orchestrator.
    pub queue: usize,
    /// Queue ids of messages pasted but never confirmed, waiting for a person's retry or drop.
    #[serde(default)]
    pub held: Vec<i64>,
}

/// One connector in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConnectorHealth {
    /// The connector's instance id.
    pub id: String,
    /// Its health.
    pub health: Health,
}

/// `POST /v1/reply`: what the orchestrator says, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The text (CommonMark; rendered and split for the platform).
    pub text: String,
    /// `CONNECTOR:ROOM`; the room of the last delivered message when neither this nor `to` is
    /// given.
    #[serde(default)]
    pub room: Option<String>,
    /// The queue id of the chat message answered (the N of `[chat #N from …]`): the answer goes
    /// to that message's room, whatever was delivered since.
    #[serde(default)]
    pub to: Option<i64>,
}

/// `202` to a [`ReplyRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplyAccepted {
    /// How many messages the reply was split into.
    pub queued_messages: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_types_round_trip() {
        let health = HealthReport {
            api: "mosaic.api/v1".into(),
            connectors: vec![ConnectorHealth {
                id: "discord".into(),
                health: Health::Down("gone".into()),
            }],
            queue: 3,
            held: vec![7],
        };
        let json = serde_json::to_string(&health).unwrap();
        assert_eq!(serde_json::from_str::<HealthReport>(&json).unwrap(), health);
        let reply = ReplyRequest {
            text: "hi".into(),
            room: None,
            to: Some(4),
        };
        let json = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<ReplyRequest>(&json).unwrap(), reply);
        assert!(serde_json::from_str::<ReplyRequest>(r#"{"text":"x","romm":"a:b"}"#).is_err());
        let accepted = ReplyAccepted { queued_messages: 2 };
        let json = serde_json::to_string(&accepted).unwrap();
        assert_eq!(
            serde_json::from_str::<ReplyAccepted>(&json).unwrap(),
            accepted
        );
    }
}
