//! Where mosaic keeps configuration and state (XDG by default, overridable).

use std::path::{Path, PathBuf};

/// The config and state directories of one mosaic installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Holds `roster.yaml`, `roster.generated.yaml` and `presets/`.
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

    /// The user's own presets.
    pub fn presets_dir(&self) -> PathBuf {
        self.config_dir.join("presets")
    }

    /// One agent's state directory.
    pub fn agent_state(&self, agent: &str) -> PathBuf {
        self.state_dir.join("agents").join(agent)
    }
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

/// Writes `contents` to `path` atomically (a sibling temp file renamed over it), creating parents.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Finds `program` on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
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
