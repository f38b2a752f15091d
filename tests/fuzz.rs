//! Fuzzing on the stable toolchain: proptest-driven targets for the roster parser and validator,
//! the chat grammar (and the envelope), the API's request bodies (against the real router over
//! HTTP) and the hook payloads. Each target first runs its kept corpus (`tests/fuzz/TARGET/`),
//! then mutations of it and arbitrary text for `MOSAIC_FUZZ_SECS` seconds (2 by default: what CI
//! runs). A failure is shrunk, saved in the corpus as `crash-*.txt` and fails the test. No input
//! may panic, and none may take more than 2 s in a parser or 10 s over HTTP (a hang). See tests/fuzz/README.md for long runs.

mod support;
use mosaic_bridge::local::LocalConnector;
use mosaic_bridge::{Bridge, BridgeConfig};
use mosaic_fleet::{LiveRoster, Paths};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// The longest one input may take in the parsers.
const HANG: Duration = Duration::from_secs(2);

/// The longest one request may take: it includes a committed SQLite transaction (an fsync),
/// which a busy shared disk can stall for seconds.
const HTTP_HANG: Duration = Duration::from_secs(10);

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fuzz")
        .join(target)
}

fn corpus(target: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect()
}

/// Text that means something to YAML, JSON, shells, terminals or our own envelope.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    "- ",
    ",",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "  ",
    "'",
    "\"",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "|",
    ">",
    "%YAML 1.2\n",
    "---\n",
    "...",
    "? ",
    "\\",
    "\u{0}",
    "\u{1b}[201~",
    "\u{feff}",
    "é",
    "🦀",
    "\u{202e}",
    "~",
    "null",
    "true",
    "0x10",
    "1e999",
    "18446744073709551615",
    "-1",
    "[chat #2 from ",
    "[chat #2:abc from ",
    "/fleet ",
    "!FLEET ",
    "--timeout ",
    "--wait ",
    "--runtime demo",
    "\"text\": ",
    "\"verb\": ",
    "\"command\": ",
    "\"hook_event_name\": ",
    "<<: *a\n",
    "&a [*a, *a]",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, usize, String),
    Repeat(usize, usize, usize),
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(TOKENS).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => "[a-z0-9_ -]{0,12}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), fragment()).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), 0usize..40).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), 0usize..20, fragment()).prop_map(|(at, n, s)| Mutation::Replace(at, n, s)),
        (any::<usize>(), 1usize..30, 1usize..50).prop_map(|(at, n, k)| Mutation::Repeat(at, n, k)),
    ]
}

/// The char boundary at or before `at % (len + 1)`.
fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, mutations: &[Mutation]) -> String {
    for m in mutations {
        match m {
            Mutation::Insert(at, t) => {
                let i = boundary(&s, *at);
                s.insert_str(i, t);
            }
            Mutation::Delete(at, n) | Mutation::Replace(at, n, _) => {
                let i = boundary(&s, *at);
                let j = boundary(&s, i + n).max(i);
                let with = match m {
                    Mutation::Replace(_, _, t) => t.as_str(),
                    _ => "",
                };
                s.replace_range(i..j.min(s.len()), with);
            }
            Mutation::Repeat(at, n, k) => {
                let i = boundary(&s, *at);
                let j = boundary(&s, i + n).max(i);
                let piece = s[i..j].repeat(*k);
                if s.len() + piece.len() < 2_000_000 {
                    s.insert_str(j, &piece);
                }
            }
        }
    }
    s
}

/// Mutated corpus entries, and now and then arbitrary text.
fn inputs(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let n = seeds.len();
    prop_oneof![
        6 => (0..n, proptest::collection::vec(mutation(), 1..8))
            .prop_map(move |(i, ms)| apply(seeds[i].clone(), &ms)),
        1 => any::<String>(),
    ]
}

/// Runs `check` on the corpus of `target`, then on generated inputs for the time budget.
fn fuzz(target: &str, hang: Duration, check: impl Fn(&str) -> Result<(), String>) {
    let seeds = corpus(target);
    for (i, seed) in seeds.iter().enumerate() {
        if let Err(e) = timed(&check, seed, hang) {
            panic!("{target}: corpus input {i} fails: {e}\n{seed:?}");
        }
    }
    let secs: u64 = std::env::var("MOSAIC_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let strategy = inputs(seeds);
    let mut total = 0u64;
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&round.to_le_bytes());
        seed[8..16].copy_from_slice(&(started.elapsed().as_nanos() as u64).to_le_bytes());
        seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
        let config = Config {
            cases: 64,
            failure_persistence: None,
            max_shrink_time: 30_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let result = runner.run(&strategy, |input| {
            timed(&check, &input, hang).map_err(TestCaseError::fail)
        });
        total += 64;
        if let Err(TestError::Fail(why, input)) = result {
            let path = corpus_dir(target).join(format!("crash-{round}-{}.txt", std::process::id()));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{target}: {why}; the input is kept in {}:\n{input:?}",
                path.display()
            );
        }
    }
    eprintln!(
        "fuzz {target}: {total} generated inputs in {:.1} s, no panic, no hang",
        started.elapsed().as_secs_f64()
    );
}

/// `check(input)`, failing a panic (proptest turns it into a failure) or a hang.
fn timed(
    check: &impl Fn(&str) -> Result<(), String>,
    input: &str,
    hang: Duration,
) -> Result<(), String> {
    let t = Instant::now();
    check(input)?;
    if t.elapsed() > hang {
        return Err(format!("took {:?}: a hang", t.elapsed()));
    }
    Ok(())
}

