// partyserver 0.5.10 (bench/servers/partyserver/): one hibernating Durable
// Object per room doing this.broadcast(message) (sender included), on local
// workerd under `wrangler dev`, i.e. the same runtime Roomcast is measured on.
// Clients talk to wrangler's dev proxy port (see description).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, restartable, runningServer, spawnPinned } from "../lib/process.mjs";
import { connectJson, wsUrl } from "./ws.mjs";

const DIR = fileURLToPath(new URL("../servers/partyserver/", import.meta.url));
const WRANGLER = fileURLToPath(new URL("../../node_modules/wrangler/bin/wrangler.js", import.meta.url));

/** Polls GET /healthz (answered by the Worker itself) until 200: "Ready on" only means wrangler's proxy listens. */
async function waitForWorker(/** @type {string} */ url, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) });
      if (res.ok && (await res.text()) === "ok") return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = /** @type {Error} */ (e).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`worker not answering /healthz after ${timeoutMs} ms (${last})`);
}

/** @type {import("../lib/adapter.mjs").Adapter} */
export default {
  name: "partyserver",
  fdsPerConnection: 4.5, // as roomcast through wrangler dev
  description:
    "partyserver 0.5.10 Durable Object (hibernate: true, this.broadcast incl. sender) on local workerd via `wrangler dev` 4.164 (clients go through wrangler's dev proxy), SQLite-backed DO, /parties/chat/<room>",
  async start({ port, cpus, log }) {
    const persist = await mkdtemp(join(tmpdir(), "bench-partyserver-"));
    const url = `http://127.0.0.1:${port}`;
    const launch = async () => {
      const inspectorPort = await freePort("127.0.0.1", { not: [port] });
      const proc = await spawnPinned(
        process.execPath,
        [
          WRANGLER,
          "dev",
          "--local",
          "--ip", "127.0.0.1",
          "--port", String(port),
          "--inspector-ip", "127.0.0.1",
          "--inspector-port", String(inspectorPort),
          "--persist-to", persist,
          "--show-interactive-dev-session=false",
        ],
        {
          cpus,
          cwd: DIR,
          env: {
            ...process.env,
            CLOUDFLARE_CF_FETCH_ENABLED: "false",
            WRANGLER_SEND_METRICS: "false",
            FORCE_COLOR: "0",
            NO_COLOR: "1",
          },
          readyPattern: /Ready on http/,
          timeoutMs: 60_000,
          onLine: (line) => {
            // One line per WebSocket upgrade at 50K sockets is noise; keep warnings, errors and startup.
            if (line.trim() && !/\b(GET|POST) \/parties\//.test(line)) log(`[partyserver] ${line}`);
          },
        },
      );
      try {
        await waitForWorker(url);
      } catch (e) {
        await proc.stop();
        throw new Error(`${/** @type {Error} */ (e).message}\n--- wrangler output (tail) ---\n${proc.output().split("\n").slice(-30).join("\n")}`);
      }
      return proc;
    };
    let server;
    try {
      server = await restartable(launch);
    } catch (e) {
      await rm(persist, { recursive: true, force: true });
      throw e;
    }
    log(`partyserver (wrangler dev) on ${url}, cpus ${cpus}, pids ${server.pids().join(",")}`);
    return runningServer(url, server, () => rm(persist, { recursive: true, force: true }));
  },
  connect(o) {
    return connectJson(wsUrl(o.url, `/parties/chat/${encodeURIComponent(o.room)}`), o);
  },
};
