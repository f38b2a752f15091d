//! The fleet grammar as typed in chat: `/fleet VERB …` or `!fleet VERB …` (for platforms that
//! swallow slashes), parsed by the same clap tree as `mosaic fleet`.

use crate::FleetCommand;
use clap::{CommandFactory, FromArgMatches, Parser};

/// What a chat message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatInput {
    /// Not addressed to the fleet grammar: plain talk for the orchestrator.
    Talk,
    /// A well-formed command.
    Command(Box<FleetCommand>),
    /// `/fleet`, `/fleet help` or `/fleet help VERB`: the generated help text.
    Help(String),
    /// A malformed command: what was expected, with the usage line.
    Invalid(ParseError),
}

/// Why a chat command did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What was wrong and what was expected, ending with the usage line.
    pub message: String,
}

#[derive(Debug, Parser)]
#[command(name = "/fleet", bin_name = "/fleet", no_binary_name = true, color = clap::ColorChoice::Never, disable_version_flag = true)]
#[command(
    about = "Command the fleet from chat. Verbs and arguments are the same as `mosaic fleet`."
)]
struct ChatCli {
    #[command(subcommand)]
    command: FleetCommand,
}

const PREFIXES: [&str; 2] = ["/fleet", "!fleet"];

/// Classifies a chat message and parses it when it is a command.
pub fn parse(text: &str) -> ChatInput {
    let trimmed = text.trim();
    // Any case: `/FLEET remove x` is a command, never talk the orchestrator could act on.
    let Some(rest) = PREFIXES.iter().find_map(|p| {
        trimmed
            .get(..p.len())
            .filter(|head| head.eq_ignore_ascii_case(p))
            .map(|_| &trimmed[p.len()..])
    }) else {
        return ChatInput::Talk;
    };
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return ChatInput::Talk; // `/fleetwide` is talk, not a command
    }
    let rest = rest.trim_start();
    let mut words = match split_words(rest) {
        Ok(w) => w,
        Err(e) => {
            return ChatInput::Invalid(ParseError {
                message: format!("{e}\n\n{}", usage()),
            });
        }
    };
    if let Some(verb) = words.first_mut() {
        verb.make_ascii_lowercase(); // `/FLEET REMOVE x` is `/fleet remove x`
    }
    if words.is_empty() || words == ["help"] {
        return ChatInput::Help(help());
    }
    let parsed = ChatCli::command()
        .mut_subcommand("init", crate::with_init_flags)
        .try_get_matches_from(&words)
        .and_then(|matches| {
            let mut cli = ChatCli::from_arg_matches(&matches)?;
            if let FleetCommand::Init(args) = &mut cli.command
                && let Some(init) = matches.subcommand_matches("init")
            {
                args.connector_answers = crate::init_answers(init);
            }
            Ok(cli)
        });
    match parsed {
        Ok(cli) => ChatInput::Command(Box::new(cli.command)),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            ChatInput::Help(e.to_string())
        }
        Err(e) => ChatInput::Invalid(ParseError {
            message: with_usage(&e.to_string(), &words[0]),
        }),
    }
}

/// Splits a command line like a shell would, except that the text of `send NAME TEXT` is kept
/// exactly as typed (quotes and all).
fn split_words(rest: &str) -> Result<Vec<String>, String> {
    let mut head = rest
        .splitn(3, char::is_whitespace)
        .filter(|w| !w.is_empty());
    if head
        .next()
        .is_some_and(|verb| verb.eq_ignore_ascii_case("send"))
    {
        let after_verb = rest["send".len()..].trim_start();
        let (name, text) = after_verb
            .split_once(char::is_whitespace)
            .unwrap_or((after_verb, ""));
        let mut words = vec!["send".to_owned(), name.to_owned()];
        let text = text.trim_start();
        if !text.is_empty() {
            words.push(text.to_owned());
        }
        return Ok(words);
    }
    shell_words::split(rest).map_err(|_| "unbalanced quotes in the command".to_owned())
}

