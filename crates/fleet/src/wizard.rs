//! `mosaic fleet init`: the AI-free wizard. Every question has a flag; without a terminal a
//! missing answer is an error naming that flag.

use crate::error::FleetError;
use crate::harness::{Installed, detect_installed};
use crate::{Paths, init};
use inquire::{Confirm, Select, Text};
use mosaic_grammar::{CommsArg, ConnectorArg, InitArgs};
use mosaic_roster::{
    AclEntry, AclRole, CommsMode, Connector, DEFAULT_SOCKET, DEMO_RUNTIME, InitAnswers, Preset,
    PresetSource, Role, Roster, SecretRef, all_presets, check_name, runtime,
};
use std::io::Write;

type Result<T> = std::result::Result<T, FleetError>;

impl From<inquire::InquireError> for FleetError {
    fn from(e: inquire::InquireError) -> Self {
        FleetError::Refused(format!("init: {e}"))
    }
}

fn refuse(message: String) -> FleetError {
    FleetError::Refused(message)
}

/// How questions get answered.
struct Asker {
    interactive: bool,
    yes: bool,
}

impl Asker {
    /// Answers from the flag, else the default under `--yes`, else the terminal, else an error.
    fn answer<T>(
        &self,
        flag: Option<T>,
        default: Option<T>,
        flag_name: &str,
        question: &str,
        ask: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if let Some(v) = flag {
            return Ok(v);
        }
        if self.yes
            && let Some(d) = default
        {
            return Ok(d);
        }
        if self.interactive {
            return ask();
        }
        Err(refuse(format!(
            "no terminal to ask \"{question}\": pass {flag_name}{}",
            if default.is_some() {
                " (or --yes for the default)"
            } else {
                ""
            }
        )))
    }
}

/// Runs the wizard and writes (or, with `--dry-run`, shows) the roster. Questions go to the
/// terminal only when `interactive`; what the wizard reports goes to `out`.
pub fn run(paths: &Paths, args: &InitArgs, interactive: bool, out: &mut dyn Write) -> Result<()> {
    let asker = Asker {
        interactive,
        yes: args.yes,
    };
    let (presets, preset_errors) = all_presets(Some(&paths.presets_dir()));
    for e in &preset_errors {
        let _ = writeln!(out, "warning: skipping an invalid user preset:\n{e}");
    }
    let existing = Roster::load(&paths.roster()).ok();

    let default_name = existing
        .as_ref()
        .map(|r| r.fleet.clone())
        .unwrap_or_else(|| "fleet".into());
    let fleet = asker.answer(
        args.name.clone(),
        Some(default_name.clone()),
        "--name NAME",
        "Fleet name",
        || {
            Ok(Text::new("Fleet name:")
                .with_default(&default_name)
                .with_validator(|s: &str| {
                    Ok(match check_name(s) {
                        Ok(()) => inquire::validator::Validation::Valid,
                        Err(why) => inquire::validator::Validation::Invalid(
                            format!("the name {why}").into(),
                        ),
                    })
                })
                .prompt()?)
        },
    )?;
    check_name(&fleet).map_err(|why| refuse(format!("fleet name {fleet:?} {why}")))?;

    let names: Vec<String> = presets.iter().map(|p| p.name.clone()).collect();
    let preset_name = asker.answer(
        args.chosen_preset().map(str::to_owned),
        None,
        &format!("--preset NAME (one of {})", names.join(", ")),
        "Configuration type",
        || {
            let labels: Vec<String> = presets.iter().map(preset_label).collect();
            let chosen = Select::new("Configuration type:", labels.clone()).prompt()?;
            Ok(presets[labels
                .iter()
                .position(|l| *l == chosen)
                .expect("chosen from the list")]
            .name
            .clone())
        },
    )?;
    let preset = presets
        .iter()
        .find(|p| p.name == preset_name)
        .ok_or_else(|| {
            refuse(format!(
                "no preset named {preset_name:?}; presets: {}",
                names.join(", ")
            ))
        })?;

    let installed = detect_installed();
    let orchestrator_runtime = choose_runtime(
        out,
        &asker,
        &installed,
        preset,
        Role::Orchestrator,
        args.orchestrator_runtime.clone(),
    )?;
    let worker_runtime = if preset.spec.agents.iter().any(|a| a.role == Role::Worker) {
        Some(choose_runtime(
            out,
            &asker,
            &installed,
            preset,
            Role::Worker,
            args.worker_runtime.clone(),
        )?)
    } else {
        None
    };

    // A profile (a preset with its chat wiring, like mos-discord) brings its connectors; asking
    // again is only for an explicit --connector.
    let (connector_kind, connectors) = match (&args.connector, preset.spec.connectors.first()) {
        (None, Some(first)) => {
            let kind = <ConnectorArg as clap::ValueEnum>::from_str(first.kind(), true)
                .unwrap_or(ConnectorArg::None);
            (kind, preset.spec.connectors.clone())
        }
        _ => {
            let kind = asker.answer(
                args.connector,
                Some(ConnectorArg::None),
                "--connector TYPE",
                "Chat connector for the orchestrator",
                || {
                    let options = vec!["none", "discord", "telegram", "slack", "matrix"];
                    let chosen =
                        Select::new("Chat connector for the orchestrator:", options).prompt()?;
                    Ok(<ConnectorArg as clap::ValueEnum>::from_str(chosen, true).expect("listed"))
                },
            )?;
            let connectors = match kind {
                ConnectorArg::None => Vec::new(),
                kind => vec![ask_connector(&asker, args, kind)?],
            };
            (kind, connectors)
        }
    };
    let acl = ask_admins(out, &asker, args, &connectors, existing.as_ref())?;

    let comms_default = CommsArg::Tmux;
    let comms = if connector_kind == ConnectorArg::Matrix {
        asker.answer(
            args.comms,
            Some(comms_default),
            "--comms MODE",
            "How agents talk to each other",
            || {
                let chosen = Select::new("How agents talk to each other:", vec!["tmux", "matrix"])
                    .prompt()?;
                Ok(if chosen == "matrix" {
                    CommsArg::Matrix
                } else {
                    CommsArg::Tmux
                })
            },
        )?
    } else {
        args.comms.unwrap_or(comms_default)
    };
    let comms = match comms {
        CommsArg::Tmux => CommsMode::Tmux,
        CommsArg::Matrix => CommsMode::Matrix,
    };
    let socket = args
        .socket
        .clone()
        .or_else(|| existing.as_ref().map(|r| r.tmux.socket.clone()))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_owned());

    let answers = InitAnswers {
        fleet,
        orchestrator_runtime: Some(orchestrator_runtime),
        worker_runtime,
        comms,
        socket,
        connectors,
        acl,
    };
    let generated = preset.instantiate(&answers);
    let plan = init::plan(paths, &generated)?;
    if !plan.changes_roster {
        let _ = writeln!(
            out,
            "{} is up to date: nothing to change.",
            plan.roster_path.display()
        );
        if !args.dry_run {
            plan.write()?;
        }
        return Ok(());
    }
    if plan.current.is_some() && !plan.had_base {
        let _ = writeln!(
            out,
            "note: no record of a previous init; every value already in roster.yaml is kept as your own."
        );
    }
    let _ = write!(out, "{}", plan.diff());
    if args.dry_run {
        let _ = writeln!(out, "dry run: nothing written.");
        return Ok(());
    }
    let write = args.yes
        || !asker.interactive
        || Confirm::new(&format!("Write {}?", plan.roster_path.display()))
            .with_default(true)
            .prompt()?;
    if !write {
        let _ = writeln!(out, "Nothing written.");
        return Ok(());
    }
    plan.write()?;
    let _ = writeln!(
        out,
        "Wrote {}. Next: `mosaic fleet start`, then `mosaic fleet ps`.",
        plan.roster_path.display()
    );
    Ok(())
}