#[test]
fn fuzz_the_roster_parser_and_validator() {
    register_connectors();
    for seed in corpus("roster")
        .iter()
        .filter(|s| !s.starts_with("# crash"))
    {
        mosaic_roster::Roster::parse(seed, "seed.yaml").expect("the kept rosters are valid");
    }
    fuzz("roster", HANG, |text| {
        match mosaic_roster::Roster::parse(text, "fuzz.yaml") {
            Ok(roster) => {
                // What validated serializes, and reads back the same.
                let again = mosaic_roster::Roster::parse(&roster.to_yaml(), "again.yaml")
                    .map_err(|e| format!("a valid roster does not read back: {e}"))?;
                if again != roster {
                    return Err("a valid roster reads back different".into());
                }
            }
            Err(e) => {
                if e.to_string().trim().is_empty() {
                    return Err("an error without a message".into());
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_the_chat_grammar_and_the_envelope() {
    use mosaic_bridge::delivery::{CONTINUATION, envelope};
    use mosaic_bridge::store::Queued;
    fuzz("chat", HANG, |text| {
        let _ = mosaic_grammar::chat::parse(text);
        let q = Queued {
            id: 7,
            inbound: mosaic_connector::Inbound {
                connector: "telegram".into(),
                message_id: "m".into(),
                room: "room-1".into(),
                user: "u".into(),
                user_name: text.chars().take(40).collect(),
                text: text.into(),
                thread: None,
                native_command: false,
            },
            role: Some("operator".into()),
            nonce: Some("abc123".into()),
        };
        let e = envelope(&q);
        if !e.starts_with("[chat #7:abc123 from ") {
            return Err(format!(
                "the envelope does not start with its marker: {e:?}"
            ));
        }
        if e.split('\n')
            .skip(1)
            .any(|l| !l.is_empty() && !l.starts_with(CONTINUATION))
        {
            return Err(format!("a line of the message is not indented: {e:?}"));
        }
        if e.contains('\r') {
            return Err(format!(
                "a carriage return starts an unindented line: {e:?}"
            ));
        }
        Ok(())
    });
}

#[test]
fn fuzz_the_hook_payloads() {
    fuzz("hooks", HANG, |raw| {
        let name = mosaic_api::hook_event_name(raw);
        let _ = mosaic_roster::harness::hook_effect(Some("claude"), &name);
        Ok(())
    });
}

/// A runtime that, when dropped (also while a failure unwinds), waits at most 5 s for its
/// blocking tasks instead of forever.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

#[test]
fn fuzz_the_api_request_bodies() {
    // The real router and bridge over HTTP, on a fleet that is configured but not started (no
    // agent runs, so a body that happens to be a valid command has nothing to act on).
    let s = Sandbox::new();
    s.init("general");
    let paths = Paths {
        config_dir: s.config(),
        state_dir: s.state(),
    };
    let rt = Runtime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ));
    let bridge = Bridge::new(
        BridgeConfig {
            paths: paths.clone(),
            mosaic_exe: MOSAIC.into(),
            roster: LiveRoster::open(paths.clone()).unwrap(),
        },
        vec![Arc::new(LocalConnector::new(&paths))],
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let url = rt.0.as_ref().unwrap().block_on(async {
        bridge.start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = mosaic_api::ApiState {
            bridge: bridge.clone(),
            paths,
            token: Arc::new("fuzz-token".into()),
        };
        tokio::spawn(mosaic_api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        url
    });
    let fresh_agent = || -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into()
    };
    let agent = fresh_agent();
    fuzz("api", HTTP_HANG, |input| {
        let (route, body) = input.split_once('\n').unwrap_or((input, ""));
        // Only the bodies are fuzzed: routes are kept to the API's own paths (and unknown
        // ones), never a URL that is not one.
        let route: String = route
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "/-_.".contains(*c))
            .take(100)
            .collect();
        let route = if route.starts_with('/') {
            route
        } else {
            format!("/{route}")
        };
        if route.contains("/commands") && body.contains("\"verb\"") {
            // A typed command is decoded like this; running one is the executor's tests' job.
            let _ = serde_json::from_str::<mosaic_grammar::FleetCommand>(body).map(|c| c.to_line());
            return Ok(());
        }
        let post = |agent: &ureq::Agent| {
            agent
                .post(format!("{url}{route}"))
                .header("Authorization", "bearer fuzz-token")
                .header("Content-Type", "application/json")
                .send(body)
        };
        // HTTP lets a server close a kept-alive connection after any answer (hyper does when a
        // body was left unread), and a client then retries on a new one; so do we, once.
        let mut r = match post(&agent) {
            Ok(r) => r,
            Err(ureq::Error::Io(_)) => post(&fresh_agent())
                .map_err(|e| format!("no answer on a new connection either: {e}"))?,
            Err(e) => return Err(format!("no answer: {e}")),
        };
        let status = r.status().as_u16();
        if status >= 500 && status != 503 {
            return Err(format!("{status} for {route} {body:?}"));
        }
        if status >= 400 {
            let v: serde_json::Value = r
                .body_mut()
                .read_json()
                .map_err(|e| format!("{status} without a JSON body: {e}"))?;
            if !v["error"].is_string() {
                return Err(format!("{status} without an error: {v}"));
            }
        }
        Ok(())
    });
    let _ = stop.send(());
    bridge.shutdown();
}
