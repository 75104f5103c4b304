// Runs `lightning.train` as an MCP task against a lightning-mcp server over
// Streamable HTTP, using the official TypeScript SDK v2 client
// (@modelcontextprotocol/client) and its Tasks extension client
// (@modelcontextprotocol/ext-tasks/client). Two sessions are exercised:
//
//   1. "2025-11-25": the client's default (legacy) connect, i.e. `initialize`;
//      Tasks v1 (`params.task`, tasks/get, tasks/result).
//   2. "2026-07-28": the client pinned to 2026-07-28 (`server/discover`,
//      stateless); Tasks extension `io.modelcontextprotocol/tasks`
//      (`resultType: "task"`, tasks/get). ext-tasks routes tools/call and
//      tasks/* through a host-owned `rawDispatch`, here a second SDK
//      StreamableHTTPClientTransport whose responses this script matches by id.
//
// Each session calls the tool with task execution required, settles it, and
// checks: the call really became a task (execution.kind === "task" with a task
// id), the result is not an error, structuredContent.status === "completed",
// structuredContent.run_id equals the task id, metrics.val_loss is finite.
//
// Usage (cwd must hold node_modules with the packages above; the script itself
// may live anywhere):
//   cd target/tmp/mcp-clients && node /path/to/tests/clients/ts_tasks.mjs http://127.0.0.1:PORT/mcp
// Prints one JSON line to stdout and exits 0; on failure prints the reason to
// stderr and exits 1.

import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// Bare specifiers resolve from the script's location, not the cwd, so import
// the packages from the cwd's node_modules by following their `exports` map.
const lookupPaths = createRequire(path.join(process.cwd(), "noop.js")).resolve.paths("x");
async function importFromCwd(pkg, subpath = ".") {
  for (const dir of lookupPaths) {
    const root = path.join(dir, pkg);
    if (!existsSync(path.join(root, "package.json"))) continue;
    const entry = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).exports[subpath];
    const file = typeof entry.import === "string" ? entry.import : entry.import.default;
    return import(pathToFileURL(path.join(root, file)).href);
  }
  throw new Error(`cannot find ${pkg} from ${process.cwd()}`);
}

const { Client, StreamableHTTPClientTransport } = await importFromCwd("@modelcontextprotocol/client");
const { createTaskSessionFromClient, resultFromTaskOutcome } = await importFromCwd(
  "@modelcontextprotocol/ext-tasks",
  "./client",
);

if (!URL.canParse(process.argv[2] ?? "")) {
  console.error("usage: node ts_tasks.mjs http://127.0.0.1:PORT/mcp (cwd: the mcp-clients directory)");
  process.exit(1);
}
const url = new URL(process.argv[2]);
const clientInfo = { name: "lightning-mcp-ts-tasks", version: "0.0.0" };
const trainArgs = {
  model: { _target_: "lightning_mcp.models.simple.SimpleClassifier", input_dim: 4, num_classes: 3 },
  trainer: { max_epochs: 3, seed: 7 },
};

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// The host request coordinator required by ext-tasks for 2026-07-28 task
// traffic: sends a framed JSON-RPC request on its own SDK transport (which
// derives MCP-Protocol-Version / Mcp-Method / Mcp-Name from the body) and
// resolves with the matching response.
async function rawCoordinator() {
  const transport = new StreamableHTTPClientTransport(url);
  const pending = new Map();
  let next = 0;
  transport.onmessage = (msg) => {
    const waiter = pending.get(msg.id);
    if (waiter === undefined) return;
    pending.delete(msg.id);
    waiter(msg.error !== undefined ? { kind: "error", error: msg.error } : { kind: "result", result: msg.result });
  };
  await transport.start();
  return {
    close: () => transport.close(),
    dispatch: (request, options = {}) =>
      new Promise((resolve, reject) => {
        const id = `raw-${++next}`;
        pending.set(id, resolve);
        transport
          .send({ jsonrpc: "2.0", ...request, id }, { headers: options.context?.headers })
          .catch((err) => (pending.delete(id), reject(err)));
      }),
  };
}

async function runTrainAsTask(protocol) {
  const modern = protocol === "2026-07-28";
  const client = new Client(clientInfo, modern ? { versionNegotiation: { mode: { pin: protocol } } } : {});
  await client.connect(new StreamableHTTPClientTransport(url));
  const raw = modern ? await rawCoordinator() : undefined;
  try {
    const negotiated = client.getNegotiatedProtocolVersion();
    check(negotiated === protocol, `negotiated ${negotiated}, expected ${protocol}`);
    const session = createTaskSessionFromClient(client, {
      endpointId: `lightning-mcp-${protocol}`,
      ...(modern && {
        rawDispatch: raw.dispatch,
        v2RequestFraming: { protocolVersion: protocol, clientInfo, clientCapabilities: {} },
      }),
    });
    try {
      const generation = modern ? "v2" : "v1";
      check(session.capabilities.execution, `server advertises Tasks ${generation}`);
      const execution = await session.callTool("lightning.train", trainArgs, {
        task: { preference: "require" },
      });
      check(execution.kind === "task" && typeof execution.handle.taskId === "string", "call became a task");
      const taskId = execution.handle.taskId;
      const { outcome, lastTask } = await execution.settle();
      check(outcome.status === "completed", `task outcome is ${outcome.status}`);
      check(lastTask === undefined || lastTask.taskId === taskId, "settled task id matches");
      const result = resultFromTaskOutcome(outcome);
      const sc = result.structuredContent ?? {};
      check(result.isError !== true, `result is not an error: ${JSON.stringify(result.content)}`);
      check(sc.status === "completed", `structuredContent.status is ${sc.status}`);
      check(sc.run_id === taskId, `run_id ${sc.run_id} equals task id ${taskId}`);
      check(Number.isFinite(sc.metrics?.val_loss), `metrics.val_loss is finite: ${sc.metrics?.val_loss}`);
      return { protocol, generation, taskId, val_loss: sc.metrics.val_loss };
    } finally {
      await session.close();
    }
  } finally {
    await raw?.close();
    await client.close();
  }
}

try {
  const sessions = [];
  for (const protocol of ["2025-11-25", "2026-07-28"]) {
    try {
      sessions.push(await runTrainAsTask(protocol));
    } catch (err) {
      throw new Error(`[${protocol}] ${err?.stack ?? err}`);
    }
  }
  console.log(JSON.stringify({ ok: true, sessions }));
  process.exit(0);
} catch (err) {
  console.error(String(err));
  process.exit(1);
}
