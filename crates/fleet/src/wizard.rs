//! `mosaic fleet init`: the AI-free wizard. Every question has a flag; without a terminal a
//! missing answer is an error naming that flag.

use crate::error::FleetError;
use crate::harness::{Installed, detect_installed};
use crate::{Paths, init};
use inquire::{Confirm, Select, Text};
use mosaic_connector::registry::{ConnectorType, QuestionKind, connector_type, connector_types};
use mosaic_grammar::{CommsArg, InitArgs};
use mosaic_roster::{
    AclEntry, AclRole, CommsMode, ConnectorEntry, DEFAULT_SOCKET, DEMO_RUNTIME, InitAnswers,
    Preset, PresetSource, Role, Roster, SecretRef, all_presets, check_name, harness, harnesses,
    redact::shown,
};
use serde_yaml_ng::Value;
use std::io::Write;

/// The `--connector` answer for no chat connector.
const NO_CONNECTOR: &str = "none";

type Result<T> = std::result::Result<T, FleetError>;

impl From<inquire::InquireError> for FleetError {
    fn from(e: inquire::InquireError) -> Self {
        FleetError::Refused(format!("init: {e}"))
    }
}

fn refuse(message: String) -> FleetError {
    FleetError::BadAnswer(message)
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
        // A dry run writes nothing, so without a terminal its defaults need no `--yes`.
        yes: args.yes || (args.dry_run && !interactive),
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

    let (connectors, answered) = choose_connectors(&asker, args, preset, existing.as_ref())?;
    let connector_kind = connectors.first().map(|c| c.kind.clone());
    let acl = ask_admins(out, &asker, args, &connectors, existing.as_ref())?;

    let comms_default = CommsArg::Tmux;
    let comms = if connector_kind.as_deref() == Some("matrix") {
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
        connectors: Some(connectors),
        acl,
    };
    let generated = preset.instantiate(&answers);
    let explicit = init::Explicit {
        connectors: args.connector.is_some(),
        fields: answered,
        admins: args.admins.clone(),
    };
    let plan = init::plan(paths, &generated, &explicit)?;
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
                i.harness.name.clone(),
                format!(
                    "{:<7} {} ({version})",
                    i.harness.name, i.harness.description
                ),
            )
        })
        .collect();
    let demo = harness(DEMO_RUNTIME).expect("the demo harness is built in");
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
    let chosen = asker.answer(
        flag,
        Some(default.clone()),
        &flag_name,
        &format!("Harness for the {role_name}"),
        || {
            if options.len() == 1 {
                let real: Vec<String> = harnesses()
                    .iter()
                    .filter(|h| !h.is_builtin())
                    .map(|h| h.name.clone())
                    .collect();
                let _ = writeln!(
                    out,
                    "No agent harness ({}) found on PATH: the {role_name} uses the demo agent.",
                    real.join(", ")
                );
                return Ok(DEMO_RUNTIME.to_owned());
            }
            let labels: Vec<String> = options.iter().map(|(_, l)| l.clone()).collect();
            let start = options.iter().position(|(n, _)| *n == default).unwrap_or(0);
            let chosen = Select::new(&format!("Harness for the {role_name}:"), labels.clone())
                .with_starting_cursor(start)
                .prompt()?;
            Ok(
                options[labels.iter().position(|l| *l == chosen).expect("listed")]
                    .0
                    .clone(),
            )
        },
    )?;
    if harness(&chosen).is_none() {
        return Err(refuse(format!(
            "unknown runtime {chosen:?} for {flag_name}; expected one of {}",
            mosaic_roster::harness_names().join(", ")
        )));
    }
    Ok(chosen)
}

