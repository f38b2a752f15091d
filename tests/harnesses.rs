//! Harness manifests end to end: a harness added from a file in the config directory (a shell
//! script this test writes) runs as an agent in real tmux, with no change to mosaic.

mod support;
use support::*;

/// A stand-in harness: prints its arguments and environment, echoes each line, exits on `/bye`,
/// and prints its version to standard error (as `pi --version` does).
const SCRIPT: &str = r#"#!/bin/sh
if [ "$1" = "--version" ]; then echo "echoagent 9.8.7" >&2; exit 0; fi
echo "args: $*"
echo "flavour: $ECHO_FLAVOUR"
printf 'echo> '
while IFS= read -r line; do
  [ "$line" = "/bye" ] && exit 0
  echo "got: $line"
  printf 'echo> '
done
"#;

fn manifest(program: &str) -> String {
    format!(
        r#"# written by the test
name: echo
description: an echo harness from the config dir
launch:
  command: ["{program}", --hello]
  model: [--model, "{{model}}"]
  instructions: [--system, "{{instructions}}"]
env:
  ECHO_FLAVOUR: vanilla
version:
  args: [--version]
  stream: stderr
ready:
  screen: "echo> "
exit:
  text: /bye
paste_settle_ms: 0
"#
    )
}

#[test]
fn a_harness_from_the_config_dir_runs_an_agent() {
    use std::os::unix::fs::PermissionsExt;
    let s = Sandbox::new();
    s.init("general");
    let program = s.home().join("echoagent");
    std::fs::write(&program, SCRIPT).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = s.config().join("harnesses");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("echo.yaml"),
        manifest(&program.display().to_string()),
    )
    .unwrap();

    // Unknown before: the roster names the shipped harnesses and the new one.
    let err = s.fails(&["fleet", "add", "tester", "--runtime", "nope"]);
    assert!(err.contains("echo"), "{err}");

    let out = s.ok(&[
        "fleet",
        "add",
        "tester",
        "--runtime",
        "echo",
        "--model",
        "m1",
    ]);
    assert!(out.contains("tester: started"), "{out}");
    let agent = s.ps()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "tester")
        .unwrap()
        .clone();
    assert_eq!(agent["runtime"], "echo");
    assert_eq!(agent["state"], "running");
    let screen = s.screen("tester");
    assert!(screen.contains("args: --hello --model m1"), "{screen}");
    assert!(screen.contains("flavour: vanilla"), "{screen}");

    s.ok(&["fleet", "send", "tester", "hi there"]);
    wait_for("the echo", || s.screen("tester").contains("got: hi there"));

    // verify shows the harness's version, read from standard error.
    let verify = s.ok(&["fleet", "verify"]);
    assert!(
        verify.contains(&format!(
            "harness echo: an echo harness from the config dir echoagent 9.8.7 at {}",
            program.display()
        )),
        "{verify}"
    );

    // Its exit text ends it: stopped, not killed.
    let out = s.ok(&["fleet", "stop", "tester"]);
    assert!(out.contains("tester: stopped"), "{out}");
}

#[test]
fn a_broken_manifest_is_reported_and_left_out() {
    let s = Sandbox::new();
    s.init("general");
    let dir = s.config().join("harnesses");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "name: bad\ndescription: d\nlaunch: {command: [x, \"{modle}\"]}\nexit: {text: /q}\n",
    )
    .unwrap();
    let verify = s.run(&["fleet", "verify"]);
    assert!(!verify.status.success());
    let stdout = text(&verify.stdout);
    assert!(
        stdout.contains("FAIL  harness manifest:")
            && stdout.contains("unknown placeholder {modle}"),
        "{stdout}"
    );
    let err = s.fails(&["fleet", "add", "w", "--runtime", "bad"]);
    assert!(err.contains("unknown runtime \"bad\""), "{err}");
}
