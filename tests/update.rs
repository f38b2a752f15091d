//! `fleet versions` and `fleet update` end to end: real tmux, the real daemon, and a test
//! harness, `fakeh`: a script that prints the version written in a file and otherwise runs the
//! demo agent, with a manifest whose `update` command writes the version asked for (no network).
//! A version `9.9.9` is a broken build: it exits at once. Its manifest resumes sessions
//! (`--resume UUID`, from the hooks' `session_id`); it exits at once for a session it does not
//! have, as Claude Code does.

mod support;
use mosaic_testchat::{post, posted};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::*;

/// The fake harness's directory (on `PATH` for every command of the test).
struct Fakeh {
    bin: PathBuf,
}

impl Fakeh {
    /// Installs `fakeh` at version `installed`, with `latest` as the newest version, and its
    /// manifest in the sandbox's harness directory.
    fn install(s: &Sandbox, installed: &str, latest: &str) -> Fakeh {
        let bin = s.dir.path().join("fakeh-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let b = bin.display();
        let script = |name: &str, body: String| {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "fakeh",
            format!(
                "V=$(cat '{b}/version')\n\
                 if [ \"$1\" = --version ] && [ -e '{b}/garbled' ]; then echo fakeh; exit 0; fi\n\
                 if [ \"$1\" = --version ]; then echo \"fakeh $V\"; exit 0; fi\n\
                 if [ \"$V\" = 9.9.9 ]; then echo \"fakeh $V: broken build\"; exit 3; fi\n\
                 echo \"$V $*\" >> '{b}/launches'\n\
                 if [ \"$3\" = --resume ] && [ ! -e \"{b}/sessions/$4\" ]; then\n\
                   echo \"No conversation found with session ID: $4\"; exit 1\n\
                 fi\n\
                 exec '{MOSAIC}' demo-agent --name \"$2\"\n"
            ),
        );
        script("fakeh-latest", format!("cat '{b}/latest'\n"));
        script(
            "fakeh-install",
            // A chatty installer (npm is one): 200 KB of output, more than a pipe holds.
            // `offline`: it fails and changes nothing (npm without a network); `slow`: it takes
            // a minute.
            format!(
                "echo \"installing $1\"\n\
                 if [ -e '{b}/offline' ]; then echo 'npm ERR! network ENOTFOUND' >&2; exit 1; fi\n\
                 if [ -e '{b}/slow' ]; then sleep 60; fi\n\
                 head -c 200000 /dev/zero | tr '\\0' x\n\
                 printf '%s\\n' \"$1\" > '{b}/version'\n"
            ),
        );
        std::fs::write(bin.join("version"), format!("{installed}\n")).unwrap();
        std::fs::write(bin.join("latest"), format!("{latest}\n")).unwrap();
        let manifests = s.config().join("harnesses");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(
            manifests.join("fakeh.yaml"),
            "name: fakeh\n\
             description: test harness (the demo agent behind a versioned script)\n\
             launch:\n  command: [fakeh, --name, \"{agent}\"]\n\
             version:\n  args: [--version]\n\
             ready:\n  screen: \"demo> \"\n\
             exit:\n  text: /exit\n\
             hooks:\n  started: idle\n  busy: busy\n  idle: idle\n\
             screen:\n  idle_prompt: \"demo> \"\n\
             resume:\n  args: [--resume, \"{session}\"]\n  from: session_id\n  check: uuid\n\
             package:\n  latest: [fakeh-latest]\n\
             update: [fakeh-install, \"{version}\"]\n",
        )
        .unwrap();
        Fakeh { bin }
    }

    /// `PATH` with the fake harness first.
    fn path(&self) -> String {
        format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap())
    }

    fn version(&self) -> String {
        read(&self.bin.join("version")).trim().to_owned()
    }

    /// The version each launch of `agent` ran.
    fn launches(&self, agent: &str) -> Vec<String> {
        self.command_lines(agent)
            .into_iter()
            .map(|words| words[0].clone())
            .collect()
    }

    /// Each launch of `agent`: its version, then its arguments.
    fn command_lines(&self, agent: &str) -> Vec<Vec<String>> {
        read_opt(&self.bin.join("launches"))
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .filter(|w| w.get(2).is_some_and(|a| a == agent))
            .collect()
    }

    /// Turns a behaviour of the scripts on (`offline`, `slow`, `garbled`).
    fn set(&self, flag: &str) {
        std::fs::write(self.bin.join(flag), "").unwrap();
    }

