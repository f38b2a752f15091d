//! Where mosaic keeps configuration and state (XDG by default, overridable).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config and state directories of one mosaic installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Holds `roster.yaml`, `roster.generated.yaml`, `presets/` and `harnesses/`.
    pub config_dir: PathBuf,
    /// Holds per-agent state (demo transcripts, paste staging) and, later, the daemon's database.
    pub state_dir: PathBuf,
}

impl Paths {
    /// Resolves the directories: explicit values first (flags or `MOSAIC_CONFIG`/`MOSAIC_STATE`,
    /// which the CLI passes in), then `$XDG_CONFIG_HOME/mosaic` and `$XDG_STATE_HOME/mosaic`,
    /// then `~/.config/mosaic` and `~/.local/state/mosaic`.
    pub fn resolve(config: Option<PathBuf>, state: Option<PathBuf>) -> Paths {
        let home = home_dir();
        let xdg = |var: &str, fallback: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(fallback))
                .join("mosaic")
        };
        Paths {
            config_dir: config.unwrap_or_else(|| xdg("XDG_CONFIG_HOME", ".config")),
            state_dir: state.unwrap_or_else(|| xdg("XDG_STATE_HOME", ".local/state")),
        }
    }

    /// `roster.yaml`, the source of truth.
    pub fn roster(&self) -> PathBuf {
        self.config_dir.join("roster.yaml")
    }

    /// What `mosaic fleet init` generated last time; the base of the re-init merge.
    pub fn generated_roster(&self) -> PathBuf {
        self.config_dir.join("roster.generated.yaml")
    }

    /// The lock file beside `roster.yaml` that every roster writer holds while it reads,
    /// changes and writes the roster.
    pub fn roster_lock(&self) -> PathBuf {
        self.config_dir.join("roster.yaml.lock")
    }

    /// A copy of the last roster that loaded without problems, so what runs can still be stopped
    /// when `roster.yaml` is broken or gone.
    pub fn last_good_roster(&self) -> PathBuf {
        self.state_dir.join("roster.last-good.yaml")
    }

    /// The user's own presets.
    pub fn presets_dir(&self) -> PathBuf {
        self.config_dir.join("presets")
    }

    /// The user's own harness manifests (`*.yaml`, see [`mosaic_roster::harness`]).
    pub fn harnesses_dir(&self) -> PathBuf {
        self.config_dir.join("harnesses")
    }

    /// One agent's state directory.
    pub fn agent_state(&self, agent: &str) -> PathBuf {
        self.state_dir.join("agents").join(agent)
    }

    /// The marker `fleet stop` leaves for an agent it stopped on purpose (removed when the
    /// agent starts again): the supervisor restarts an agent that stopped without one.
    pub fn stop_requested(&self, agent: &str) -> PathBuf {
        self.agent_state(agent).join("stop-requested")
    }

    /// The file holding an agent's own API token (mode 0600), see [`AgentToken`].
    pub fn agent_token(&self, agent: &str) -> PathBuf {
        self.agent_state(agent).join("token")
    }
}

/// The environment variable holding an agent's own API token, `NAME:SECRET`: given to its
/// harness at launch, used by `mosaic reply`, `mosaic hook`, `mosaic mcp` and `mosaic fleet` run
/// inside the agent, so the daemon knows which agent asks and grants only what its role may do.
pub const AGENT_TOKEN_ENV: &str = "MOSAIC_AGENT_TOKEN";

/// An agent's own API token: `NAME:SECRET`, where SECRET is kept in the agent's state directory
/// (mode 0600) and stays the same across restarts of the agent and of the daemon.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentToken {
    /// The agent it belongs to.
    pub agent: String,
    secret: String,
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgentToken({}:…)", self.agent)
    }
}

impl AgentToken {
    /// The agent's token, created the first time.
    pub fn ensure(paths: &Paths, agent: &str) -> std::io::Result<AgentToken> {
        let path = paths.agent_token(agent);
        if let Some(token) = Self::read(paths, agent) {
            return Ok(token);
        }
        let secret = random_hex(32)?;
        write_atomic(&path, &secret)?;
        Ok(AgentToken {
            agent: agent.to_owned(),
            secret,
        })
    }

