// An IDE played by the official ACP TypeScript SDK (@agentclientprotocol/sdk, stable v1 entry).
//
//   node ts_client.mjs SPEC.json   (prints one JSON report on stdout)
//
// SPEC: {"sdk": path to the SDK's stable acp.js, "agent": [argv...], "cwd": DIR, "workdir": DIR}.
// It spawns the agent, initializes, opens a session and sends one prompt.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const acp = await import(pathToFileURL(spec.sdk).href);
const [command, ...args] = spec.agent;
const child = spawn(command, args, { cwd: spec.workdir, stdio: ["pipe", "pipe", "inherit"] });
const exited = new Promise((resolve) => child.on("exit", resolve));
const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));

const chunks = [];
const kinds = [];
const app = acp
  .client({ name: "ts-sdk-test" })
  .onNotification(acp.methods.client.session.update, (ctx) => {
    const update = ctx.params.update;
    kinds.push(update.sessionUpdate);
    if (update.sessionUpdate === "agent_message_chunk" && update.content.type === "text") {
      chunks.push(update.content.text);
    }
  })
  .onRequest(acp.methods.client.session.requestPermission, () => ({
    outcome: { outcome: "selected", optionId: "allow_once" },
  }));

const report = await app.connectWith(stream, async (ctx) => {
  const init = await ctx.request(acp.methods.agent.initialize, {
    protocolVersion: acp.PROTOCOL_VERSION,
    clientCapabilities: {},
    clientInfo: { name: "ts-sdk-test", version: "1" },
  });
  const session = await ctx.request(acp.methods.agent.session.new, { cwd: spec.cwd, mcpServers: [] });
  const result = await ctx.request(acp.methods.agent.session.prompt, {
    sessionId: session.sessionId,
    prompt: [{ type: "text", text: "hello from node" }],
  });
  return { init, session, stopReason: result.stopReason, chunks, kinds };
});
child.stdin.end();
await exited;
process.stdout.write(JSON.stringify(report));
