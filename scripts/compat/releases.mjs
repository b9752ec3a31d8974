/**
 * The release rows of the compatibility matrix (docs/compatibility.md, "Across releases"):
 * old code against new code, each row running the same scenario (scenario.mjs) as the
 * runtime rows, in this Node (22), with a wire tap (wire-tap.mjs) under the client:
 *
 *   1. the previous release's built client      → this server
 *   2. this built client (packages/client/dist) → the previous release's server
 *   3. a raw v1 client from docs/protocol.md     → this server (raw-v1-client.mjs)
 *   4. this built client                         → this server, negotiating NEWEST (roomcast.v2)
 *
 * Which subprotocol rows 1 and 2 must select is derived from both checkouts' version.ts (for
 * v0.1.0, which speaks only v1: roomcast.v1), so moving scripts/previous-release.json to the
 * next release needs no edit here.
 *
 * The previous release is scripts/previous-release.json's tag, checked out and its client
 * built by scripts/lib/previous-release.mjs; its server is `wrangler dev` in that checkout.
 * run.mjs starts it (`startPreviousRelease`) while it starts this server, and runs the rows
 * (`runReleaseRows`) after the runtime rows: `npm run test:compat -- --only releases`.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { mintToken, startServer } from "../../packages/client/test/integration/server.ts";
import { repoRoot } from "../lib/previous-release.mjs";
import * as rawV1 from "./raw-v1-client.mjs";
import { runScenario } from "./scenario.mjs";
import { createWireTap, wireProblems, wireSummary } from "./wire-tap.mjs";

const V1 = "roomcast.v1";
/** This release's newest protocol version; the next version bumps it (docs/compatibility.md, "Across releases"). */
const NEWEST = "roomcast.v2";
/** Far longer than any healthy row (1.5-4 s here); the scenario's steps have their own 15 s deadlines, but an ack that never comes does not. */
const ROW_TIMEOUT_MS = 45_000;
/** As run.mjs's server: the last step waits for the presence grace. */
export const RELEASE_SERVER_VARS = { PRESENCE_GRACE_SECONDS: "1" };

/**
 * `previousRelease({ client: true })` in a child Node: its checkout and build are
 * synchronous (57 s for the client build on a cold cache under load here) and would stall
 * this process's own server start.
 */
function previousReleaseInChild() {
  const helper = pathToFileURL(join(repoRoot, "scripts/lib/previous-release.mjs")).href;
  const code = `const { previousRelease } = await import(${JSON.stringify(helper)}); process.stdout.write(JSON.stringify(await previousRelease({ client: true })));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--input-type=module", "-e", code], { cwd: repoRoot, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (stderr) process.stderr.write(stderr);
      if (err) return reject(new Error(stderr.trim().split("\n").slice(-3).join(" ") || err.message));
      resolve(JSON.parse(stdout));
    });
  });
}

/**
 * Checks out the previous release, builds its client and starts its server.
 * Never rejects: a failure (a shallow clone, a build error) is returned and fails rows 1 and 2.
 * @returns {Promise<{ release?: { tag: string, commit: string, root: string, clientDist: string }, server?: import("../../packages/client/test/integration/server.ts").TestServer, error?: string, seconds: { release: number, server: number } }>}
 */
export async function startPreviousRelease() {
  const t0 = Date.now();
  const seconds = { release: 0, server: 0 };
  try {
    const release = await previousReleaseInChild();
    seconds.release = (Date.now() - t0) / 1000;
    const t1 = Date.now();
    const server = await startServer(RELEASE_SERVER_VARS, { root: release.root });
    seconds.server = (Date.now() - t1) / 1000;
    return { release, server, seconds };
  } catch (err) {
    return { error: `previous release: ${err && err.message ? err.message : String(err)}`, seconds };
  }
}

/** A createClient for the scenario that opens every socket through the tap, and remembers its clients (to close them on a timeout). */
function tapped(createClient, tap, users, tokens, clients) {
  return (options) => {
    const user = options.token === tokens.alice ? users.alice : users.bob;
    const client = createClient({ ...options, createSocket: tap.factory(user) });
    clients.push(client);
    return client;
  };
}

/**
 * The subprotocols a checkout speaks, newest first, read from its own source
 * (packages/protocol/src/version.ts: SUPPORTED_PROTOCOLS, or before v2 PROTOCOL_VERSION alone),
 * so the rows follow scripts/previous-release.json to the next release without an edit here.
 */
async function protocolsOf(root) {
  const v = await import(pathToFileURL(join(root, "packages/protocol/src/version.ts")).href);
  return v.SUPPORTED_PROTOCOLS ? [...v.SUPPORTED_PROTOCOLS] : [v.PROTOCOL_VERSION];
}

/** What a server with `serverSpeaks` selects for a client offering `offered` (protocol.md: the server's preference wins). */
const selects = (serverSpeaks, offered) => serverSpeaks.find((p) => offered.includes(p)) ?? "none";

async function rows(previous, server, root, clientDist) {
  const tag = previous.release?.tag ?? "previous release";
  const ours = await protocolsOf(root);
  const theirs = previous.release ? await protocolsOf(previous.release.root) : [];
  const oldClient = () => import(pathToFileURL(previous.release.clientDist).href);
  const newClient = () => import(pathToFileURL(clientDist).href);
  return [
    { name: "release-client", label: `${tag} client → this server`, server, client: oldClient, expect: { protocol: selects(ours, theirs), offered: theirs }, needs: true },
    { name: "release-server", label: `this client → ${tag} server`, server: previous.server, client: newClient, expect: { protocol: selects(theirs, ours), offered: ours }, needs: true },
    { name: "raw-v1", label: "raw v1 client (protocol.md §12) → this server", server, client: async () => rawV1, expect: { protocol: V1, offered: [V1] } },
    // Asserted, not derived: this release's newest version must be what our own client and server agree on.
    { name: "this-newest", label: "this client → this server", server, client: newClient, expect: { protocol: NEWEST, offered: ours } },
  ];
}

async function runRow(row, adminToken) {
  const users = { alice: `alice-${row.name}`, bob: `bob-${row.name}` };
  const tokens = { alice: await mintToken({ sub: users.alice }), bob: await mintToken({ sub: users.bob }) };
  const room = `compat-${row.name}-${Date.now().toString(36)}`;
  const tap = createWireTap();
  const clients = [];
  const { createClient } = await row.client();
  const drain = async () => {
    const r = await fetch(`${row.server.url}/v1/rooms/${room}/drain`, {
      method: "POST",
      headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ windowSeconds: 0 }),
    });
    if (!r.ok) throw new Error(`drain answered ${r.status}: ${await r.text()}`);
  };
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${ROW_TIMEOUT_MS / 1000} s (wire: ${wireSummary(tap)})`)), ROW_TIMEOUT_MS);
  });
  try {
    const scenario = runScenario({ createClient: tapped(createClient, tap, users, tokens, clients), url: row.server.url, room, tokens, users, drain });
    const { steps } = await Promise.race([scenario, timeout]);
    const problems = wireProblems(tap, row.expect);
    if (problems.length) return { ok: false, error: `on the wire: ${problems.join("; ")}`, steps, wire: wireSummary(tap) };
    return { ok: true, steps, wire: wireSummary(tap) };
  } catch (err) {
    return { ok: false, error: err && err.message ? err.message : String(err), steps: err?.steps ?? [], wire: wireSummary(tap) };
  } finally {
    clearTimeout(timer);
    for (const c of clients) {
      try {
        c.close();
      } catch {
        // best effort; the result already says what happened
      }
    }
  }
}

