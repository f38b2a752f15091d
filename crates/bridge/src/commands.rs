//! Running a fleet command asked for in chat (or by the orchestrator's tools) and rendering its
//! answer as chat text.

use mosaic_fleet::{Fleet, Paths, render, wizard, worker_from};
use mosaic_grammar::{FleetCommand, PresetsAction};
use mosaic_roster::all_presets;
use std::path::Path;
use std::time::Duration;

fn code(text: &str) -> String {
    format!("```\n{}\n```", text.trim_end())
}

/// Runs `command` against the fleet in `paths`; `Ok` is the reply, `Err` the error to show.
/// Blocking: call it from a blocking thread.
pub fn execute(paths: &Paths, mosaic_exe: &Path, command: &FleetCommand) -> Result<String, String> {
    let open = || Fleet::open(paths.clone(), mosaic_exe.to_owned()).map_err(|e| e.to_string());
    let err = |e: mosaic_fleet::FleetError| e.to_string();
    Ok(match command {
        FleetCommand::Status => {
            let fleet = open()?;
            code(&render::status(&fleet.roster, &fleet.ps().map_err(err)?))
        }
        FleetCommand::Ps(args) => {
            let status = open()?.ps().map_err(err)?;
            if args.json {
                format!(
                    "```json\n{}\n```",
                    serde_json::to_string_pretty(&status).expect("serializes")
                )
            } else {
                code(&render::ps_table(&status))
            }
        }
        FleetCommand::Verify(_) => code(&render::checks(&mosaic_fleet::verify::verify(
            paths, mosaic_exe,
        ))),
        FleetCommand::Presets(args) => {
            let (presets, _) = all_presets(Some(&paths.presets_dir()));
            match &args.action {
                None => code(&render::presets(&presets, &paths.presets_dir())),
                Some(PresetsAction::Show { name }) => {
                    match presets.iter().find(|p| &p.name == name) {
                        Some(p) => format!("```yaml\n{}\n```", p.text.trim_end()),
                        None => return Err(format!("no preset named {name:?}")),
                    }
                }
            }
        }
        FleetCommand::Start(args) => code(&render::outcomes(
            &open()?
                .start(&args.agents, Duration::from_secs(args.wait))
                .map_err(err)?,
        )),
        FleetCommand::Stop(args) => code(&render::outcomes(
            &open()?
                .stop(&args.agents, Duration::from_secs(args.timeout))
                .map_err(err)?,
        )),
        FleetCommand::Restart(args) => {
            let fleet = open()?;
            let name = vec![args.name.clone()];
            let mut outcomes = fleet
                .stop(&name, Duration::from_secs(args.timeout))
                .map_err(err)?;
            outcomes.extend(fleet.start(&name, Duration::from_secs(20)).map_err(err)?);
            code(&render::outcomes(&outcomes))
        }
        FleetCommand::Send(args) => {
            let report = open()?
                .send(&args.name, &args.text.join(" "))
                .map_err(err)?;
            format!(
                "sent {} chars to {}, submitted",
                report.pasted.chars().count(),
                args.name
            )
        }
        FleetCommand::Add(args) => {
            let mut fleet = open()?;
            fleet.add(worker_from(args).map_err(err)?).map_err(err)?;
            let mut reply = format!("added {} to the roster", args.name);
            if !args.no_start {
                reply.push('\n');
                reply.push_str(&code(&render::outcomes(
                    &fleet
                        .start(std::slice::from_ref(&args.name), Duration::from_secs(20))
                        .map_err(err)?,
                )));
            }
            reply
        }
        FleetCommand::Remove(args) => {
            let outcome = open()?
                .remove(&args.name, Duration::from_secs(args.timeout))
                .map_err(err)?;
            format!(
                "{}removed {} from the roster",
                render::outcomes(&[(args.name.clone(), outcome)]),
                args.name
            )
        }
        FleetCommand::Init(args) => {
            let mut args = args.clone();
            args.yes = true;
            let mut out = Vec::new();
            wizard::run(paths, &args, false, &mut out).map_err(err)?;
            code(&String::from_utf8_lossy(&out))
        }
        FleetCommand::Logs(args) if !args.follow => {
            let text = open()?.capture(&args.name, true).map_err(err)?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            code(&lines[lines.len().saturating_sub(30)..].join("\n"))
        }
        FleetCommand::Logs(_) | FleetCommand::Attach(_) | FleetCommand::Install(_) => {
            return Err(format!(
                "`{}` needs a terminal on the host; run `mosaic fleet {}` there",
                command.verb(),
                command.verb()
            ));
        }
        FleetCommand::Confirm { .. } => return Err("nothing to confirm".into()),
    })
}
