//! What the scripted model answers: directives in the newest user text.

/// A directive in the newest user text, written `[[NAME ARGUMENT]]` (one per prompt; the first
/// wins).
///
/// - `[[say TEXT]]`: answer exactly TEXT.
/// - `[[bash COMMAND]]`: call the harness's shell tool with COMMAND once; after its result, answer
///   `done: ` and the first line of that result.
/// - `[[tool NAME JSON]]`: call the tool NAME (e.g. `mcp__mosaic__reply`) with the JSON input once;
///   after its result, answer as for `bash`.
/// - `[[slow MS]]`: wait MS milliseconds before answering (a busy agent), then answer as without it.
///
/// In a directive, `{chat_id}` stands for N of a mosaic chat envelope `[chat #N…` in the same
/// text (a scripted orchestrator answers the message it was given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Answer this text.
    Say(String),
    /// Run this shell command through the harness's shell tool.
    Bash(String),
    /// Call a named tool with a JSON input.
    Tool {
        /// The tool's name as the harness lists it.
        name: String,
        /// Its input, a JSON object.
        input: serde_json::Value,
    },
    /// Answer after a pause.
    Slow(u64),
}

/// What to answer now.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// An assistant text, ending the turn.
    Text(String),
    /// One tool call; the harness runs it and calls again with its result.
    ToolCall {
        /// Tool name.
        name: String,
        /// Tool input (JSON object).
        input: serde_json::Value,
    },
}

/// The scripted behaviour, as a pure function of the conversation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Script;

impl Script {
    /// Finds the first directive in `text`.
    pub fn directive(text: &str) -> Option<Directive> {
        let start = text.find("[[")?;
        let rest = &text[start + 2..];
        let end = rest.find("]]")?;
        // `{chat_id}` is the N of a mosaic chat envelope (`[chat #N:…`) in the same text, so a
        // scripted orchestrator can answer the message it was given.
        let inner = match chat_id(text) {
            Some(id) => rest[..end].trim().replace("{chat_id}", &id),
            None => rest[..end].trim().to_owned(),
        };
        let inner = inner.as_str();
        let (name, argument) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        let argument = argument.trim();
        match name {
            "say" => Some(Directive::Say(argument.to_owned())),
            "bash" => Some(Directive::Bash(argument.to_owned())),
            "tool" => {
                let (tool, json) = argument
                    .split_once(char::is_whitespace)
                    .unwrap_or((argument, "{}"));
                let input = serde_json::from_str(json.trim()).ok()?;
                Some(Directive::Tool {
                    name: tool.to_owned(),
                    input,
                })
            }
            "slow" => argument.parse().ok().map(Directive::Slow),
            _ => None,
        }
    }

    /// Decides the answer. `user_text` is the newest user text in the conversation;
    /// `tool_result` is the result of the tool call answered last, when the conversation ends with
    /// one. `shell_tool` is how the calling harness names its shell tool and builds its input.
    pub fn decide(
        user_text: &str,
        tool_result: Option<&str>,
        shell_tool: impl FnOnce(&str) -> (String, serde_json::Value),
    ) -> Reply {
        if let Some(result) = tool_result {
            let first = result.lines().next().unwrap_or("").trim();
            return Reply::Text(format!("done: {first}"));
        }
        match Self::directive(user_text) {
            Some(Directive::Say(text)) => Reply::Text(text),
            Some(Directive::Bash(command)) => {
                let (name, input) = shell_tool(&command);
                Reply::ToolCall { name, input }
            }
            Some(Directive::Tool { name, input }) => Reply::ToolCall { name, input },
            Some(Directive::Slow(_)) | None => {
                let first = user_text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim();
                Reply::Text(format!("ok: {first}"))
            }
        }
    }

    /// The pause a `[[slow MS]]` directive asks for.
    pub fn delay(user_text: &str) -> Option<std::time::Duration> {
        match Self::directive(user_text) {
            Some(Directive::Slow(ms)) => Some(std::time::Duration::from_millis(ms)),
            _ => None,
        }
    }
}

/// The N of the first `[chat #N` in `text`.
fn chat_id(text: &str) -> Option<String> {
    let rest = &text[text.find("[chat #")? + "[chat #".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse() {
        assert_eq!(
            Script::directive("x [[say hi there]] y"),
            Some(Directive::Say("hi there".into()))
        );
        assert_eq!(
            Script::directive("[[bash echo a]]"),
            Some(Directive::Bash("echo a".into()))
        );
        assert_eq!(
            Script::directive("[[slow 200]]"),
            Some(Directive::Slow(200))
        );
        assert_eq!(
            Script::directive(r#"[[tool mcp__mosaic__reply {"text":"hi"}]]"#),
            Some(Directive::Tool {
                name: "mcp__mosaic__reply".into(),
                input: serde_json::json!({"text":"hi"})
            })
        );
        assert_eq!(Script::directive("no directive"), None);
        assert_eq!(
            Script::directive(
                "[chat #12:ab from x (admin) on local/local] [[bash mosaic reply --to {chat_id} hi]]"
            ),
            Some(Directive::Bash("mosaic reply --to 12 hi".into()))
        );
        assert_eq!(Script::directive("[[unknown x]]"), None);
    }

    #[test]
    fn a_tool_result_ends_the_turn() {
        let shell = |c: &str| ("Bash".to_owned(), serde_json::json!({"command": c}));
        assert_eq!(
            Script::decide("[[bash ls]]", None, shell),
            Reply::ToolCall {
                name: "Bash".into(),
                input: serde_json::json!({"command":"ls"})
            }
        );
        assert_eq!(
            Script::decide("[[bash ls]]", Some("a\nb"), shell),
            Reply::Text("done: a".into())
        );
        assert_eq!(
            Script::decide("hello\nworld", None, shell),
            Reply::Text("ok: hello".into())
        );
    }
}
