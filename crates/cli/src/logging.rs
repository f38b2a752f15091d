//! Diagnostics: one `tracing` subscriber writing to stderr. The libraries log events; this
//! binary picks the level (`-v`, `-vv`, or `RUST_LOG`) and the format (`mosaic up --log-format`).
//! The normal output to the user (tables, "added X", errors) is not logging and stays plain.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

const LEVELS: [&str; 4] = ["warn", "info", "debug", "trace"];

/// The filter: `rust_log` (the value of `RUST_LOG`) when it is set, else mosaic's own crates at
/// `quiet` raised by one level per `-v` (`quiet` is 0 for warn, 1 for info) and everything else
/// at warn.
fn filter(rust_log: Option<&str>, quiet: usize, verbose: u8) -> EnvFilter {
    if let Some(spec) = rust_log.filter(|s| !s.trim().is_empty()) {
        match EnvFilter::try_new(spec) {
            Ok(f) => return f,
            Err(e) => eprintln!("warning: ignoring RUST_LOG={spec:?}: {e}"),
        }
    }
    let level = LEVELS[(quiet + usize::from(verbose)).min(LEVELS.len() - 1)];
    // `mosaic` matches every target that starts with it: mosaic_bridge, mosaic_discord, …
    EnvFilter::new(format!("warn,mosaic={level}"))
}

/// Installs the subscriber for this process.
pub fn init(quiet: usize, verbose: u8, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(
            std::env::var(EnvFilter::DEFAULT_ENV).ok().as_deref(),
            quiet,
            verbose,
        ))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: cannot set up logging: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_v_raises_mosaics_level_up_to_trace_and_rust_log_overrides() {
        let f = |rust_log, quiet, verbose| filter(rust_log, quiet, verbose).to_string();
        assert_eq!(f(None, 0, 0), "mosaic=warn,warn");
        assert_eq!(f(None, 0, 1), "mosaic=info,warn");
        assert_eq!(f(None, 1, 0), "mosaic=info,warn");
        assert_eq!(f(None, 1, 2), "mosaic=trace,warn");
        assert_eq!(f(None, 0, 9), "mosaic=trace,warn");
        assert_eq!(f(Some("mosaic_bridge=debug"), 1, 2), "mosaic_bridge=debug");
        assert_eq!(f(Some(" "), 0, 1), "mosaic=info,warn");
        // A bad RUST_LOG is reported and the flags decide.
        assert_eq!(f(Some("mosaic=loud"), 0, 1), "mosaic=info,warn");
    }
}
