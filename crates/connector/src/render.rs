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
            // HTML in the text is shown as text, never passed on as markup: a message must not
            // carry a link that shows one address and leads to another, or forged formatting.
            let events = Parser::new_ext(markdown, options()).map(|e| match e {
                Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
                other => other,
            });
            let mut html = String::new();
            pulldown_cmark::html::push_html(&mut html, events);
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
    /// The open links: their URL, and whether it is written as a link (Telegram drops a link
    /// whose URL is not absolute, so such a link is written as `text (url)`), and where their
    /// text begins in `out`.
    links: Vec<(String, bool, usize)>,
    quote: usize,
    in_code_block: bool,
    line_start: bool,
    /// A block ended: a blank line goes before the next text (in a quote, a blank quoted line,
    /// so the quote goes on).
    pending_break: bool,
    /// Whether the last line written was in a quote.
    last_line_quoted: bool,
    /// How deep bold, italic and strikethrough are nested: a marker is written only for the
    /// outermost (nested bold is still bold, and `__` would be Telegram's underline).
    bold: usize,
    italic: usize,
    strike: usize,
    /// Where the last italic marker written ends in `out` (Telegram reads `_` right after `_`
    /// as underline, so two italics side by side get an empty bold entity between them).
    italic_marker_end: Option<usize>,
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
            pending_break: false,
            last_line_quoted: false,
            bold: 0,
            italic: 0,
            strike: 0,
            italic_marker_end: None,
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
        if std::mem::take(&mut self.pending_break) && !self.out.is_empty() {
            // A blank line between blocks; within one quote, a quoted blank line (an unquoted
            // one would end the quote, and Telegram would start a second one after it).
            if self.quote > 0 && self.last_line_quoted {
                self.out.push_str(&">".repeat(self.quote));
            }
            self.out.push('\n');
        }
        if self.line_start {
            if self.quote > 0 && !self.in_code_block {
                self.out.push_str(&">".repeat(self.quote));
                self.out.push(' ');
            }
            self.last_line_quoted = self.quote > 0;
        }
        self.out.push_str(s);
        self.line_start = s.ends_with('\n');
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.line_start = true;
    }

    fn block_end(&mut self) {
        if !self.out.is_empty() {
            if !self.out.ends_with('\n') {
                self.out.push('\n');
            }
            self.pending_break = true;
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
            Style::Telegram => {
                if telegram == "_" {
                    if self.italic_marker_end == Some(self.out.len()) {
                        self.raw("**");
                    }
                    self.raw(telegram);
                    self.italic_marker_end = Some(self.out.len());
                } else {
                    self.raw(telegram);
                }
            }
            Style::Slack => self.raw(slack),
        }
    }

    /// Opens (`open`) or closes a span whose nesting is counted in `depth`: only the outermost
    /// writes its marker.
    fn span(
        &mut self,
        open: bool,
        depth: fn(&mut Writer) -> &mut usize,
        telegram: &str,
        slack: &str,
    ) {
        let d = depth(self);
        let outermost = if open {
            *d += 1;
            *d == 1
        } else {
            *d = d.saturating_sub(1);
            *d == 0
        };
        if outermost {
            self.marker(telegram, slack);
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
            Tag::Heading { .. } | Tag::Strong => self.span(true, |w| &mut w.bold, "*", "*"),
            Tag::Emphasis => self.span(true, |w| &mut w.italic, "_", "_"),
            Tag::Strikethrough => self.span(true, |w| &mut w.strike, "~", "~"),
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
                let linked = self.style != Style::Telegram || telegram_keeps_link(&dest_url);
                self.links
                    .push((dest_url.to_string(), linked, self.out.len()));
                match self.style {
                    Style::Plain => {}
                    Style::Telegram if linked => self.raw("["),
                    Style::Telegram => {}
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
                self.span(false, |w| &mut w.bold, "*", "*");
                self.block_end();
            }
            TagEnd::Strong => self.span(false, |w| &mut w.bold, "*", "*"),
            TagEnd::Emphasis => self.span(false, |w| &mut w.italic, "_", "_"),
            TagEnd::Strikethrough => self.span(false, |w| &mut w.strike, "~", "~"),
            TagEnd::Paragraph if self.lists.is_empty() => self.block_end(),
            TagEnd::BlockQuote(_) => {
                self.quote = self.quote.saturating_sub(1);
                self.block_end();
            }
            TagEnd::CodeBlock => {
                if !self.line_start {
                    self.newline();
                }
                match self.style {
                    Style::Plain => {}
                    // In a quote, Telegram reads everything up to the closing fence as code,
                    // quote markers too: the fence goes without one (the quote goes on past it).
                    Style::Telegram => self.raw("```"),
                    Style::Slack => {
                        self.in_code_block = false;
                        self.raw("```");
                    }
                }
                self.in_code_block = false;
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
                let (url, linked, start) = self.links.pop().unwrap_or_default();
                match self.style {
                    Style::Plain => self.raw(&format!(" ({url})")),
                    Style::Telegram if linked => {
                        let url = url.replace('\\', "\\\\").replace(')', "\\)");
                        self.raw(&format!("]({url})"));
                    }
                    // Telegram would drop the link and its target: the target is written out,
                    // unless the text already is the target.
                    Style::Telegram => {
                        // (What was written since the link began, less the blank line and quote
                        // marker its first text may have brought.)
                        let shown = self
                            .out
                            .get(start..)
                            .unwrap_or_default()
                            .trim_start_matches(['\n', '>', ' ']);
                        let bare = url.strip_prefix("mailto:").unwrap_or(&url);
                        if shown != self.escaped(&url) && shown != self.escaped(bare) {
                            let target = self.escaped(&format!("({url})"));
                            self.raw(&format!(" {target}"));
                        }
                    }
                    Style::Slack => self.raw(">"),
                }
            }
            _ => {}
        }
    }
}

