//! TEST SUPPORT (feature `test-util`): a private Synapse on 127.0.0.1 for tests, made with
//! `deploy/matrix/homeserver.sh` (the recipe users run), SQLite in a temp dir, shared-secret
//! registration. The homeserver dies with the test process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running (or stopped) private Synapse.
pub struct Synapse {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its server name (`localhost`).
    pub server_name: String,
    dir: tempfile::TempDir,
    keeper: Option<Keeper>,
}

/// The thread that owns the Synapse process: the process is started with a parent-death
/// signal, which fires when the *thread* that started it ends, so that thread lives as long
/// as the homeserver should.
struct Keeper {
    stop: mpsc::Sender<()>,
    done: std::thread::JoinHandle<()>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/matrix/homeserver.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Synapse {
    /// Installs Synapse if needed (a minute, once per machine), writes a homeserver in a temp
    /// dir and starts it.
    pub fn start() -> Synapse {
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        let out = Command::new("bash")
            .arg(script())
            .args(["init"])
            .arg(dir.path())
            .args(["--port", &port.to_string(), "--for-tests"])
            .output()
            .expect("homeserver.sh runs");
        assert!(
            out.status.success(),
            "homeserver.sh init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut synapse = Synapse {
            url: format!("http://127.0.0.1:{port}"),
            server_name: "localhost".into(),
            dir,
            keeper: None,
        };
        synapse.resume();
        synapse
    }

    /// Starts the homeserver again after [`Synapse::stop`] (same data, same port).
    pub fn resume(&mut self) {
        assert!(self.keeper.is_none(), "already running");
        let (stop, stopped) = mpsc::channel::<()>();
        let (ready, is_ready) = mpsc::channel::<()>();
        let dir = self.dir.path().to_owned();
        let done = std::thread::spawn(move || {
            let mut child: Child = Command::new("setpriv")
                .args(["--pdeathsig", "KILL", "--", "bash"])
                .arg(script())
                .arg("run")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("synapse starts");
            let _ = ready.send(());
            let _ = stopped.recv();
            let _ = child.kill();
            let _ = child.wait();
        });
        let _ = is_ready.recv();
        self.keeper = Some(Keeper { stop, done });
        let deadline = Instant::now() + Duration::from_secs(120);
        let versions = format!("{}/_matrix/client/versions", self.url);
        while ureq::get(&versions).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "synapse did not answer within 120 s; see {}",
                self.dir.path().join("homeserver.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the homeserver (kill), keeping its data.
    pub fn stop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.stop.send(());
            let _ = keeper.done.join();
        }
        // `run` execs Synapse under bash: wait until the port is free.
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.url.trim_start_matches("http://").to_owned();
        while std::net::TcpStream::connect(&addr).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Registers `name` (not an admin) and returns `(user id, password)`.
    pub fn user(&self, name: &str) -> (String, String) {
        let out = Command::new("bash")
            .arg(script())
            .arg("user")
            .arg(self.dir.path())
            .arg(name)
            .output()
            .expect("homeserver.sh runs");
        assert!(
            out.status.success(),
            "registering {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let password = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (format!("@{name}:{}", self.server_name), password)
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}