/**
 * Runs the four rows one after another, one line each on `write`, as run.mjs prints runtimes.
 * @param {{ previous: Awaited<ReturnType<typeof startPreviousRelease>>, server: { url: string }, write: (line: string) => void, root?: string, clientDist?: string }} o
 *   server: this checkout's server; root: this checkout (default: this repository);
 *   clientDist: its client's build (default <root>/packages/client/dist/index.js, which run.mjs keeps current)
 * @returns {Promise<{ name: string, ok: boolean, seconds: number }[]>}
 */
export async function runReleaseRows({ previous, server, write, root = repoRoot, clientDist = join(root, "packages/client/dist/index.js") }) {
  const adminToken = await mintToken({ sub: "compat-ops", cap: { "*": ["admin"] } });
  const results = [];
  // The rows run in this process (the runtime rows each have their own): a rejection nobody
  // handled (a publish of a failed row, a client bug) must fail its row, not kill the matrix.
  let unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason && reason.message ? reason.message : String(reason));
  process.on("unhandledRejection", onUnhandled);
  try {
    for (const row of await rows(previous, server, root, clientDist)) {
      const started = Date.now();
      unhandled = [];
      let r = row.needs && previous.error ? { ok: false, error: previous.error } : await runRow(row, adminToken);
      await new Promise((resolve) => setImmediate(resolve)); // let rejections from closing its clients surface
      if (unhandled.length) r = { ...r, ok: false, error: `${r.ok ? "" : `${r.error}; `}unhandled rejection: ${unhandled.join("; ")}` };
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const label = `${row.label} [${row.expect.protocol}]`;
      if (r.ok) write(`PASS  ${label} ${seconds} s (${r.steps.map((s) => `${s.name} ${s.ms} ms`).join(", ")}; wire: ${r.wire})`);
      else {
        write(`FAIL  ${label} ${seconds} s: ${r.error}`);
        if (r.steps?.length) write(`      passed before: ${r.steps.map((s) => s.name).join(", ")}`);
        if (r.wire) write(`      wire: ${r.wire}`);
      }
      results.push({ name: row.name, ok: r.ok, seconds: Number(seconds) });
    }
  } finally {
    // A timed-out row's scenario may still settle later; its rejections stay handled.
    setTimeout(() => process.off("unhandledRejection", onUnhandled), ROW_TIMEOUT_MS).unref();
  }
  return results;
}
