//! A throwaway tmux server for tests (feature `test-util`).

use crate::server::Tmux;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A tmux server on a socket name unique to this process and call; killed when dropped.
pub struct ScratchServer {
    /// The handle to use in the test.
    pub tmux: Tmux,
}

impl ScratchServer {
    /// A new, not yet started, private server.
    pub fn new() -> ScratchServer {
        let socket = format!(
            "mosaic-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ScratchServer {
            tmux: Tmux::new(socket),
        }
    }
}

impl Default for ScratchServer {
    fn default() -> Self {
        ScratchServer::new()
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        let _ = self.tmux.kill_server();
        // A server that crashed leaves its socket file; nothing else uses this name.
        let socket = self.tmux.socket_path();
        if std::os::unix::net::UnixStream::connect(&socket).is_err() {
            let _ = std::fs::remove_file(&socket);
        }
    }
}
