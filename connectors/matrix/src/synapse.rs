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

/// A proxy in front of a homeserver that passes every request through, except the message
/// sends it is told to fail (with 500, as a homeserver in trouble answers).
#[derive(Clone)]
pub struct FaultProxy {
    /// Its base URL, for the client under test.
    pub url: String,
    failures: std::sync::Arc<std::sync::Mutex<u32>>,
}

impl FaultProxy {
    /// A proxy to `upstream` on 127.0.0.1 on a free port (call from a tokio runtime).
    pub async fn start(upstream: &str) -> FaultProxy {
        use axum::body::{Body, to_bytes};
        use axum::extract::{Request, State};
        use axum::response::{IntoResponse, Response};
        type Shared = (String, reqwest::Client, std::sync::Arc<std::sync::Mutex<u32>>);
        async fn pass(State((upstream, http, failures)): State<Shared>, req: Request) -> Response {
            let (parts, body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            if parts.method == axum::http::Method::PUT && path.contains("/send/m.room.message/") {
                let mut left = failures.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(serde_json::json!({"errcode": "M_UNKNOWN", "error": "injected failure"})),
                    )
                        .into_response();
                }
            }
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                return axum::http::StatusCode::BAD_REQUEST.into_response();
            };
            let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
                .unwrap_or(reqwest::Method::GET);
            let mut request = http.request(method, format!("{upstream}{path}")).body(bytes.to_vec());
            for name in ["authorization", "content-type"] {
                if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
                    request = request.header(name, v);
                }
            }
            match request.send().await {
                Ok(response) => {
                    let status = axum::http::StatusCode::from_u16(response.status().as_u16())
                        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                    let body = response.bytes().await.unwrap_or_default();
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
                }
                Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let failures = std::sync::Arc::new(std::sync::Mutex::new(0));
        let app = axum::Router::new()
            .fallback(pass)
            .with_state((upstream.to_owned(), reqwest::Client::new(), failures.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultProxy { url, failures }
    }

    /// The next `n` message sends fail with 500.
    pub fn fail_next_sends(&self, n: u32) {
        *self.failures.lock().unwrap() += n;
    }
}
