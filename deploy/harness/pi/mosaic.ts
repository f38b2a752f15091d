/**
 * mosaic's pi extension: reports pi's state to mosaic and gives the agent mosaic's fleet tools.
 *
 * Loaded by mosaic with `pi -e PATH/mosaic.ts`; it changes no pi setting and spends no model
 * tokens. It only acts when mosaic launched pi: without MOSAIC_BIN and MOSAIC_AGENT in the
 * environment it does nothing.
 *
 * - Hooks: runs `$MOSAIC_BIN hook --agent $MOSAIC_AGENT EVENT` with a JSON payload on stdin for
 *   `session_start`, `agent_start`, `agent_end`, `dialog_open` (another extension asks the user
 *   something: pi waits for input), `busy`/`idle` (that dialog closed) and `session_end`. A hook
 *   never blocks pi's screen and never throws into pi, even when mosaic is missing.
 * - Tools: `mosaic_reply`, `mosaic_status`, `mosaic_send`, and for the orchestrator
 *   (`MOSAIC_ROLE=orchestrator`) `mosaic_add` and `mosaic_remove`, each running the mosaic CLI
 *   (never through a shell); the result is the command's output and exit status.
 */

import { spawn } from "node:child_process";
import type { ExtensionAPI, ExtensionContext } from "@mariozechner/pi-coding-agent";
import { Type } from "typebox";

/** How long pi's exit waits for the `session_end` hook to be taken. */
const SESSION_END_WAIT_MS = 2000;

/** The dialogs of pi's extension UI: while one is open pi waits for the user. */
const DIALOGS = ["select", "confirm", "input", "editor"] as const;

/** Where the dialog watch lives on pi's UI object (one per UI, whichever instance set it up). */
const DIALOG_WATCH = Symbol.for("mosaic.dialog-watch");

/** Reports that a dialog opened (`true`) or closed. */
type DialogReport = (opened: boolean, kind: string, title: string) => void;

