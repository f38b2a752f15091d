//! `mosaic fleet init`: non-interactive, interactive through a real terminal (a tmux pane), and
//! re-init that keeps the user's own changes.

mod support;
use mosaic_roster::Roster;
use support::*;

#[test]
fn every_shipped_preset_inits_without_a_terminal() {
    for preset in ["general", "coding", "research", "hybrid"] {
        let s = Sandbox::new();
        let out = s.init(preset);
        assert!(out.contains("Wrote "), "{out}");
        let roster = Roster::load(&s.roster_path()).unwrap();
        assert_eq!(
            roster
                .agents
                .iter()
                .filter(|a| a.role == mosaic_roster::Role::Orchestrator)
                .count(),
            1,
            "{preset}"
        );
        assert!(roster.agents.iter().all(|a| a.runtime == "demo"));
        assert_eq!(roster.tmux.socket, s.socket);
        assert!(s.config().join("roster.generated.yaml").exists());
    }
}

#[test]
fn a_missing_answer_without_a_terminal_names_the_flag() {
    let s = Sandbox::new();
    let err = s.fails(&["fleet", "init", "--name", "f"]);
    assert!(err.contains("no terminal to ask \"Configuration type\": pass --preset NAME (one of general, coding, research, hybrid, mos-discord)"), "{err}");
    let err = s.fails(&["fleet", "init", "--preset", "coding"]);
    assert!(
        err.contains("pass --name NAME (or --yes for the default)"),
        "{err}"
    );
    let err = s.fails(&[
        "fleet",
        "init",
        "--preset",
        "coding",
        "--yes",
        "--connector",
        "discord",
    ]);
    assert!(err.contains("pass --guild ID"), "{err}");
    let err = s.fails(&["fleet", "init", "--preset", "nope", "--yes"]);
    assert!(err.contains("no preset named \"nope\""), "{err}");
    assert!(!s.roster_path().exists());
}

#[test]
fn dry_run_shows_the_roster_and_writes_nothing() {
    let s = Sandbox::new();
    let out = s.ok(&s.init_args(&["--preset", "research", "--dry-run"]));
    assert!(
        out.contains("+- name: researcher-1") && out.contains("dry run: nothing written"),
        "{out}"
    );
    assert!(!s.roster_path().exists());
}

#[test]
fn dry_run_alone_needs_no_terminal_and_no_yes() {
    let s = Sandbox::new();
    let out = s.ok(&[
        "fleet",
        "init",
        "--preset",
        "coding",
        "--dry-run",
        "--socket",
        &s.socket,
    ]);
    assert!(
        out.contains("+- name: coder-1") && out.contains("dry run: nothing written"),
        "{out}"
    );
    assert!(!s.roster_path().exists());
}

#[test]
fn connector_answers_reference_secrets_never_inline_them() {
    let s = Sandbox::new();
    s.ok(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "discord",
        "--guild",
        "1112631390438166618",
        "--target",
        "1517622518662434996",
    ]));
    let roster = read(&s.roster_path());
    assert!(
        roster.contains("type: discord") && roster.contains("env: DISCORD_TOKEN"),
        "{roster}"
    );
    let out = s
        .command(&["fleet", "verify"])
        .env_remove("DISCORD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = text(&out.stdout);
    assert!(
        report.contains(
            "FAIL  connector 0 (discord) token: environment variable DISCORD_TOKEN is not set"
        ),
        "{report}"
    );
    let out = s
        .command(&["fleet", "verify"])
        .env(
            "DISCORD_TOKEN",
            "MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.not-a-real-token-value",
        )
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(
        report.contains(
            "ok    connector 0 (discord) token: environment variable DISCORD_TOKEN is set"
        ),
        "{report}"
    );
    assert!(
        !report.contains("MTExMjYzMTM5MDQzODE2NjYxOA.GaBcDe.not-a-real-token-value"),
        "a secret is never printed"
    );
}

