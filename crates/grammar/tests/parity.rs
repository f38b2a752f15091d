//! One grammar: every verb parses to the same value from CLI argv and from chat text, and the
//! chat parser never panics, whatever it is given.

use clap::Parser;
use mosaic_grammar::FleetCommand;
use mosaic_grammar::chat::{ChatInput, parse};
use proptest::prelude::*;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    cmd: FleetCommand,
}

fn from_argv(line: &str) -> FleetCommand {
    let words = shell_words::split(line).unwrap();
    Cli::try_parse_from(std::iter::once("fleet".to_owned()).chain(words))
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .cmd
}

fn from_chat(line: &str) -> FleetCommand {
    match parse(&format!("/fleet {line}")) {
        ChatInput::Command(c) => *c,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn every_verb_parses_the_same_from_cli_and_chat() {
    let lines = [
        "init coding",
        "init --preset research --name f --yes",
        "install",
        "start",
        "start mos coder-1 --wait 5",
        "stop",
        "stop tester --timeout 3",
        "status",
        "ps",
        "ps --json",
        "verify",
        "verify --json",
        "presets",
        "presets show coding",
        "add extra --runtime demo --model m --workdir /tmp --instructions hi --env A=B --no-start",
        "remove extra",
        "restart mos --timeout 2",
        "send mos hello",
        "attach mos",
        "logs mos",
        "logs mos --follow",
        "confirm abc123",
    ];
    for line in lines {
        assert_eq!(from_argv(line), from_chat(line), "{line}");
    }
    // A multi-word send is one text in chat and several words joined by the CLI.
    let FleetCommand::Send(s) = from_chat("send mos hello  there") else {
        panic!()
    };
    assert_eq!(s.text, ["hello  there"]);
}

proptest! {
    #[test]
    fn the_chat_parser_never_panics(text in any::<String>()) {
        let _ = parse(&text);
        let _ = parse(&format!("/fleet {text}"));
        let _ = parse(&format!("!fleet send {text}"));
    }

    #[test]
    fn words_after_the_prefix_never_panic(words in proptest::collection::vec("[a-z-]{0,8}|--[a-z]{1,8}|\"|'", 0..6)) {
        let _ = parse(&format!("/fleet {}", words.join(" ")));
    }
}
