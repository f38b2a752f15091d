//! Values echoed in error messages, unless they look like a secret: a token pasted into the
//! wrong field (a channel id, a file path, an ACL entry) must not end up in a terminal, a log or
//! a chat room through the message that refuses it.

/// `value` quoted for an error message, or a note in its place when it looks like a secret.
pub fn shown(value: &str) -> String {
    if looks_like_secret(value) {
        "(a value that looks like a secret token; not shown)".to_owned()
    } else {
        format!("{value:?}")
    }
}

/// Whether `value` looks like an API token rather than a name, id or path: known token prefixes,
/// a Telegram bot token (`123456:ABC…`), or a long run of mixed letters and digits with no spaces.
pub fn looks_like_secret(value: &str) -> bool {
    let v = value.trim();
    const PREFIXES: &[&str] = &[
        "xoxb-",
        "xoxp-",
        "xapp-",
        "xoxa-",
        "sk-",
        "ghp_",
        "gho_",
        "github_pat_",
        "glpat-",
        "syt_",
    ];
    if PREFIXES.iter().any(|p| v.starts_with(p)) && v.len() > 12 {
        return true;
    }
    if let Some((bot, rest)) = v.split_once(':')
        && !bot.is_empty()
        && bot.chars().all(|c| c.is_ascii_digit())
        && rest.len() >= 30
    {
        return true;
    }
    let token_chars = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '/' | '='));
    let has_digit = v.chars().any(|c| c.is_ascii_digit());
    let has_upper = v.chars().any(|c| c.is_ascii_uppercase());
    let has_lower = v.chars().any(|c| c.is_ascii_lowercase());
    let path_like = v.starts_with('/') || v.starts_with('~') || v.starts_with("./");
    v.len() >= 24 && token_chars && has_digit && has_upper && has_lower && !path_like
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_not_echoed_names_ids_and_paths_are() {
        for secret in [
            "MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "sk-ant-api03-abcdefghijklmnop",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        ] {
            assert!(looks_like_secret(secret), "{secret}");
            assert!(!shown(secret).contains(&secret[4..12]), "{secret}");
        }
        for plain in [
            "1517622518662434996",
            "#general",
            "my server",
            "DISCORD_TOKEN",
            "/home/me/.config/mosaic/discord-token",
            "~/secrets/discord.token",
            "!abcdefGHIJ123:matrix.org",
            "general-purpose-worker",
        ] {
            assert!(!looks_like_secret(plain), "{plain}");
            assert_eq!(shown(plain), format!("{plain:?}"));
        }
    }
}