#[test]
fn reinit_keeps_user_overrides_and_is_idempotent() {
    let s = Sandbox::new();
    s.init("coding");
    // The user edits the roster: a model for mos, an agent of their own, and drops `tester`.
    let edited = read(&s.roster_path())
        .replace("- name: mos\n  role: orchestrator\n", "- name: mos\n  role: orchestrator\n  model: opus-of-my-choice\n")
        .replace("- name: tester\n  role: worker\n  runtime: demo\n  instructions: You run the test suite, reproduce reported bugs and write failing tests for them.\n", "")
        + "- name: my-own\n  runtime: demo\n  env:\n    FOO: bar\n";
    std::fs::write(s.roster_path(), &edited).unwrap();
    Roster::load(&s.roster_path()).expect("the user's edit is valid");

    // Re-init with another preset: the preset part changes, the user's changes stay.
    let out = s.init("research");
    assert!(
        out.contains("-- name: coder-1") && out.contains("+- name: researcher-1"),
        "the diff is shown:\n{out}"
    );
    let roster = Roster::load(&s.roster_path()).unwrap();
    let names: Vec<&str> = roster.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["mos", "researcher-1", "researcher-2", "writer", "my-own"]
    );
    assert_eq!(
        roster.agent("mos").unwrap().model.as_deref(),
        Some("opus-of-my-choice")
    );
    assert!(
        roster
            .agent("mos")
            .unwrap()
            .instructions
            .as_deref()
            .unwrap()
            .contains("research fleet"),
        "untouched fields follow the new preset"
    );
    assert_eq!(roster.agent("my-own").unwrap().env["FOO"], "bar");

    // Running the same init again changes nothing.
    let before = (
        read(&s.roster_path()),
        read(&s.config().join("roster.generated.yaml")),
    );
    let out = s.init("research");
    assert!(out.contains("is up to date: nothing to change"), "{out}");
    assert_eq!(
        (
            read(&s.roster_path()),
            read(&s.config().join("roster.generated.yaml"))
        ),
        before
    );

    // Back to coding: an agent of the new preset comes back unless the user deletes it again.
    s.init("coding");
    let roster = Roster::load(&s.roster_path()).unwrap();
    let names: Vec<&str> = roster.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["mos", "coder-1", "coder-2", "reviewer", "tester", "my-own"]
    );
    assert_eq!(
        roster.agent("mos").unwrap().model.as_deref(),
        Some("opus-of-my-choice")
    );
}

#[test]
fn reinit_with_the_same_preset_keeps_a_deleted_agent_deleted() {
    let s = Sandbox::new();
    s.init("coding");
    let edited = read(&s.roster_path()).replace(
        "- name: tester\n  role: worker\n  runtime: demo\n  instructions: You run the test suite, reproduce reported bugs and write failing tests for them.\n",
        "",
    );
    std::fs::write(s.roster_path(), &edited).unwrap();
    let out = s.init("coding");
    assert!(out.contains("is up to date: nothing to change"), "{out}");
    assert!(
        Roster::load(&s.roster_path())
            .unwrap()
            .agent("tester")
            .is_none()
    );
    assert_eq!(read(&s.roster_path()), edited);
}

#[test]
fn user_presets_show_up_like_shipped_ones() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.config().join("presets")).unwrap();
    let mine = s
        .ok(&["fleet", "presets", "show", "coding"])
        .replace("Software development", "My team");
    std::fs::write(s.config().join("presets/team.yaml"), mine).unwrap();
    std::fs::write(
        s.config().join("presets/broken.yaml"),
        "version: 1\ndescription: x\nagents:\n  - name: a\n    runtime: demo\n",
    )
    .unwrap();
    let out = s.run(&["fleet", "presets"]);
    let list = text(&out.stdout);
    assert!(
        list.contains("team       My team") && list.contains("yours ("),
        "{list}"
    );
    let warn = text(&out.stderr);
    assert!(
        warn.contains("broken.yaml:4:3: agents: no agent has role: orchestrator"),
        "{warn}"
    );
    s.init("team");
    assert!(
        Roster::load(&s.roster_path())
            .unwrap()
            .agent("reviewer")
            .is_some()
    );
    assert!(
        s.fails(&["fleet", "presets", "show", "nope"])
            .contains("no preset named \"nope\"")
    );
}

/// The real wizard in a real terminal (a tmux pane), with no harness on PATH (so the demo agent
/// is offered).
struct Wizard<'a> {
    s: &'a Sandbox,
    term: Terminal,
}

impl<'a> Wizard<'a> {
    fn start(s: &'a Sandbox, socket: &str) -> Wizard<'a> {
        let empty_path = s.dir.path().join("bin");
        std::fs::create_dir_all(&empty_path).unwrap();
        let term = Terminal::start(
            s,
            "wizard",
            &["fleet", "init", "--socket", socket],
            &[("PATH", empty_path.display().to_string())],
        );
        Wizard { s, term }
    }

    fn roster(&self) -> Roster {
        Roster::load(&self.s.roster_path()).unwrap()
    }
}

impl std::ops::Deref for Wizard<'_> {
    type Target = Terminal;
    fn deref(&self) -> &Terminal {
        &self.term
    }
}

