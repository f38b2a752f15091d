//! The real-harness rig: Claude Code, Codex and pi from npm (installed by
//! `deploy/install-harnesses.sh`, cached outside the clone) against the scripted model server
//! (TEST SUPPORT, `crates/scripted-model`), in a sandbox whose HOME holds only what each harness
//! needs to start offline with no dialog.

use super::*;
use std::sync::OnceLock;

/// The folder holding the real harnesses' executables (installs them the first time).
pub fn harness_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new("bash")
            .arg(root.join("deploy/install-harnesses.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "deploy/install-harnesses.sh failed: the real-harness tests need Node.js 20+ with npm"
        );
        PathBuf::from(text(&out.stdout).trim())
    })
    .clone()
}

/// `PATH` with the real harnesses first.
pub fn path_with_harnesses() -> String {
    format!(
        "{}:{}",
        harness_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A scripted model server on loopback for this test (stops with the test process).
pub fn model() -> mosaic_scripted_model::Running {
    mosaic_scripted_model::Running::start().expect("the scripted model server starts")
}

/// Runs `mosaic ARGS` in the sandbox with the real harnesses on `PATH` (so a fleet start finds
/// them); its stdout, failing the test with both outputs if it failed.
pub fn ok_with_harnesses(s: &Sandbox, args: &[&str]) -> String {
    s.ok_with(args, &[("PATH", path_with_harnesses())])
}
