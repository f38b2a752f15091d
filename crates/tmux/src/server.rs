//! One private tmux server: sessions, listing, capture.

use crate::control::ControlClient;
use crate::error::{ErrorKind, TmuxError};
use crate::sanitize::quote_argument;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The user option that tags a session with the fleet it belongs to.
pub const FLEET_OPTION: &str = "@mosaic_fleet";

const SEP: char = '\t';

/// A handle on the tmux server at `tmux -L SOCKET`. Cheap to clone; holds no connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmux {
    socket: String,
}

/// One pane as `list-panes -a` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneInfo {
    /// Session name (the agent's name).
    pub session: String,
    /// Pane id (`%3`).
    pub pane_id: String,
    /// Process id of the pane's program.
    pub pid: u32,
    /// Whether the program has exited (the pane remains for inspection).
    pub dead: bool,
    /// Exit status when dead by exiting.
    pub dead_status: Option<i32>,
    /// Signal number when dead by a signal.
    pub dead_signal: Option<i32>,
    /// Session creation time, seconds since the epoch.
    pub created: i64,
    /// Last output or input in the pane's window, seconds since the epoch.
    pub activity: i64,
    /// The fleet tag set by mosaic, empty for sessions mosaic did not create.
    pub fleet: String,
    /// Number of terminals attached to the session (a person's; control clients, such as the
    /// daemon's, are not counted).
    pub attached: u32,
    /// Cursor position (column, row); it leaves (0, 0) once the program has drawn anything.
    pub cursor: (u32, u32),
}

/// What to start in a new session.
#[derive(Debug, Clone, Default)]
pub struct SessionSpec {
    /// Session name.
    pub name: String,
    /// Fleet tag stored in the session.
    pub fleet: String,
    /// Working directory.
    pub workdir: Option<PathBuf>,
    /// Environment for the program.
    pub env: Vec<(String, String)>,
    /// The program and its arguments (run directly, not through a shell).
    pub argv: Vec<String>,
    /// Window size.
    pub size: (u16, u16),
}

/// Variables agents get from the environment mosaic runs in, by exact name.
pub const PASSED_VARS: [&str; 17] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "SHELL",
    "TMPDIR",
    "TMUX_TMPDIR",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSH_AUTH_SOCK",
];

/// Variables agents get by prefix: locale and XDG directories, and the harnesses' own settings
/// and credentials (Claude Code, Codex, pi). Anything else an agent needs goes in its roster
/// `env:`.
pub const PASSED_PREFIXES: [&str; 7] = [
    "LC_",
    "XDG_",
    "ANTHROPIC_",
    "CLAUDE_",
    "OPENAI_",
    "CODEX_",
    "PI_",
];

/// The part of `vars` a tmux server (and so every agent) may see: [`PASSED_VARS`],
/// [`PASSED_PREFIXES`] and lower-case proxy variables. Connector tokens (`DISCORD_TOKEN`, …)
/// and everything else stay in mosaic's process.
pub fn passed_env(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    vars.into_iter()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else { return false };
            PASSED_VARS.contains(&k)
                || PASSED_VARS.contains(&k.to_ascii_uppercase().as_str()) && k.ends_with("_proxy")
                || PASSED_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect()
}

/// Finds `program` on `PATH`.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// The tmux executable: its full path, found on `PATH` once. A command named by its full path
/// starts with `posix_spawn`; a bare `tmux` with the environment replaced made the standard
/// library fork the whole (large) calling process first.
fn program() -> &'static std::ffi::OsStr {
    static PROGRAM: std::sync::OnceLock<std::ffi::OsString> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| which("tmux").map_or_else(|| "tmux".into(), Into::into))
}

impl Tmux {
    /// A handle on the server behind socket name `socket`.
    pub fn new(socket: impl Into<String>) -> Self {
        Tmux {
            socket: socket.into(),
        }
    }

    /// The socket name.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// Where tmux puts this server's socket: `$TMUX_TMPDIR` (or `/tmp`)`/tmux-UID/NAME`.
    pub fn socket_path(&self) -> std::path::PathBuf {
        let dir = std::env::var_os("TMUX_TMPDIR")
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/tmp".into());
        let uid = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(0);
        dir.join(format!("tmux-{uid}")).join(&self.socket)
    }