#[test]
fn the_interactive_wizard_picks_a_type_in_a_real_terminal() {
    let s = Sandbox::new();
    let w = Wizard::start(&s, "wiz-sock");
    w.wait("the name question", "Fleet name:");
    w.type_line("wizfleet");
    w.wait("the type question", "Configuration type:");
    assert!(w.screen().contains("general") && w.screen().contains("hybrid"));
    w.keys(&["Down"]); // general -> coding
    w.keys(&["Enter"]);
    w.wait("the note about the demo agent", "uses the demo agent");
    w.wait(
        "the connector question",
        "Chat connector for the orchestrator:",
    );
    w.keys(&["Enter"]); // none
    w.wait("the confirmation", "Write ");
    assert!(w.screen().contains("+fleet: wizfleet"), "{}", w.screen());
    w.type_line("y");
    w.wait("the roster", "Wrote ");
    let roster = w.roster();
    assert_eq!(roster.fleet, "wizfleet");
    assert_eq!(roster.tmux.socket, "wiz-sock");
    assert!(
        roster.agent("coder-1").is_some(),
        "the coding preset was picked"
    );
    assert!(roster.agents.iter().all(|a| a.runtime == "demo"));
}

#[test]
fn the_wizards_discord_branch_asks_for_the_ids_and_the_admin() {
    let s = Sandbox::new();
    let w = Wizard::start(&s, "wiz-discord");
    w.wait("the name question", "Fleet name:");
    w.type_line("mosfleet");
    w.wait("the type question", "Configuration type:");
    w.keys(&["Enter"]); // general
    w.wait(
        "the connector question",
        "Chat connector for the orchestrator:",
    );
    w.keys(&["Down"]); // none -> discord
    w.keys(&["Enter"]);
    w.wait("the guild question", "Discord server (guild) id:");
    w.type_line("1112631390438166618");
    w.wait("the channel question", "Discord channel ids");
    w.type_line("1517622518662434996");
    w.wait("the token question", "name of the environment variable");
    w.type_line(""); // the default, DISCORD_TOKEN
    w.wait("the admin question", "Your discord user id");
    w.type_line("123456789012345678");
    w.wait("the confirmation", "Write ");
    w.type_line("y");
    w.wait("the roster", "Wrote ");
    let roster = w.roster();
    let mosaic_discord::DiscordSettings {
        guild,
        channels,
        token,
    } = &discord_settings(&roster.connectors[0]);
    assert_eq!(guild, "1112631390438166618");
    assert_eq!(channels, &["1517622518662434996".to_owned()]);
    assert_eq!(token.env.as_deref(), Some("DISCORD_TOKEN"));
    assert_eq!(
        (
            roster.acl[0].connector.as_str(),
            roster.acl[0].user.as_str()
        ),
        ("discord", "123456789012345678")
    );
}

#[test]
fn the_mos_profile_without_an_admin_says_nobody_may_use_it_yet() {
    let s = Sandbox::new();
    let out = s.ok(&s.init_args(&["--profile", "mos-discord"]));
    assert!(
        out.contains("nobody may use the orchestrator from discord yet"),
        "{out}"
    );
    let roster = Roster::load(&s.roster_path()).unwrap();
    assert!(roster.acl.is_empty(), "deny by default");
    assert_eq!(roster.orchestrator().unwrap().name, "mos");
    assert!(
        roster.connectors[0].kind == "discord"
            && discord_settings(&roster.connectors[0]).guild == "1112631390438166618"
    );
    // Re-running with an admin adds it and keeps everything else.
    s.ok(&s.init_args(&["--profile", "mos-discord", "--admin", "123456789012345678"]));
    let roster = Roster::load(&s.roster_path()).unwrap();
    assert_eq!(roster.acl.len(), 1);
    assert_eq!(roster.acl[0].user, "123456789012345678");
}

/// A Discord entry's typed settings.
fn discord_settings(entry: &mosaic_roster::ConnectorEntry) -> mosaic_discord::DiscordSettings {
    serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(entry.settings.clone()))
        .expect("a discord entry")
}

/// Hardening issue, item 18c: re-running init with `--yes` (as the quick start does) changes only
/// what its answers change: the chat connector and the ACL stay.
#[test]
fn a_re_init_with_yes_keeps_the_connector_and_the_acl() {
    let s = Sandbox::new();
    s.ok(&s.init_args(&["--profile", "mos-discord", "--admin", "123456789012345678"]));
    s.ok(&s.init_args(&["--preset", "coding"]));
    let roster = Roster::load(&s.roster_path()).unwrap();
    assert_eq!(roster.connectors.len(), 1, "{:?}", roster.connectors);
    assert_eq!(roster.connectors[0].kind, "discord");
    assert_eq!(
        discord_settings(&roster.connectors[0]).channels,
        ["1517622518662434996"]
    );
    assert_eq!(roster.acl.len(), 1, "{:?}", roster.acl);
    assert_eq!(roster.acl[0].user, "123456789012345678");
    // An explicit answer still changes it.
    s.ok(&s.init_args(&["--preset", "coding", "--connector", "none"]));
    let roster = Roster::load(&s.roster_path()).unwrap();
    assert!(
        roster.connectors.is_empty() && roster.acl.is_empty(),
        "{roster:?}"
    );
}

