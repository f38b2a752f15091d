use super::*;
use crate::render::{chat, terminal};
use mosaic_connector::Markdown;
use mosaic_fleet::verify::{Check, Level};
use mosaic_fleet::{AgentState, AgentStatus, ChatLink, FleetStatus, Outcome as Lifecycle};
use mosaic_grammar::chat::{ChatInput, parse};

fn cmd(line: &str) -> FleetCommand {
    match parse(line) {
        ChatInput::Command(c) => *c,
        other => panic!("{other:?}"),
    }
}

fn actor(role: AclRole) -> Actor {
    Actor {
        surface: Surface::Chat {
            connector: "telegram".into(),
            user: "7".into(),
        },
        role,
    }
}

/// An executor over an empty sandbox: no roster, so anything that gets past the checks fails
/// with `NoRoster`.
fn empty() -> (tempfile::TempDir, Executor) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths {
        config_dir: dir.path().join("config"),
        state_dir: dir.path().join("state"),
    };
    (dir, Executor::new(paths, "/nonexistent/mosaic".into()))
}

#[test]
fn the_executor_refuses_a_command_above_the_actors_role() {
    let (_dir, exec) = empty();
    let err = exec
        .exec(
            &cmd("/fleet add x --runtime demo"),
            &actor(AclRole::Operator),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::Forbidden {
                verb: "add",
                needed: AclRole::Admin,
                role: AclRole::Operator
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert_eq!(err.to_string(), "refused: `add` needs role admin");
    let err = exec
        .exec(&cmd("/fleet stop"), &actor(AclRole::Viewer))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    // Allowed: the command runs, and fails on the missing roster, not on the role.
    let err = exec
        .exec(&cmd("/fleet status"), &actor(AclRole::Viewer))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::Fleet(mosaic_fleet::FleetError::NoRoster { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn fleet_errors_have_kinds() {
    use mosaic_fleet::FleetError;
    let kind = |e: FleetError| ExecError::from(e).kind();
    assert_eq!(kind(FleetError::SecondOrchestrator), ErrorKind::Refused);
    assert_eq!(
        kind(FleetError::RemoveOrchestrator { name: "mos".into() }),
        ErrorKind::Refused
    );
    assert_eq!(
        kind(FleetError::AgentExists { name: "w".into() }),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(FleetError::BadEnv { entry: "X".into() }),
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(FleetError::UnknownAgent {
            name: "x".into(),
            known: "mos".into()
        }),
        ErrorKind::NotFound
    );
    let io = ExecError::from(FleetError::Io {
        path: "/r".into(),
        source: std::io::Error::other("disk"),
    });
    assert_eq!(io.kind(), ErrorKind::Internal);
    assert!(!io.is_retryable());
    assert!(
        std::error::Error::source(&io).is_some(),
        "the cause is kept"
    );
    assert_eq!(
        serde_json::to_value(ErrorKind::NotFound).unwrap(),
        ErrorKind::NotFound.as_str()
    );
}

#[test]
fn terminal_verbs_are_refused_with_a_typed_error_off_the_terminal() {
    let (_dir, exec) = empty();
    for line in [
        "/fleet attach mos",
        "/fleet logs mos --follow",
        "/fleet install",
    ] {
        let err = exec.exec(&cmd(line), &Actor::api()).unwrap_err();
        assert!(matches!(err, ExecError::NeedsTerminal { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
    assert_eq!(
        exec.exec(&cmd("/fleet logs mos -f"), &Actor::api())
            .unwrap_err()
            .to_string(),
        "`logs` needs a terminal on the host; run `mosaic fleet logs` there"
    );
    assert!(matches!(
        exec.exec(&cmd("/fleet confirm x"), &actor(AclRole::Admin)),
        Err(ExecError::NothingToConfirm)
    ));
    assert!(matches!(
        exec.exec(&cmd("/fleet confirm x"), &Actor::cli()),
        Err(ExecError::ConfirmOutsideChat)
    ));
}

#[test]
fn presets_are_listed_and_shown_without_a_roster() {
    let (_dir, exec) = empty();
    let Outcome::Presets { presets, .. } = exec
        .exec(&cmd("/fleet presets"), &actor(AclRole::Viewer))
        .unwrap()
    else {
        panic!()
    };
    assert!(presets.iter().any(|p| p.name == "coding"));
    assert!(matches!(
        exec.exec(&cmd("/fleet presets show coding"), &actor(AclRole::Viewer)),
        Ok(Outcome::Preset { .. })
    ));
    let err = exec
        .exec(&cmd("/fleet presets show nope"), &actor(AclRole::Viewer))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .starts_with("no preset named \"nope\"; presets: "),
        "{err}"
    );
}

fn agent(name: &str, state: AgentState) -> AgentStatus {
    AgentStatus {
        name: name.into(),
        role: "worker".into(),
        runtime: "demo".into(),
        model: None,
        host: "local".into(),
        session: name.into(),
        pid: (state == AgentState::Running).then_some(42),
        state,
        exit_status: None,
        exit_signal: None,
        started_at: None,
        last_activity: None,
        attached: false,
        activity: None,
        activity_source: None,
        activity_detail: None,
        harness_version: None,
    }
}

fn fleet_status() -> FleetStatus {
    FleetStatus {
        schema: mosaic_fleet::PS_SCHEMA.into(),
        fleet: "f".into(),
        socket: "s".into(),
        generated_at: "2026-01-01T00:00:00Z".into(),
        agents: vec![
            agent("mos", AgentState::Running),
            agent("w", AgentState::Stopped),
        ],
    }
}

fn one(agent: &str, result: Lifecycle) -> AgentOutcome {
    AgentOutcome {
        agent: agent.into(),
        result,
    }
}

/// One outcome of every kind.
fn every_outcome() -> Vec<Outcome> {
    vec![
        Outcome::Status {
            report: mosaic_fleet::StatusReport {
                fleet: fleet_status(),
                comms: "tmux".into(),
                chat: vec![ChatLink {
                    connector: "discord".into(),
                    id: "discord".into(),
                    rooms: 1,
                }],
            },
        },
        Outcome::Ps {
            status: fleet_status(),
        },
        Outcome::Verify {
            checks: vec![
                Check {
                    level: Level::Ok,
                    subject: "tmux".into(),
                    detail: "tmux 3.5a".into(),
                    hint: None,
                },
                Check {
                    level: Level::Fail,
                    subject: "agent w".into(),
                    detail: "no such runtime".into(),
                    hint: Some("install it".into()),
                },
            ],
        },
        Outcome::Presets {
            presets: vec![
                PresetInfo {
                    name: "coding".into(),
                    description: "Code".into(),
                    agents: vec![PresetAgent {
                        name: "mos".into(),
                        runtime: "claude".into(),
                    }],
                    source: PresetOrigin::Shipped,
                },
                PresetInfo {
                    name: "mine".into(),
                    description: "Mine".into(),
                    agents: vec![],
                    source: PresetOrigin::User {
                        path: "/p/mine.yaml".into(),
                    },
                },
            ],
            user_dir: "/p".into(),
            skipped: vec!["bad.yaml: oops".into()],
        },
        Outcome::Preset {
            name: "coding".into(),
            text: "version: 1\n".into(),
        },
        Outcome::Started {
            agents: vec![
                one("mos", Lifecycle::Started),
                one(
                    "w",
                    Lifecycle::ExitedAtStart {
                        status: Some(2),
                        last_lines: "boom\nbang".into(),
                    },
                ),
                one("x", Lifecycle::Slow),
            ],
        },
        Outcome::Stopped {
            agents: vec![
                one("mos", Lifecycle::Stopped),
                one("w", Lifecycle::NotRunning),
                one("x", Lifecycle::Killed),
            ],
            fallback: None,
        },
        Outcome::Restarted {
            agents: vec![one("w", Lifecycle::Stopped), one("w", Lifecycle::Started)],
        },
        Outcome::Sent {
            agent: "w".into(),
            pasted_chars: 5,
            enter_presses: 2,
        },
        Outcome::Added {
            agent: "w".into(),
            roster: "/c/roster.yaml".into(),
            started: Some(vec![one("w", Lifecycle::AlreadyRunning)]),
        },
        Outcome::Removed {
            agent: "w".into(),
            roster: "/c/roster.yaml".into(),
            stopped: one("w", Lifecycle::Stopped),
        },
        Outcome::Init {
            report: "Wrote /c/roster.yaml\n".into(),
        },
        Outcome::Logs {
            agent: "w".into(),
            text: "line 1\n\nline 2\n\n\n".into(),
        },
        Outcome::Help {
            text: "Usage: /fleet".into(),
        },
        Outcome::Comms {
            mode: "matrix".into(),
            changed: true,
        },
    ]
}

#[test]
fn every_outcome_round_trips_through_json() {
    for outcome in every_outcome() {
        let json = render::json(&outcome);
        let back: Outcome = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, outcome, "{json}");
    }
}

#[test]
fn the_json_is_tagged_by_outcome_and_result() {
    let v: serde_json::Value = serde_json::from_str(&render::json(&Outcome::Started {
        agents: vec![one(
            "w",
            Lifecycle::ExitedAtStart {
                status: Some(2),
                last_lines: "x".into(),
            },
        )],
    }))
    .unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "outcome": "started",
            "agents": [{ "agent": "w", "result": "exited_at_start", "status": 2, "last_lines": "x" }]
        })
    );
}

#[test]
fn the_terminal_shows_what_mosaic_fleet_always_printed() {
    let all = every_outcome();
    let out = |i: usize| terminal(&all[i], false);
    assert!(out(0).stdout.starts_with(
        "fleet \"f\" (tmux -L s, comms tmux): 2 agents, 1 running, 0 dead, 1 stopped\n"
    ));
    assert!(out(0).stdout.ends_with("chat: discord (1 room)\n"));
    assert!(out(1).stdout.starts_with("NAME             ROLE"));
    assert_eq!(
        out(2).stdout,
        "ok    tmux: tmux 3.5a\nFAIL  agent w: no such runtime\n      fix: install it\nverify: 1 problem(s) to fix\n"
    );
    assert!(!out(2).success, "a FAIL fails verify");
    assert_eq!(
        out(3).stdout,
        "coding     Code\n           agents: mos:claude\n           source: shipped\n\
         mine       Mine\n           agents: \n           source: yours (/p/mine.yaml)\n\
         Make your own: mosaic fleet presets show coding > /p/mine.yaml, then edit it.\n"
    );
    assert_eq!(
        out(3).stderr,
        "warning: skipping an invalid user preset:\nbad.yaml: oops\n"
    );
    assert_eq!(out(4).stdout, "version: 1\n");
    assert_eq!(
        out(5).stdout,
        "mos: started\nw: exited at start with status 2\n  | boom\n  | bang\nx: started (still loading)\n"
    );
    assert!(!out(5).success, "an agent that exited at start fails start");
    assert_eq!(out(6).stdout, "mos: stopped\nw: not running\nx: killed\n");
    assert!(out(6).success);
    assert_eq!(out(7).stdout, "w: stopped\nw: started\n");
    assert_eq!(
        out(8).stdout,
        "sent 5 chars to w, submitted (Enter pressed 2 times)\n"
    );
    assert_eq!(
        out(9).stdout,
        "added w to /c/roster.yaml\nw: already running\n"
    );
    assert_eq!(
        out(10).stdout,
        "w: stopped\nremoved w from /c/roster.yaml\n"
    );
    assert_eq!(out(11).stdout, "Wrote /c/roster.yaml\n");
    assert_eq!(out(12).stdout, "line 1\n\nline 2\n");
    assert_eq!(out(13).stdout, "Usage: /fleet\n");
    // --json prints the documents of `ps` and `verify`, and the outcome otherwise.
    let ps: FleetStatus = serde_json::from_str(&terminal(&all[1], true).stdout).unwrap();
    assert_eq!(ps, fleet_status());
    let checks: serde_json::Value = serde_json::from_str(&terminal(&all[2], true).stdout).unwrap();
    assert_eq!(checks[1]["level"], "fail");
}

#[test]
fn chat_fences_tables_and_keeps_its_short_forms() {
    let all = every_outcome();
    let md = Markdown::CommonMark;
    assert!(chat(&all[1], md, false).starts_with("```\nNAME"));
    assert!(chat(&all[1], md, true).starts_with("```json\n{"));
    assert_eq!(chat(&all[4], md, false), "```yaml\nversion: 1\n```");
    assert_eq!(
        chat(&all[9], md, false),
        "added w to the roster\n```\nw: already running\n```"
    );
    assert_eq!(
        chat(&all[10], md, false),
        "w: stopped\nremoved w from the roster"
    );
    assert_eq!(chat(&all[12], md, false), "```\nline 1\nline 2\n```");
    assert_eq!(
        chat(&all[6], Markdown::Discord, false),
        "```\nmos: stopped\nw: not running\nx: killed\n```"
    );
}

/// `comms` shows the mode to a viewer and switches it for an admin only, in the roster file
/// (its comments kept); `matrix` without a matrix connector is refused with why, and writes
/// nothing (switching with one: tests/matrix.rs).
#[test]
fn comms_is_switched_in_the_roster_by_an_admin_and_refused_without_a_matrix_connector() {
    let (dir, exec) = empty();
    let roster = "# my fleet\nversion: 1\nfleet: f\nagents:\n  - name: mos\n    role: orchestrator\n    runtime: demo\n";
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let path = dir.path().join("config/roster.yaml");
    std::fs::write(&path, roster).unwrap();
    let shown = exec
        .exec(&cmd("/fleet comms"), &actor(AclRole::Viewer))
        .unwrap();
    assert_eq!(
        shown,
        Outcome::Comms {
            mode: "tmux".into(),
            changed: false
        }
    );
    let err = exec
        .exec(&cmd("/fleet comms tmux"), &actor(AclRole::Operator))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::Forbidden {
                verb: "comms",
                needed: AclRole::Admin,
                ..
            }
        ),
        "{err:?}"
    );
    let err = exec
        .exec(&cmd("/fleet comms matrix"), &actor(AclRole::Admin))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("comms: matrix needs a connector of type matrix"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        roster,
        "nothing written"
    );
    let ChatInput::Invalid(bad) = parse("/fleet comms carrier-pigeon") else {
        panic!("an unknown mode is a parse error")
    };
    assert!(
        bad.message.contains("[possible values: tmux, matrix]"),
        "{bad:?}"
    );

    // Switching to the mode in use changes nothing, and keeps the file's comments.
    let admin = actor(AclRole::Admin);
    let outcome = exec.exec(&cmd("/fleet comms tmux"), &admin).unwrap();
    assert_eq!(
        outcome,
        Outcome::Comms {
            mode: "tmux".into(),
            changed: false
        }
    );
    let said = terminal(&outcome, false).stdout;
    assert!(said.starts_with("comms is tmux: "), "{said}");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written.starts_with("# my fleet\n") && written.contains("comms: tmux"),
        "{written}"
    );
}
