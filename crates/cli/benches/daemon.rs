//! End-to-end benchmarks through the real daemon process, printed next to their floor (no
//! pass/fail thresholds).
//!
//! Run with `cargo bench -p mosaic --bench daemon`. It starts `mosaic up` (the real daemon, with
//! every connector this build has) over a fleet of demo agents on a private tmux server; the demo
//! orchestrator answers every chat message in chat, as a real orchestrator is told to. The chat
//! client is the daemon's HTTP API (`POST /v1/chat`, the local room), and every figure comes
//! from the daemon's own event stream (`GET /v1/events`):
//! - chat event -> line submitted in the orchestrator's pane (`delivered`), p50/p99, against one
//!   `tmux send-keys -l TEXT ; send-keys Enter` exec;
//! - message in -> the orchestrator's reply out (`message_out`), p50/p99;
//! - a burst of 1,000 with the orchestrator replying to each: messages/s, all in order, once;
//!   and the same from four senders at once (each sender's order kept);
//! - `fleet send` to an idle demo agent (the CLI, through the daemon; and the API's
//!   `/v1/agents/NAME/send`), against the same one-exec floor;
//! - the daemon's idle RSS, and its tmux control client's.

use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MOSAIC: &str = env!("CARGO_BIN_EXE_mosaic");
const RUNS: usize = 100;
const BURST: usize = 1000;
/// Senders posting a burst at once.
const SENDERS: usize = 4;

