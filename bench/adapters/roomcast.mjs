// Roomcast under `wrangler dev` (workerd + local SQLite), clients going through
// wrangler's dev proxy: what a developer runs locally.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { freePort, restartable, runningServer, spawnPinned } from "../lib/process.mjs";
import { BENCH_VARS, connectRoomcast } from "../lib/roomcast-client.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WRANGLER = join(ROOT, "node_modules/wrangler/bin/wrangler.js");

/** wrangler.toml serves the demo as static assets; `wrangler dev` needs the folder to exist. */
export function ensureDemoBuilt() {
  if (!existsSync(join(ROOT, "demo/dist/index.html"))) {
    execFileSync(process.execPath, [join(ROOT, "node_modules/vite/bin/vite.js"), "build"], { cwd: join(ROOT, "demo"), stdio: "ignore" });
  }
}

export async function waitForHealth(url, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}/healthz did not answer within ${timeoutMs} ms`);
}

/** @type {import("../lib/adapter.mjs").Adapter} */
export default {
  name: "roomcast",
  // Measured: wrangler dev's workerd held 4,427 descriptors with 1,000 sockets connected.
  fdsPerConnection: 4.5,
  presence: true,
  roomcastProtocol: true,
  description: "Roomcast on local workerd via `wrangler dev` (clients through wrangler's dev proxy), SQLite-backed Durable Object per room, hibernatable sockets",
  async start({ port, cpus, log }) {
    ensureDemoBuilt();
    const persist = await mkdtemp(join(tmpdir(), "bench-roomcast-"));
    const url = `http://127.0.0.1:${port}`;
    const launch = async () => {
      const inspectorPort = await freePort("127.0.0.1", { not: [port] });
      const args = [WRANGLER, "dev", "--local", "--ip", "127.0.0.1", "--port", String(port), "--inspector-ip", "127.0.0.1", "--inspector-port", String(inspectorPort), "--persist-to", persist, "--show-interactive-dev-session=false"];
      for (const [k, v] of Object.entries(BENCH_VARS)) args.push("--var", `${k}:${v}`);
      const proc = await spawnPinned(process.execPath, args, {
        cpus,
        cwd: ROOT,
        env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0", NO_COLOR: "1" },
        readyPattern: /Ready on http/,
        timeoutMs: 60_000,
        onLine: (line) => {
          if (/error|warn/i.test(line) && !/\/v1\/rooms\//.test(line)) log(`[roomcast] ${line}`);
        },
      });
      await waitForHealth(url);
      return proc;
    };
    const server = await restartable(launch);
    return runningServer(url, server, () => rm(persist, { recursive: true, force: true }));
  },
  connect: connectRoomcast,
};