/// Whether Telegram keeps a link to `url` as a link: an absolute http(s) URL whose host has a
/// dot (or is an IPv6 address), or a `tg:` link. Telegram drops others (relative paths,
/// `mailto:`, `localhost`), and their target with them.
fn telegram_keeps_link(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("tg:") {
        return true;
    }
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    host.starts_with('[') || {
        let host = host.split(':').next().unwrap_or("");
        host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
    }
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {

    #[test]
    fn html_in_the_text_is_shown_as_text_not_markup() {
        let r = render(
            r#"click <a href="https://evil.example">https://good.example</a> <font color="red">x</font>"#,
            Markdown::MatrixHtml,
        );
        let html = r.html.unwrap();
        assert!(
            !html.contains("<a href") && !html.contains("<font"),
            "{html}"
        );
        assert!(
            html.contains(r#"&lt;a href="https://evil.example"&gt;"#),
            "{html}"
        );
        let r = render(
            "<div>\n<script>alert(1)</script>\n</div>",
            Markdown::MatrixHtml,
        );
        assert!(!r.html.unwrap().contains("<script>"));
    }

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
    fn telegram_quotes_keep_code_blocks_and_blank_lines_inside() {
        // The closing fence has no quote marker (Telegram would show it as code); the blank
        // line is a quoted one, so the quote is not split in two.
        assert_eq!(
            tg("> see:\n>\n> ```\n> let x = 1;\n> ```"),
            "> see:\n>\n> ```\nlet x = 1;\n```"
        );
        assert_eq!(tg("> a\n>\n> b\n\nafter"), "> a\n>\n> b\n\nafter");
        assert_eq!(
            tg("> ```\n> x\n> ```\n> after"),
            "> ```\nx\n```\n>\n> after"
        );
    }

    #[test]
    fn telegram_writes_out_links_it_would_drop() {
        assert_eq!(
            tg("changed [the parser](crates/x/src/parse.rs)"),
            "changed the parser \\(crates/x/src/parse\\.rs\\)"
        );
        assert_eq!(
            tg("[local](http://localhost:8080/x)"),
            "local \\(http://localhost:8080/x\\)"
        );
        assert_eq!(tg("<me@x.org>"), "me@x\\.org");
        assert_eq!(
            tg("a\n\n<http://localhost:3000>"),
            "a\n\nhttp://localhost:3000"
        );
        assert_eq!(tg("[site](https://x.org)"), "[site](https://x.org)");
        assert_eq!(tg("[me](tg://user?id=1)"), "[me](tg://user?id=1)");
    }

    #[test]
    fn telegram_nested_and_adjacent_styles_stay_valid() {
        // A bold heading: one bold entity, not two empty ones around plain text.
        assert_eq!(tg("## **Summary**"), "*Summary*");
        // Italic in italic is italic, not `__` (underline).
        assert_eq!(tg("*_x_*"), "_x_");
        // Italics side by side: `__` between them would be read as underline.
        assert_eq!(tg("*a*_b_"), "_a_**_b_");
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
