/**
 * Server processes for the benchmark adapters: start a command pinned to CPUs
 * with `taskset`, wait for the line that says it is ready, find every process it
 * spawned (CPU and RSS are sampled per pid) and stop the whole lot.
 *
 * Every server runs as the leader of its own process group (`detached: true`).
 * `taskset` execs the command, so the group id is the pid of the command itself,
 * and whatever it spawns (wrangler -> workerd, esbuild) stays in that group
 * unless it deliberately leaves it; `pids()` also follows the parent chain, so a
 * child that started its own group is still found. Signals go to the group
 * (`kill(-pgid)`), never to process names: other servers on the machine are not
 * ours to touch.
 *
 * Groups still running when this Node process exits (normally, or on SIGINT,
 * SIGTERM or SIGHUP) get SIGKILL, so an interrupted run leaves no orphans.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

/**
 * @typedef {object} SpawnPinnedOptions
 * @property {string} cpus            taskset CPU list, e.g. "1" or "0,1"
 * @property {NodeJS.ProcessEnv} [env]  environment (default: this process's)
 * @property {string} [cwd]
 * @property {RegExp | string} readyPattern  matched against each output line (stdout and stderr, ANSI colours removed)
 * @property {number} [timeoutMs]     how long to wait for it (default 60,000)
 * @property {number} [stopTimeoutMs] how long stop() waits after SIGTERM before SIGKILL (default 5,000)
 * @property {(line: string) => void} [onLine]  every output line, as it comes
 *
 * @typedef {object} PinnedProcess
 * @property {import("node:child_process").ChildProcess} child
 * @property {number} pgid                 process group id (= child.pid)
 * @property {() => number[]} pids         live processes of the group and their descendants (leader first)
 * @property {() => Promise<void>} stop    SIGTERM to the group, SIGKILL after stopTimeoutMs; resolves when none is left
 * @property {() => Promise<void>} kill    SIGKILL to the group at once; resolves when none is left
 * @property {() => string} output         the last 64 KB of stdout and stderr, interleaved as received
 * @property {Promise<{code: number | null, signal: string | null}>} exited  when the leader has exited
 */

const OUTPUT_KEEP = 64 * 1024;
// Control sequences (colours, cursor movement) that wrangler prints even to pipes.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07/g;

/** Groups we started and have not seen die; killed if this process exits first. */
const liveGroups = new Set();
let exitHooksInstalled = false;

function installExitHooks() {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", killAllSync);
  for (const sig of /** @type {const} */ (["SIGINT", "SIGTERM", "SIGHUP"])) {
    const onSignal = () => {
      killAllSync();
      process.removeListener(sig, onSignal);
      // Other listeners (the load generator's) still decide; if there are none, die of it as usual.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** SIGKILL every process group started here that may still be running. */
export function killAllSync() {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  liveGroups.clear();
}

/**
 * One /proc/<pid>/stat, parsed. The command name (field 2) may contain spaces
 * and parentheses, so fields are counted from the last ')'.
 * @param {number} pid
 * @returns {{pid: number, state: string, ppid: number, pgid: number} | null}
 */
function readStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null; // exited meanwhile
  }
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { pid, state: rest[0] ?? "", ppid: Number(rest[1]), pgid: Number(rest[2]) };
}

/** Every live (not zombie) process, from /proc. */
function allProcesses() {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (st && st.state !== "Z" && st.state !== "X") out.push(st);
  }
  return out;
}

/**
 * Live processes whose process group is `pgid` (zombies excluded), ascending pid.
 * @param {number} pgid
 * @returns {number[]}
 */
export function processGroupPids(pgid) {
  return allProcesses()
    .filter((p) => p.pgid === pgid)
    .map((p) => p.pid)
    .sort((a, b) => a - b);
}

/**
 * `root` and all its live descendants (by parent pid), plus every live member
 * of process group `pgid` (default `root`): a child that left the group is still
 * found through its parent, and a group member whose parent died (reparented to
 * init) through the group. Leader first, then ascending.
 * @param {number} root
 * @param {number} [pgid]
 * @returns {number[]}
 */
