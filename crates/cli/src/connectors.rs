//! The chat connectors this build has: one registration line each (behind its cargo feature),
//! and the `mosaic fleet init` flags their questions add.

use clap::{Arg, ArgAction, ArgMatches, Command};
use mosaic_connector::registry::{QuestionKind, connector_types, register};
use std::collections::BTreeMap;

/// Registers every connector type built in. Call once, first thing.
pub fn register_all() {
    #[cfg(feature = "discord")]
    register(&mosaic_discord::TYPE);
    #[cfg(feature = "telegram")]
    register(&mosaic_telegram::TYPE);
    #[cfg(feature = "slack")]
    register(&mosaic_slack::TYPE);
    #[cfg(feature = "testchat")]
    register(&mosaic_testchat::TYPE);
    // Every surface that parses `fleet init` (this CLI, chat, the API's lines) takes their flags.
    mosaic_grammar::register_init_flags(init_flags());
}

/// The flags of every registered type's questions, added to `fleet init` (a flag shared by
/// several types is added once).
fn init_flags() -> Vec<Arg> {
    let mut flags: BTreeMap<&'static str, (Arg, Vec<&'static str>)> = BTreeMap::new();
    for t in connector_types() {
        for q in t.questions() {
            let mut add = |flag: &'static str, value_name: &'static str, help: String, list| {
                let entry = flags.entry(flag).or_insert_with(|| {
                    let arg = Arg::new(flag)
                        .long(flag)
                        .value_name(value_name)
                        .help_heading("Connector options")
                        // Telegram's group ids are negative numbers.
                        .allow_negative_numbers(true)
                        .action(if list {
                            ArgAction::Append
                        } else {
                            ArgAction::Set
                        });
                    (arg.help(help), Vec::new())
                });
                entry.1.push(t.type_name());
            };
            match q.kind {
                QuestionKind::Text { .. } => add(q.flag, q.value_name, q.prompt.to_owned(), false),
                QuestionKind::List => add(
                    q.flag,
                    q.value_name,
                    format!("{} (repeat for several)", q.prompt),
                    true,
                ),
                QuestionKind::Secret { file_flag, .. } => {
                    add(
                        q.flag,
                        q.value_name,
                        format!("Environment variable holding the {}", q.prompt),
                        false,
                    );
                    if let Some(file) = file_flag {
                        add(
                            file,
                            "PATH",
                            format!("File holding the {}", q.prompt),
                            false,
                        );
                    }
                }
            }
        }
    }
    flags
        .into_values()
        .map(|(arg, types)| {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            arg.help(format!("{help} [{}]", types.join(", ")))
        })
        .collect()
}

/// `cli` with the connector flags added to `fleet init`.
pub fn with_init_flags(cli: Command) -> Command {
    cli.mut_subcommand("fleet", |fleet| {
        fleet.mut_subcommand("init", mosaic_grammar::with_init_flags)
    })
}

/// The connector flags given to `fleet init`, by flag name.
pub fn init_answers(matches: &ArgMatches) -> BTreeMap<String, Vec<String>> {
    matches
        .subcommand_matches("fleet")
        .and_then(|fleet| fleet.subcommand_matches("init"))
        .map(mosaic_grammar::init_answers)
        .unwrap_or_default()
}
