//! Every shipped preset is valid and round-trips through roster.yaml unchanged.

use mosaic_roster::*;

fn answers() -> InitAnswers {
    InitAnswers {
        fleet: "f".into(),
        orchestrator_runtime: None,
        worker_runtime: Some("demo".into()),
        comms: CommsMode::Tmux,
        socket: "sock".into(),
        connectors: vec![Connector::Discord {
            guild: "1112631390438166618".into(),
            channels: vec!["1517622518662434996".into()],
            token: SecretRef::env("DISCORD_TOKEN"),
        }],
        acl: vec![AclEntry {
            connector: "discord".into(),
            user: "42".into(),
            role: AclRole::Admin,
        }],
    }
}

#[test]
fn shipped_presets_are_the_four_types_and_each_has_one_orchestrator() {
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
    let (presets, _) = all_presets(None);
    let mos = presets.iter().find(|p| p.name == "mos-discord").unwrap();
    assert_eq!(mos.spec.agents[0].name, "mos");
    assert_eq!(mos.spec.agents[0].role, Role::Orchestrator);
    let Connector::Discord {
        guild,
        channels,
        token,
    } = &mos.spec.connectors[0]
    else {
        panic!()
    };
    assert_eq!(
        (guild.as_str(), channels.as_slice()),
        (
            "1112631390438166618",
            &["1517622518662434996".to_owned()][..]
        )
    );
    assert_eq!(token, &SecretRef::env("DISCORD_TOKEN"));
    let answers = InitAnswers {
        connectors: vec![],
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