/// A secret is read from one place: `--secret-env` and `--secret-file` together are refused
/// (the file used to win silently).
#[test]
fn a_secret_from_two_places_is_refused() {
    let s = Sandbox::new();
    let err = s.fails(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "discord",
        "--guild",
        "1112631390438166618",
        "--target",
        "1517622518662434996",
        "--secret-env",
        "MY_DISCORD_TOKEN",
        "--secret-file",
        "/etc/mosaic/discord.token",
    ]));
    assert!(
        err.contains("give --secret-env or --secret-file, not both"),
        "{err}"
    );
    assert!(!s.roster_path().exists(), "nothing written");
}

/// Connector flags answer the chosen connector's questions and nothing else: a flag of another
/// type, or one with no connector, is refused (it used to be ignored); on a re-init a flag
/// changes just its answer; `--connector none` removes a profile's connector and its ACL.
#[test]
fn connector_flags_change_only_their_answers_and_stray_ones_are_refused() {
    let s = Sandbox::new();
    let err = s.fails(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "testchat",
        "--testchat-dir",
        "/tmp/nowhere",
        "--target",
        "room",
        "--guild",
        "1112631390438166618",
    ]));
    assert!(
        err.contains("--guild is not a question of the testchat connector"),
        "{err}"
    );
    let err = s.fails(&s.init_args(&["--preset", "general", "--guild", "1"]));
    assert!(
        err.contains("but this fleet has none: add --connector TYPE"),
        "{err}"
    );
    let err =
        s.fails(&s.init_args(&["--preset", "general", "--connector", "none", "--guild", "1"]));
    assert!(err.contains("but --connector is none"), "{err}");
    assert!(!s.roster_path().exists(), "nothing written");

    s.ok(&s.init_args(&["--profile", "mos-discord", "--admin", "123456789012345678"]));
    // A re-init with one connector flag changes that answer and keeps the others.
    let out = s.ok(&s.init_args(&["--preset", "coding", "--target", "7777777777777777777"]));
    assert!(out.contains("Wrote "), "{out}");
    let roster = Roster::load(&s.roster_path()).unwrap();
    let discord = discord_settings(&roster.connectors[0]);
    assert_eq!(discord.channels, ["7777777777777777777"]);
    assert_eq!(discord.guild, "1112631390438166618");
    assert_eq!(roster.acl.len(), 1);
    // A hand edit of the connector (its own id, another guild) does not swallow a flag: the
    // flag's answer lands, the edit stays.
    let edited = read(&s.roster_path())
        .replace("- type: discord\n", "- type: discord\n  id: mydisc\n")
        .replace("connector: discord", "connector: mydisc")
        .replace(
            "guild: '1112631390438166618'",
            "guild: '1112631390438166619'",
        );
    std::fs::write(s.roster_path(), edited).unwrap();
    s.ok(&s.init_args(&["--preset", "coding", "--target", "8888888888888888888"]));
    let roster = Roster::load(&s.roster_path()).unwrap();
    let discord = discord_settings(&roster.connectors[0]);
    assert_eq!(discord.channels, ["8888888888888888888"]);
    assert_eq!(discord.guild, "1112631390438166619", "the hand edit stays");
    assert_eq!(roster.connectors[0].id(), "mydisc");
    assert_eq!(roster.acl[0].connector, "mydisc");
    // An admin needs a connector.
    let err = s.fails(&s.init_args(&["--preset", "coding", "--connector", "none", "--admin", "5"]));
    assert!(
        err.contains("--admin makes a user admin of a chat connector"),
        "{err}"
    );
    // The profile's own connector goes with --connector none, and the ACL with it.
    s.ok(&s.init_args(&["--profile", "mos-discord", "--connector", "none"]));
    let roster = Roster::load(&s.roster_path()).unwrap();
    assert!(
        roster.connectors.is_empty() && roster.acl.is_empty(),
        "{roster:?}"
    );
}

/// `--admin` is checked by the connector's platform before anything is written.
#[test]
fn an_admin_id_of_the_wrong_shape_is_refused() {
    let s = Sandbox::new();
    let err = s.fails(&s.init_args(&["--profile", "mos-discord", "--admin", "alice"]));
    assert!(
        err.contains("--admin \"alice\": a Discord user id is a number like"),
        "{err}"
    );
    assert!(!s.roster_path().exists(), "nothing written");
}
