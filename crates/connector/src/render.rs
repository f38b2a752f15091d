//! Rendering replies for each platform's [`Markdown`] dialect.
//!
//! Replies are written in CommonMark (the orchestrator's models write it, and the bridge's own
//! answers use it). Discord shows CommonMark as is; Telegram's MarkdownV2 needs every special
//! character escaped outside its entities; Slack's mrkdwn has its own markers and escapes `&<>`;
//! Matrix takes HTML with a plain-text body; a plain platform gets the text without markup.

use crate::Markdown;
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// A reply rendered for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The message text (for Matrix, the plain-text body).
    pub text: String,
    /// The HTML form, for [`Markdown::MatrixHtml`].
    pub html: Option<String>,
}

impl Rendered {
    /// The longest of the forms, in characters (what must fit the platform's limit).
    pub fn len(&self) -> usize {
        let html = self.html.as_deref().map_or(0, |h| h.chars().count());
        self.text.chars().count().max(html)
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Renders CommonMark `markdown` for `dialect`.
pub fn render(markdown: &str, dialect: Markdown) -> Rendered {
    let text = |style| Rendered {
        text: Writer::run(markdown, style),
        html: None,
    };
    match dialect {
        Markdown::CommonMark | Markdown::Discord => Rendered {
            text: markdown.to_owned(),
            html: None,
        },
        Markdown::Plain => text(Style::Plain),
        Markdown::TelegramV2 => text(Style::Telegram),
        Markdown::SlackMrkdwn => text(Style::Slack),
        Markdown::MatrixHtml => {
            let mut html = String::new();
            pulldown_cmark::html::push_html(&mut html, Parser::new_ext(markdown, options()));
            Rendered {
                text: Writer::run(markdown, Style::Plain),
                html: Some(html.trim_end().to_owned()),
            }
        }
    }
}

fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Telegram,
    Slack,
}

/// Characters MarkdownV2 reserves outside entities.
const TELEGRAM_SPECIAL: &str = "_*[]()~`>#+-=|{}.!\\";

struct Writer {
    style: Style,
    out: String,
    lists: Vec<Option<u64>>,
    links: Vec<String>,
    quote: usize,
    in_code_block: bool,
    line_start: bool,
}

impl Writer {
    fn run(markdown: &str, style: Style) -> String {
        let mut w = Writer {
            style,
            out: String::new(),
            lists: Vec::new(),
            links: Vec::new(),
            quote: 0,
            in_code_block: false,
            line_start: true,
        };
        for event in Parser::new_ext(markdown, options()) {
            w.event(event);
        }
        w.out.trim_end().to_owned()
    }

    fn raw(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if self.line_start && self.quote > 0 && !self.in_code_block {
            self.out.push_str(&">".repeat(self.quote));
            self.out.push(' ');
        }
        self.out.push_str(s);
        self.line_start = s.ends_with('\n');
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.line_start = true;
    }

    fn block_end(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            if !self.out.ends_with('\n') {
                self.out.push('\n');
            }
            self.out.push('\n');
        }
        self.line_start = true;
    }

