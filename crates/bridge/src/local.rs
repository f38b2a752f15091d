//! The built-in `local` connector: the default that works with no credentials. Its platform is
//! the daemon's own API: `mosaic chat` posts messages there (`POST /v1/chat`, which hands them
//! straight to [`crate::Bridge::accept`], so a 202 means stored), and reads replies from the
//! event stream, where the outbox publishes every posted message.

use crate::acl::LOCAL;
use async_trait::async_trait;
use mosaic_connector::{
    Capabilities, Connector, ConnectorError, Health, Markdown, Outbound, RunContext,
};

/// The local connector.
#[derive(Debug, Default)]
pub struct LocalConnector;

#[async_trait]
impl Connector for LocalConnector {
    fn id(&self) -> &str {
        LOCAL
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_message_len: 4000,
            markdown: Markdown::CommonMark,
            threads: false,
            native_commands: false,
            reactions: false,
        }
    }

    async fn run(&self, mut ctx: RunContext) -> Result<(), ConnectorError> {
        // Inbound arrives through the API; this only lives as long as the bridge listens.
        ctx.health.set(Health::Up);
        tokio::select! {
            _ = ctx.inbound.closed() => {}
            _ = ctx.shutdown.wait() => {}
        }
        Ok(())
    }

    async fn send(&self, message: &Outbound) -> Result<String, ConnectorError> {
        // Posting is the outbox's `message_out` event on the stream `mosaic chat` reads.
        Ok(message.key.clone())
    }

    async fn ack(&self, _room: &str, _message_id: &str) -> Result<(), ConnectorError> {
        Ok(())
    }
}
