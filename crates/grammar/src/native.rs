//! The grammar as native slash commands (Discord's application commands, Slack's and Telegram's
//! command menus): derived from the same clap tree, and turned back into a `/fleet …` line that
//! goes through the one chat parser.

use crate::chat::{TERMINAL_ONLY, chat_command};

/// One verb as a native subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeVerb {
    /// Verb name (`add`).
    pub name: String,
    /// One-line description.
    pub about: String,
    /// Its options, required ones first (platforms demand that order).
    pub options: Vec<NativeOption>,
}

/// One argument of a verb as a native option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeOption {
    /// Option name: lowercase, `-` instead of `_`.
    pub name: String,
    /// One-line description.
    pub about: String,
    /// Whether the user must fill it in.
    pub required: bool,
    /// A yes/no switch (else free text).
    pub switch: bool,
    /// The long flag (`--runtime`) for options, `None` for positional arguments.
    pub flag: Option<String>,
    /// Several values, separated by spaces, are allowed.
    pub many: bool,
}

/// A value given for a native option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeValue {
    /// Free text.
    Text(String),
    /// A switch.
    Switch(bool),
}

/// Every verb offered natively.
pub fn native_verbs() -> Vec<NativeVerb> {
    let cmd = chat_command();
    cmd.get_subcommands()
        .filter(|s| !TERMINAL_ONLY.contains(&s.get_name()))
        .map(|s| {
            let flags: Vec<String> = s
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_owned))
                .collect();
            let mut options: Vec<NativeOption> = s
                .get_arguments()
                .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
                .filter(|a| {
                    a.get_long().is_some() || !flags.contains(&option_name(a.get_id().as_str()))
                })
                .map(|a| {
                    let switch = matches!(a.get_action(), clap::ArgAction::SetTrue);
                    NativeOption {
                        name: option_name(a.get_id().as_str()),
                        about: short(
                            &a.get_help()
                                .map(|h| h.to_string())
                                .unwrap_or_else(|| a.get_id().to_string()),
                        ),
                        required: a.is_required_set(),
                        switch,
                        flag: a.get_long().map(|l| format!("--{l}")),
                        many: a.get_num_args().is_some_and(|n| n.max_values() > 1)
                            || matches!(a.get_action(), clap::ArgAction::Append),
                    }
                })
                .collect();
            options.sort_by_key(|o| !o.required);
            NativeVerb {
                name: s.get_name().to_owned(),
                about: short(&s.get_about().map(|h| h.to_string()).unwrap_or_default()),
                options,
            }
        })
        .collect()
}

/// A positional argument named like the flag `--preset` is the same answer: offer it once.
fn option_name(id: &str) -> String {
    let name = id.replace('_', "-");
    name.strip_suffix("-name")
        .filter(|_| id != "name")
        .map(str::to_owned)
        .unwrap_or(name)
}