/// The chat connectors of the new roster. A profile (a preset with its chat wiring, like
/// mos-discord) brings its own, and a re-init keeps the roster's: without `--connector` nothing
/// is asked, and connector flags change just the answers they give (`--target 7` on a re-init
/// changes the channels, the guild and token stay). `--connector none` removes them. Also
/// returns, for flags given without `--connector`, the connector's id and the fields they
/// answered (they win over hand edits: [`init::Explicit`]).
fn choose_connectors(
    asker: &Asker,
    args: &InitArgs,
    preset: &Preset,
    existing: Option<&Roster>,
) -> Result<(Vec<ConnectorEntry>, Option<init::AnsweredFields>)> {
    let flags: Vec<&str> = args
        .connector_answers
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(flag, _)| flag.as_str())
        .collect();
    let current = if preset.spec.connectors.is_empty() {
        existing.map(|r| r.connectors.clone()).unwrap_or_default()
    } else {
        preset.spec.connectors.clone()
    };
    let kind = match (&args.connector, current.first()) {
        (Some(kind), _) => Some(kind.clone()),
        (None, Some(_)) if flags.is_empty() => return Ok((current, None)),
        (None, Some(first)) => Some(first.kind.clone()),
        (None, None) if !flags.is_empty() => {
            return Err(refuse(format!(
                "{} answers a chat connector's question, but this fleet has none: add --connector TYPE",
                flag_list(&flags)
            )));
        }
        (None, None) => None,
    };
    let changed_in_place = args.connector.is_none();
    let types = connector_types();
    let kind = asker.answer(
        kind,
        Some(NO_CONNECTOR.to_owned()),
        "--connector TYPE",
        "Chat connector for the orchestrator",
        || {
            let mut options = vec![format!(
                "{NO_CONNECTOR:<9} chat only from this machine (`mosaic chat`)"
            )];
            options.extend(
                types
                    .iter()
                    .map(|t| format!("{:<9} {}", t.type_name(), t.summary())),
            );
            let chosen = Select::new("Chat connector for the orchestrator:", options).prompt()?;
            Ok(chosen
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned())
        },
    )?;
    if kind == NO_CONNECTOR {
        if !flags.is_empty() {
            return Err(refuse(format!(
                "{} answers a chat connector's question, but --connector is none",
                flag_list(&flags)
            )));
        }
        return Ok((Vec::new(), None));
    }
    let Some(connector_type) = connector_type(&kind) else {
        let mut known = vec![NO_CONNECTOR];
        known.extend(types.iter().map(|t| t.type_name()));
        return Err(refuse(format!(
            "unknown connector type {kind:?} for --connector; this build of mosaic has: {}",
            known.join(", ")
        )));
    };
    let own: Vec<&str> = connector_type
        .questions()
        .iter()
        .flat_map(|q| {
            let file = match q.kind {
                QuestionKind::Secret { file_flag, .. } => file_flag,
                _ => None,
            };
            std::iter::once(q.flag).chain(file)
        })
        .collect();
    let foreign: Vec<&str> = flags.iter().copied().filter(|f| !own.contains(f)).collect();
    if !foreign.is_empty() {
        return Err(refuse(format!(
            "{} is not a question of the {kind} connector (its flags: {})",
            flag_list(&foreign),
            flag_list(&own)
        )));
    }
    // The entry being changed: the current one of this type keeps its other answers and its id.
    let base = current.iter().find(|c| c.kind == kind);
    let entry = ask_connector(asker, args, connector_type, base)?;
    let answered = changed_in_place.then(|| {
        let fields = connector_type
            .questions()
            .iter()
            .filter(|q| {
                let file = match q.kind {
                    QuestionKind::Secret { file_flag, .. } => file_flag,
                    _ => None,
                };
                flags.contains(&q.flag) || file.is_some_and(|f| flags.contains(&f))
            })
            .map(|q| q.field.to_owned())
            .collect();
        (entry.id().to_owned(), fields)
    });
    let mut connectors = vec![entry];
    connectors.extend(
        current
            .iter()
            .filter(|c| base.is_some_and(|b| !std::ptr::eq(*c, b)))
            .cloned(),
    );
    Ok((connectors, answered))
}

