//! `/fleet` as a Discord application command, from the one grammar.

use mosaic_grammar::native::{NativeValue, native_verbs, to_line as native_line};
use serenity::all::{
    CommandData, CommandDataOptionValue, CommandOptionType, CreateCommand, CreateCommandOption,
};

/// The command's name.
pub const COMMAND: &str = "fleet";

/// `/fleet` with one subcommand per verb and their options.
pub fn fleet_command() -> CreateCommand {
    let mut command = CreateCommand::new(COMMAND)
        .description("Command the mosaic fleet (status, ps, add, remove, send, ...)");
    for verb in native_verbs() {
        let mut sub =
            CreateCommandOption::new(CommandOptionType::SubCommand, &verb.name, &verb.about);
        for o in &verb.options {
            let kind = if o.switch {
                CommandOptionType::Boolean
            } else {
                CommandOptionType::String
            };
            sub = sub.add_sub_option(
                CreateCommandOption::new(kind, &o.name, &o.about).required(o.required),
            );
        }
        command = command.add_option(sub);
    }
    command
}

/// The `/fleet …` line an invocation stands for.
pub fn to_line(data: &CommandData) -> String {
    let Some(sub) = data.options.first() else {
        return "/fleet".into();
    };
    let values: Vec<(String, NativeValue)> = match &sub.value {
        CommandDataOptionValue::SubCommand(options) => options
            .iter()
            .filter_map(|o| match &o.value {
                CommandDataOptionValue::String(s) => {
                    Some((o.name.clone(), NativeValue::Text(s.clone())))
                }
                CommandDataOptionValue::Boolean(b) => {
                    Some((o.name.clone(), NativeValue::Switch(*b)))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    native_line(&sub.name, &values)
}
