//! Text typed into panes arrives literally and can never act as tmux commands or keys.

mod support;
use support::*;

fn started() -> Sandbox {
    let s = Sandbox::new();
    s.init("general");
    s.ok(&["fleet", "start", "mos"]);
    s
}

#[test]
fn tmux_command_syntax_is_inert() {
    let s = started();
    let nasty = "; kill-server ; display-message pwned \\; run-shell 'touch /tmp/x' $HOME #{pane_id} ~ \"q\"";
    s.ok(&["fleet", "send", "mos", nasty]);
    wait_for("the message", || s.transcript("mos").len() == 1);
    assert_eq!(s.transcript("mos"), [nasty]);
    assert_eq!(
        s.states()[0].1,
        "running",
        "the server and the agent survived"
    );
}

#[test]
fn escape_sequences_and_control_keys_are_neutralized() {
    let s = started();
    // A literal backslash-x text arrives as typed; real control bytes are made visible.
    s.ok(&["fleet", "send", "mos", r"\x1b[31m not red C-c"]);
    let out = s.run_with_stdin(
        &["fleet", "send", "mos", "-"],
        b"a\x1b[31mred\x1b[201~b\x03c\x04",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("both messages", || s.transcript("mos").len() == 2);
    assert_eq!(
        s.transcript("mos"),
        [
            r"\x1b[31m not red C-c",
            "a\u{241b}[31mred\u{241b}[201~b\u{2403}c\u{2404}"
        ]
    );
    // C-c (which would clear the demo agent's input) and C-d (which would quit it) did nothing.
    assert_eq!(s.states()[0].1, "running");
}

#[test]
fn a_ten_kilobyte_multiline_paste_arrives_whole_and_once() {
    let s = started();
    let big: String = (0..200)
        .map(|i| format!("line {i:03}: {}\n", "x".repeat(40 + i % 7)))
        .collect();
    assert!(big.len() > 10_000);
    let out = s.run_with_stdin(&["fleet", "send", "mos", "-"], big.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("the paste", || !s.transcript("mos").is_empty());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        s.transcript("mos"),
        [big.trim_end()],
        "one message, byte for byte"
    );
    wait_for("the reply", || {
        s.screen("mos").contains("[demo reply #1] received")
    });
    assert_eq!(s.screen("mos").matches("[demo reply #").count(), 1);
}

#[test]
fn empty_text_is_refused() {
    let s = started();
    let err = s.fails(&["fleet", "send", "mos", "\n\n"]);
    assert!(err.contains("nothing to send"), "{err}");
}

#[test]
fn an_empty_text_is_refused_in_one_clear_sentence() {
    let s = started();
    let err = s.fails(&["fleet", "send", "mos", "  \n"]);
    assert_eq!(err.matches("nothing to send").count(), 1, "{err}");
}