    /// The agent's token if it has one.
    pub fn read(paths: &Paths, agent: &str) -> Option<AgentToken> {
        let secret = std::fs::read_to_string(paths.agent_token(agent)).ok()?;
        let secret = secret.trim();
        (secret.len() == 64).then(|| AgentToken {
            agent: agent.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Splits a presented `NAME:SECRET` into the agent's name and the secret.
    pub fn parse(presented: &str) -> Option<(&str, &str)> {
        let (agent, secret) = presented.rsplit_once(':')?;
        (!agent.is_empty() && !secret.is_empty()).then_some((agent, secret))
    }

    /// Whether `secret` is this token's secret (in constant time).
    pub fn matches(&self, secret: &str) -> bool {
        constant_time_eq(self.secret.as_bytes(), secret.as_bytes())
    }

    /// The value of [`AGENT_TOKEN_ENV`]: `NAME:SECRET`.
    pub fn presented(&self) -> String {
        format!("{}:{}", self.agent, self.secret)
    }
}

/// Compares two secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user's home directory (`$HOME`, else `/`).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Expands a leading `~` to the home directory.
pub fn expand_tilde(path: &str) -> PathBuf {
    match path.strip_prefix('~') {
        Some("") => home_dir(),
        Some(rest) if rest.starts_with('/') => home_dir().join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

/// Where `agent` works: its `workdir` with `~` expanded, else the home directory.
pub fn agent_workdir(agent: &mosaic_roster::Agent) -> PathBuf {
    agent
        .workdir
        .as_deref()
        .map(expand_tilde)
        .unwrap_or_else(home_dir)
}

/// Writes `contents` to `path` atomically, creating parents: a uniquely named sibling temp file
/// (mode 0600) renamed over it, so concurrent writers never share a temp file.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.tmp-",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
        ))
        .tempfile_in(dir)?;
    tmp.write_all(contents.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `bytes` random bytes from the kernel (`/dev/urandom`) as lowercase hex: tokens, nonces and
/// ids that must not repeat across restarts.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    // Opened once: a message's nonce is drawn on every accept.
    static URANDOM: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    let urandom = match URANDOM.get() {
        Some(f) => f,
        None => {
            let f = std::fs::File::open("/dev/urandom")?;
            URANDOM.get_or_init(|| f)
        }
    };
    let mut buf = vec![0u8; bytes];
    (&*urandom).read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// An exclusive lock on a file, held until dropped (`flock`, so it is released when the process
/// dies too).
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

/// Waits for the exclusive lock on `path` (created, mode 0600, if missing).
pub fn lock_exclusive(path: &Path) -> std::io::Result<FileLock> {
    let file = open_lock_file(path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(FileLock { _file: file })
}

/// Takes the exclusive lock on `path` if it comes within `patience` (a holder that only checks
/// for a moment lets go); `None` while another process keeps it.
pub fn try_lock_exclusive(path: &Path, patience: Duration) -> std::io::Result<Option<FileLock>> {
    let file = open_lock_file(path)?;
    let deadline = std::time::Instant::now() + patience;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether another process holds the exclusive lock on `path` now (checked with a shared lock,
/// so checkers never get in each other's way). A missing file is not locked.
pub fn locked_by_another(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    matches!(
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

pub use mosaic_tmux::which;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dirs_win() {
        let p = Paths::resolve(Some("/c".into()), Some("/s".into()));
        assert_eq!(p.roster(), PathBuf::from("/c/roster.yaml"));
        assert_eq!(p.agent_state("mos"), PathBuf::from("/s/agents/mos"));
    }

    #[test]
    fn tilde_expands_only_at_the_start() {
        assert_eq!(expand_tilde("~/x"), home_dir().join("x"));
        assert_eq!(expand_tilde("/a/~"), PathBuf::from("/a/~"));
        assert_eq!(expand_tilde("~user"), PathBuf::from("~user"));
    }
}
