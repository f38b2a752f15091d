//! Errors: a kind callers branch on, plus what tmux said.

/// What went wrong, coarsely, so callers can tell a retry from a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The `tmux` program is not installed or not on `PATH`.
    NotInstalled,
    /// No tmux server is running on the socket (no agent is running).
    NoServer,
    /// The named session does not exist.
    NoSession,
    /// The pane's program has exited: nothing is written to a dead pane.
    PaneDead,
    /// The agent did not react to input in time; retrying may help.
    Timeout,
    /// The agent shows a dialog (a permission prompt): nothing was typed.
    DialogShown,
    /// A dialog opened while the text was being pasted: it was pasted, Enter was not pressed.
    DialogAppeared,
    /// tmux refused the command.
    Failed,
    /// Spawning or talking to tmux failed.
    Io,
}

/// A tmux failure: its kind and the message behind it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TmuxError {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// What tmux (or the driver) said.
    pub message: String,
}

impl TmuxError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TmuxError {
            kind,
            message: message.into(),
        }
    }

    /// Classifies a failed command's stderr.
    pub(crate) fn from_stderr(stderr: &str) -> Self {
        let s = stderr.trim();
        // "server exited unexpectedly": the server was shutting down (its last session just
        // ended) while this command connected; for the caller it is simply gone.
        let kind = if s.starts_with("no server running")
            || s.starts_with("error connecting to")
            || s.contains("server exited unexpectedly")
        {
            ErrorKind::NoServer
        } else if s.starts_with("can't find session")
            || s.starts_with("no current target")
            || s.starts_with("can't find pane")
            || s.starts_with("can't find window")
        {
            ErrorKind::NoSession
        } else {
            ErrorKind::Failed
        };
        TmuxError::new(kind, s)
    }

    pub(crate) fn io(what: &str, e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            TmuxError::new(
                ErrorKind::NotInstalled,
                "tmux is not installed or not on PATH (install tmux 3.5 or newer: deploy/install-deps.sh)",
            )
        } else {
            TmuxError::new(ErrorKind::Io, format!("{what}: {e}"))
        }
    }

    /// Whether trying again later can succeed without anything being fixed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout | ErrorKind::Io)
    }
}
