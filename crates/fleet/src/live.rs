//! The daemon's one roster: loaded once, re-read whenever `roster.yaml` changes (a CLI or chat
//! command, an API call, a hand edit), validated, and swapped atomically. An invalid file keeps
//! the last good roster in use.

use crate::engine::{read_roster, remember_good};
use crate::error::FleetError;
use crate::paths::Paths;
use mosaic_roster::Roster;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, RwLock};

/// What identifies one version of the file without reading it: a rewrite (rename) changes the
/// inode, an edit in place the size or the modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(path: &std::path::Path) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

/// What [`LiveRoster::reload`] found.
#[derive(Debug)]
pub enum Reload {
    /// The file did not change (or changed back to the roster in use while it was valid).
    Unchanged,
    /// A new valid roster is in use.
    Changed(Arc<Roster>),
    /// The file is missing or invalid; the last good roster stays in use. Reported once per
    /// version of the file.
    Invalid(FleetError),
}

/// A shared, always valid roster that follows `roster.yaml`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveRoster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    paths: Paths,
    current: RwLock<Arc<Roster>>,
    seen: Mutex<Seen>,
}

/// The version of the file last looked at.
#[derive(Debug)]
struct Seen {
    stamp: Option<Stamp>,
    /// The text of the roster in use.
    text: String,
    /// Whether the file last looked at was valid.
    valid: bool,
}

impl LiveRoster {
    /// Loads `roster.yaml` from `paths`; fails when there is no valid roster to start with.
    pub fn open(paths: Paths) -> Result<LiveRoster, FleetError> {
        let stamp = Stamp::of(&paths.roster());
        let (roster, text) = read_roster(&paths)?;
        remember_good(&paths, &text);
        Ok(LiveRoster {
            inner: Arc::new(Inner {
                paths,
                current: RwLock::new(Arc::new(roster)),
                seen: Mutex::new(Seen {
                    stamp,
                    text,
                    valid: true,
                }),
            }),
        })
    }

    /// The directories this roster belongs to.
    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    /// The roster in use.
    pub fn get(&self) -> Arc<Roster> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Looks at `roster.yaml` (one `stat` when it did not change) and, when it changed, reads,
    /// validates and swaps it in. Blocking (small file I/O).
    pub fn reload(&self) -> Reload {
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.inner.paths.roster();
        let stamp = Stamp::of(&path);
        if stamp.is_some() && stamp == seen.stamp {
            return Reload::Unchanged;
        }
        // Missing: report once, until the file comes back.
        if stamp.is_none() && seen.stamp.is_none() && !seen.valid {
            return Reload::Unchanged;
        }
        seen.stamp = stamp;
        match read_roster(&self.inner.paths) {
            Ok((_, text)) if text == seen.text && seen.valid => Reload::Unchanged,
            Ok((roster, text)) => {
                remember_good(&self.inner.paths, &text);
                let roster = Arc::new(roster);
                *self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = roster.clone();
                seen.text = text;
                seen.valid = true;
                Reload::Changed(roster)
            }
            Err(e) => {
                seen.valid = false;
                Reload::Invalid(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "version: 1\nfleet: f\nagents:\n- {name: mos, role: orchestrator, runtime: demo}\n";

    fn setup() -> (tempfile::TempDir, Paths, LiveRoster) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            config_dir: dir.path().join("config"),
            state_dir: dir.path().join("state"),
        };
        std::fs::create_dir_all(&paths.config_dir).unwrap();
        std::fs::write(paths.roster(), GOOD).unwrap();
        let live = LiveRoster::open(paths.clone()).unwrap();
        (dir, paths, live)
    }

    #[test]
    fn a_valid_change_is_swapped_in_and_kept_as_the_last_good_copy() {
        let (_dir, paths, live) = setup();
        assert!(matches!(live.reload(), Reload::Unchanged));
        let more = format!("{GOOD}- {{name: helper, runtime: demo}}\n");
        std::fs::write(paths.roster(), &more).unwrap();
        let Reload::Changed(roster) = live.reload() else {
            panic!("the change is seen")
        };
        assert!(roster.agent("helper").is_some());
        assert!(live.get().agent("helper").is_some());
        assert_eq!(
            std::fs::read_to_string(paths.last_good_roster()).unwrap(),
            more
        );
        assert!(matches!(live.reload(), Reload::Unchanged));
    }

    #[test]
    fn an_invalid_change_is_reported_once_and_the_old_roster_stays() {
        let (_dir, paths, live) = setup();
        std::fs::write(paths.roster(), GOOD.replace("mos", "Mos")).unwrap();
        let Reload::Invalid(e) = live.reload() else {
            panic!("the problem is reported")
        };
        assert!(e.to_string().contains("roster.yaml:4:"), "{e}");
        assert!(matches!(live.reload(), Reload::Unchanged), "once");
        assert!(live.get().agent("mos").is_some(), "the last good roster");
        assert_eq!(
            std::fs::read_to_string(paths.last_good_roster()).unwrap(),
            GOOD
        );
        // Back to the same good text: announced, since the last report was a problem.
        std::fs::write(paths.roster(), GOOD).unwrap();
        assert!(matches!(live.reload(), Reload::Changed(_)));
    }

    #[test]
    fn a_missing_file_is_reported_once() {
        let (_dir, paths, live) = setup();
        std::fs::remove_file(paths.roster()).unwrap();
        assert!(matches!(
            live.reload(),
            Reload::Invalid(FleetError::NoRoster { .. })
        ));
        assert!(matches!(live.reload(), Reload::Unchanged));
        std::fs::write(paths.roster(), GOOD).unwrap();
        assert!(matches!(live.reload(), Reload::Changed(_)));
    }
}
