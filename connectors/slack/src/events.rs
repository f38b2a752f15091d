//! Slack events as the bridge sees them: `message` and `app_mention` events (live, or read back
//! from history) and slash commands become [`Inbound`]s; the bot's own messages, other bots',
//! and messages that are not a user's text (edits, joins, deletions) become nothing.

use crate::{Me, SLASH_PREFIX, message_id};
use mosaic_connector::Inbound;
use serde_json::Value;

/// Message subtypes that still carry a user's own new text.
const USER_SUBTYPES: &[&str] = &["thread_broadcast", "file_share", "me_message"];

/// A user's message (a `message` or `app_mention` event, or a message of channel history read
/// from `channel`) as an [`Inbound`]; `None` for anything else.
pub(crate) fn message(
    connector: &str,
    me: &Me,
    channel: Option<&str>,
    event: &Value,
) -> Option<Inbound> {
    let kind = event["type"].as_str().unwrap_or("message");
    if kind != "message" && kind != "app_mention" {
        return None;
    }
    if let Some(subtype) = event["subtype"].as_str()
        && !USER_SUBTYPES.contains(&subtype)
    {
        return None;
    }
    if event["hidden"].as_bool() == Some(true) || !event["bot_id"].is_null() {
        return None;
    }
    let user = event["user"].as_str()?;
    if user == me.user {
        return None;
    }
    let channel = event["channel"].as_str().or(channel)?;
    let ts = event["ts"].as_str()?;
    let text = strip_mention(event["text"].as_str().unwrap_or_default(), &me.user);
    Some(Inbound {
        connector: connector.to_owned(),
        message_id: message_id(channel, ts),
        room: channel.to_owned(),
        user: user.to_owned(),
        user_name: user.to_owned(),
        text,
        thread: event["thread_ts"].as_str().map(str::to_owned),
        native_command: false,
    })
}

/// The text without a leading mention of the bot (`<@U123> status` → `status`).
fn strip_mention(text: &str, bot_user: &str) -> String {
    let mention = format!("<@{bot_user}>");
    let rest = text.trim_start();
    match rest.strip_prefix(&mention) {
        Some(rest) => rest.trim_start().to_owned(),
        None => text.to_owned(),
    }
}

/// A slash command payload as a native [`Inbound`] (always `/fleet …`, whatever the command is
/// called in the app), with its `response_url`.
pub(crate) fn slash(
    connector: &str,
    payload: &Value,
    envelope_id: &str,
) -> Option<(Inbound, String)> {
    let channel = payload["channel_id"].as_str()?;
    let user = payload["user_id"].as_str()?;
    let response_url = payload["response_url"].as_str()?.to_owned();
    let trigger = payload["trigger_id"].as_str().unwrap_or(envelope_id);
    let args = payload["text"].as_str().unwrap_or_default().trim();
    let text = if args.is_empty() {
        "/fleet".to_owned()
    } else {
        format!("/fleet {args}")
    };
    Some((
        Inbound {
            connector: connector.to_owned(),
            message_id: format!("{SLASH_PREFIX}{trigger}"),
            room: channel.to_owned(),
            user: user.to_owned(),
            user_name: payload["user_name"].as_str().unwrap_or(user).to_owned(),
            text,
            thread: None,
            native_command: true,
        },
        response_url,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> Me {
        Me {
            user: "UBOT0001".into(),
        }
    }

    #[test]
    fn user_messages_pass_and_the_rest_does_not() {
        let ev = json!({"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "1.000001", "channel_type": "channel"});
        let got = message("slack", &me(), None, &ev).unwrap();
        assert_eq!(
            (
                got.message_id.as_str(),
                got.room.as_str(),
                got.text.as_str(),
                got.thread
            ),
            ("C1:1.000001", "C1", "hi", None)
        );
        let threaded = json!({"type": "message", "channel": "C1", "user": "U1", "text": "x", "ts": "2.0", "thread_ts": "1.000001"});
        assert_eq!(
            message("slack", &me(), None, &threaded)
                .unwrap()
                .thread
                .as_deref(),
            Some("1.000001")
        );
        let mention = json!({"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT0001> status please", "ts": "3.0"});
        assert_eq!(
            message("slack", &me(), None, &mention).unwrap().text,
            "status please"
        );
        for dropped in [
            json!({"type": "message", "channel": "C1", "user": "UBOT0001", "text": "mine", "ts": "4.0"}),
            json!({"type": "message", "channel": "C1", "user": "U9", "bot_id": "B9", "text": "beep", "ts": "5.0"}),
            json!({"type": "message", "subtype": "bot_message", "channel": "C1", "bot_id": "B9", "text": "beep", "ts": "6.0"}),
            json!({"type": "message", "subtype": "message_changed", "channel": "C1", "hidden": true, "ts": "7.0", "message": {"user": "U1", "text": "edited"}}),
            json!({"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1", "text": "<@U1> has joined the channel", "ts": "8.0"}),
            json!({"type": "reaction_added", "user": "U1"}),
        ] {
            assert!(
                message("slack", &me(), None, &dropped).is_none(),
                "{dropped}"
            );
        }
        // History messages have no channel of their own.
        let old = json!({"type": "message", "user": "U1", "text": "old", "ts": "0.5"});
        assert_eq!(
            message("slack", &me(), Some("C2"), &old)
                .unwrap()
                .message_id,
            "C2:0.5"
        );
    }

    #[test]
    fn slash_commands_become_fleet_lines() {
        let payload = json!({"channel_id": "C1", "user_id": "U1", "user_name": "ann", "command": "/fleet",
            "text": " status ", "response_url": "https://hooks.slack.com/commands/T1/1/x", "trigger_id": "13345.7"});
        let (inbound, url) = slash("slack", &payload, "e1").unwrap();
        assert_eq!(inbound.text, "/fleet status");
        assert_eq!(inbound.message_id, "slash:13345.7");
        assert!(inbound.native_command);
        assert_eq!(url, "https://hooks.slack.com/commands/T1/1/x");
    }
}