    fn escaped(&self, s: &str) -> String {
        match self.style {
            Style::Plain => s.to_owned(),
            Style::Telegram => {
                let mut out = String::with_capacity(s.len());
                for c in s.chars() {
                    if TELEGRAM_SPECIAL.contains(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out
            }
            Style::Slack => slack_escape(s),
        }
    }

    fn code_escaped(&self, s: &str) -> String {
        match self.style {
            Style::Plain => s.to_owned(),
            Style::Telegram => s.replace('\\', "\\\\").replace('`', "\\`"),
            Style::Slack => slack_escape(s),
        }
    }

    fn marker(&mut self, telegram: &str, slack: &str) {
        match self.style {
            Style::Plain => {}
            Style::Telegram => self.raw(telegram),
            Style::Slack => self.raw(slack),
        }
    }

    fn text(&mut self, s: &str) {
        // Text may span lines (code blocks); each line gets the quote prefix.
        let escaped = if self.in_code_block {
            self.code_escaped(s)
        } else {
            self.escaped(s)
        };
        let mut lines = escaped.split('\n').peekable();
        while let Some(line) = lines.next() {
            self.raw(line);
            if lines.peek().is_some() {
                self.newline();
            }
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(&t),
            Event::Code(code) => {
                let inner = self.code_escaped(&code);
                match self.style {
                    Style::Plain => self.raw(&inner),
                    _ => self.raw(&format!("`{inner}`")),
                }
            }
            Event::Html(h) | Event::InlineHtml(h) => self.text(&h),
            Event::SoftBreak | Event::HardBreak => self.newline(),
            Event::Rule => {
                self.raw("――――――――");
                self.block_end();
            }
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { .. } | Tag::Strong => self.marker("*", "*"),
            Tag::Emphasis => self.marker("_", "_"),
            Tag::Strikethrough => self.marker("~", "~"),
            Tag::BlockQuote(_) => self.quote += 1,
            Tag::CodeBlock(kind) => {
                if !self.line_start {
                    self.newline();
                }
                match (self.style, kind) {
                    (Style::Plain, _) => {}
                    (Style::Telegram, CodeBlockKind::Fenced(lang)) if !lang.is_empty() => {
                        let lang = lang.replace(|c: char| !c.is_ascii_alphanumeric(), "");
                        self.raw(&format!("```{lang}\n"));
                    }
                    _ => self.raw("```\n"),
                }
                self.in_code_block = true;
            }
            Tag::List(start) => {
                if !self.line_start {
                    self.newline();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                let depth = self.lists.len().saturating_sub(1);
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let b = format!("{n}.");
                        *n += 1;
                        b
                    }
                    _ => "•".to_owned(),
                };
                let bullet = self.escaped(&bullet);
                self.raw(&format!("{}{bullet} ", "  ".repeat(depth)));
            }
            Tag::Link { dest_url, .. } => {
                self.links.push(dest_url.to_string());
                match self.style {
                    Style::Plain => {}
                    Style::Telegram => self.raw("["),
                    Style::Slack => {
                        let url = slack_escape(&dest_url);
                        self.raw(&format!("<{url}|"));
                    }
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => {
                self.marker("*", "*");
                self.block_end();
            }
            TagEnd::Strong => self.marker("*", "*"),
            TagEnd::Emphasis => self.marker("_", "_"),
            TagEnd::Strikethrough => self.marker("~", "~"),
            TagEnd::Paragraph if self.lists.is_empty() => self.block_end(),
            TagEnd::BlockQuote(_) => {
                self.quote = self.quote.saturating_sub(1);
                self.block_end();
            }
            TagEnd::CodeBlock => {
                self.in_code_block = false;
                if !self.line_start {
                    self.newline();
                }
                match self.style {
                    Style::Plain => {}
                    _ => self.raw("```"),
                }
                self.block_end();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.block_end();
                }
            }
            TagEnd::Item if !self.line_start => self.newline(),
            TagEnd::Link => {
                let url = self.links.pop().unwrap_or_default();
                match self.style {
                    Style::Plain => self.raw(&format!(" ({url})")),
                    Style::Telegram => {
                        let url = url.replace('\\', "\\\\").replace(')', "\\)");
                        self.raw(&format!("]({url})"));
                    }
                    Style::Slack => self.raw(">"),
                }
            }
            _ => {}
        }
    }
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tg(s: &str) -> String {
        render(s, Markdown::TelegramV2).text
    }

    fn slack(s: &str) -> String {
        render(s, Markdown::SlackMrkdwn).text
    }

    #[test]
    fn commonmark_and_discord_pass_through() {
        let s = "**a** `b`\n```\nc\n```";
        assert_eq!(render(s, Markdown::Discord).text, s);
        assert_eq!(render(s, Markdown::CommonMark).text, s);
    }

    #[test]
    fn telegram_escapes_outside_entities_and_keeps_them() {
        assert_eq!(tg("v1.2 (beta) - done!"), "v1\\.2 \\(beta\\) \\- done\\!");
        assert_eq!(tg("**bold** and _it_"), "*bold* and _it_");
        assert_eq!(tg("`a_b*c` and `x\\y`"), "`a_b*c` and `x\\\\y`");
        assert_eq!(
            tg("```\nfn f() { a.b() }\n```"),
            "```\nfn f() { a.b() }\n```"
        );
        assert_eq!(
            tg("```rust\nlet x = `y`;\n```"),
            "```rust\nlet x = \\`y\\`;\n```"
        );
        assert_eq!(
            tg("[docs](https://x.org/a_(b))"),
            "[docs](https://x.org/a_(b\\))"
        );
        assert_eq!(tg("- one\n- two.5"), "• one\n• two\\.5");
        assert_eq!(tg("1. a\n2. b"), "1\\. a\n2\\. b");
        assert_eq!(tg("# Title"), "*Title*");
    }

    #[test]
    fn every_telegram_special_outside_entities_is_escaped() {
        let all = "_*] [) (~`>#+-=|{}.!\\";
        let out = tg(&format!("x {all}"));
        // Whatever CommonMark made of it, no special character is left bare.
        let mut chars = out.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' {
                chars.next();
                continue;
            }
            assert!(!TELEGRAM_SPECIAL.contains(c) || "_*`".contains(c), "{out}");
        }
    }

    #[test]
    fn slack_uses_its_markers_and_escapes_angle_brackets() {
        assert_eq!(slack("**bold** & <tag>"), "*bold* &amp; &lt;tag&gt;");
        assert_eq!(slack("[docs](https://x.org)"), "<https://x.org|docs>");
        assert_eq!(slack("~~gone~~ _it_"), "~gone~ _it_");
        assert_eq!(slack("```\na < b\n```"), "```\na &lt; b\n```");
        assert_eq!(slack("> quoted\n\nafter"), "> quoted\n\nafter");
    }

    #[test]
    fn matrix_gets_html_and_a_plain_body() {
        let r = render("**hi** `x`", Markdown::MatrixHtml);
        assert_eq!(r.text, "hi x");
        assert_eq!(
            r.html.as_deref(),
            Some("<p><strong>hi</strong> <code>x</code></p>")
        );
    }

    #[test]
    fn plain_drops_markup_and_keeps_text() {
        assert_eq!(
            render("**a** [b](http://c)\n```\nd\n```", Markdown::Plain).text,
            "a b (http://c)\n\nd"
        );
    }
}
