//! A tmux driver for mosaic.
//!
//! Every call goes to one private tmux server (`tmux -L SOCKET -f /dev/null`), so the user's own
//! tmux and its configuration are never touched. Reading the whole fleet is one `list-panes -a`
//! call. Text is delivered through a control-mode client ([`control`]): it is loaded into a paste
//! buffer as one quoted argument (never parsed as commands or keys), pasted as a bracketed paste,
//! submitted with Enter, and confirmed from the pane's own output stream.

pub mod control;
mod error;
mod sanitize;
#[cfg(feature = "test-util")]
mod scratch;
mod server;

pub use control::{ControlClient, SendOptions, SendReport, Waker};
pub use error::{ErrorKind, TmuxError};
pub use sanitize::{quote_argument, sanitize};
#[cfg(feature = "test-util")]
pub use scratch::ScratchServer;
pub use server::{
    FLEET_OPTION, MIN_VERSION, PaneInfo, SessionSpec, Tmux, TopologyTurn, parse_version, which,
};