/// A clap error with its "try --help" hint replaced by the usage line of the verb (or of the
/// whole grammar when the verb is unknown).
fn with_usage(error: &str, verb: &str) -> String {
    let mut cmd = ChatCli::command();
    cmd.build();
    let usage = cmd
        .find_subcommand_mut(verb)
        .map(|c| c.render_usage().to_string())
        .unwrap_or_else(usage);
    let body: Vec<&str> = error
        .lines()
        .filter(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    format!(
        "{}\n\n{}\n(/fleet help {verb} explains every option)",
        body.join("\n").trim_end(),
        usage.trim_end()
    )
}

/// The chat grammar's clap command (built), for deriving native commands.
pub(crate) fn chat_command() -> clap::Command {
    let mut cmd = ChatCli::command();
    cmd.build();
    cmd
}

/// The usage line of the whole grammar.
pub fn usage() -> String {
    ChatCli::command()
        .render_usage()
        .to_string()
        .trim_end()
        .to_owned()
}

/// The verbs that need a person at a terminal (the executor refuses them from chat):
/// `/fleet help` does not offer them.
pub const TERMINAL_ONLY: &[&str] = &["attach", "install"];

/// The generated help for `/fleet help`: the verbs chat can run.
pub fn help() -> String {
    let mut command = ChatCli::command();
    for verb in TERMINAL_ONLY {
        command = command.mut_subcommand(*verb, |c| c.hide(true));
    }
    command.render_help().to_string().trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chat takes the connector flags of `init` like the CLI does (registered by the binary):
    /// `/fleet init --connector discord` could not be answered from chat before.
    #[test]
    fn init_takes_the_registered_connector_flags() {
        crate::register_init_flags(vec![
            clap::Arg::new("guild").long("guild"),
            clap::Arg::new("target")
                .long("target")
                .action(clap::ArgAction::Append),
        ]);
        let ChatInput::Command(c) =
            parse("/fleet init coding --connector discord --guild 1 --target 2 --target 3")
        else {
            panic!()
        };
        let FleetCommand::Init(init) = *c else {
            panic!()
        };
        assert_eq!(init.connector_answers["guild"], ["1"]);
        assert_eq!(init.connector_answers["target"], ["2", "3"]);
        assert!(matches!(
            parse("/fleet init coding --colour red"),
            ChatInput::Invalid(_)
        ));
    }

    #[test]
    fn talk_is_not_a_command() {
        assert_eq!(parse("hello there"), ChatInput::Talk);
        assert_eq!(parse("/fleetwide rollout"), ChatInput::Talk);
        assert_eq!(parse("see /fleet status"), ChatInput::Talk);
    }

    #[test]
    fn a_command_in_any_case_is_a_command_not_talk() {
        let remove = parse("/fleet remove x");
        assert!(matches!(remove, ChatInput::Command(_)), "{remove:?}");
        for variant in [
            "/FLEET remove x",
            "/Fleet REMOVE x",
            "!FLEET remove x",
            "  !fLeEt   Remove x",
        ] {
            assert_eq!(parse(variant), remove, "{variant}");
        }
        assert!(matches!(parse("/FLEET"), ChatInput::Help(_)));
        let ChatInput::Command(c) = parse("/FLEET SEND coder Keep THIS") else {
            panic!()
        };
        let FleetCommand::Send(s) = *c else { panic!() };
        assert_eq!(s.text, ["Keep THIS"]);
        assert_eq!(parse("/FLEETWIDE x"), ChatInput::Talk);
        assert_eq!(
            parse("/flé"),
            ChatInput::Talk,
            "no panic on a short multibyte text"
        );
    }

    #[test]
    fn both_prefixes_parse_to_the_same_command() {
        assert_eq!(parse("/fleet status"), parse("!fleet   status"));
        assert_eq!(
            parse("/fleet status"),
            ChatInput::Command(Box::new(FleetCommand::Status {}))
        );
    }

    #[test]
    fn send_keeps_the_text_as_typed() {
        let ChatInput::Command(c) = parse("/fleet send coder \"quoted\" it's ; fine  ") else {
            panic!()
        };
        let FleetCommand::Send(s) = *c else { panic!() };
        assert_eq!(s.name, "coder");
        assert_eq!(s.text, ["\"quoted\" it's ; fine"]);
    }

    #[test]
    fn chat_help_offers_only_what_chat_can_run() {
        let ChatInput::Help(h) = parse("/fleet help") else {
            panic!()
        };
        assert!(h.contains("status") && h.contains("send"), "{h}");
        for verb in TERMINAL_ONLY {
            assert!(
                !h.lines().any(|l| l.trim_start().starts_with(verb)),
                "{verb} in {h}"
            );
        }
    }

    #[test]
    fn help_and_errors_show_usage() {
        let ChatInput::Help(h) = parse("/fleet") else {
            panic!()
        };
        assert!(h.contains("status") && h.contains("Usage: /fleet"), "{h}");
        let ChatInput::Help(h) = parse("/fleet help add") else {
            panic!()
        };
        assert!(h.contains("--runtime <RUNTIME>"), "{h}");
        let ChatInput::Invalid(e) = parse("/fleet add worker") else {
            panic!()
        };
        assert!(
            e.message.contains("--runtime <RUNTIME>") && e.message.contains("Usage: /fleet add"),
            "{}",
            e.message
        );
        let ChatInput::Invalid(e) = parse("/fleet frobnicate") else {
            panic!()
        };
        assert!(
            e.message.contains("unrecognized subcommand 'frobnicate'"),
            "{}",
            e.message
        );
        let ChatInput::Invalid(e) = parse("/fleet add 'x") else {
            panic!()
        };
        assert!(
            e.message.contains("unbalanced quotes") && e.message.contains("Usage: /fleet"),
            "{}",
            e.message
        );
    }
}