    /// The topology turn: held while a control client attaches (until tmux has identified it)
    /// and while sessions are created, respawned or killed, by every mosaic process of this user
    /// (an flock on tmux's socket directory, so no lock file is left behind), and while a paste
    /// buffer is set and deleted. tmux 3.5a crashes (SIGSEGV, every agent lost) when a control
    /// client that has not finished identifying gets a notification, such as another session
    /// being created or a paste buffer set or deleted
    /// (upstream tmux PR #4980; every paste sets and deletes one, under this turn). Each
    /// holder keeps it for one tmux round trip. `None` when no server has made the directory yet
    /// (nothing can attach then).
    /// A thread that holds the turn already gets a guard that releases nothing.
    pub fn topology_turn(&self) -> Option<TopologyTurn> {
        if TURN_HELD.get() {
            return Some(TopologyTurn { dir: None });
        }
        let socket = self.socket_path();
        let dir = std::fs::File::open(socket.parent()?).ok()?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive).ok()?;
        TURN_HELD.set(true);
        Some(TopologyTurn { dir: Some(dir) })
    }

    /// A `tmux` command bound to this server, ignoring the user's tmux.conf. It runs with only
    /// [`passed_env`]: the server it may start hands its environment to every agent, and the
    /// caller's (the daemon's) holds connector tokens that must stay there.
    pub fn command(&self) -> Command {
        let mut c = Command::new(program());
        // `-u`: UTF-8 whatever the locale. Without it, under a C/POSIX locale (systemd, cron,
        // `env -i`) tmux 3.5 prints the tab that separates `list-panes` fields as `_`, and
        // every agent looked stopped.
        c.args(["-u", "-L", &self.socket, "-f", "/dev/null"]);
        c.env_clear().envs(passed_env(std::env::vars_os()));
        c
    }

    /// Runs one tmux invocation (commands may be chained with a `";"` argument); returns stdout.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String, TmuxError> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TmuxError::io("tmux", e))?;
        finish(out)
    }

    /// Runs one tmux invocation feeding `input` on stdin (for `load-buffer -`).
    pub fn run_with_input<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[S],
        input: &[u8],
    ) -> Result<String, TmuxError> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TmuxError::io("tmux", e))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input)
            .map_err(|e| TmuxError::io("tmux stdin", e))?;
        finish(
            child
                .wait_with_output()
                .map_err(|e| TmuxError::io("tmux", e))?,
        )
    }

    /// The installed tmux version (`tmux 3.3a`); see [`parse_version`] and [`MIN_VERSION`].
    pub fn version() -> Result<String, TmuxError> {
        let out = Command::new(program())
            .arg("-V")
            .output()
            .map_err(|e| TmuxError::io("tmux -V", e))?;
        Ok(finish(out)?.trim().to_owned())
    }

    /// From now on this process asks this server its questions (`list-panes`) through a
    /// read-only control client attached to `session`, kept while it answers: one round trip
    /// instead of a tmux process each time (the daemon does, through the orchestrator's
    /// session, which its delivery worker's client attaches to already). While `session` is not
    /// there, a tmux process answers (an attach is tried again at most every 5 s).
    pub fn query_through(&self, session: &str) {
        query_clients()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                self.socket.clone(),
                QueryClient {
                    session: session.to_owned(),
                    client: None,
                    tried: None,
                },
            );
    }

    /// `command`'s output through this server's query client ([`Tmux::query_through`]), or
    /// `None` when there is none (a tmux process then answers).
    fn query(&self, command: &str) -> Option<String> {
        // Taken out while in use (never attached under the lock: an attach waits for the
        // topology turn, whose holder may be asking too); a second asker meanwhile runs tmux.
        let (session, client) = {
            let mut clients = query_clients().lock().unwrap_or_else(|e| e.into_inner());
            let kept = clients.get_mut(&self.socket)?;
            match kept.client.take() {
                Some(client) => (kept.session.clone(), Some(client)),
                None if kept.tried.is_some_and(|t| t.elapsed() < QUERY_RETRY) => return None,
                None => {
                    kept.tried = Some(std::time::Instant::now());
                    (kept.session.clone(), None)
                }
            }
        };
        let mut client = match client {
            Some(client) => client,
            None => {
                let mut client = ControlClient::attach(self, &session, true).ok()?;
                client.command("refresh-client -f no-output").ok()?;
                client
            }
        };
        let out = client.command(command).ok()?;
        if let Some(kept) = query_clients()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.socket)
            .filter(|k| k.session == session && k.client.is_none())
        {
            kept.client = Some(client);
        }
        Some(out)
    }

    /// Every pane on the server in one call; empty when no server runs.
    pub fn list_panes(&self) -> Result<Vec<PaneInfo>, TmuxError> {
        let format = [
            "#{session_name}",
            "#{pane_id}",
            "#{pane_pid}",
            "#{pane_dead}",
            "#{pane_dead_status}",
            "#{pane_dead_signal}",
            "#{session_created}",
            "#{window_activity}",
            &format!("#{{{FLEET_OPTION}}}"),
            "#{session_attached_list}",
            "#{cursor_x}",
            "#{cursor_y}",
        ]
        .join(&SEP.to_string());
        let listed = match self.query(&format!("list-panes -a -F {}", quote_argument(&format))) {
            Some(out) => Ok(out),
            None => self.run(&["list-panes", "-a", "-F", &format]),
        };
        match listed {
            Ok(out) => Ok(out.lines().filter_map(parse_pane).collect()),
            // With no server, or one whose last session is just going away, there is nothing.
            Err(e) if matches!(e.kind, ErrorKind::NoServer | ErrorKind::NoSession) => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a detached session running `spec.argv`; the pane stays after the program exits so
    /// its exit status can be read.
    pub fn new_session(&self, spec: &SessionSpec) -> Result<(), TmuxError> {
        let _turn = self.topology_turn();
        let (w, h) = spec.size;
        let mut args: Vec<String> = vec![
            "start-server".into(),
            ";".into(),
            "set-option".into(),
            "-g".into(),
            "remain-on-exit".into(),
            "on".into(),
            ";".into(),
            "set-option".into(),
            "-g".into(),
            "history-limit".into(),
            "50000".into(),
            ";".into(),
            "new-session".into(),
            "-d".into(),
            "-s".into(),
            spec.name.clone(),
            "-x".into(),
            w.to_string(),
            "-y".into(),
            h.to_string(),
        ];
        args.extend(launch_args(spec));
        args.extend([
            ";".into(),
            "set-option".into(),
            "-t".into(),
            pane_target(&spec.name),
            FLEET_OPTION.into(),
            spec.fleet.clone(),
        ]);
        self.run(&args).map(drop)
    }

    /// Kills a session; a session that is already gone is not an error. Its clients (a control
    /// client of the daemon's delivery worker) are detached first: tmux before 3.5 crashes when a
    /// session whose pane turned on focus reporting is killed under an attached control client.
    pub fn kill_session(&self, name: &str) -> Result<(), TmuxError> {
        let _turn = self.topology_turn();
        self.detach_clients(name, false)?;
        match self.run(&["kill-session", "-t", &exact(name)]) {
            Err(e) if matches!(e.kind, ErrorKind::NoSession | ErrorKind::NoServer) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Detaches the control-mode clients (never a person's terminal) attached to `session`.
    pub fn detach_control_clients(&self, session: &str) -> Result<(), TmuxError> {
        self.detach_clients(session, true)
    }

    /// Detaches the clients attached to `session` (only control-mode ones with `control_only`)
    /// and waits until the server has let them go. A client's leaving is announced to every
    /// control client (`%client-detached`), and tmux 3.5a crashes when one of those is still
    /// identifying (upstream PR #4980), so the caller holds the topology turn until the server
    /// has sent it.
    fn detach_clients(&self, session: &str, control_only: bool) -> Result<(), TmuxError> {
        let clients = match self.run(&[
            "list-clients",
            "-t",
            &exact(session),
            "-F",
            &format!("#{{client_name}}{SEP}#{{client_control_mode}}"),
        ]) {
            Ok(out) => out,
            Err(e) if matches!(e.kind, ErrorKind::NoSession | ErrorKind::NoServer) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut leaving = Vec::new();
        for line in clients.lines() {
            let Some((client, control)) = line.split_once(SEP) else {
                continue;
            };
            if control_only && control != "1" {
                continue;
            }
            // A client that left meanwhile is not an error.
            let _ = self.run(&["detach-client", "-t", client]);
            leaving.push(client.to_owned());
        }
        self.wait_clients_gone(|name, _pid| leaving.iter().any(|l| l == name));
        Ok(())
    }

    /// Waits (up to two seconds) until no client that `is_leaving(name, pid)` is listed by the
    /// server any more. The server forgets a client, and queues the `%client-detached` it tells
    /// other control clients, in the same turn of its loop; it runs that queue before any later
    /// command, so once a client is no longer listed its departure has been announced.
    pub(crate) fn wait_clients_gone(&self, is_leaving: impl Fn(&str, &str) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let listed = match self.run(&["list-clients", "-F", "#{client_name} #{client_pid}"]) {
                Ok(out) => out,
                Err(_) => return,
            };
            let still = listed.lines().any(|l| {
                let (name, pid) = l.rsplit_once(' ').unwrap_or((l, ""));
                is_leaving(name, pid)
            });
            if !still || std::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Starts `spec.argv` afresh in the existing session `spec.name` (`respawn-pane -k`: a program
    /// still running there is killed first), with `spec`'s working directory and environment. The
    /// session, its pane id and a person's attached terminal stay; control clients are detached
    /// first (see [`Tmux::detach_control_clients`]).
    pub fn respawn_pane(&self, spec: &SessionSpec) -> Result<(), TmuxError> {
        // tmux 3.5a sometimes crashes (SIGSEGV) when a pane is respawned while a control client
        // is attached to its session (found under parallel load; see tests/lifecycle.rs).
        let _turn = self.topology_turn();
        self.detach_control_clients(&spec.name)?;
        let mut args: Vec<String> = vec![
            "respawn-pane".into(),
            "-k".into(),
            "-t".into(),
            pane_target(&spec.name),
        ];
        args.extend(launch_args(spec));
        self.run(&args).map(drop)
    }

    /// The pane's text: the visible screen, or the whole scrollback with `history`.
    pub fn capture(&self, session: &str, history: bool) -> Result<String, TmuxError> {
        let mut args = vec!["capture-pane", "-p", "-J"];
        if history {
            args.extend(["-S", "-"]);
        }
        let target = pane_target(session);
        args.extend(["-t", &target]);
        self.run(&args)
    }

    /// Stops the whole server (every session on this socket) and makes sure it is gone: a
    /// server that is still there after two seconds (one can wait forever on a control client
    /// whose owner died) is killed. The socket file is removed only when it is still the killed
    /// server's own and nobody listens on it: a server started meanwhile (a `fleet start` racing
    /// this stop) keeps its socket, so it is never left running out of reach.
    pub fn kill_server(&self) -> Result<(), TmuxError> {
        let _turn = self.topology_turn();
        let info = self
            .run(&["display-message", "-p", "#{pid} #{socket_path}"])
            .ok();
        let target = info.as_deref().and_then(|i| {
            let (pid, socket) = i.trim().split_once(' ')?;
            let inode = std::fs::symlink_metadata(socket).ok()?.ino();
            Some((pid.to_owned(), socket.to_owned(), inode))
        });
        match self.run(&["kill-server"]) {
            Err(e) if e.kind == ErrorKind::NoServer => {}
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let Some((pid, socket, inode)) = target else {
            return Ok(());
        };
        // Gone, or a zombie nobody has reaped yet (the server is a daemon: init reaps it).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|st| {
                st.lines()
                    .any(|l| l.starts_with("State:") && !l.contains("Z (zombie)"))
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if alive() {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        // A server that exits removes its own socket; one killed leaves it behind.
        let stale = std::fs::symlink_metadata(&socket).is_ok_and(|m| m.ino() == inode)
            && std::os::unix::net::UnixStream::connect(&socket).is_err();
        if stale {
            let _ = std::fs::remove_file(&socket);
        }
        Ok(())
    }

    /// A command that attaches the caller's terminal to `session`.
    pub fn attach_command(&self, session: &str) -> Command {
        let mut c = self.command();
        c.args(["attach-session", "-t", &exact(session)]);
        c
    }
}

/// The topology turn of a tmux server ([`Tmux::topology_turn`]), released when dropped.
#[derive(Debug)]
pub struct TopologyTurn {
    /// The locked directory; `None` for a nested guard of a thread that holds the turn.
    dir: Option<std::fs::File>,
}

impl Drop for TopologyTurn {
    fn drop(&mut self) {
        if self.dir.take().is_some() {
            TURN_HELD.set(false);
        }
    }
}

/// A session whose control client answers a server's queries, and that client while kept.
struct QueryClient {
    session: String,
    client: Option<ControlClient>,
    /// When an attach was last tried (while there is no client).
    tried: Option<std::time::Instant>,
}

/// How often an attach for queries is tried while the session is not there.
const QUERY_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// This process's query clients, by socket name.
fn query_clients() -> &'static std::sync::Mutex<std::collections::HashMap<String, QueryClient>> {
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, QueryClient>>,
    > = std::sync::OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

thread_local! {
    /// Whether this thread holds the topology turn (the flock would deadlock a second taker).
    static TURN_HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The oldest tmux mosaic runs on: tmux 3.3a crashes (SIGSEGV, every agent lost) when a pane
/// whose program turned on focus reporting (Claude Code, Codex do) dies while a control client is
/// attached and its session is killed, or when a control client writes to a dead pane; 3.5a does not.
pub const MIN_VERSION: (u32, u32) = (3, 5);

/// `(major, minor)` of `tmux -V` output (`tmux 3.3a`, `tmux next-3.6`), ignoring letter suffixes.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let num = v.trim().rsplit([' ', '-']).next()?;
    let (major, minor) = num.split_once('.')?;
    let minor = minor.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// An exact-match session target (`=name`), so `ab` never matches session `abc`.
pub(crate) fn exact(session: &str) -> String {
    format!("={session}")
}

/// The active pane of an exactly named session.
pub(crate) fn pane_target(session: &str) -> String {
    format!("={session}:")
}

fn finish(out: Output) -> Result<String, TmuxError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TmuxError::from_stderr(&String::from_utf8_lossy(
            &out.stderr,
        )))
    }
}

/// `-c DIR -e K=V … -- ARGV`: where and how a session's program runs.
fn launch_args(spec: &SessionSpec) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(dir) = &spec.workdir {
        args.extend(["-c".into(), dir.display().to_string()]);
    }
    for (k, v) in &spec.env {
        args.extend(["-e".into(), format!("{k}={v}")]);
    }
    args.push("--".into());
    args.extend(spec.argv.iter().cloned());
    args
}

/// How many of a session's attached clients (`#{session_attached_list}`: their names,
/// comma-separated) are terminals: a control client has no tty and is named `client-PID`.
fn terminals(clients: &str) -> u32 {
    clients
        .split(',')
        .filter(|name| !name.is_empty() && !name.starts_with("client-"))
        .count() as u32
}

fn parse_pane(line: &str) -> Option<PaneInfo> {
    let f: Vec<&str> = line.split(SEP).collect();
    let [
        session,
        pane_id,
        pid,
        dead,
        status,
        signal,
        created,
        activity,
        fleet,
        attached,
        cx,
        cy,
    ] = f.as_slice()
    else {
        return None;
    };
    Some(PaneInfo {
        session: (*session).to_owned(),
        pane_id: (*pane_id).to_owned(),
        pid: pid.parse().unwrap_or(0),
        dead: *dead == "1",
        dead_status: status.parse().ok(),
        dead_signal: signal.parse().ok(),
        created: created.parse().unwrap_or(0),
        activity: activity.parse().unwrap_or(0),
        fleet: (*fleet).to_owned(),
        attached: terminals(attached),
        cursor: (cx.parse().unwrap_or(0), cy.parse().unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_terminals_count_as_attached() {
        assert_eq!(terminals(""), 0);
        assert_eq!(terminals("client-4242"), 0, "a control client is no person");
        assert_eq!(terminals("/dev/pts/3"), 1);
        assert_eq!(terminals("client-1,/dev/pts/3,client-2,/dev/pts/7"), 2);
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("tmux 3.3a"), Some((3, 3)));
        assert_eq!(parse_version("tmux 3.5a\n"), Some((3, 5)));
        assert_eq!(parse_version("tmux next-3.6"), Some((3, 6)));
        assert_eq!(parse_version("tmux 10.12"), Some((10, 12)));
        assert_eq!(parse_version("tmux master"), None);
        assert!(parse_version("tmux 3.3a").unwrap() < MIN_VERSION);
        assert!(parse_version("tmux 3.5a").unwrap() >= MIN_VERSION);
    }
}

#[cfg(test)]
mod env_tests {
    use super::passed_env;
    use std::ffi::OsString;

    #[test]
    fn only_what_agents_need_is_passed() {
        let vars = [
            ("PATH", "/bin"),
            ("DISCORD_TOKEN", "t"),
            ("TELEGRAM_BOT_TOKEN", "t"),
            ("LC_CTYPE", "C.UTF-8"),
            ("XDG_RUNTIME_DIR", "/run/user/0"),
            ("https_proxy", "http://p"),
            ("path", "/x"),
            ("ANTHROPIC_API_KEY", "k"),
            ("MOSAIC_STATE", "/s"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let passed: Vec<String> = passed_env(vars)
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect();
        assert_eq!(
            passed,
            [
                "PATH",
                "LC_CTYPE",
                "XDG_RUNTIME_DIR",
                "https_proxy",
                "ANTHROPIC_API_KEY"
            ]
        );
    }
}
