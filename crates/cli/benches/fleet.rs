//! Fleet benchmarks, printed next to the floor they compare with (no pass/fail thresholds).
//!
//! Run with `cargo bench -p mosaic --bench fleet`. It starts a private tmux server with 200 demo
//! agents and measures whole commands as a user runs them:
//! - `mosaic fleet ps --json` against one raw `tmux list-panes -a` (goal: at most 3x the floor);
//! - `mosaic fleet send` against a raw `tmux send-keys -l` (goal: at most 1.5x the floor), on the
//!   200-agent server and again on an everyday 3-agent fleet.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MOSAIC: &str = env!("CARGO_BIN_EXE_mosaic");
const AGENTS: usize = 200;
const RUNS: usize = 40;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = format!("mosaic-bench-{}", std::process::id());
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let mut roster = format!(
        "version: 1\nfleet: bench\ntmux:\n  socket: {socket}\nagents:\n- name: mos\n  role: orchestrator\n  runtime: demo\n"
    );
    for i in 1..AGENTS {
        roster.push_str(&format!("- name: w{i:03}\n  runtime: demo\n"));
    }
    std::fs::write(config.join("roster.yaml"), roster).unwrap();
    let mosaic = |args: &[&str]| {
        let mut c = Command::new(MOSAIC);
        c.args(args)
            .env("MOSAIC_CONFIG", &config)
            .env("MOSAIC_STATE", dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    };
    let tmux = |args: &[&str]| {
        let mut c = Command::new("tmux");
        c.args(["-L", &socket, "-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    };
    eprintln!("starting {AGENTS} demo agents on tmux -L {socket} ...");
    assert!(
        mosaic(&["fleet", "start", "--wait", "120"])
            .status()
            .unwrap()
            .success(),
        "fleet start failed"
    );

    println!(
        "mosaic benchmarks: {RUNS} runs each, median and p90 wall time of the whole command\n"
    );
    let floor = measure(|| {
        run(tmux(&[
            "list-panes",
            "-a",
            "-F",
            "#{session_name} #{pane_pid} #{pane_dead}",
        ]))
    });
    let ours = measure(|| run(mosaic(&["fleet", "ps", "--json"])));
    report(
        &format!("fleet ps --json, {AGENTS} agents"),
        "tmux list-panes -a",
        floor,
        ours,
        3.0,
    );

    let text = "benchmark message: please run the tests and report back";
    let floor = measure(|| run(tmux(&["send-keys", "-t", "=w001:", "-l", text])));
    let floor_enter = measure(|| {
        run(tmux(&[
            "send-keys",
            "-t",
            "=w002:",
            "-l",
            text,
            ";",
            "send-keys",
            "-t",
            "=w002:",
            "Enter",
        ]))
    });
    let ours = measure(|| run(mosaic(&["fleet", "send", "mos", text])));
    report(
        "fleet send (paste, Enter, confirmed)",
        "tmux send-keys -l",
        floor,
        ours,
        1.5,
    );
    report(
        "fleet send (paste, Enter, confirmed)",
        "tmux send-keys -l TEXT ; send-keys Enter",
        floor_enter,
        ours,
        1.5,
    );

    let _ = mosaic(&["fleet", "stop", "--timeout", "5"]).status();
    let _ = tmux(&["kill-server"]).status();

    // The same send on an everyday fleet (3 agents): the roster and the server are small.
    std::fs::write(
        config.join("roster.yaml"),
        format!(
            "version: 1\nfleet: bench\ntmux:\n  socket: {socket}\nagents:\n- {{name: mos, role: orchestrator, runtime: demo}}\n- {{name: w001, runtime: demo}}\n- {{name: w002, runtime: demo}}\n"
        ),
    )
    .unwrap();
    assert!(
        mosaic(&["fleet", "start"]).status().unwrap().success(),
        "fleet start failed"
    );
    let floor = measure(|| run(tmux(&["send-keys", "-t", "=w001:", "-l", text])));
    let ours = measure(|| run(mosaic(&["fleet", "send", "mos", text])));
    report(
        "fleet send, 3 agents",
        "tmux send-keys -l",
        floor,
        ours,
        1.5,
    );
    let _ = mosaic(&["fleet", "stop", "--timeout", "5"]).status();
    let _ = tmux(&["kill-server"]).status();
}

fn run(mut c: Command) {
    let status = c.status().expect("spawn");
    assert!(status.success(), "{c:?} failed");
}

#[derive(Clone, Copy)]
struct Figures {
    median: Duration,
    p90: Duration,
}

fn measure(mut f: impl FnMut()) -> Figures {
    f(); // warm up
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    Figures {
        median: times[RUNS / 2],
        p90: times[RUNS * 9 / 10],
    }
}

fn report(what: &str, floor_name: &str, floor: Figures, ours: Figures, goal: f64) {
    let ratio = ours.median.as_secs_f64() / floor.median.as_secs_f64();
    println!("{what}");
    println!(
        "  floor  {floor_name:<42} median {:>8.2?}  p90 {:>8.2?}",
        floor.median, floor.p90
    );
    println!(
        "  mosaic {:<42} median {:>8.2?}  p90 {:>8.2?}",
        "", ours.median, ours.p90
    );
    println!("  ratio  {ratio:.2}x the floor (goal <= {goal}x)\n");
}