    /// Makes `id` a conversation `fakeh` can resume.
    fn keep_session(&self, id: &str) {
        std::fs::create_dir_all(self.bin.join("sessions")).unwrap();
        std::fs::write(self.bin.join("sessions").join(id), "").unwrap();
    }
}

/// A fleet of the general preset whose agents all run `fakeh` (1.0.0, newest 2.0.0 unless
/// `latest` says otherwise), with its daemon up; chat from a testchat room, `ann` its admin.
fn fleet(s: &Sandbox, latest: &str) -> (Fakeh, Up, tempfile::TempDir) {
    fleet_with(s, latest, "", &[])
}

/// [`fleet`] with `roster_extra` appended to the roster and `env` for the daemon.
fn fleet_with(
    s: &Sandbox,
    latest: &str,
    roster_extra: &str,
    env: &[(&str, &str)],
) -> (Fakeh, Up, tempfile::TempDir) {
    let fakeh = Fakeh::install(s, "1.0.0", latest);
    let room = tempfile::tempdir().unwrap();
    let dir = room.path().display().to_string();
    s.ok(&s.init_args(&[
        "--preset",
        "general",
        "--connector",
        "testchat",
        "--testchat-dir",
        &dir,
        "--target",
        "lobby",
        "--admin",
        "ann",
    ]));
    std::fs::write(room.path().join("token"), "tc-secret\n").unwrap();
    let roster = read(&s.roster_path()).replace("runtime: demo", "runtime: fakeh") + roster_extra;
    std::fs::write(s.roster_path(), roster).unwrap();
    let up = up(s, &fakeh, env);
    wait_for("every agent idle", || {
        ["mos", "helper", "scout"]
            .iter()
            .all(|a| s.activity(a).0 == "idle")
    });
    (fakeh, up, room)
}

