//! Making arbitrary text inert before it reaches a pane or the tmux command parser.

/// Neutralizes text for typing into an agent: line endings become `\n`, tabs stay, trailing
/// blank lines go, and every other control character (ESC, C-c, DEL, C1 controls) is replaced by
/// its visible Unicode "control picture", so no escape sequence, key or paste terminator can be
/// smuggled in. Printable text, `;`, quotes and `$` pass through unchanged.
pub fn sanitize(text: &str) -> String {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(normalized.len());
    for c in normalized.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
            '\u{7f}' => out.push('\u{2421}'),
            '\u{80}'..='\u{9f}' => out.push('\u{fffd}'),
            _ => out.push(c),
        }
    }
    let trimmed = out.trim_end_matches(['\n', ' ', '\t']).len();
    out.truncate(trimmed);
    out
}

/// Quotes `text` as one double-quoted tmux command argument. Everything the tmux parser could
/// interpret (`\`, `"`, `$`, `~`, `#`, `;`, newlines, any non-ASCII) is escaped, so the argument
/// reaches the command byte for byte and can never end the argument, start another command or
/// expand a variable or format.
pub fn quote_argument(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' if c != '~' && c != '#' && c != ';' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_and_inert() {
        assert_eq!(
            sanitize("a\x1b[31mb\x03c\x7f"),
            "a\u{241b}[31mb\u{2403}c\u{2421}"
        );
        assert_eq!(sanitize("x\r\ny\rz\n\n  "), "x\ny\nz");
        assert_eq!(sanitize("; kill-server"), "; kill-server");
        assert_eq!(sanitize("tab\there"), "tab\there");
        // A bracketed-paste terminator cannot survive.
        assert!(!sanitize("\x1b[201~").contains('\x1b'));
    }

    #[test]
    fn quoting_escapes_everything_the_parser_reads() {
        assert_eq!(quote_argument("a b"), "\"a b\"");
        assert_eq!(
            quote_argument("$HOME ~ #{x} ; \"q\" \\"),
            "\"\\$HOME \\u007e \\u0023{x} \\u003b \\\"q\\\" \\\\\""
        );
        assert_eq!(quote_argument("é\n😀"), "\"\\u00e9\\n\\U0001f600\"");
        assert!(!quote_argument("x\ny").contains('\n'));
    }
}