fn short(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let mut s: String = first.chars().take(100).collect();
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// The `/fleet …` line a native invocation stands for.
pub fn to_line(verb: &str, values: &[(String, NativeValue)]) -> String {
    let Some(spec) = native_verbs().into_iter().find(|v| v.name == verb) else {
        return format!("/fleet {verb}");
    };
    let get = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let mut words = vec!["/fleet".to_owned(), verb.to_owned()];
    // Positional arguments first, in order; send's text is kept raw (the chat parser does too).
    let positional: Vec<&NativeOption> = chat_command()
        .find_subcommand(verb)
        .map(|s| {
            s.get_arguments()
                .filter(|a| {
                    a.get_long().is_none() && !matches!(a.get_id().as_str(), "help" | "version")
                })
                .filter_map(|a| {
                    spec.options
                        .iter()
                        .find(|o| o.flag.is_none() && o.name == option_name(a.get_id().as_str()))
                })
                .collect()
        })
        .unwrap_or_default();
    let quote = |s: &str| {
        if verb == "send" {
            s.to_owned()
        } else {
            shell_words::quote(s).into_owned()
        }
    };
    for o in positional {
        if let Some(NativeValue::Text(t)) = get(&o.name) {
            if o.many && verb != "send" {
                words.extend(t.split_whitespace().map(&quote));
            } else {
                words.push(quote(t));
            }
        }
    }
    for o in spec.options.iter().filter(|o| o.flag.is_some()) {
        let flag = o.flag.clone().expect("filtered");
        match get(&o.name) {
            Some(NativeValue::Switch(true)) => words.push(flag),
            Some(NativeValue::Text(t)) if o.many => {
                for w in t.split_whitespace() {
                    words.extend([flag.clone(), quote(w)]);
                }
            }
            Some(NativeValue::Text(t)) => words.extend([flag, quote(t)]),
            _ => {}
        }
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FleetCommand;
    use crate::chat::{ChatInput, parse};

    fn text(v: &str) -> NativeValue {
        NativeValue::Text(v.into())
    }

    fn cmd(line: &str) -> FleetCommand {
        match parse(line) {
            ChatInput::Command(c) => *c,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn every_verb_but_terminal_ones_is_native_with_valid_names() {
        let verbs = native_verbs();
        let names: Vec<&str> = verbs.iter().map(|v| v.name.as_str()).collect();
        assert!(names.contains(&"status") && names.contains(&"add") && names.contains(&"confirm"));
        assert!(!names.contains(&"attach") && !names.contains(&"install"));
        assert!(verbs.len() <= 25, "Discord allows 25 subcommands");
        for v in &verbs {
            assert!(v.options.len() <= 25, "{}", v.name);
            let mut seen = std::collections::HashSet::new();
            for o in &v.options {
                assert!(
                    seen.insert(&o.name),
                    "duplicate option {} in {}",
                    o.name,
                    v.name
                );
                assert!(
                    o.name.len() <= 32
                        && o.name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                    "{}",
                    o.name
                );
                assert!(!o.about.is_empty() && o.about.chars().count() <= 100);
            }
            let first_optional = v
                .options
                .iter()
                .position(|o| !o.required)
                .unwrap_or(v.options.len());
            assert!(
                v.options[first_optional..].iter().all(|o| !o.required),
                "required options come first in {}",
                v.name
            );
        }
        let add = verbs.iter().find(|v| v.name == "add").unwrap();
        assert_eq!(add.options[0].name, "name");
        assert!(
            add.options.iter().any(|o| o.name == "runtime"
                && o.required
                && o.flag.as_deref() == Some("--runtime"))
        );
        let init = verbs.iter().find(|v| v.name == "init").unwrap();
        assert_eq!(
            init.options.iter().filter(|o| o.name == "preset").count(),
            1
        );
    }

    #[test]
    fn native_invocations_become_the_same_commands() {
        let line = to_line(
            "add",
            &[
                ("name".into(), text("w1")),
                ("runtime".into(), text("demo")),
                ("env".into(), text("A=1 B=2")),
                ("no-start".into(), NativeValue::Switch(true)),
            ],
        );
        assert_eq!(
            cmd(&line),
            cmd("/fleet add w1 --runtime demo --env A=1 --env B=2 --no-start")
        );
        let line = to_line(
            "send",
            &[
                ("name".into(), text("mos")),
                ("text".into(), text("it's \"quoted\"; fine")),
            ],
        );
        assert_eq!(line, "/fleet send mos it's \"quoted\"; fine");
        assert_eq!(
            cmd(&to_line("start", &[("agents".into(), text("a b"))])),
            cmd("/fleet start a b")
        );
        assert_eq!(cmd(&to_line("status", &[])), FleetCommand::Status {});
        assert_eq!(
            cmd(&to_line("init", &[("preset".into(), text("coding"))])),
            cmd("/fleet init --preset coding")
        );
    }
}
