//! The fleet's comms through a chat platform (`comms: matrix`): besides being typed into the
//! agents' panes, what the fleet says to each agent (`fleet send` from any surface, the workers'
//! `[fleet notice]`s to the orchestrator) and what each worker answers at the end of its turn is
//! posted in that agent's own room, so a person sees the fleet's whole traffic in any client.
//!
//! Delivery into panes does not depend on the mode: a switch (`fleet comms …`, live, agents keep
//! running) changes only where the traffic is also posted, so nothing in flight is lost or
//! doubled by it. Posts go through the outbox like every reply (stored first, retried while the
//! homeserver is away, sent with stable transaction ids); an agent's room is looked up or made
//! (by the connector: [`mosaic_connector::Connector::agent_room`]) when its first post is sent.

use crate::Bridge;
use crate::split::split_for;
use mosaic_connector::ConnectorError;
use mosaic_exec::{Actor, Surface};
use mosaic_roster::CommsMode;

/// How the outbox names an agent's room before the connector has said which room it is.
const AGENT_ROOM_PREFIX: &str = "mosaic-agent:";

/// The mode the agents' rooms were last told (in the bridge's key-value table).
const COMMS_TOLD_KEY: &str = "comms_told";

/// The roster's matrix connector, which carries `comms: matrix`.
fn matrix_connector(roster: &mosaic_roster::Roster) -> Option<String> {
    roster
        .connectors
        .iter()
        .find(|c| c.kind == "matrix")
        .map(|c| c.id().to_owned())
}

/// What was typed into an agent, shown exactly as typed: a fenced block longer than any run of
/// backticks in it (so nothing in the text is read as formatting or markup).
pub(crate) fn literal(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}\n{text}\n{fence}")
}

/// The outbox's room for agent `agent`'s comms.
fn agent_room_key(agent: &str) -> String {
    format!("{AGENT_ROOM_PREFIX}{agent}")
}

/// Who said it, as the agent's room shows it.
pub(crate) fn speaker(actor: &Actor, orchestrator: &str) -> String {
    match &actor.surface {
        Surface::Chat { connector, user } => format!("{user} ({connector})"),
        Surface::Cli | Surface::Api => "owner".to_owned(),
        Surface::Orchestrator | Surface::Mcp => orchestrator.to_owned(),
    }
}

impl Bridge {
    /// The connector that carries the fleet's comms under the roster in use: none in tmux mode.
    fn comms_connector(&self) -> Option<String> {
        let roster = self.inner.roster.get();
        match roster.comms {
            CommsMode::Tmux => None,
            CommsMode::Matrix => matrix_connector(&roster),
        }
    }

    /// Tells the agents' rooms when the comms mode in use is not the one last told (kept in the
    /// database, so a switch made while the daemon was down, or just before it died, is told
    /// when it starts). To matrix: every agent's room says so (made now, so all are there from
    /// the switch on). To tmux: every room that was ever posted in hears that nothing more
    /// comes.
    pub(crate) fn tell_comms_mode(&self) {
        let roster = self.inner.roster.get();
        let mode = roster.comms.as_str();
        let store = self.inner.store.lock().unwrap();
        let told = store.get(COMMS_TOLD_KEY).ok().flatten();
        if told.as_deref() == Some(mode) {
            return;
        }
        // Rooms that may exist: those posted in before (whatever the mode was then).
        let used = matrix_connector(&roster)
            .map(|id| {
                let rooms = store.rooms_posted_in(&id).unwrap_or_default();
                (id, rooms)
            })
            .into_iter()
            .collect::<Vec<_>>();
        drop(store);
        let first_ever = told.is_none();
        match roster.comms {
            // A fleet that never left tmux has nothing to tell.
            CommsMode::Tmux if first_ever => {}
            CommsMode::Tmux => {
                for (id, rooms) in used {
                    for agent in rooms
                        .iter()
                        .filter_map(|r| r.strip_prefix(AGENT_ROOM_PREFIX))
                    {
                        let text =
                            format!("comms: {mode} from now on; nothing more is posted here");
                        self.post_in_agent_room(&id, agent, &text, None);
                    }
                }
            }
            CommsMode::Matrix => {
                for agent in &roster.agents {
                    let name = &agent.name;
                    self.comms_post(name, &format!("comms: {mode} from now on; what the fleet says to {name}, and what {name} answers, is posted here"));
                }
            }
        }
        tracing::info!(mode, "comms mode told to the agents' rooms");
        if let Err(e) = self.write(|s| s.set(COMMS_TOLD_KEY, mode)) {
            tracing::warn!(error = %e, "comms: cannot keep the mode told");
        }
    }

    /// Posts `text` in agent `agent`'s own room when the fleet's comms go through a platform;
    /// nothing in tmux mode. Whether it was kept for posting.
    pub(crate) fn comms_post(&self, agent: &str, text: &str) -> bool {
        self.comms_post_once(None, agent, text)
    }

    /// [`Bridge::comms_post`] for hook call `call` (when it has an id): kept for posting in the
    /// same transaction that records the call as taken, so a copy of the call posts nothing.
    pub(crate) fn comms_post_once(&self, call: Option<&str>, agent: &str, text: &str) -> bool {
        match self.comms_connector() {
            Some(id) => self.post_in_agent_room(&id, agent, text, call),
            None => false,
        }
    }

    /// Keeps `text` in the outbox for agent `agent`'s room on connector `id` (once for hook call
    /// `call`).
    fn post_in_agent_room(&self, id: &str, agent: &str, text: &str, call: Option<&str>) -> bool {
        // A room is made only for an agent of the fleet (a send to a wrong name fails anyway).
        if self.agent_role(agent).is_none() {
            return false;
        }
        let Some(connector) = self.inner.connectors.get(id) else {
            tracing::warn!(connector = %id, "comms: the connector is not running; {agent}'s traffic is not posted");
            return false;
        };
        let text = text.trim_end();
        if text.is_empty() {
            return false;
        }
        let parts = split_for(text, &connector.capabilities());
        let queued = self
            .write(|s| s.enqueue_out_once(call, id, &agent_room_key(agent), None, None, &parts));
        match queued {
            Ok(_) => {
                self.inner.wake_outbox.notify_one();
                true
            }
            Err(e) => {
                tracing::warn!(agent, error = %e, "comms: cannot keep a post");
                false
            }
        }
    }

    /// The platform's room for an outbox `room`: itself, or for an agent's comms room the room
    /// the connector made (asked once per agent and run; the connector finds it again after a
    /// restart).
    pub(crate) async fn resolve_room(
        &self,
        connector: &dyn mosaic_connector::Connector,
        room: &str,
    ) -> Result<String, ConnectorError> {
        let Some(agent) = room.strip_prefix(AGENT_ROOM_PREFIX) else {
            return Ok(room.to_owned());
        };
        let key = (connector.id().to_owned(), agent.to_owned());
        if let Some(found) = self.inner.agent_rooms.lock().unwrap().get(&key) {
            return Ok(found.clone());
        }
        let found = connector.agent_room(agent).await?;
        self.inner
            .agent_rooms
            .lock()
            .unwrap()
            .insert(key, found.clone());
        Ok(found)
    }
}
