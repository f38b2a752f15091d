//! Splitting long replies at a platform's limit on line and code-block boundaries.

use mosaic_connector::Capabilities;
use mosaic_connector::render::render;

const FENCE: &str = "```";

/// Splits CommonMark `text` into messages that each fit the platform's limit once rendered for
/// its dialect (escaping can make a message longer than its source, e.g. Telegram's
/// MarkdownV2): split at the limit, and where a rendered part is still too long, split again with
/// a budget shrunk by the overshoot.
pub fn split_for(text: &str, caps: &Capabilities) -> Vec<String> {
    let max = caps.max_message_len;
    let mut budget = max;
    loop {
        let parts = split_message(text, budget);
        let longest = parts
            .iter()
            .map(|p| render(p, caps.markdown).len())
            .max()
            .unwrap_or(0);
        if longest <= max || budget <= MIN_BUDGET {
            return parts;
        }
        budget = (budget * max / longest).min(budget - 1).max(MIN_BUDGET);
    }
}

/// The smallest budget [`split_for`] tries (a code block needs room for its fences).
const MIN_BUDGET: usize = 64;

/// Splits `text` into messages of at most `limit` characters, breaking between lines where it
/// can; a code block cut in two is closed at the end of one message and reopened (with its
/// language) at the start of the next, so each message renders on its own.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(16);
    if text.chars().count() <= limit {
        return vec![text.to_owned()];
    }
    let mut parts = Parts {
        chunks: Vec::new(),
        current: String::new(),
        open_fence: None,
    };
    for line in text.split('\n') {
        let fence = line.trim_start().starts_with(FENCE);
        let opens = fence && parts.open_fence.is_none();
        // An opening fence needs room for the closer its message may need.
        let closer = if opens { FENCE.len() + 1 } else { 0 };
        if parts.len_with(line) + closer > limit && !parts.current.is_empty() {
            parts.flush();
        }
        if opens {
            parts.open_fence = Some(reopener(line, limit));
        }
        // A single line longer than a message is cut by characters.
        let mut rest: &str = line;
        loop {
            let room = limit.saturating_sub(parts.len_with(""));
            if rest.chars().count() <= room {
                break;
            }
            let cut = rest
                .char_indices()
                .nth(room.max(1))
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            parts.push_line(&rest[..cut]);
            parts.flush();
            rest = &rest[cut..];
        }
        parts.push_line(rest);
        if fence && !opens {
            parts.open_fence = None;
        }
    }
    if !parts.current.is_empty() {
        parts.chunks.push(parts.current);
    }
    parts.chunks
}

/// What reopens a code block in the next message: the fence and its language, short enough to
/// leave room in a message.
fn reopener(opening: &str, limit: usize) -> String {
    let lang: String = opening
        .trim_start()
        .trim_start_matches('`')
        .split_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(limit / 4)
        .collect();
    let fence = format!("{FENCE}{lang}");
    if fence.len() + FENCE.len() + 2 > limit / 2 {
        FENCE.to_owned()
    } else {
        fence
    }
}

/// The messages built so far, the one being filled, and the code block it is inside, if any.
struct Parts {
    chunks: Vec<String>,
    current: String,
    open_fence: Option<String>,
}

impl Parts {
    /// The length of the current message once `line` and the closing fence (if needed) are added.
    fn len_with(&self, line: &str) -> usize {
        let newline = usize::from(!self.current.is_empty());
        let closer = if self.open_fence.is_some() {
            FENCE.len() + 1
        } else {
            0
        };
        self.current.chars().count() + newline + line.chars().count() + closer
    }

    fn push_line(&mut self, line: &str) {
        if !self.current.is_empty() {
            self.current.push('\n');
        }
        self.current.push_str(line);
    }

    /// Ends the current message (closing an open code block) and starts the next (reopening it).
    fn flush(&mut self) {
        if self.open_fence.is_some() {
            self.current.push('\n');
            self.current.push_str(FENCE);
        }
        self.chunks.push(std::mem::take(&mut self.current));
        if let Some(f) = &self.open_fence {
            self.current.push_str(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parts_fit_the_limit_once_rendered_for_telegram() {
        let caps = Capabilities {
            max_message_len: 200,
            markdown: mosaic_connector::Markdown::TelegramV2,
            threads: false,
            native_commands: false,
            reactions: true,
        };
        // Every character doubles when escaped.
        let text = "a.b-c!".repeat(100);
        let parts = split_for(&text, &caps);
        assert!(parts.len() > 3, "{}", parts.len());
        for p in &parts {
            assert!(render(p, caps.markdown).len() <= 200, "{p}");
        }
        assert_eq!(parts.concat(), text, "nothing lost");
    }

    #[test]
    fn short_text_is_one_message() {
        assert_eq!(split_message("hello", 2000), ["hello"]);
    }

    #[test]
    fn breaks_between_lines() {
        let text = (0..10)
            .map(|i| format!("line {i} {}", "x".repeat(10)))
            .collect::<Vec<_>>()
            .join("\n");
        let parts = split_message(&text, 40);
        assert!(parts.iter().all(|p| p.chars().count() <= 40), "{parts:?}");
        assert!(parts.iter().all(|p| p.starts_with("line ")), "{parts:?}");
        assert_eq!(parts.join("\n"), text);
    }

    #[test]
    fn code_blocks_are_closed_and_reopened() {
        let body = (0..20)
            .map(|i| format!("let x{i} = {i};"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!("Here:\n```rust\n{body}\n```\ndone");
        let parts = split_message(&text, 100);
        assert!(parts.len() > 2);
        for p in &parts {
            assert!(p.chars().count() <= 100, "{p}");
            assert_eq!(p.matches("```").count() % 2, 0, "balanced fences in {p:?}");
        }
        assert!(parts[1].starts_with("```rust\n"), "{:?}", parts[1]);
    }

    #[test]
    fn five_thousand_chars_at_two_thousand_make_three_messages() {
        let text = (0..100)
            .map(|i| format!("{i:04} {}", "y".repeat(44)))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(text.chars().count(), 4999);
        let parts = split_message(&text, 2000);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.join("\n"), text);
    }

    proptest! {
        #[test]
        fn every_part_fits_and_nothing_is_lost(text in "[a-z ]{0,30}(\n[a-z`]{0,50}){0,40}", limit in 16usize..200) {
            let parts = split_message(&text, limit);
            for p in &parts {
                prop_assert!(p.chars().count() <= limit, "{} > {}: {:?}", p.chars().count(), limit, p);
            }
            let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace() && *c != '`').collect::<String>();
            let rebuilt: String = parts.iter().map(|p| strip(p)).collect();
            let original = strip(&text);
            // Reopened fences may add a language word; everything original is there, in order.
            let mut it = rebuilt.chars();
            prop_assert!(original.chars().all(|c| it.any(|r| r == c)));
        }
    }
}
