//! Every shipped preset is valid and round-trips through roster.yaml unchanged. (Here, where the
//! Discord connector type is registered, since the `mos-discord` profile wires one.)

use mosaic_discord::DiscordSettings;
use mosaic_roster::*;

fn discord(settings: &DiscordSettings) -> ConnectorEntry {
    mosaic_connector::registry::register(&mosaic_discord::TYPE);
    match serde_yaml_ng::to_value(settings).unwrap() {
        serde_yaml_ng::Value::Mapping(m) => ConnectorEntry::new("discord", m),
        _ => unreachable!(),
    }
}

fn discord_settings(entry: &ConnectorEntry) -> DiscordSettings {
    serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(entry.settings.clone())).unwrap()
}

fn answers() -> InitAnswers {
    InitAnswers {
        fleet: "f".into(),
        orchestrator_runtime: None,
        worker_runtime: Some("demo".into()),
        comms: CommsMode::Tmux,
        socket: "sock".into(),
        connectors: Some(vec![discord(&DiscordSettings {
            guild: "1112631390438166618".into(),
            channels: vec!["1517622518662434996".into()],
            token: SecretRef::env("DISCORD_TOKEN"),
        })]),
        acl: vec![AclEntry {
            connector: "discord".into(),
            user: "42".into(),
            role: AclRole::Admin,
        }],
    }
}

#[test]
fn shipped_presets_are_the_four_types_and_each_has_one_orchestrator() {
    mosaic_connector::registry::register(&mosaic_discord::TYPE);
    let (presets, errors) = all_presets(None);
    assert!(errors.is_empty());
    let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["general", "coding", "research", "hybrid", "mos-discord"]
    );
    for p in &presets {
        assert_eq!(
            p.spec
                .agents
                .iter()
                .filter(|a| a.role == Role::Orchestrator)
                .count(),
            1,
            "{}",
            p.name
        );
        assert!(
            p.spec.agents.len() >= 3,
            "{} recommends a real team",
            p.name
        );
    }
}

#[test]
fn every_preset_round_trips_through_yaml() {
    mosaic_connector::registry::register(&mosaic_discord::TYPE);
    for preset in all_presets(None).0 {
        let roster = preset.instantiate(&answers());
        assert!(
            roster.validate().is_empty(),
            "{}: {:?}",
            preset.name,
            roster.validate()
        );
        assert!(
            roster
                .agents
                .iter()
                .filter(|a| a.role == Role::Worker)
                .all(|a| a.runtime == "demo")
        );
        let text = roster.to_yaml();
        let back = Roster::parse(&text, "round-trip")
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", preset.name));
        assert_eq!(back, roster, "{}", preset.name);
        assert_eq!(back.to_yaml(), text);
    }
}

#[test]
fn the_mos_profile_wires_mos_to_its_discord_channel() {
    mosaic_connector::registry::register(&mosaic_discord::TYPE);
    let (presets, _) = all_presets(None);
    let mos = presets.iter().find(|p| p.name == "mos-discord").unwrap();
    assert_eq!(mos.spec.agents[0].name, "mos");
    assert_eq!(mos.spec.agents[0].role, Role::Orchestrator);
    let DiscordSettings {
        guild,
        channels,
        token,
    } = &discord_settings(&mos.spec.connectors[0]);
    assert_eq!(
        (guild.as_str(), channels.as_slice()),
        (
            "1112631390438166618",
            &["1517622518662434996".to_owned()][..]
        )
    );
    assert_eq!(token, &SecretRef::env("DISCORD_TOKEN"));
    let answers = InitAnswers {
        connectors: None,
        ..answers()
    };
    let roster = mos.instantiate(&answers);
    assert_eq!(
        roster.connectors, mos.spec.connectors,
        "a profile brings its connectors"
    );
    assert!(roster.validate().is_empty());
}

#[test]
fn user_presets_replace_shipped_ones_by_name_and_bad_ones_are_reported() {
    mosaic_connector::registry::register(&mosaic_discord::TYPE);
    let dir = tempfile::tempdir().unwrap();
    let coding = SHIPPED.iter().find(|(n, _)| *n == "coding").unwrap().1;
    std::fs::write(
        dir.path().join("coding.yaml"),
        coding.replace("Software development", "Ours"),
    )
    .unwrap();
    std::fs::write(dir.path().join("ops.yml"), coding).unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "version: 1\ndescription: x\nagents: []\nextra: 1\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let (presets, errors) = all_presets(Some(dir.path()));
    let coding = presets.iter().find(|p| p.name == "coding").unwrap();
    assert!(coding.spec.description.starts_with("Ours"));
    assert!(matches!(coding.source, PresetSource::User(_)));
    assert!(presets.iter().any(|p| p.name == "ops"));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("bad.yaml:4:1: extra: unknown field `extra`"),
        "{}",
        errors[0]
    );
}