/// `--guild, --target` for an error message.
fn flag_list(flags: &[&str]) -> String {
    flags
        .iter()
        .map(|f| format!("--{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The admin user ids for the chat connector: deny by default, so without one nobody may use
/// the orchestrator from chat (the roster's existing ACL is kept by the re-init merge anyway).
fn ask_admins(
    out: &mut dyn Write,
    asker: &Asker,
    args: &InitArgs,
    connectors: &[ConnectorEntry],
    existing: Option<&Roster>,
) -> Result<Vec<AclEntry>> {
    let Some(connector) = connectors.first() else {
        if !args.admins.is_empty() {
            return Err(refuse(
                "--admin makes a user admin of a chat connector, and this init has none: add --connector TYPE"
                    .into(),
            ));
        }
        return Ok(Vec::new());
    };
    let kind = connector.id();
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
    if let Some(schema) = connector.schema() {
        for id in &ids {
            schema
                .check_user(id)
                .map_err(|why| refuse(format!("--admin {}: {why}", shown(id))))?;
        }
    }
    let known = existing.is_some_and(|r| r.acl.iter().any(|e| e.connector == kind));
    if ids.is_empty() && !known {
        let _ = writeln!(
            out,
            "note: nobody may use the orchestrator from {kind} yet (deny by default); add yourself with --admin ID or an `acl:` entry in roster.yaml"
        );
    }
    // The roster's own ACL entries for connectors it keeps stay; new admins are added.
    let mut acl: Vec<AclEntry> = existing
        .map(|r| r.acl.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| connectors.iter().any(|c| c.id() == e.connector))
        .collect();
    for user in ids {
        if !acl.iter().any(|e| e.connector == kind && e.user == user) {
            acl.push(AclEntry {
                connector: kind.to_owned(),
                user,
                role: AclRole::Admin,
            });
        }
    }
    Ok(acl)
}

/// Asks a connector type's own questions (from its flags, the terminal or defaults) and checks
/// the answers with the type before anything is written.
fn ask_connector(
    asker: &Asker,
    args: &InitArgs,
    connector_type: &dyn ConnectorType,
    base: Option<&ConnectorEntry>,
) -> Result<ConnectorEntry> {
    let given = |flag: &str| args.connector_answers.get(flag).filter(|v| !v.is_empty());
    let mut settings = serde_yaml_ng::Mapping::new();
    for q in connector_type.questions() {
        let file_flag = match q.kind {
            QuestionKind::Secret { file_flag, .. } => file_flag,
            _ => None,
        };
        let answered = given(q.flag).is_some() || file_flag.and_then(given).is_some();
        // A question of the entry being changed that no flag answers keeps its answer.
        if !answered && let Some(kept) = base.and_then(|b| b.settings.get(q.field)) {
            settings.insert(Value::String(q.field.to_owned()), kept.clone());
            continue;
        }
        let value = match q.kind {
            QuestionKind::Text { default } => {
                let answer = asker.answer(
                    given(q.flag).and_then(|v| v.last().cloned()),
                    default.map(str::to_owned),
                    &q.usage(),
                    q.prompt,
                    || {
                        let prompt = format!("{}:", q.prompt);
                        let mut text = Text::new(&prompt);
                        if let Some(d) = default {
                            text = text.with_default(d);
                        }
                        Ok(text.prompt()?.trim().to_owned())
                    },
                )?;
                Value::String(answer)
            }
            QuestionKind::List => {
                let answer =
                    asker.answer(given(q.flag).cloned(), None, &q.usage(), q.prompt, || {
                        let line =
                            Text::new(&format!("{} (comma-separated):", q.prompt)).prompt()?;
                        Ok(line
                            .split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect())
                    })?;
                Value::Sequence(answer.into_iter().map(Value::String).collect())
            }
            QuestionKind::Secret {
                default_env,
                file_flag,
            } => {
                if let Some(file) = file_flag
                    && given(file).is_some()
                    && given(q.flag).is_some()
                {
                    return Err(refuse(format!(
                        "give --{} or --{file}, not both: the {} is read from one place",
                        q.flag, q.prompt
                    )));
                }
                let secret = match file_flag.and_then(given).and_then(|v| v.last()) {
                    Some(file) => SecretRef::file(file.clone()),
                    None => {
                        let var = asker.answer(
                            given(q.flag).and_then(|v| v.last().cloned()),
                            Some(default_env.to_owned()),
                            &q.usage(),
                            q.prompt,
                            || {
                                Ok(Text::new(&format!(
                                    "{} - name of the environment variable that holds it:",
                                    q.prompt
                                ))
                                .with_default(default_env)
                                .prompt()?)
                            },
                        )?;
                        SecretRef::env(var)
                    }
                };
                serde_yaml_ng::to_value(&secret).expect("a secret reference serializes")
            }
        };
        settings.insert(Value::String(q.field.to_owned()), value);
    }
    let problems = connector_type.check(&settings);
    if !problems.is_empty() {
        let list: Vec<String> = problems
            .iter()
            .map(|p| format!("  {}: {}", p.path, p.message))
            .collect();
        return Err(refuse(format!(
            "the {} answers are not valid; nothing was written:\n{}",
            connector_type.type_name(),
            list.join("\n")
        )));
    }
    let mut entry = ConnectorEntry::new(connector_type.type_name(), settings);
    entry.id = base.and_then(|b| b.id.clone());
    Ok(entry)
}