fn preset_label(p: &Preset) -> String {
    let origin = match &p.source {
        PresetSource::Shipped => String::new(),
        PresetSource::User(path) => format!(" [yours: {path}]"),
    };
    format!(
        "{:<10} {} ({} agents){origin}",
        p.name,
        p.spec.description,
        p.spec.agents.len()
    )
}

fn choose_runtime(
    out: &mut dyn Write,
    asker: &Asker,
    installed: &[Installed],
    preset: &Preset,
    role: Role,
    flag: Option<String>,
) -> Result<String> {
    let mut options: Vec<(String, String)> = installed
        .iter()
        .map(|i| {
            let version = i
                .version
                .clone()
                .unwrap_or_else(|| "version unknown".into());
            (
                i.runtime.name.to_owned(),
                format!(
                    "{:<7} {} ({version})",
                    i.runtime.name, i.runtime.description
                ),
            )
        })
        .collect();
    let demo = runtime(DEMO_RUNTIME).expect("demo exists");
    options.push((
        DEMO_RUNTIME.to_owned(),
        format!("{:<7} {}", DEMO_RUNTIME, demo.description),
    ));
    let wanted = preset
        .spec
        .agents
        .iter()
        .find(|a| a.role == role)
        .map(|a| a.runtime.clone());
    let default = wanted
        .filter(|w| options.iter().any(|(n, _)| n == w))
        .unwrap_or_else(|| options[0].0.clone());
    let role_name = role.as_str();
    let flag_name = format!("--{role_name}-runtime RUNTIME");
    let chosen = asker.answer(flag, Some(default.clone()), &flag_name, &format!("Harness for the {role_name}"), || {
        if options.len() == 1 {
            let _ = writeln!(out, "No agent harness (claude, codex, pi) found on PATH: the {role_name} uses the demo agent.");
            return Ok(DEMO_RUNTIME.to_owned());
        }
        let labels: Vec<String> = options.iter().map(|(_, l)| l.clone()).collect();
        let start = options.iter().position(|(n, _)| *n == default).unwrap_or(0);
        let chosen = Select::new(&format!("Harness for the {role_name}:"), labels.clone()).with_starting_cursor(start).prompt()?;
        Ok(options[labels.iter().position(|l| *l == chosen).expect("listed")].0.clone())
    })?;
    if runtime(&chosen).is_none() {
        return Err(refuse(format!(
            "unknown runtime {chosen:?} for {flag_name}; expected one of {}",
            mosaic_roster::runtime_names().join(", ")
        )));
    }
    Ok(chosen)
}

