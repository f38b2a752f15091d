//! The harnesses an agent can run in.

/// A harness mosaic knows how to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// Name used in the roster (`runtime: claude`).
    pub name: &'static str,
    /// The program looked up on `PATH` (the demo agent is built into `mosaic`).
    pub binary: Option<&'static str>,
    /// One line for prompts and tables.
    pub description: &'static str,
    /// Text that asks the harness to exit gracefully.
    pub exit_text: &'static str,
    /// What the harness prints when it waits for input, where that is fixed and plain; the
    /// bridge's fallback idle signal when no hook reports.
    pub idle_prompt: Option<&'static str>,
}

/// Every known runtime; the demo agent is last.
pub const RUNTIMES: &[Runtime] = &[
    Runtime {
        name: "claude",
        binary: Some("claude"),
        description: "Claude Code (Anthropic)",
        exit_text: "/exit",
        idle_prompt: None,
    },
    Runtime {
        name: "codex",
        binary: Some("codex"),
        description: "Codex CLI (OpenAI)",
        exit_text: "/quit",
        idle_prompt: None,
    },
    Runtime {
        name: "pi",
        binary: Some("pi"),
        description: "pi coding agent",
        exit_text: "/quit",
        idle_prompt: None,
    },
    Runtime {
        name: DEMO_RUNTIME,
        binary: None,
        description: "mosaic demo agent (a scripted stand-in, not an AI)",
        exit_text: "/exit",
        idle_prompt: Some("demo> "),
    },
];

/// The name of the built-in demo agent runtime.
pub const DEMO_RUNTIME: &str = "demo";

/// The runtime called `name`.
pub fn runtime(name: &str) -> Option<&'static Runtime> {
    RUNTIMES.iter().find(|r| r.name == name)
}

/// All runtime names, for error messages.
pub fn runtime_names() -> Vec<&'static str> {
    RUNTIMES.iter().map(|r| r.name).collect()
}