export function processTreePids(root, pgid = root) {
  const procs = allProcesses();
  const children = new Map();
  for (const p of procs) {
    if (!children.has(p.ppid)) children.set(p.ppid, []);
    children.get(p.ppid).push(p.pid);
  }
  const found = new Set();
  const visit = (/** @type {number} */ pid) => {
    if (found.has(pid)) return;
    found.add(pid);
    for (const c of children.get(pid) ?? []) visit(c);
  };
  const alive = new Set(procs.map((p) => p.pid));
  if (alive.has(root)) visit(root);
  for (const p of procs) if (p.pgid === pgid) visit(p.pid);
  return [...found].sort((a, b) => (a === root ? -1 : b === root ? 1 : a - b));
}

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start `taskset -c <cpus> <cmd> ...args` as a new process group and resolve once
 * an output line matches `readyPattern`. Rejects (after killing the group) if the
 * process exits first or the pattern does not show up within `timeoutMs`; the
 * error message carries the tail of its output.
 *
 * @param {string} cmd   executable (absolute path, or looked up in PATH by taskset)
 * @param {string[]} args
 * @param {SpawnPinnedOptions} options
 * @returns {Promise<PinnedProcess>}
 */
export async function spawnPinned(cmd, args, options) {
  const { cpus, env = process.env, cwd, readyPattern, timeoutMs = 60_000, stopTimeoutMs = 5_000, onLine } = options;
  if (!cpus) throw new Error("spawnPinned: cpus is required (taskset CPU list)");
  const pattern = typeof readyPattern === "string" ? new RegExp(escapeRegExp(readyPattern)) : readyPattern;
  installExitHooks();

  const child = spawn("taskset", ["-c", cpus, cmd, ...args], {
    cwd,
    env,
    detached: true, // own process group: stop() signals the group, and Ctrl-C in the terminal does not reach it directly
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pgid = /** @type {number} */ (child.pid);
  if (pgid === undefined) {
    // spawn failed synchronously enough that there is no pid; the 'error' event says why
    const err = await new Promise((resolve) => child.once("error", resolve));
    throw new Error(`spawnPinned: could not start taskset: ${/** @type {Error} */ (err).message}`);
  }
  liveGroups.add(pgid);

  let output = "";
  /** @type {((line: string) => void) | null} */
  let lineWatcher = null;
  const attach = (/** @type {import("node:stream").Readable} */ stream) => {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (/** @type {string} */ chunk) => {
      const clean = chunk.replace(ANSI, "");
      output = (output + clean).slice(-OUTPUT_KEEP);
      const lines = (partial + clean).split(/\r?\n/);
      partial = lines.pop() ?? "";
      for (const line of lines) {
        onLine?.(line);
        lineWatcher?.(line);
      }
    });
    stream.on("end", () => {
      if (partial) {
        onLine?.(partial);
        lineWatcher?.(partial);
      }
    });
  };
  attach(/** @type {import("node:stream").Readable} */ (child.stdout));
  attach(/** @type {import("node:stream").Readable} */ (child.stderr));

  /** @type {Promise<{code: number | null, signal: string | null}>} */
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", () => resolve({ code: null, signal: null }));
  });

  /** Resolves when no live process of the group (or the leader's tree) is left. */
  const waitGone = async (/** @type {number} */ ms) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (processTreePids(pgid).length === 0) return true;
      await sleep(25);
    }
    return processTreePids(pgid).length === 0;
  };

  const send = (/** @type {number} */ pid, /** @type {NodeJS.Signals} */ sig) => {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  };
  /** `sig` to every descendant that left the group, then to the group. */
  const signalAll = (/** @type {NodeJS.Signals} */ sig) => {
    for (const pid of processTreePids(pgid)) if (readStat(pid)?.pgid !== pgid) send(pid, sig);
    send(-pgid, sig);
  };
  /**
   * Waits (bounded, never fails) until none of `pids` is in /proc any more,
   * zombies included. Children that outlive their parent (wrangler exits
   * before its workerd and esbuild) are reaped by init, which may take a
   * moment; waiting keeps `ps` clean when stop() resolves.
   */
  const waitReaped = async (/** @type {number[]} */ pids, /** @type {number} */ ms) => {
    const deadline = Date.now() + ms;
    while (pids.some((pid) => existsSync(`/proc/${pid}`)) && Date.now() < deadline) await sleep(25);
  };
  const finish = async (/** @type {number[]} */ known) => {
    await exited;
    if (!(await waitGone(5_000))) throw new Error(`process group ${pgid} survived SIGKILL: ${processTreePids(pgid).join(",")}`);
    liveGroups.delete(pgid);
    await waitReaped(known, 5_000);
  };

  let stopping = /** @type {Promise<void> | null} */ (null);
  /** Crash: SIGKILL to the whole tree at once. */
  const kill = async () => {
    const known = processTreePids(pgid);
    signalAll("SIGKILL");
    await finish(known);
  };
  /**
   * Graceful: SIGTERM to the leader only (wrangler forwards it to its CLI
   * process, which shuts workerd down), then SIGTERM to the rest of the tree
   * after stopTimeoutMs, then SIGKILL one second later.
   */
  const stop = () => {
    stopping ??= (async () => {
      const known = processTreePids(pgid);
      send(pgid, "SIGTERM");
      if (!(await waitGone(stopTimeoutMs))) {
        signalAll("SIGTERM");
        if (!(await waitGone(1_000))) signalAll("SIGKILL");
      }
      await finish(known);
    })();
    return stopping;
  };

  const handle = {
    child,
    pgid,
    pids: () => processTreePids(pgid),
    stop,
    kill,
    output: () => output,
    exited,
  };

  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`not ready after ${timeoutMs} ms (waiting for ${pattern})`)),
        timeoutMs,
      );
      lineWatcher = (line) => {
        if (pattern.test(line)) {
          clearTimeout(timer);
          lineWatcher = null;
          resolve(undefined);
        }
      };
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`exited before ready (code ${code}, signal ${signal})`));
      });
    });
  } catch (e) {
    await kill().catch(() => {});
    const tail = output.split("\n").slice(-30).join("\n");
    throw new Error(`${cmd} ${args.join(" ")}: ${/** @type {Error} */ (e).message}\n--- output (tail) ---\n${tail}`);
  }
  return handle;
}