/// The admin user ids for the chat connector: deny by default, so without one nobody may use
/// the orchestrator from chat (the roster's existing ACL is kept by the re-init merge anyway).
fn ask_admins(
    out: &mut dyn Write,
    asker: &Asker,
    args: &InitArgs,
    connectors: &[Connector],
    existing: Option<&Roster>,
) -> Result<Vec<AclEntry>> {
    let Some(connector) = connectors.first() else {
        return Ok(Vec::new());
    };
    let kind = connector.kind();
    let mut ids = args.admins.clone();
    if ids.is_empty() && asker.interactive && !asker.yes {
        let line = Text::new(&format!(
            "Your {kind} user id (to make you admin; empty for none):"
        ))
        .prompt()?;
        ids = line
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    let known = existing.is_some_and(|r| r.acl.iter().any(|e| e.connector == kind));
    if ids.is_empty() && !known {
        let _ = writeln!(
            out,
            "note: nobody may use the orchestrator from {kind} yet (deny by default); add yourself with --admin ID or an `acl:` entry in roster.yaml"
        );
    }
    Ok(ids
        .into_iter()
        .map(|user| AclEntry {
            connector: kind.to_owned(),
            user,
            role: AclRole::Admin,
        })
        .collect())
}

fn ask_connector(asker: &Asker, args: &InitArgs, kind: ConnectorArg) -> Result<Connector> {
    let ids = |what: &str| -> Result<Vec<String>> {
        let given = (!args.targets.is_empty()).then(|| args.targets.clone());
        asker.answer(
            given,
            None,
            "--target ID (repeat for several)",
            what,
            || {
                let line = Text::new(&format!("{what} (comma-separated):")).prompt()?;
                Ok(line
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect())
            },
        )
    };
    let secret = |default_var: &str,
                  flag: Option<String>,
                  flag_name: &str,
                  what: &str|
     -> Result<SecretRef> {
        if let (Some(file), "--secret-env VAR") = (&args.secret_file, flag_name) {
            return Ok(SecretRef::file(file.clone()));
        }
        let var = asker.answer(flag, Some(default_var.to_owned()), flag_name, what, || {
            Ok(Text::new(&format!(
                "{what} - name of the environment variable that holds it:"
            ))
            .with_default(default_var)
            .prompt()?)
        })?;
        Ok(SecretRef::env(var))
    };
    Ok(match kind {
        ConnectorArg::Discord => {
            let guild = asker.answer(
                args.guild.clone(),
                None,
                "--guild ID",
                "Discord server (guild) id",
                || {
                    Ok(Text::new("Discord server (guild) id:")
                        .prompt()?
                        .trim()
                        .to_owned())
                },
            )?;
            Connector::Discord {
                guild,
                channels: ids("Discord channel ids")?,
                token: secret(
                    "DISCORD_TOKEN",
                    args.secret_env.clone(),
                    "--secret-env VAR",
                    "Discord bot token",
                )?,
            }
        }
        ConnectorArg::Telegram => Connector::Telegram {
            chats: ids("Telegram chat ids")?,
            token: secret(
                "TELEGRAM_BOT_TOKEN",
                args.secret_env.clone(),
                "--secret-env VAR",
                "Telegram bot token",
            )?,
        },
        ConnectorArg::Slack => Connector::Slack {
            channels: ids("Slack channel ids")?,
            bot_token: secret(
                "SLACK_BOT_TOKEN",
                args.secret_env.clone(),
                "--secret-env VAR",
                "Slack bot token (xoxb-)",
            )?,
            app_token: secret(
                "SLACK_APP_TOKEN",
                args.app_secret_env.clone(),
                "--app-secret-env VAR",
                "Slack app-level token (xapp-)",
            )?,
        },
        ConnectorArg::Matrix => {
            let homeserver = asker.answer(
                args.homeserver.clone(),
                Some("http://127.0.0.1:8008".into()),
                "--homeserver URL",
                "Matrix homeserver URL",
                || {
                    Ok(Text::new("Matrix homeserver URL:")
                        .with_default("http://127.0.0.1:8008")
                        .prompt()?)
                },
            )?;
            let user = asker.answer(
                args.matrix_user.clone(),
                None,
                "--matrix-user USER",
                "Matrix bot user id",
                || Ok(Text::new("Matrix bot user id (@mos:example.org):").prompt()?),
            )?;
            Connector::Matrix {
                homeserver,
                user,
                rooms: ids("Matrix room ids")?,
                access_token: secret(
                    "MATRIX_ACCESS_TOKEN",
                    args.secret_env.clone(),
                    "--secret-env VAR",
                    "Matrix access token",
                )?,
            }
        }
        ConnectorArg::None => unreachable!("no connector asked for"),
    })
}
