/**
 * Runs the compat scenario in whatever Node runs this file (20, 22 or 24), against the
 * built client. Reads its config as one JSON line on stdin (tokens stay out of argv and the
 * environment), prints one JSON result line on stdout, exits 0 on pass.
 * `inject: "ws"` passes the `ws` package as `createClient({ WebSocket })` (Node 20 has no
 * global WebSocket); otherwise the runtime's own WebSocket is used and must exist.
 */
import { createInterface } from "node:readline";

const line = await new Promise((resolve, reject) => {
  const rl = createInterface({ input: process.stdin });
  rl.once("line", (l) => {
    resolve(l);
    rl.close();
  });
  rl.once("close", () => reject(new Error("no config on stdin")));
});
const cfg = JSON.parse(line);
const websocket = cfg.inject === "ws" ? "ws injected" : "built-in WebSocket";
const out = (result) => process.stdout.write(`${JSON.stringify({ ...result, runtime: `node ${process.version}`, websocket })}\n`);

try {
  const { createClient } = await import(new URL("../../packages/client/dist/index.js", import.meta.url).href);
  const { runScenario } = await import("./scenario.mjs");
  let WebSocket;
  // Without injection the client must cope on its own (and say so where there is no global WebSocket).
  if (cfg.inject === "ws") WebSocket = (await import("ws")).WebSocket;
  const drain = async () => {
    const r = await fetch(`${cfg.controlUrl}/drain/${encodeURIComponent(cfg.room)}`, { method: "POST" });
    if (!r.ok) throw new Error(`drain answered ${r.status}: ${await r.text()}`);
  };
  const result = await runScenario({ createClient, url: cfg.url, room: cfg.room, tokens: cfg.tokens, users: cfg.users, drain, WebSocket });
  out({ ok: true, steps: result.steps });
  process.exit(0);
} catch (err) {
  out({ ok: false, error: String(err && err.message ? err.message : err), steps: (err && err.steps) || [] });
  process.exit(1);
}
