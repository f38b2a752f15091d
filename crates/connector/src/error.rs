//! Connector errors: a kind the bridge decides retries from, plus the source.

use std::time::Duration;

/// How the bridge should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A passing failure (network, 5xx): retry with backoff.
    Retryable,
    /// The platform asked to slow down: retry after the delay.
    RateLimited {
        /// How long the platform asked to wait.
        retry_after: Duration,
    },
    /// The credentials were refused: retrying will not help until they are fixed.
    Auth,
    /// Anything else that retrying cannot fix (bad request, unknown room).
    Fatal,
}

/// A connector failure.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {source}")]
pub struct ConnectorError {
    /// The kind.
    pub kind: ErrorKind,
    /// What went wrong underneath.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ConnectorError {
    /// An error of `kind` caused by `source`.
    pub fn new(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ConnectorError {
            kind,
            source: source.into(),
        }
    }

    /// Whether sending again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Retryable | ErrorKind::RateLimited { .. }
        )
    }

    /// The delay the platform asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => Some(retry_after),
            _ => None,
        }
    }
}
