// Roomcast on workerd directly, without wrangler's dev proxy: the production bundle
// (`wrangler deploy --dry-run`) run by the same workerd binary, with a hand-written
// config (SQLite-backed Durable Objects on local disk). Closest to production here.
import { execFileSync } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { restartable, runningServer, spawnPinned } from "../lib/process.mjs";
import { BENCH_VARS, connectRoomcast } from "../lib/roomcast-client.mjs";
import { ensureDemoBuilt, waitForHealth } from "./roomcast.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WORKERD = join(ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");

function config(port, vars) {
  const bindings = Object.entries(vars)
    .map(([k, v]) => `    (name = ${JSON.stringify(k)}, text = ${JSON.stringify(v)}),`)
    .join("\n");
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .roomcast),
    (name = "storage", disk = (path = "storage", writable = true)),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);

const roomcast :Workerd.Worker = (
  modules = [ (name = "index.js", esModule = embed "build/index.js") ],
  compatibilityDate = "2026-11-01",
  bindings = [
    (name = "ROOMS", durableObjectNamespace = "Room"),
${bindings}
  ],
  durableObjectNamespaces = [ (className = "Room", uniqueKey = "roomcast-bench-Room", enableSql = true) ],
  durableObjectStorage = (localDisk = "storage"),
);
`;
}

/**
 * @param {{ name: string, description: string, vars?: Record<string, string> }} variant
 * @returns {import("../lib/adapter.mjs").Adapter}
 */
export function directAdapter({ name, description, vars = {} }) {
  return {
  name,
  description,
  async start({ port, cpus, log }) {
    ensureDemoBuilt();
    const dir = await mkdtemp(join(tmpdir(), "bench-roomcast-direct-"));
    await mkdir(join(dir, "build"));
    await mkdir(join(dir, "storage"));
    execFileSync(process.execPath, [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", join(dir, "build")], {
      cwd: ROOT,
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
      stdio: "ignore",
    });
    await writeFile(join(dir, "config.capnp"), config(port, { ...BENCH_VARS, ...vars }));
    const url = `http://127.0.0.1:${port}`;
    const launch = async () => {
      // workerd prints nothing when it is listening: a shell says "starting" and execs
      // it (same pid, same CPU pinning); readiness is the /healthz poll below.
      const proc = await spawnPinned("sh", ["-c", 'echo starting; exec "$0" serve config.capnp --experimental', WORKERD], {
        cpus,
        cwd: dir,
        readyPattern: /^starting$/,
        timeoutMs: 10_000,
        onLine: (line) => {
          if (line !== "starting") log(`[workerd] ${line}`);
        },
      });
      await waitForHealth(url);
      return proc;
    };
    const server = await restartable(launch);
    log(`${name} (workerd) on ${url}, cpus ${cpus}`);
    return runningServer(url, server, () => rm(dir, { recursive: true, force: true }));
  },
  connect: connectRoomcast,
  };
}

export default directAdapter({
  name: "roomcast-direct",
  description: "Roomcast's production bundle (wrangler deploy --dry-run) on workerd directly, no dev proxy; SQLite-backed Durable Objects on local disk",
});
