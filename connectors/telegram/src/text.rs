//! Text that crosses the connector: commands addressed with `@botname`, and MarkdownV2 escapes.

/// The text of a message as the bridge should see it, or `None` when it is a command for another
/// bot. In groups Telegram users address a bot's command as `/fleet@ThisBot status`; that becomes
/// `/fleet status`. `/start` and `/help` (the buttons of a bot's private chat) become
/// `/fleet help` in a private chat, or when addressed to this bot (`/help@ThisBot`); a bare
/// `/help` in a group may be meant for any bot there, so it stays as typed.
pub fn addressed(text: &str, bot_username: &str, private: bool) -> Option<String> {
    let body = text.trim_start();
    if !body.starts_with('/') {
        return Some(text.to_owned());
    }
    let end = body.find(char::is_whitespace).unwrap_or(body.len());
    let (word, rest) = body.split_at(end);
    let (command, ours) = match word.split_once('@') {
        Some((command, name)) if name.eq_ignore_ascii_case(bot_username) => (command, true),
        Some(_) => return None,
        None => (word, private),
    };
    if ours
        && ["/start", "/help"]
            .iter()
            .any(|c| command.eq_ignore_ascii_case(c))
    {
        return Some("/fleet help".to_owned());
    }
    Some(format!("{command}{rest}"))
}

/// MarkdownV2 without its escapes: what the text reads as when sent without a parse mode.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next) if next.is_ascii_punctuation() => out.push(next),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` cut into parts of at most `limit` UTF-16 units (Telegram's unit), at line breaks
/// where it can.
pub fn utf16_parts(text: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.encode_utf16().count() > limit {
        let mut units = 0;
        let mut cut = 0;
        let mut last_newline = None;
        for (i, c) in rest.char_indices() {
            units += c.len_utf16();
            if units > limit {
                break;
            }
            cut = i + c.len_utf8();
            if c == '\n' {
                last_newline = Some(cut);
            }
        }
        let cut = last_newline.filter(|n| *n > cut / 2).unwrap_or(cut);
        parts.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_for_this_bot_lose_the_suffix_and_others_are_not_ours() {
        assert_eq!(
            addressed("/fleet@MosaicBot status", "mosaicbot", false).as_deref(),
            Some("/fleet status")
        );
        assert_eq!(
            addressed("/FLEET@mosaicbot", "MosaicBot", false).as_deref(),
            Some("/FLEET")
        );
        assert_eq!(
            addressed("/fleet@OtherBot status", "mosaicbot", false),
            None
        );
        assert_eq!(
            addressed("/fleet ps --json", "mosaicbot", false).as_deref(),
            Some("/fleet ps --json")
        );
        assert_eq!(
            addressed("hello @mosaicbot", "mosaicbot", false).as_deref(),
            Some("hello @mosaicbot")
        );
        assert_eq!(
            addressed("/start", "mosaicbot", true).as_deref(),
            Some("/fleet help")
        );
        // A bare /help in a group may be for another bot: it stays as typed.
        assert_eq!(
            addressed("/help", "mosaicbot", false).as_deref(),
            Some("/help")
        );
        assert_eq!(
            addressed("/help@mosaicbot", "mosaicbot", false).as_deref(),
            Some("/fleet help")
        );
        assert_eq!(
            addressed("  /fleet@mosaicbot\nsend coder hi", "mosaicbot", false).as_deref(),
            Some("/fleet\nsend coder hi")
        );
    }

    #[test]
    fn parts_fit_in_utf16_units_and_break_at_lines() {
        let emoji = "😀".repeat(3000);
        let parts = utf16_parts(&emoji, 4096);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
        assert_eq!(parts.concat(), emoji);
        let lines = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        assert_eq!(
            utf16_parts(&lines, 4096)[0],
            format!("{}\n", "a".repeat(3000))
        );
        assert_eq!(utf16_parts("short", 4096), vec!["short"]);
    }

    #[test]
    fn unescaping_restores_the_typed_text() {
        assert_eq!(unescape(r"1\. done\! see \(a\)"), "1. done! see (a)");
        assert_eq!(unescape(r"a \\ b"), r"a \ b");
        assert_eq!(unescape("trailing \\"), "trailing \\");
        assert_eq!(unescape(r"\q"), r"\q");
    }
}
