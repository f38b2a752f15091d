//! The bridge's view of the roster in use (ACL, rooms, settings, the rate limiter), rebuilt and
//! swapped whenever the live roster changes, and the roster watcher that follows the file.

use crate::Bridge;
use crate::acl::{Acl, RateLimiter};
use crate::events::Event;
use mosaic_fleet::{FleetError, Reload};
use mosaic_roster::{BridgeSettings, Roster};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the bridge takes from the roster in use, rebuilt on each change.
pub(crate) struct View {
    pub(crate) acl: Acl,
    pub(crate) settings: BridgeSettings,
    pub(crate) rate: Arc<RateLimiter>,
}

impl View {
    /// The view of `roster`, keeping `old`'s rate counts while the rate is unchanged.
    pub(crate) fn of(roster: &Roster, old: Option<&View>) -> View {
        let settings = roster.bridge.clone();
        let rate = match old {
            Some(v) if v.settings.rate_per_minute == settings.rate_per_minute => v.rate.clone(),
            _ => Arc::new(RateLimiter::new(settings.rate_per_minute)),
        };
        View {
            acl: Acl::from_roster(roster),
            settings,
            rate,
        }
    }
}

impl Bridge {
    /// What the bridge takes from the roster in use.
    pub(crate) fn view(&self) -> Arc<View> {
        self.inner
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads `roster.yaml` if it changed: a valid roster is swapped in (ACL, rooms and
    /// settings with it) and announced; an invalid one is reported and the old one kept.
    pub(crate) async fn refresh_roster(&self) {
        let live = self.inner.roster.clone();
        let Ok(reload) = tokio::task::spawn_blocking(move || live.reload()).await else {
            return;
        };
        match reload {
            Reload::Unchanged => {}
            Reload::Changed(roster) => {
                let view = View::of(&roster, Some(&self.view()));
                *self.inner.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
                for connector in self.inner.connectors.values() {
                    let users: Vec<String> = roster
                        .acl
                        .iter()
                        .filter(|a| a.connector == connector.id())
                        .map(|a| a.user.clone())
                        .collect();
                    connector.users_changed(&users).await;
                }
                self.tell_comms_mode();
                let _ = self.inner.events.send(Event::RosterChanged {
                    agents: roster.agents.iter().map(|a| a.name.clone()).collect(),
                });
            }
            Reload::Invalid(e) => {
                tracing::warn!(
                    error = %e,
                    "roster.yaml is invalid; keeping the last good roster until it is fixed"
                );
                let _ = self.inner.events.send(Event::RosterInvalid {
                    problems: problem_lines(&e),
                });
            }
        }
    }

    /// The roster watcher: follows `roster.yaml` (one `stat` a second, a re-read when it
    /// changed) until `stop` turns true.
    pub async fn watch_roster(&self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            self.refresh_roster().await;
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Where a roster is wrong, one line each (`file:line:column: field: message`).
fn problem_lines(e: &FleetError) -> Vec<String> {
    match e {
        FleetError::Roster(r) if r.problems().is_some() => r
            .to_string()
            .lines()
            .skip(1)
            .map(|l| l.trim().to_owned())
            .collect(),
        e => vec![e.to_string()],
    }
}