/// `mosaic up` with the fake harness on `PATH`, once its fleet has started.
fn up(s: &Sandbox, fakeh: &Fakeh, env: &[(&str, &str)]) -> Up {
    let _ = std::fs::remove_file(s.state().join("daemon.json"));
    let up = Up(s
        .command(&["up", "--listen", "127.0.0.1:0"])
        .env("PATH", fakeh.path())
        .env("TESTCHAT_TOKEN", "tc-secret")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    wait_for_secs("the daemon and its fleet", DAEMON_START_SECS, || {
        read_opt(&s.state().join("daemon.json")).contains(r#""fleet":"started""#)
    });
    up
}

/// Reports a hook event for `agent` as its harness would (`mosaic hook`, with its own token).
fn hook(s: &Sandbox, path: &str, agent: &str, event: &str) {
    let token = read(&s.state().join("agents").join(agent).join("token"));
    let out = s
        .command(&["hook", "--agent", agent, event])
        .env("PATH", path)
        .env("MOSAIC_AGENT_TOKEN", format!("{agent}:{}", token.trim()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn run(s: &Sandbox, fakeh: &Fakeh, args: &[&str]) -> std::process::Output {
    s.command(args).env("PATH", fakeh.path()).output().unwrap()
}

#[test]
fn versions_show_the_installed_and_newest_version_the_source_and_the_agents() {
    let s = Sandbox::new();
    let (fakeh, _up, _room) = fleet(&s, "2.0.0");
    let out = run(&s, &fakeh, &["fleet", "versions", "fakeh", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &json["harnesses"][0];
    assert_eq!(v["harness"], "fakeh");
    assert_eq!(v["installed"], "1.0.0");
    assert_eq!(v["latest"], "2.0.0");
    assert_eq!(v["source"]["kind"], "other");
    assert_eq!(v["agents"], serde_json::json!(["mos", "helper", "scout"]));
    let table = text(&run(&s, &fakeh, &["fleet", "versions", "fakeh"]).stdout);
    assert!(table.contains("2.0.0 (new)"), "{table}");
    let verify = text(&run(&s, &fakeh, &["fleet", "verify"]).stdout);
    assert!(
        verify.contains("warn  harness fakeh version: 1.0.0; 2.0.0 is available"),
        "{verify}"
    );
    // Offline (the newest version cannot be asked): unknown, never an error.
    std::fs::remove_file(fakeh.bin.join("fakeh-latest")).unwrap();
    let out = run(&s, &fakeh, &["fleet", "versions", "fakeh"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("unknown"),
        "{}",
        text(&out.stdout)
    );
}

/// The success path: a busy agent holds the update until its turn ends, chat messages wait and
/// are delivered once after it, every agent runs the new version, the orchestrator restarted
/// last.
#[test]
fn an_update_waits_for_turns_installs_restarts_and_delivers_what_waited() {
    let s = Sandbox::new();
    let (fakeh, _up, room) = fleet(&s, "2.0.0");
    let path = fakeh.path();
    hook(&s, &path, "helper", "busy");
    let update = s
        .command(&["fleet", "update", "fakeh"])
        .env("PATH", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While helper works, the update waits, and so does chat.
    wait_for("the update to hold deliveries", || {
        s.state().join("update.lock").exists()
    });
    // Chat is told before (the update runs in the terminal, the daemon tells the rooms).
    wait_for("the rooms told of the update", || {
        posted(room.path(), "lobby").iter().any(|t| {
            t.starts_with("fakeh: updating 1.0.0 → 2.0.0: helper, scout, mos finish their turns")
        })
    });
    post(room.path(), "lobby", "ann", "said during the update");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        fakeh.version(),
        "1.0.0",
        "nothing installed while helper works"
    );
    assert!(
        !s.transcript("mos")
            .iter()
            .any(|t| t.ends_with("said during the update")),
        "chat waits for the update"
    );
    hook(&s, &path, "helper", "idle");
    let out = update.wait_with_output().unwrap();
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    assert!(report.contains("fakeh: updated 1.0.0 → 2.0.0"), "{report}");
    // ... and after.
    wait_for("the rooms told it is done", || {
        posted(room.path(), "lobby")
            .iter()
            .any(|t| t == "fakeh: updated 1.0.0 → 2.0.0")
    });
    assert_eq!(fakeh.version(), "2.0.0");
    assert!(
        read(&s.state().join("update-install.log")).starts_with("installing 2.0.0"),
        "the installer's output is kept"
    );
    for agent in ["mos", "helper", "scout"] {
        assert_eq!(fakeh.launches(agent), ["1.0.0", "2.0.0"], "{agent}");
    }
    let steps = text(&out.stderr);
    let stopped = steps.lines().find(|l| l.contains("stopped ")).unwrap();
    assert!(stopped.ends_with("mos"), "the orchestrator last: {stopped}");
    wait_for("the message that waited", || {
        s.transcript("mos")
            .iter()
            .any(|t| t.ends_with("said during the update"))
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let got = s
        .transcript("mos")
        .iter()
        .filter(|t| t.ends_with("said during the update"))
        .count();
    assert_eq!(got, 1, "delivered once");
    let versions = text(&run(&s, &fakeh, &["fleet", "versions", "fakeh"]).stdout);
    assert!(versions.contains("2.0.0"), "{versions}");
    // `ps --json` shows the version each agent's harness had when last asked.
    assert_eq!(s.agent_row("helper")["harness_version"], "2.0.0");
}

#[test]
fn a_new_version_that_does_not_start_is_rolled_back() {
    let s = Sandbox::new();
    let (fakeh, _up, _room) = fleet(&s, "9.9.9");
    let out = run(&s, &fakeh, &["fleet", "update", "fakeh"]);
    let report = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{report}\n{}",
        text(&out.stderr)
    );
    assert!(
        report.contains("fakeh: FAILED, rolled back to 1.0.0")
            && report.contains("exited at start"),
        "{report}"
    );
    assert_eq!(fakeh.version(), "1.0.0");
    for agent in ["mos", "helper", "scout"] {
        assert_eq!(fakeh.launches(agent).last().unwrap(), "1.0.0", "{agent}");
    }
    wait_for("every agent running again", || {
        s.states().iter().all(|(_, state)| state == "running")
    });
}

#[test]
fn a_busy_agent_holds_the_update_unless_forced() {
    let s = Sandbox::new();
    let (fakeh, _up, _room) = fleet(&s, "2.0.0");
    hook(&s, &fakeh.path(), "scout", "busy");
    let out = run(&s, &fakeh, &["fleet", "update", "--drain", "1"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("not updated: scout still busy"), "{report}");
    assert_eq!(fakeh.version(), "1.0.0");
    assert_eq!(fakeh.launches("scout"), ["1.0.0"], "scout was not touched");
    let dry = run(&s, &fakeh, &["fleet", "update", "--dry-run"]);
    assert!(
        text(&dry.stdout).contains("would update 1.0.0 → 2.0.0"),
        "{}",
        text(&dry.stdout)
    );
    let out = run(&s, &fakeh, &["fleet", "update", "--drain", "1", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("--force: cutting the turns of scout"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fakeh.version(), "2.0.0");
    // Already there: nothing to do.
    let again = run(&s, &fakeh, &["fleet", "update", "fakeh"]);
    assert!(
        text(&again.stdout).contains("2.0.0 is the newest; nothing to do"),
        "{}",
        text(&again.stdout)
    );
}

/// From chat an update is an admin's, and waits for `/fleet confirm`.
#[test]
fn an_update_from_chat_asks_for_confirmation() {
    let s = Sandbox::new();
    let (fakeh, _up, room) = fleet(&s, "2.0.0");
    let dir: &Path = room.path();
    post(dir, "lobby", "ann", "/fleet update fakeh");
    let code = confirmation_code(dir, "lobby");
    assert_eq!(fakeh.version(), "1.0.0", "nothing before the confirmation");
    post(dir, "lobby", "ann", &format!("/fleet confirm {code}"));
    wait_for_secs("the update's report in the room", 60, || {
        posted(dir, "lobby")
            .iter()
            .any(|t| t.contains("updated 1.0.0 → 2.0.0"))
    });
    assert_eq!(fakeh.version(), "2.0.0");
}

/// Each launch goes back to the session the agent's hooks named; one that cannot be resumed is
/// forgotten and the agent started afresh; `resume: false` starts afresh always.
#[test]
fn a_restart_resumes_the_kept_session_and_starts_afresh_when_it_is_gone() {
    let s = Sandbox::new();
    let (fakeh, _up, _room) = fleet(&s, "2.0.0");
    let path = fakeh.path();
    let kept = s.state().join("agents/helper/session");
    let known = "0b6d2a0e-5f7c-4a53-9a4e-4d2f9c0e8b11";
    fakeh.keep_session(known);
    // Not a UUID: never kept (Claude Code would open a picker with it).
    hook(
        &s,
        &path,
        "helper",
        r#"{"hook_event_name": "idle", "session_id": "../x"}"#,
    );
    assert!(!kept.exists());
    hook(
        &s,
        &path,
        "helper",
        &format!(r#"{{"hook_event_name": "idle", "session_id": "{known}"}}"#),
    );
    assert_eq!(read(&kept), known);
    let out = run(&s, &fakeh, &["fleet", "restart", "helper"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let last = fakeh.command_lines("helper").pop().unwrap();
    assert_eq!(last[3..], ["--resume", known], "{last:?}");

    // A session the harness no longer has: one failed launch, then afresh; forgotten.
    let gone = "9f1c7a52-0d1e-4f0b-8a65-2b1f3c4d5e6f";
    hook(
        &s,
        &path,
        "helper",
        &format!(r#"{{"hook_event_name": "idle", "session_id": "{gone}"}}"#),
    );
    let out = run(&s, &fakeh, &["fleet", "restart", "helper"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let lines = fakeh.command_lines("helper");
    let n = lines.len();
    assert_eq!(lines[n - 2][3..], ["--resume", gone]);
    assert_eq!(lines[n - 1].len(), 3, "afresh: {:?}", lines[n - 1]);
    assert!(!kept.exists(), "the gone session is forgotten");
    assert_eq!(s.agent_row("helper")["state"], "running");

    // `resume: false`: never resumed.
    let roster =
        read(&s.roster_path()).replacen("- name: helper\n", "- name: helper\n  resume: false\n", 1);
    std::fs::write(s.roster_path(), roster).unwrap();
    hook(
        &s,
        &path,
        "helper",
        &format!(r#"{{"hook_event_name": "idle", "session_id": "{known}"}}"#),
    );
    let out = run(&s, &fakeh, &["fleet", "restart", "helper"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(fakeh.command_lines("helper").pop().unwrap().len(), 3);
}

/// `update: {check: daily}`: the daemon tells the rooms about a new version, once per version.
#[test]
fn the_daily_check_tells_the_rooms_once_per_new_version() {
    let s = Sandbox::new();
    let now = [("MOSAIC_FIRST_UPDATE_CHECK_SECS", "0")];
    let (fakeh, first, room) = fleet_with(&s, "2.0.0", "update:\n  check: daily\n", &now);
    let told = |version: &str| {
        posted(room.path(), "lobby")
            .iter()
            .filter(|t| t.starts_with(&format!("fakeh {version} is available (installed: 1.0.0")))
            .count()
    };
    wait_for("the announcement", || told("2.0.0") == 1);
    assert!(
        read_opt(&s.state().join("local-room.jsonl")).contains("fakeh 2.0.0 is available"),
        "the local room is told too"
    );
    assert_eq!(fakeh.version(), "1.0.0", "telling is not updating");
    // A restarted daemon does not say it again; a newer version is told.
    drop(first);
    let second = up(&s, &fakeh, &now);
    // Its first check runs at once (within a fraction of a second); give it time to (not) speak.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(told("2.0.0"), 1, "not again after a restart");
    std::fs::write(fakeh.bin.join("latest"), "3.0.0\n").unwrap();
    drop(second);
    let _third = up(&s, &fakeh, &now);
    wait_for("the next announcement", || told("3.0.0") == 1);
    assert_eq!(told("2.0.0"), 1, "each version once");
}

/// An install that fails and changes nothing (npm offline): the agents are running again on
/// the version they had, never left stopped; a version probe that says nothing usable stops
/// nothing; `--to` takes only a version; an older "newest" is no update.
#[test]
fn a_failed_install_or_an_unknown_version_never_leaves_the_fleet_stopped() {
    let s = Sandbox::new();
    let (fakeh, _up, _room) = fleet(&s, "2.0.0");
    fakeh.set("offline");
    let out = run(&s, &fakeh, &["fleet", "update", "fakeh"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("fakeh: FAILED, rolled back to 1.0.0") && report.contains("ENOTFOUND"),
        "{report}"
    );
    assert_eq!(fakeh.version(), "1.0.0");
    wait_for("every agent running again", || {
        s.states().iter().all(|(_, state)| state == "running")
    });
    std::fs::remove_file(fakeh.bin.join("offline")).unwrap();

    fakeh.set("garbled");
    let launches = fakeh.command_lines("helper").len();
    let out = run(&s, &fakeh, &["fleet", "update", "fakeh"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("the installed version is unknown"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        fakeh.command_lines("helper").len(),
        launches,
        "nothing was stopped"
    );
    std::fs::remove_file(fakeh.bin.join("garbled")).unwrap();

    for bad in ["", "../../etc", "https://example.com/x.tgz", "1.0 extra"] {
        let out = run(&s, &fakeh, &["fleet", "update", "fakeh", "--to", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            text(&out.stderr).contains("a version is digits and dots"),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
    // An older "newest" (a pre-release installed by hand) is not an update.
    std::fs::write(fakeh.bin.join("latest"), "0.9.0\n").unwrap();
    let out = run(&s, &fakeh, &["fleet", "update"]);
    assert!(
        text(&out.stdout).contains("1.0.0 is the newest; nothing to do"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&run(&s, &fakeh, &["fleet", "versions"]).stdout).contains("(new)"));
    assert_eq!(fakeh.version(), "1.0.0");
}

/// A rollback keeps the agents' conversations: the broken version's exits are not blamed on
/// the sessions.
#[test]
fn a_rollback_resumes_the_agents_conversations() {
    let s = Sandbox::new();
    let (fakeh, _up, _room) = fleet(&s, "9.9.9");
    let known = "0b6d2a0e-5f7c-4a53-9a4e-4d2f9c0e8b11";
    fakeh.keep_session(known);
    hook(
        &s,
        &fakeh.path(),
        "helper",
        &format!(r#"{{"hook_event_name": "idle", "session_id": "{known}"}}"#),
    );
    let out = run(&s, &fakeh, &["fleet", "update", "fakeh"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(read(&s.state().join("agents/helper/session")), known);
    let last = fakeh.command_lines("helper").pop().unwrap();
    assert_eq!(last[0], "1.0.0");
    assert_eq!(last[3..], ["--resume", known], "{last:?}");
}

/// An update killed after it stopped its agents (or whose machine went down) does not leave
/// them stopped: the daemon starts them again; its installer dies with it; meanwhile starts
/// and restarts from elsewhere are refused.
#[test]
fn a_killed_update_leaves_nothing_stopped() {
    let s = Sandbox::new();
    let (fakeh, _up, _room) = fleet(&s, "2.0.0");
    fakeh.set("slow");
    let mut update = s
        .command(&["fleet", "update", "fakeh"])
        .env("PATH", fakeh.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stopped = s.state().join("update-stopped");
    wait_for("the update to stop its agents", || stopped.exists());
    wait_for("the installer to run", || {
        read_opt(&s.state().join("update-install.log")).contains("installing 2.0.0")
    });
    let out = run(&s, &fakeh, &["fleet", "restart", "helper"]);
    assert!(
        text(&out.stderr).contains("a harness update is running"),
        "{}",
        text(&out.stderr)
    );
    update.kill().unwrap();
    update.wait().unwrap();
    wait_for_secs("the daemon to start them again", 60, || {
        s.states().iter().all(|(_, state)| state == "running")
    });
    assert!(!stopped.exists());
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        fakeh.version(),
        "1.0.0",
        "the installer died with the update"
    );
}
