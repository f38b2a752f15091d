//! `mosaic mcp`: an MCP server on stdio that gives the orchestrator's harness tools to talk back
//! in chat and to change the fleet. Every tool goes through the daemon's API, under the same ACL
//! as a human (the roster's `bridge.orchestrator_role`).

use crate::client::Daemon;
use mosaic_exec::{Outcome, render};
use mosaic_fleet::Paths;
use mosaic_grammar::{self as grammar, FleetCommand, PsArgs, RemoveArgs, STOP_TIMEOUT_SECS};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{
    ErrorData as McpError, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The orchestrator's fleet tools. The daemon is found at each call: the server starts (and
/// lists its tools) while the daemon is away, and a call then gets a clear tool error.
#[derive(Clone)]
pub struct FleetTools {
    paths: Arc<Paths>,
    #[allow(dead_code)] // read by the code #[tool_handler] generates
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ReplyArgs {
    #[schemars(description = "The message; long messages are split at the platform's limit")]
    text: String,
    #[schemars(
        description = "CONNECTOR:ROOM to post in; default: where the last message came from"
    )]
    room: Option<String>,
    #[schemars(
        description = "The N of the `[chat #N from …]` message this answers: the reply goes to that message's room"
    )]
    to: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddArgs {
    #[schemars(description = "New agent's name, [a-z][a-z0-9-]{0,31}")]
    name: String,
    #[schemars(description = "Harness: claude, codex, pi or demo")]
    runtime: String,
    #[schemars(description = "Model for the harness")]
    model: Option<String>,
    #[schemars(description = "Working directory")]
    workdir: Option<String>,
    #[schemars(description = "Instructions appended to the harness's system prompt")]
    instructions: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct NameArgs {
    #[schemars(description = "Agent name")]
    name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SendArgs {
    #[schemars(description = "Agent to type into")]
    name: String,
    #[schemars(description = "Text to type and submit")]
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct NoArgs {}

fn answer(result: anyhow::Result<Value>, field: &str) -> Result<CallToolResult, McpError> {
    Ok(match result {
        Ok(v) => CallToolResult::success(vec![ContentBlock::text(match &v[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })]),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("{e:#}"))]),
    })
}

impl FleetTools {
    async fn call(&self, path: &'static str, body: Value) -> anyhow::Result<Value> {
        let paths = self.paths.clone();
        // A fleet command may start agents or install a harness; everything else answers at once.
        let limit = if path == "/v1/commands" {
            crate::client::COMMAND_TIMEOUT
        } else {
            crate::client::answer_timeout()
        };
        tokio::task::spawn_blocking(move || {
            Daemon::locate(&paths)?.with_limit(limit).post(path, body)
        })
        .await?
    }

    /// Runs a typed command in the daemon (as the orchestrator) and answers with the outcome as
    /// the terminal shows it.
    async fn command(&self, command: FleetCommand) -> Result<CallToolResult, McpError> {
        let result = self
            .call("/v1/commands", json!({ "command": command, "via": "mcp" }))
            .await
            .and_then(|v| {
                let outcome: Outcome = serde_json::from_value(v["outcome"].clone())?;
                Ok(render::terminal(&outcome, false).stdout)
            });
        Ok(match result {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("{e:#}"))]),
        })
    }
}

#[tool_router]
impl FleetTools {
    fn new(paths: Paths) -> FleetTools {
        FleetTools {
            paths: Arc::new(paths),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Post a message to the chat room (by default the one the last message came from)."
    )]
    async fn reply(
        &self,
        Parameters(args): Parameters<ReplyArgs>,
    ) -> Result<CallToolResult, McpError> {
        answer(
            self.call(
                "/v1/reply",
                json!({ "text": args.text, "room": args.room, "to": args.to }),
            )
            .await,
            "queued_messages",
        )
    }

    #[tool(description = "The fleet's agents and their states, as a table.")]
    async fn fleet_status(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<CallToolResult, McpError> {
        self.command(FleetCommand::Ps(PsArgs { json: false })).await
    }

    #[tool(description = "Add a worker agent to the fleet and start it.")]
    async fn fleet_add(
        &self,
        Parameters(a): Parameters<AddArgs>,
    ) -> Result<CallToolResult, McpError> {
        self.command(FleetCommand::Add(grammar::AddArgs {
            name: a.name,
            runtime: a.runtime,
            model: a.model,
            workdir: a.workdir,
            instructions: a.instructions,
            env: Vec::new(),
            no_start: false,
        }))
        .await
    }

    #[tool(description = "Stop a worker agent and remove it from the fleet.")]
    async fn fleet_remove(
        &self,
        Parameters(a): Parameters<NameArgs>,
    ) -> Result<CallToolResult, McpError> {
        self.command(FleetCommand::Remove(RemoveArgs {
            name: a.name,
            timeout: STOP_TIMEOUT_SECS,
        }))
        .await
    }

    #[tool(description = "Type text into an agent's input and submit it.")]
    async fn agent_send(
        &self,
        Parameters(a): Parameters<SendArgs>,
    ) -> Result<CallToolResult, McpError> {
        self.command(FleetCommand::Send(grammar::SendArgs {
            name: a.name,
            text: vec![a.text],
        }))
        .await
    }
}

#[tool_handler]
impl ServerHandler for FleetTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("Tools of the mosaic fleet: reply in chat, see the fleet, add or remove workers, type into an agent.")
    }
}

/// Serves the tools on stdio until the client closes it.
pub fn serve(paths: Paths) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let service = FleetTools::new(paths)
            .serve(rmcp::transport::stdio())
            .await?;
        service.waiting().await?;
        Ok(())
    })
}