export default function mosaic(pi: ExtensionAPI) {
	const bin = process.env.MOSAIC_BIN;
	const agent = process.env.MOSAIC_AGENT;
	if (!bin || !agent) return;

	/** Runs one hook without waiting for it; resolves once it exited (or could not start). */
	function hook(event: string, payload: Record<string, unknown>): Promise<void> {
		return new Promise((resolve) => {
			try {
				const child = spawn(bin!, ["hook", "--agent", agent!, event], {
					stdio: ["pipe", "ignore", "ignore"],
				});
				child.on("error", () => resolve());
				child.on("close", () => resolve());
				child.stdin.on("error", () => {});
				child.stdin.end(JSON.stringify({ event, agent, ...payload }));
			} catch {
				resolve();
			}
		});
	}

	/** The model in use, as `provider/id`. */
	function modelName(ctx: ExtensionContext): string | null {
		return ctx.model ? `${ctx.model.provider}/${ctx.model.id}` : null;
	}

	/**
	 * Reports any dialog another extension opens (pi's only "waiting for input"): the dialog
	 * methods of pi's UI, shared by every extension, are wrapped once per UI; the wrapper reports
	 * through the newest session's extension instance.
	 */
	function watchDialogs(ctx: ExtensionContext) {
		if (!ctx.hasUI) return;
		const ui = ctx.ui as unknown as Record<string | symbol, unknown>;
		const known = ui[DIALOG_WATCH] as { report: DialogReport } | undefined;
		const report: DialogReport = (opened, kind, title) => {
			let idle = true;
			try {
				idle = ctx.isIdle();
			} catch {
				// A stale context (the session was replaced): report idle.
			}
			void hook(opened ? "dialog_open" : idle ? "idle" : "busy", { dialog: kind, title });
		};
		if (known) {
			known.report = report;
			return;
		}
		const watch = { report };
		ui[DIALOG_WATCH] = watch;
		for (const kind of DIALOGS) {
			const open = ui[kind] as ((title: string, ...rest: unknown[]) => Promise<unknown>) | undefined;
			if (typeof open !== "function") continue;
			ui[kind] = async (title: string, ...rest: unknown[]) => {
				watch.report(true, kind, title);
				try {
					return await open.call(ui, title, ...rest);
				} finally {
					watch.report(false, kind, title);
				}
			};
		}
	}

	pi.on("session_start", (event, ctx) => {
		watchDialogs(ctx);
		void hook("session_start", {
			reason: event.reason,
			model: modelName(ctx),
			cwd: ctx.cwd,
			session_file: ctx.sessionManager.getSessionFile() ?? null,
		});
	});

	pi.on("agent_start", () => {
		void hook("agent_start", {});
	});

	pi.on("agent_end", (event) => {
		const last = [...event.messages].reverse().find((m) => m.role === "assistant");
		const text =
			last && Array.isArray(last.content)
				? last.content
						.filter((block) => block.type === "text")
						.map((block) => (block as { text: string }).text)
						.join("\n")
				: null;
		void hook("agent_end", {
			last_assistant_message: text,
			stop_reason: last && "stopReason" in last ? last.stopReason : null,
			error: last && "errorMessage" in last ? (last.errorMessage ?? null) : null,
		});
	});

	// pi exits right after its shutdown handlers: wait (briefly) until the hook has its payload.
	pi.on("session_shutdown", async (event) => {
		await Promise.race([
			hook("session_end", { reason: event.reason }),
			new Promise((resolve) => setTimeout(resolve, SESSION_END_WAIT_MS)),
		]);
	});

	/** Runs the mosaic CLI with `args` (and `input` on stdin); the tool result is its output. */
	function runMosaic(args: string[], input: string | undefined, signal: AbortSignal | undefined) {
		return new Promise<{ content: { type: "text"; text: string }[]; details: { args: string[]; exitCode: number | null } }>(
			(resolve, reject) => {
				let output = "";
				const child = spawn(bin!, args, { stdio: ["pipe", "pipe", "pipe"], signal });
				child.stdout.on("data", (chunk) => (output += chunk));
				child.stderr.on("data", (chunk) => (output += chunk));
				child.stdin.on("error", () => {});
				child.stdin.end(input ?? "");
				child.on("error", (error) => reject(new Error(`mosaic ${args[0]}: ${error.message}`)));
				child.on("close", (code, killedBy) => {
					const status = code === null ? `killed by ${killedBy}` : `exit status ${code}`;
					const text = `${output.trimEnd()}\n(${status})`.trimStart();
					if (code === 0) resolve({ content: [{ type: "text", text }], details: { args, exitCode: code } });
					else reject(new Error(text));
				});
			},
		);
	}

	pi.registerTool({
		name: "mosaic_reply",
		label: "mosaic reply",
		description:
			"Post a message to the chat room (mosaic). Use `to` with the N of a `[chat #N from …]` message to answer it in its room.",
		promptSnippet: "Post a message to the mosaic chat room",
		parameters: Type.Object({
			text: Type.String({ description: "The message; long messages are split at the platform's limit" }),
			to: Type.Optional(
				Type.Integer({ description: "The N of the `[chat #N from …]` message this answers" }),
			),
		}),
		// The text goes on stdin (`-`): any text, even one that looks like an option, stays text.
		execute: (_id, params, signal) =>
			runMosaic(["reply", ...(params.to === undefined ? [] : [`--to=${params.to}`]), "-"], params.text, signal),
	});

	pi.registerTool({
		name: "mosaic_status",
		label: "mosaic status",
		description: "One-screen summary of the mosaic fleet: every agent and its state.",
		promptSnippet: "Show the mosaic fleet's agents and their states",
		parameters: Type.Object({}),
		execute: (_id, _params, signal) => runMosaic(["fleet", "status"], undefined, signal),
	});

	pi.registerTool({
		name: "mosaic_send",
		label: "mosaic send",
		description: "Type a text into another agent of the mosaic fleet and submit it (exactly once).",
		promptSnippet: "Send a text to another agent of the mosaic fleet",
		parameters: Type.Object({
			agent: Type.String({ description: "The agent's name" }),
			text: Type.String({ description: "What to type into it" }),
		}),
		execute: (_id, params, signal) => runMosaic(["fleet", "send", "--", params.agent, "-"], params.text, signal),
	});

	if (process.env.MOSAIC_ROLE !== "orchestrator") return;

	pi.registerTool({
		name: "mosaic_add",
		label: "mosaic add",
		description: "Add a worker agent to the mosaic fleet's roster and start it.",
		promptSnippet: "Add and start a worker agent in the mosaic fleet",
		parameters: Type.Object({
			name: Type.String({ description: "New agent's name, [a-z][a-z0-9-]{0,31}" }),
			runtime: Type.String({ description: "Harness: claude, codex, pi or demo" }),
			model: Type.Optional(Type.String({ description: "Model for the harness" })),
			workdir: Type.Optional(Type.String({ description: "Working directory" })),
			instructions: Type.Optional(
				Type.String({ description: "Instructions appended to the harness's system prompt" }),
			),
		}),
		execute: (_id, params, signal) => {
			// `--option=value` keeps a value that starts with `-` a value.
			const options = (["model", "workdir", "instructions"] as const)
				.filter((key) => params[key] !== undefined)
				.map((key) => `--${key}=${params[key]}`);
			return runMosaic(
				["fleet", "add", `--runtime=${params.runtime}`, ...options, "--", params.name],
				undefined,
				signal,
			);
		},
	});

	pi.registerTool({
		name: "mosaic_remove",
		label: "mosaic remove",
		description: "Stop an agent of the mosaic fleet and remove it from the roster.",
		promptSnippet: "Stop and remove an agent from the mosaic fleet",
		parameters: Type.Object({
			name: Type.String({ description: "The agent to remove" }),
		}),
		execute: (_id, params, signal) => runMosaic(["fleet", "remove", "--", params.name], undefined, signal),
	});
}