function escapeRegExp(/** @type {string} */ s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * @typedef {object} RestartableServer
 * @property {() => number[]} pids          pids of the current incarnation ([] while killed or stopped)
 * @property {() => Promise<void>} stop     stops the current incarnation, if any (idempotent)
 * @property {() => Promise<void>} kill     SIGKILL the current incarnation (crash), for the storm scenario
 * @property {() => Promise<void>} restart  launch again after kill() (same arguments: same port, same state directory)
 * @property {() => PinnedProcess | null} current
 */

/**
 * Wraps a launcher (usually `() => spawnPinned(...)`) into the stop/kill/restart
 * part of a RunningServer. Waits for the first launch.
 * @param {() => Promise<PinnedProcess>} launch
 * @returns {Promise<RestartableServer>}
 */
export async function restartable(launch) {
  /** @type {PinnedProcess | null} */
  let current = await launch();
  const take = () => {
    const c = current;
    current = null;
    return c;
  };
  return {
    pids: () => (current ? current.pids() : []),
    stop: async () => {
      await take()?.stop();
    },
    kill: async () => {
      await take()?.kill();
    },
    restart: async () => {
      if (current) throw new Error("restart: still running (kill() or stop() it first)");
      current = await launch();
    },
    current: () => current,
  };
}

/**
 * A TCP port free on `host` right now (the kernel picks it; there is a small race
 * until the caller binds it). For auxiliary ports such as wrangler's inspector.
 * @param {string} [host]
 * @returns {Promise<number>}
 */
/**
 * The adapter-facing RunningServer for a restartable server: `cleanup` runs after
 * the final stop (e.g. removing a throwaway storage folder).
 * @param {string} url
 * @param {Awaited<ReturnType<typeof restartable>>} server
 * @param {() => Promise<void>} [cleanup]
 * @returns {import("./adapter.mjs").RunningServer}
 */
export function runningServer(url, server, cleanup) {
  return {
    url,
    pids: server.pids,
    kill: server.kill,
    restart: server.restart,
    stop: async () => {
      await server.stop();
      await cleanup?.();
    },
  };
}

/**
 * A one-process Node server script (`node script port`, prints "ready" when
 * listening), pinned and restartable: the ws and Socket.IO peers.
 * @param {string} script
 * @param {string} label  prefix for its output lines
 * @param {import("./adapter.mjs").StartOptions} options
 * @returns {Promise<import("./adapter.mjs").RunningServer>}
 */
export async function startNodeServer(script, label, { port, cpus, log }) {
  const server = await restartable(() =>
    spawnPinned(process.execPath, [script, String(port)], {
      cpus,
      readyPattern: /^ready$/,
      timeoutMs: 15_000,
      onLine: (line) => line !== "ready" && log(`[${label}] ${line}`),
    }),
  );
  log(`${label} server on 127.0.0.1:${port}, cpus ${cpus}, pid ${server.pids().join(",")}`);
  return runningServer(`http://127.0.0.1:${port}`, server);
}

// Ports below the kernel's ephemeral range, never handed out twice: see scripts/lib/ports.mjs.
export { freePort } from "../../scripts/lib/ports.mjs";