const GOOD: &str =
    "version: 1\nfleet: f\nagents:\n  - name: mos\n    role: orchestrator\n    runtime: demo\n";

fn problems(text: &str) -> Vec<String> {
    mosaic_connector::registry::register(&mosaic_discord::TYPE);
    Roster::parse(text, "roster.yaml")
        .err()
        .map(|e| e.briefs())
        .unwrap_or_default()
}

/// Moved from the roster crate: the Discord entry's own checks, positioned in the file.
#[test]
fn inline_secrets_are_rejected() {
    let text = format!(
        "{GOOD}connectors:\n  - type: discord\n    guild: \"1\"\n    channels: [\"x\"]\n    token: {{}}\n"
    );
    let p = problems(&text);
    assert_eq!(
        p,
        vec![
            "10:16 connectors[0].channels[0] Discord channel id \"x\" must be numeric",
            "11:12 connectors[0].token name where the secret is: `{env: VAR}` or `{file: PATH}`",
        ]
    );
    let text = format!(
        "{GOOD}connectors:\n  - type: discord\n    guild: \"1\"\n    channels: [\"2\"]\n    token: \"123:abc\"\n"
    );
    assert_eq!(
        problems(&text),
        vec![
            "11:12 connectors[0].token a secret is never written in roster.yaml; name where it is: `{env: VAR}` or `{file: PATH}`"
        ]
    );
}

#[test]
fn unknown_fields_types_and_duplicate_ids_are_positioned() {
    let text = format!(
        "{GOOD}connectors:\n  - type: discord\n    guild: \"1\"\n    channels: [\"2\"]\n    token: {{env: T}}\n    colour: red\n  - type: telegrm\n    chats: [1]\n"
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("12:13 connectors[0].colour unknown field `colour`, expected one of `guild`, `channels`, `token`"), "{p:?}");
    assert!(
        p[1].starts_with(
            "13:11 connectors[1].type unknown connector type \"telegrm\"; this build of mosaic has:"
        ) && p[1].contains("discord"),
        "{p:?}"
    );
    let two = format!(
        "{GOOD}connectors:\n  - type: discord\n    guild: \"1\"\n    channels: [\"2\"]\n    token: {{env: T}}\n  - type: discord\n    guild: \"3\"\n    channels: [\"4\"]\n    token: {{env: U}}\n"
    );
    let p = problems(&two);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("connectors[1].id connector id \"discord\" is already used by connectors[0]"),
        "{p:?}"
    );
    let fixed = two.replace(
        "  - type: discord\n    guild: \"3\"",
        "  - type: discord\n    id: second-bot\n    guild: \"3\"",
    );
    assert_eq!(problems(&fixed), Vec::<String>::new());
}

/// No connector may take the id of mosaic's own local chat, whose one user is an admin.
#[test]
fn the_local_connector_id_is_reserved_and_secret_maps_take_only_env_or_file() {
    let local = format!(
        "{GOOD}connectors:\n  - type: discord\n    id: local\n    guild: \"1\"\n    channels: [\"2\"]\n    token: {{env: T}}\n"
    );
    let p = problems(&local);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("9:9 connectors[0].id the connector id \"local\" is mosaic's own chat"),
        "{p:?}"
    );
    let extra = format!(
        "{GOOD}connectors:\n  - type: discord\n    guild: \"1\"\n    channels: [\"2\"]\n    token: {{env: T, value: tc-SECRETVALUE}}\n"
    );
    let p = problems(&extra);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("connectors[0].token a secret is never written in roster.yaml")
            && !p[0].contains("SECRETVALUE"),
        "{p:?}"
    );
}

#[test]
fn an_empty_room_id_is_a_problem() {
    let text = format!(
        "{GOOD}connectors:\n  - type: discord\n    guild: \"1\"\n    channels: [\"\"]\n    token: {{env: T}}\n"
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|p| p.contains("connectors[0].channels[0] an empty room id bridges nothing")),
        "{p:?}"
    );
}

/// An ACL entry's user id has the platform's shape: a Discord id is a number.
#[test]
fn an_acl_user_that_is_no_discord_id_is_a_problem() {
    let roster = |user: &str| {
        format!(
            "{GOOD}connectors:\n  - type: discord\n    guild: \"1\"\n    channels: [\"2\"]\n    token: {{env: T}}\nacl:\n  - connector: discord\n    user: \"{user}\"\n    role: admin\n"
        )
    };
    let p = problems(&roster("alice"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("acl[0].user a Discord user id is a number like"),
        "{p:?}"
    );
    assert!(problems(&roster("123456789012345678")).is_empty());
}
