// Roomcast on workerd directly, without wrangler's dev proxy: the production bundle
// (`wrangler deploy --dry-run`) run by the same workerd binary, with a hand-written
// config (SQLite-backed Durable Objects on local disk). Closest to production here.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, mkdir, rm, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { restartable, runningServer, spawnPinned } from "../lib/process.mjs";
import { BENCH_VARS, connectRoomcast } from "../lib/roomcast-client.mjs";
import { ensureDemoBuilt, waitForHealth } from "./roomcast.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WORKERD = join(ROOT, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");

/**
 * A workerd config for one Worker with one SQLite-backed Durable Object class.
 * @param {number} port
 * @param {Record<string, string>} vars
 * @param {{ binding: string, className: string }} durableObject
 */
export function workerdConfig(port, vars, { binding, className }, { compatibilityDate = "2026-11-01", compatibilityFlags = [] } = {}) {
  // BENCH_WORKERD_V8_FLAGS="--perf-basic-prof" lets `perf` name JavaScript frames.
  const v8Flags = (process.env.BENCH_WORKERD_V8_FLAGS ?? "").split(/\s+/).filter(Boolean);
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
  v8Flags = ${JSON.stringify(v8Flags)},
);

const roomcast :Workerd.Worker = (
  modules = [ (name = "index.js", esModule = embed "build/index.js") ],
  compatibilityDate = ${JSON.stringify(compatibilityDate)},
  compatibilityFlags = ${JSON.stringify(compatibilityFlags)},
  bindings = [
    (name = "${binding}", durableObjectNamespace = "${className}"),
${bindings}
  ],
  durableObjectNamespaces = [ (className = "${className}", uniqueKey = "bench-${className}", enableSql = true) ],
  durableObjectStorage = (localDisk = "storage"),
);
`;
}

/**
 * The compatibility date and flags of a wrangler.toml (its top-level keys), so the
 * hand-written workerd config runs the Worker as `wrangler dev` and a deploy would.
 * @param {string} workerDir
 */
export function compatibility(workerDir) {
  const toml = readFileSync(join(workerDir, "wrangler.toml"), "utf8");
  const top = toml.split(/^\[/m)[0];
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(top)?.[1];
  const flags = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(top)?.[1];
  return {
    ...(date && { compatibilityDate: date }),
    compatibilityFlags: flags ? [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]) : [],
  };
}

/**
 * A Worker bundled with `wrangler deploy --dry-run` from `workerDir` and served by
 * workerd directly (no dev proxy).
 * @param {{ name: string, description: string, vars?: Record<string, string>, workerDir?: string,
 *   durableObject?: { binding: string, className: string }, connect?: import("../lib/adapter.mjs").Adapter["connect"] }} variant
 * @returns {import("../lib/adapter.mjs").Adapter}
 */
export function directAdapter({
  name,
  description,
  vars = BENCH_VARS,
  workerDir = ROOT,
  durableObject = { binding: "ROOMS", className: "Room" },
  connect = connectRoomcast,
}) {
  return {
  name,
  description,
  // Measured: workerd held 2,051 descriptors with 1,000 sockets connected.
  fdsPerConnection: 2.1,
  presence: connect === connectRoomcast,
  roomcastProtocol: connect === connectRoomcast,
  async start({ port, cpus, log }) {
    if (workerDir === ROOT) ensureDemoBuilt();
    const dir = await mkdtemp(join(tmpdir(), "bench-roomcast-direct-"));
    await mkdir(join(dir, "build"));
    await mkdir(join(dir, "storage"));
    execFileSync(process.execPath, [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", join(dir, "build")], {
      cwd: workerDir,
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
      stdio: "ignore",
    });
    await writeFile(join(dir, "config.capnp"), workerdConfig(port, vars, durableObject, compatibility(workerDir)));
    const url = `http://127.0.0.1:${port}`;
    const launch = async () => {
      // workerd prints nothing when it is listening: a shell says "starting" and execs
      // it (same pid, same CPU pinning); readiness is the /healthz poll below.
      // BENCH_WORKERD_INSPECTOR=127.0.0.1:9230 opens workerd's inspector (Chrome DevTools
      // protocol) there, e.g. for bench/heap-snapshot.mjs.
      const inspector = process.env.BENCH_WORKERD_INSPECTOR ? ["--inspector-addr", process.env.BENCH_WORKERD_INSPECTOR] : [];
      const proc = await spawnPinned("sh", ["-c", 'echo starting; exec "$0" serve config.capnp --experimental "$@"', WORKERD, ...inspector], {
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
  connect,
  };
}

export default directAdapter({
  name: "roomcast-direct",
  description: "Roomcast's production bundle (wrangler deploy --dry-run) on workerd directly, no dev proxy; SQLite-backed Durable Objects on local disk",
});
