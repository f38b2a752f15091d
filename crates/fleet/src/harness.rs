//! How each runtime is launched, found and told to exit.

use crate::paths::which;
use mosaic_roster::{Agent, RUNTIMES, Runtime};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A runtime found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The runtime.
    pub runtime: &'static Runtime,
    /// Where its program is.
    pub path: PathBuf,
    /// What `--version` printed (first line), if it answered in time.
    pub version: Option<String>,
}

/// Every real harness found on `PATH` (the demo agent is not listed: it is always available).
pub fn detect_installed() -> Vec<Installed> {
    RUNTIMES
        .iter()
        .filter_map(|rt| {
            let path = which(rt.binary?)?;
            let version = version_of(&path);
            Some(Installed {
                runtime: rt,
                path,
                version,
            })
        })
        .collect()
}

/// First line of `PROGRAM --version`, waiting at most two seconds.
fn version_of(path: &Path) -> Option<String> {
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// The command line that runs `agent` in its pane. `mosaic_exe` runs the demo agent.
pub fn launch_argv(agent: &Agent, mosaic_exe: &Path) -> Result<Vec<String>, String> {
    let mut argv: Vec<String> = match agent.runtime.as_str() {
        "demo" => vec![
            mosaic_exe.display().to_string(),
            "demo-agent".into(),
            "--name".into(),
            agent.name.clone(),
        ],
        other => {
            let rt = mosaic_roster::runtime(other)
                .ok_or_else(|| format!("unknown runtime {other:?}"))?;
            let binary = rt.binary.expect("real runtimes have a binary");
            let path = which(binary).ok_or_else(|| {
                format!(
                    "`{binary}` ({}) is not on PATH; install it or give agent {} another runtime",
                    rt.description, agent.name
                )
            })?;
            vec![path.display().to_string()]
        }
    };
    if let Some(model) = &agent.model {
        argv.extend(["--model".into(), model.clone()]);
    }
    if let Some(instructions) = agent
        .instructions
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        match agent.runtime.as_str() {
            // Claude Code and pi append to their system prompt.
            "claude" | "pi" => {
                argv.extend(["--append-system-prompt".into(), instructions.to_owned()])
            }
            // Codex takes developer instructions as a config override (a TOML string).
            "codex" => argv.extend([
                "-c".into(),
                format!("developer_instructions={}", toml_string(instructions)),
            ]),
            _ => argv.extend(["--instructions".into(), instructions.to_owned()]),
        }
    }
    Ok(argv)
}

/// How long a pane must be quiet after a paste before Enter: harnesses with rich TUIs debounce
/// pastes (an Enter inside the debounce window becomes a newline); the demo agent does not.
pub fn paste_settle(runtime: &str) -> Duration {
    match runtime {
        "demo" => Duration::ZERO,
        _ => Duration::from_millis(150),
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(runtime: &str) -> Agent {
        Agent {
            name: "a".into(),
            role: Default::default(),
            runtime: runtime.into(),
            model: Some("m".into()),
            workdir: None,
            instructions: Some("be \"good\"\nok".into()),
            env: Default::default(),
            restart: Default::default(),
            host: "local".into(),
        }
    }

    #[test]
    fn demo_runs_through_mosaic() {
        let argv = launch_argv(&agent("demo"), Path::new("/bin/mosaic")).unwrap();
        assert_eq!(
            argv,
            [
                "/bin/mosaic",
                "demo-agent",
                "--name",
                "a",
                "--model",
                "m",
                "--instructions",
                "be \"good\"\nok"
            ]
        );
    }

    #[test]
    fn missing_harness_says_what_to_do() {
        if which("claude").is_some() {
            return; // this machine has Claude Code; the launch line is then valid
        }
        let err = launch_argv(&agent("claude"), Path::new("/bin/mosaic")).unwrap_err();
        assert!(
            err.contains("`claude` (Claude Code (Anthropic)) is not on PATH"),
            "{err}"
        );
    }

    #[test]
    fn codex_instructions_are_a_toml_string() {
        assert_eq!(toml_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
