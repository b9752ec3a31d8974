/**
 * A real Roomcast server for integration tests: `wrangler dev` (workerd + local
 * SQLite) on a free loopback port with throwaway state. It can be killed (SIGKILL,
 * like a crash) and started again on the same port with the same storage.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { freePort, isAddressInUse, portFree } from "../../../../scripts/lib/ports.mjs";

const root = fileURLToPath(new URL("../../../../", import.meta.url));
export const SECRET = "roomcast-dev-only-integration-tests";

export interface TestServer {
  readonly url: string;
  /** SIGKILLs wrangler and workerd, like a crash; storage is kept. */
  kill(): Promise<void>;
  /**
   * Starts it again on the same port and storage; `root` switches the code it serves
   * (a checkout of another release, see scripts/lib/previous-release.mjs): a deploy.
   */
  start(options?: { root?: string }): Promise<void>;
  /** Stops for good and deletes the storage. */
  dispose(): Promise<void>;
  /** Everything the server printed (for debugging a failure). */
  output(): string;
}

export interface ServerOptions {
  /** The checkout whose wrangler.toml and sources to serve (default: this repository). */
  root?: string;
}

export async function startServer(vars: Record<string, string> = {}, options: ServerOptions = {}): Promise<TestServer> {
  let port = await freePort();
  let codeRoot = options.root ?? root;
  const persist = mkdtempSync(join(tmpdir(), "roomcast-it-"));
  let child: ChildProcess | undefined;
  let log = "";
  // Explicit values for everything .dev.vars might otherwise supply, so runs do not
  // depend on a developer's local file.
  const allVars = () => ({
    JWT_SECRET: SECRET,
    ENVIRONMENT: "development",
    ALLOWED_ORIGINS: `http://127.0.0.1:${port},http://localhost:${port}`,
    DEV_TOKEN_ENDPOINT: "enabled",
    ...vars,
  });

  const launch = async () => {
    // A free inspector port of its own: two `wrangler dev` starting at once would both take 9229 and one would die.
    const inspectorPort = await freePort();
    const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persist, "--show-interactive-dev-session=false"];
    for (const [k, v] of Object.entries(allVars())) args.push("--var", `${k}:${v}`);
    const proc = spawn(join(root, "node_modules/.bin/wrangler"), args, {
      cwd: codeRoot,
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so kill() takes workerd down too
    });
    child = proc;
    let ready = false;
    const from = log.length; // a restart's log already holds the last start's "Ready"
    const onData = (d: Buffer) => {
      log += d.toString();
      if (log.includes(`Ready on http://127.0.0.1:${port}`, from)) ready = true;
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    const deadline = Date.now() + 60_000;
    while (!ready) {
      if (proc.exitCode !== null) throw new Error(`wrangler dev exited (${proc.exitCode}):\n${log.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`wrangler dev did not start within 60 s:\n${log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // "Ready" can precede the first request being served; wait for /healthz.
    while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline) throw new Error("healthz never answered");
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // Another process can take a port between the check and wrangler's bind (see
  // scripts/lib/ports.mjs): the first start moves to another port, a restart (which must
  // keep its URL) waits and tries the same one again.
  const startOn = async (firstStart: boolean) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await launch();
      } catch (err) {
        await kill(); // whatever it left running (workerd outlives a wrangler that gave up)
        if (attempt >= 4 || !isAddressInUse(err)) {
          if (firstStart) rmSync(persist, { recursive: true, force: true });
          throw err;
        }
        if (firstStart) port = await freePort();
        else await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  };

  const start = async (startOptions: { root?: string } = {}) => {
    if (startOptions.root !== undefined) codeRoot = startOptions.root;
    await startOn(false);
  };

  const kill = async () => {
    const proc = child;
    child = undefined;
    if (!proc) return;
    const exited = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise((r) => proc.once("exit", r));
    try {
      process.kill(-proc.pid!, "SIGKILL"); // the whole group, even if wrangler itself has exited
    } catch {
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
    await exited;
    // Wait until the port is free again: nothing answers on it and it can be bound (workerd can
    // hold it a moment after wrangler has exited).
    for (let i = 0; i < 100 && !(await portFree(port)); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  await startOn(true);
  return {
    url: `http://127.0.0.1:${port}`,
    kill,
    start,
    dispose: async () => {
      await kill();
      rmSync(persist, { recursive: true, force: true });
    },
    output: () => log,
  };
}

export async function mintToken(options: { sub: string; cap?: Record<string, string[]>; expiresInSeconds?: number }): Promise<string> {
  return new SignJWT({ cap: options.cap ?? { "*": ["subscribe", "publish", "presence"] } })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 600))
    .sign(new TextEncoder().encode(SECRET));
}

let roomCounter = 0;
export function uniqueRoom(prefix = "it"): string {
  return `${prefix}-${Date.now().toString(36)}-${(roomCounter++).toString(36)}`;
}

/** Polls `check` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