/// One event from the daemon's stream, with when it arrived.
struct Seen {
    at: Instant,
    kind: String,
    data: Value,
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("mosaic-bench-daemon-{}", std::process::id());
    let config = dir.path().join("config");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("roster.yaml"),
        format!(
            "version: 1\nfleet: bench\ntmux:\n  socket: {socket}\nagents:\n- {{name: mos, role: orchestrator, runtime: demo}}\n- {{name: w, runtime: demo}}\n- {{name: floor, runtime: demo}}\nbridge:\n  rate_per_minute: 1000000\n"
        ),
    )
    .unwrap();
    let mosaic = |args: &[&str]| {
        let mut c = Command::new(MOSAIC);
        c.args(args)
            .env("MOSAIC_CONFIG", &config)
            .env("MOSAIC_STATE", &state)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    };
    assert!(mosaic(&["fleet", "start"]).status().unwrap().success());
    // The daemon's log, for a run that went wrong.
    let mut up = mosaic(&["up", "--listen", "127.0.0.1:0"])
        .stderr(
            std::fs::File::create(std::env::temp_dir().join("mosaic-bench-daemon.log")).unwrap(),
        )
        .spawn()
        .unwrap();
    let started = Instant::now();
    let info: Value = loop {
        let text = std::fs::read_to_string(state.join("daemon.json")).unwrap_or_default();
        if text.contains(r#""fleet":"started""#) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mosaic up did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = info["url"].as_str().unwrap().to_owned();
    let token = std::fs::read_to_string(state.join("api.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |path: &str, body: Value| -> Value {
        let mut r = http
            .post(format!("{url}{path}"))
            .header("Authorization", &auth)
            .send_json(&body)
            .unwrap();
        let status = r.status();
        let body: Value = r.body_mut().read_json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    };

    // The event stream, read on its own thread.
    let (tx, events) = mpsc::channel::<Seen>();
    {
        let (url, auth) = (url.clone(), auth.clone());
        std::thread::spawn(move || {
            let response = ureq::get(format!("{url}/v1/events"))
                .header("Authorization", &auth)
                .call()
                .unwrap();
            let reader = std::io::BufReader::new(response.into_body().into_reader());
            let mut kind = String::new();
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    let seen = Seen {
                        at: Instant::now(),
                        kind: std::mem::take(&mut kind),
                        data: serde_json::from_str(d).unwrap_or(Value::Null),
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
            }
        });
    }
    // Waits for `n` of the orchestrator's replies (the bridge's own notices are not counted).
    let replies = |events: &mpsc::Receiver<Seen>, n: usize| -> Vec<Seen> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let e = events
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("replies within 60 s ({} of {n})", got.len()));
            assert!(
                e.kind != "lagged",
                "the event stream fell behind the burst: {}",
                e.data
            );
            let reply = e.data["text"].as_str().unwrap_or_default();
            if e.kind == "message_out" && reply.starts_with("[demo reply #") {
                got.push(e);
            }
        }
        got
    };
    // Everything settles (the demo agents' first hooks) before measuring.
    std::thread::sleep(Duration::from_secs(2));
    while events.try_recv().is_ok() {}

    // Floor: one tmux exec typing the text and Enter into another demo agent.
    let text = "benchmark message: please run the tests and report back";
    let floor = times(RUNS, || {
        let ok = Command::new("tmux")
            .args(["-L", &socket, "send-keys", "-t", "=floor:", "-l", text])
            .args([";", "send-keys", "-t", "=floor:", "Enter"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    });

    // One at a time: message in -> delivered -> the orchestrator's reply out.
    let mut delivered = Vec::with_capacity(RUNS);
    let mut replied = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        post("/v1/chat", json!({ "text": text }));
        // The reply may be out before the worker announces the delivery: whichever comes first.
        let (mut d, mut r) = (None, None);
        while d.is_none() || r.is_none() {
            let e = events
                .recv_timeout(Duration::from_secs(60))
                .expect("the delivery and the reply within 60 s");
            match e.kind.as_str() {
                "delivered" => d = Some(e.at),
                "message_out" => {
                    let reply = e.data["text"].as_str().unwrap_or_default();
                    assert!(reply.starts_with("[demo reply #"), "not the reply: {reply}");
                    r = Some(e.at);
                }
                _ => {}
            }
        }
        delivered.push(d.unwrap() - t);
        replied.push(r.unwrap() - t);
    }
    delivered.sort();
    replied.sort();

    // A burst: every message posted at once; done when every reply is out.
    let t = Instant::now();
    for i in 0..BURST {
        post("/v1/chat", json!({ "text": format!("burst {i:04}") }));
    }
    let posted = t.elapsed();
    let last = replies(&events, BURST).pop().unwrap();
    let burst = last.at - t;
    let order = received_by_the_orchestrator(&state, "burst ");
    let expected: Vec<String> = (0..BURST).map(|i| format!("burst {i:04}")).collect();

    // The same burst from several senders at once (several rooms or connectors): their
    // messages are taken together (group commit); each sender's own order is kept.
    let t = Instant::now();
    std::thread::scope(|scope| {
        for sender in 0..SENDERS {
            let post = &post;
            scope.spawn(move || {
                for i in 0..BURST / SENDERS {
                    post(
                        "/v1/chat",
                        json!({ "text": format!("sender {sender} {i:04}") }),
                    );
                }
            });
        }
    });
    let posted_concurrently = t.elapsed();
    let last = replies(&events, BURST).pop().unwrap();
    let concurrent_burst = last.at - t;
    let received = received_by_the_orchestrator(&state, "sender ");
    let each_in_order = (0..SENDERS).all(|sender| {
        let mine: Vec<&String> = received
            .iter()
            .filter(|t| t.starts_with(&format!("sender {sender} ")))
            .collect();
        let expected: Vec<String> = (0..BURST / SENDERS)
            .map(|i| format!("sender {sender} {i:04}"))
            .collect();
        mine.len() == expected.len() && mine.iter().zip(&expected).all(|(a, b)| *a == b)
    });

    // `fleet send` to an idle demo agent: the CLI (a process, through the daemon) and the API.
    let cli_send = times(40, || {
        assert!(
            mosaic(&["fleet", "send", "w", text])
                .status()
                .unwrap()
                .success()
        );
    });
    let api_send = times(RUNS, || {
        post("/v1/agents/w/send", json!({ "text": text }));
    });

    // Idle RSS: the daemon, and the tmux control client it keeps on the orchestrator (the
    // client it kept for the sends to `w` is let go after 10 s unused, within 15 s).
    std::thread::sleep(Duration::from_secs(16));
    let daemon_rss = rss_kb(up.id());
    let daemon_anon = status_kb(up.id(), "RssAnon");
    let clients: Vec<u32> = children(up.id())
        .into_iter()
        .filter(|pid| comm(*pid).starts_with("tmux"))
        .collect();
    let client_anon: u64 = clients.iter().map(|p| status_kb(*p, "RssAnon")).sum();
    let pss = pss_kb(up.id()) + clients.iter().map(|p| pss_kb(*p)).sum::<u64>();
    let client_rss: u64 = children(up.id())
        .into_iter()
        .filter(|pid| comm(*pid).starts_with("tmux"))
        .map(rss_kb)
        .sum();
    let _ = Command::new(MOSAIC)
        .args(["down", "--timeout", "5"])
        .env("MOSAIC_CONFIG", &config)
        .env("MOSAIC_STATE", &state)
        .status();
    let _ = up.wait();
    let _ = Command::new("tmux")
        .args(["-L", &socket, "kill-server"])
        .status();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |v: &[Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    let row = |what: &str, v: &[Duration]| {
        println!(
            "  {what:<58} p50 {:>7.2} ms  p99 {:>7.2} ms",
            ms(pct(v, 50)),
            ms(pct(v, 99))
        );
    };
    println!(
        "mosaic daemon benchmarks (mosaic up, demo orchestrator replying, HTTP API as chat)\n"
    );
    println!("chat event -> line submitted in the orchestrator's pane ({RUNS}, one at a time)");
    row(
        "floor: tmux send-keys -l TEXT ; send-keys Enter (one exec)",
        &floor,
    );
    row("mosaic: POST /v1/chat -> delivered event", &delivered);
    println!(
        "  ratio p50 {:.2}x, p99 {:.2}x the floor (goal <= 0.6x)\n",
        ms(pct(&delivered, 50)) / ms(pct(&floor, 50)),
        ms(pct(&delivered, 99)) / ms(pct(&floor, 99))
    );
    println!("message in -> the orchestrator's reply out ({RUNS}, one at a time)");
    row("mosaic: POST /v1/chat -> message_out event", &replied);
    println!("  (opsdroid 0.31: p50 4.61 ms, p99 6.13 ms; goal p50 <= 2.5 ms, p99 <= 4 ms)\n");
    println!("burst of {BURST}, the orchestrator replying to each");
    println!(
        "  {:.0} messages/s ({:.2?} until the last reply, {:.2?} to post them all); delivered {} of {BURST}, in order and once: {}",
        BURST as f64 / burst.as_secs_f64(),
        burst,
        posted,
        order.len(),
        order == expected
    );
    println!(
        "  from {SENDERS} senders at once: {:.0} messages/s ({:.2?} until the last reply, {:.2?} to post them all); {} of {BURST}, each sender's in order and once: {each_in_order}",
        BURST as f64 / concurrent_burst.as_secs_f64(),
        concurrent_burst,
        posted_concurrently,
        received.len()
    );
    println!("  (rivals' bridges queue 20 and drop the rest; goal >= 2,000 messages/s)\n");
    println!("fleet send to an idle demo agent (paste, Enter, confirmed by the pane)");
    row(
        "floor: tmux send-keys -l TEXT ; send-keys Enter (one exec)",
        &floor,
    );
    row(
        "mosaic fleet send (CLI process, through the daemon)",
        &cli_send,
    );
    row("POST /v1/agents/w/send (API)", &api_send);
    println!(
        "  ratio p50: CLI {:.2}x, API {:.2}x the floor (goal <= 1.2x)\n",
        ms(pct(&cli_send, 50)) / ms(pct(&floor, 50)),
        ms(pct(&api_send, 50)) / ms(pct(&floor, 50))
    );
    println!(
        "daemon idle RSS: {:.1} MB (daemon {:.1} MB + its tmux control client {:.1} MB; errbot 66 MB, opsdroid 75 MB; goal <= 16 MB)",
        (daemon_rss + client_rss) as f64 / 1024.0,
        daemon_rss as f64 / 1024.0,
        client_rss as f64 / 1024.0
    );
    println!(
        "  of which their own (anonymous) memory: daemon {:.1} MB, control client {:.1} MB; the rest is mapped files (the binary, shared libraries)",
        daemon_anon as f64 / 1024.0,
        client_anon as f64 / 1024.0
    );
    println!(
        "  proportional set size (PSS: a page shared with other processes, such as the demo agents running the same binary or the tmux server's libraries, counted in part): {:.1} MB",
        pss as f64 / 1024.0
    );
}

/// A process's proportional set size in kB (`/proc/PID/smaps_rollup`).
fn pss_kb(pid: u32) -> u64 {
    proc_kb(pid, "smaps_rollup", "Pss")
}

/// The texts (without their envelopes) the demo orchestrator received that start with
/// `prefix`, in the order it received them.
fn received_by_the_orchestrator(state: &std::path::Path, prefix: &str) -> Vec<String> {
    std::fs::read_to_string(state.join("agents/mos/demo-transcript.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            v["text"]
                .as_str()
                .and_then(|t| t.rsplit("] ").next())
                .map(str::to_owned)
        })
        .filter(|t| t.starts_with(prefix))
        .collect()
}

/// `n` timings of `f`, sorted.
fn times(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// A `/proc/PID/status` figure in kB (`VmRSS`, `RssAnon`: its own memory, `RssFile`: mapped
/// files, shared libraries shared with other processes).
fn status_kb(pid: u32, field: &str) -> u64 {
    proc_kb(pid, "status", field)
}

/// Figure `field` (in kB) of `/proc/PID/FILE`.
fn proc_kb(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|task| std::fs::read_to_string(task.path().join("children")).unwrap_or_default())
        .collect::<Vec<String>>()
        .iter()
        .flat_map(|c| c.split_whitespace())
        .filter_map(|p| p.parse().ok())
        .collect()
}
