//! Who may do what from chat: deny by default, roles per platform user, bridged rooms only, a
//! per-user rate limit.

use mosaic_grammar::FleetCommand;
use mosaic_roster::{AclRole, Roster};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

/// The id of the built-in local connector (`mosaic chat`), whose one user is the machine's owner.
pub const LOCAL: &str = mosaic_roster::RESERVED_CONNECTOR_ID;

/// The permissions of every chat user, from the roster.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    roles: HashMap<(String, String), AclRole>,
    rooms: HashMap<String, HashSet<String>>,
}

impl Acl {
    /// The roster's `acl:` entries and bridged rooms, plus the local user as admin of the local room.
    pub fn from_roster(roster: &Roster) -> Acl {
        let mut acl = Acl::default();
        for e in &roster.acl {
            acl.roles
                .insert((e.connector.clone(), e.user.clone()), e.role);
        }
        for c in &roster.connectors {
            acl.rooms
                .entry(c.id().to_owned())
                .or_default()
                .extend(c.rooms());
        }
        acl.roles
            .insert((LOCAL.into(), LOCAL.into()), AclRole::Admin);
        acl.rooms
            .entry(LOCAL.into())
            .or_default()
            .insert(LOCAL.into());
        acl
    }

    /// Whether `room` of `connector` is bridged.
    pub fn room_allowed(&self, connector: &str, room: &str) -> bool {
        self.rooms.get(connector).is_some_and(|r| r.contains(room))
    }

    /// The user's role, `None` for anyone not listed.
    pub fn role(&self, connector: &str, user: &str) -> Option<AclRole> {
        self.roles
            .get(&(connector.to_owned(), user.to_owned()))
            .copied()
    }
}

pub use mosaic_exec::required_role;

/// The role needed to talk to the orchestrator (it can act on everything it is told).
pub const TALK_ROLE: AclRole = AclRole::Operator;

/// Whether a command asked for in chat waits for `/fleet confirm CODE`.
pub fn needs_confirmation(command: &FleetCommand) -> bool {
    match command {
        FleetCommand::Init(_) | FleetCommand::Remove(_) => true,
        FleetCommand::Update(u) => !u.dry_run,
        FleetCommand::Stop(s) => s.agents.is_empty(),
        _ => false,
    }
}

/// A token bucket per user: `per_minute` messages a minute, bursts up to that many.
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` messages a minute per user.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: per_minute.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for the user at `now`; false when the user is over the limit.
    pub fn allow_at(&self, connector: &str, user: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap();
        let (tokens, last) = buckets
            .entry((connector.to_owned(), user.to_owned()))
            .or_insert((self.per_minute, now));
        *tokens = (*tokens
            + now.saturating_duration_since(*last).as_secs_f64() * self.per_minute / 60.0)
            .min(self.per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// [`RateLimiter::allow_at`] now.
    pub fn allow(&self, connector: &str, user: &str) -> bool {
        self.allow_at(connector, user, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_grammar::chat::{ChatInput, parse};
    use std::time::Duration;

    fn cmd(line: &str) -> FleetCommand {
        match parse(line) {
            ChatInput::Command(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn roles_grow_with_power() {
        assert_eq!(required_role(&cmd("/fleet status")), AclRole::Viewer);
        assert_eq!(required_role(&cmd("/fleet send mos hi")), AclRole::Operator);
        assert_eq!(
            required_role(&cmd("/fleet add x --runtime demo")),
            AclRole::Admin
        );
        assert!(AclRole::Viewer < AclRole::Operator && AclRole::Operator < AclRole::Admin);
        assert!(needs_confirmation(&cmd("/fleet remove x")));
        assert!(needs_confirmation(&cmd("/fleet stop")));
        assert!(!needs_confirmation(&cmd("/fleet stop coder")));
        assert!(needs_confirmation(&cmd("/fleet update claude")));
        assert!(!needs_confirmation(&cmd("/fleet update --dry-run")));
    }

    #[test]
    fn deny_by_default() {
        mosaic_connector::registry::register(&mosaic_testchat::TYPE);
        let roster = mosaic_roster::Roster::parse(
            "version: 1\nfleet: f\nagents:\n- {name: mos, role: orchestrator, runtime: demo}\nconnectors:\n- {type: testchat, id: telegram, dir: /x, rooms: ['42'], token: {env: T}}\nacl:\n- {connector: telegram, user: '7', role: viewer}\n",
            "r",
        )
        .unwrap();
        let acl = Acl::from_roster(&roster);
        assert_eq!(acl.role("telegram", "7"), Some(AclRole::Viewer));
        assert_eq!(acl.role("telegram", "8"), None);
        assert_eq!(acl.role("discord", "7"), None);
        assert!(acl.room_allowed("telegram", "42"));
        assert!(!acl.room_allowed("telegram", "43"));
        assert_eq!(acl.role(LOCAL, LOCAL), Some(AclRole::Admin));
    }

    #[test]
    fn rate_limit_refills_over_time() {
        let rl = RateLimiter::new(2);
        let t = Instant::now();
        assert!(rl.allow_at("c", "u", t));
        assert!(rl.allow_at("c", "u", t));
        assert!(!rl.allow_at("c", "u", t));
        assert!(rl.allow_at("c", "other", t), "limits are per user");
        assert!(rl.allow_at("c", "u", t + Duration::from_secs(30)));
    }
}
