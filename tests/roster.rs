//! The roster as the one source of truth: concurrent writers lose nothing, a failed add writes
//! nothing, stopping works with a broken roster, and the running bridge follows every change.

mod support;
use mosaic_bridge::events::Event;
use std::time::Duration;
use support::bridge::*;
use support::*;

#[test]
fn twenty_parallel_adds_keep_every_agent() {
    let s = Sandbox::new();
    s.init("general");
    let children: Vec<_> = (0..20)
        .map(|i| {
            s.command(&[
                "fleet",
                "add",
                &format!("w{i:02}"),
                "--runtime",
                "demo",
                "--no-start",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let roster = mosaic_roster::Roster::load(&s.roster_path()).unwrap();
    let workers = roster
        .agents
        .iter()
        .filter(|a| a.name.starts_with('w'))
        .count();
    assert_eq!(workers, 20, "{}", read(&s.roster_path()));
    assert_eq!(roster.agents.len(), 23);
    assert!(
        read(&s.roster_path()).starts_with("# mosaic roster"),
        "the header comment survives"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.roster_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the roster is private to its user");
    let leftovers: Vec<_> = std::fs::read_dir(s.config())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_add_that_cannot_start_writes_nothing_and_can_be_retried() {
    let s = Sandbox::new();
    s.init("general");
    let before = read(&s.roster_path());
    let workdir = s.home().join("project");
    let workdir_arg = workdir.display().to_string();
    let add = [
        "fleet",
        "add",
        "extra",
        "--runtime",
        "demo",
        "--workdir",
        &workdir_arg,
    ];
    let err = s.fails(&add);
    assert!(
        err.contains(&format!("working directory {workdir_arg} does not exist")),
        "{err}"
    );
    assert_eq!(read(&s.roster_path()), before, "nothing written");

    // A harness that is not installed: refused before writing, even without starting.
    let empty = tempfile::tempdir().unwrap();
    let out = s
        .command(&["fleet", "add", "coder", "--runtime", "claude", "--no-start"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("`claude` (Claude Code (Anthropic)) is not on PATH"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(read(&s.roster_path()), before, "nothing written");

    // Fixed, the same command simply works.
    std::fs::create_dir_all(&workdir).unwrap();
    let out = s.ok(&add);
    assert!(out.contains("extra: started"), "{out}");
}

/// Replaces the roster with one that does not validate.
fn break_roster(s: &Sandbox) {
    let broken = read(&s.roster_path()).replace("- name: helper\n", "- name: Helper\n");
    assert_ne!(broken, read(&s.roster_path()));
    std::fs::write(s.roster_path(), broken).unwrap();
}

#[test]
fn stop_works_with_a_broken_or_missing_roster() {
    let s = Sandbox::new();
    s.init("general");
    s.ok(&["fleet", "start"]);
    break_roster(&s);
    assert!(s.fails(&["fleet", "ps"]).contains("problem"));

    let out = s.run(&["fleet", "stop", "helper", "--timeout", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("roster.yaml:") && err.contains("stopping with the last good roster"),
        "says why and what it does: {err}"
    );
    assert!(text(&out.stdout).contains("helper: stopped"));
    let sessions: Vec<String> = s
        .tmux()
        .list_panes()
        .unwrap()
        .into_iter()
        .map(|p| p.session)
        .collect();
    assert_eq!(sessions, ["mos", "scout"]);

    std::fs::remove_file(s.roster_path()).unwrap();
    let out = s.run(&["fleet", "stop", "--timeout", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no roster at"),
        "{}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("mos: stopped") && stdout.contains("scout: stopped"),
        "{stdout}"
    );
    assert!(s.tmux().list_panes().unwrap_or_default().is_empty());
}

#[test]
fn an_orphan_session_is_stopped_by_name() {
    let s = Sandbox::new();
    s.init("general");
    s.ok(&["fleet", "start", "mos"]);
    s.stray_session("stray");
    let out = s.ok(&["fleet", "stop", "stray", "--timeout", "1"]);
    assert!(out.contains("stray: killed"), "{out}");
    assert_eq!(
        s.states()
            .into_iter()
            .filter(|(_, st)| st == "running")
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["mos"],
        "the rest of the fleet is untouched"
    );
    // A name that is neither in the roster nor running is still an error.
    assert!(
        s.fails(&["fleet", "stop", "ghost"])
            .contains("no agent named \"ghost\"")
    );
}

/// Waits (10 s at most) for an event that `pick` accepts.
fn wait_event<T>(
    h: &BridgeHarness,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    pick: impl Fn(Event) -> Option<T>,
) -> T {
    h.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Ok(e) = events.recv().await
                    && let Some(t) = pick(e)
                {
                    return t;
                }
            }
        })
        .await
    })
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Whether the audit log has a record of `user` running `line` with `outcome`.
fn audited(h: &BridgeHarness, user: &str, line: &str, outcome: &str) -> bool {
    h.audit()
        .iter()
        .any(|r| r["user"] == user && r["command"] == line && r["outcome"] == outcome)
}

const NEWBIE: &str = "- {connector: telegram, user: newbie-1, role: viewer}\n";

#[test]
fn a_hand_edit_of_the_acl_takes_effect_without_a_restart() {
    let h = BridgeHarness::new("");
    let mut events = h.bridge.events();
    h.post("newbie-1", "/fleet ps");
    wait_for("the refusal", || {
        audited(&h, "newbie-1", "/fleet ps", "refused: user not in the acl")
    });

    let roster = read(&h.s.roster_path()).replace("acl:\n", &format!("acl:\n{NEWBIE}"));
    std::fs::write(h.s.roster_path(), roster).unwrap();
    let agents = wait_event(&h, &mut events, "roster_changed", |e| match e {
        Event::RosterChanged { agents } => Some(agents),
        _ => None,
    });
    assert_eq!(agents, ["mos", "helper", "scout"]);

    h.post("newbie-1", "/fleet status");
    wait_for("the new viewer's command to run", || {
        audited(&h, "newbie-1", "/fleet status", "ok")
    });
    h.wait_sent("3 agents");
}

#[test]
fn an_invalid_edit_keeps_the_last_good_roster_and_says_where_it_is_wrong() {
    let h = BridgeHarness::new("");
    let mut events = h.bridge.events();
    let good = read(&h.s.roster_path()).replace("acl:\n", &format!("acl:\n{NEWBIE}"));
    std::fs::write(h.s.roster_path(), &good).unwrap();
    wait_event(&h, &mut events, "roster_changed", |e| {
        matches!(e, Event::RosterChanged { .. }).then_some(())
    });

    // Broken: newbie-1 is dropped from the ACL, and an agent name is invalid.
    let broken = good
        .replace(NEWBIE, "")
        .replace("- name: helper\n", "- name: Helper\n");
    let line = broken.lines().position(|l| l == "- name: Helper").unwrap() + 1;
    std::fs::write(h.s.roster_path(), &broken).unwrap();
    let problems = wait_event(&h, &mut events, "roster_invalid", |e| match e {
        Event::RosterInvalid { problems } => Some(problems),
        _ => None,
    });
    let at = format!("{}:{line}:", h.s.roster_path().display());
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&at) && p.contains("agents[1].name")),
        "{problems:?} should point at {at}"
    );

    // The last good roster is still in use: newbie-1 may still look.
    h.post("newbie-1", "/fleet presets");
    wait_for("the command under the last good roster", || {
        audited(&h, "newbie-1", "/fleet presets", "ok")
    });

    // Fixed: the fix is what counts now.
    std::fs::write(h.s.roster_path(), broken.replace("Helper", "helper")).unwrap();
    wait_event(&h, &mut events, "roster_changed", |e| {
        matches!(e, Event::RosterChanged { .. }).then_some(())
    });
    h.post("newbie-1", "/fleet ps");
    wait_for("the refusal", || {
        audited(&h, "newbie-1", "/fleet ps", "refused: user not in the acl")
    });
}

/// Runs `mosaic fleet ps` on roster `text`; fails the test if it takes more than 5 s (a generous
/// bound: the checks take milliseconds, the old parser took minutes).
fn ps_on(s: &Sandbox, roster: &[u8]) -> String {
    std::fs::write(s.roster_path(), roster).unwrap();
    let mut child = s
        .command(&["fleet", "ps"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fleet ps hung on the roster");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    text(&out.stderr)
}

#[test]
fn huge_deep_and_malformed_rosters_are_refused_fast_with_positions() {
    let s = Sandbox::new();
    s.init("general");
    let good = read(&s.roster_path());
    // 500 KB of nested flow sequences.
    let nested = format!(
        "version: 1\nagents: {}{}\n",
        "[".repeat(250_000),
        "]".repeat(250_000)
    );
    let err = ps_on(&s, nested.as_bytes());
    assert!(
        err.contains("roster.yaml:2:41: (document): nested more than 32 levels deep"),
        "{err}"
    );
    // Deep block nesting.
    let mut block = String::from("version: 1\nagents:\n");
    for i in 0..200 {
        block.push_str(&format!("{}- a:\n", "  ".repeat(i)));
    }
    let err = ps_on(&s, block.as_bytes());
    assert!(err.contains("nested more than 32 levels deep"), "{err}");
    // Over the size cap, even if it were valid.
    let huge = format!("{good}\n# {}\n", "x".repeat(1_100_000));
    let err = ps_on(&s, huge.as_bytes());
    assert!(err.contains("larger than 1024 KiB"), "{err}");
    // Invalid UTF-8 names the byte.
    let mut bad = b"version: 1\nfleet: f\nagents: []\nx: ab".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, b'\n']);
    let err = ps_on(&s, &bad);
    assert!(
        err.contains("roster.yaml:4:6: (document): invalid UTF-8 at byte 36 (line 4, column 6)"),
        "{err}"
    );
    // A tab in the indentation is named as a tab, where it is.
    let tabbed = good.replacen("\n  role: worker", "\n\trole: worker", 1);
    let line = tabbed[..tabbed.find('\t').unwrap()].matches('\n').count() + 1;
    let err = ps_on(&s, tabbed.as_bytes());
    assert!(
        err.contains(&format!("roster.yaml:{line}:1: "))
            && err.contains("tabs are not allowed for indentation"),
        "{err}"
    );
    // Stopping still works (from the last good copy), and a fixed roster is taken again.
    std::fs::write(s.roster_path(), &good).unwrap();
    s.ok(&["fleet", "ps"]);
}
