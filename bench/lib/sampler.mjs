/**
 * CPU seconds and RSS of server processes, read from /proc (Linux). CPU time is
 * utime + stime in clock ticks (USER_HZ, 100 on Linux).
 */
import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100;

function readStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssBytes: rssKb * 1024 };
  } catch {
    return { cpuSeconds: 0, rssBytes: 0 }; // the process is gone
  }
}

/** Totals over `pids` now. */
export function sample(pids) {
  let cpuSeconds = 0;
  let rssBytes = 0;
  for (const pid of pids) {
    const s = readStat(pid);
    cpuSeconds += s.cpuSeconds;
    rssBytes += s.rssBytes;
  }
  return { cpuSeconds, rssBytes, at: performance.now() };
}

/** CPU seconds used between two samples, and the later RSS. */
export function delta(before, after) {
  return { cpuSeconds: after.cpuSeconds - before.cpuSeconds, rssBytes: after.rssBytes, wallSeconds: (after.at - before.at) / 1000 };
}

/** This process (the load generator). */
export function selfSample() {
  return sample([process.pid]);
}

/**
 * The kernel's queues of one loopback TCP connection, from /proc/net/tcp (IPv4):
 * what the client side (`localPort`) has received and not read, and what the server
 * side (local `serverPort`, remote `localPort`) has queued and not had acknowledged.
 * Shows how much of a stalled client's backlog sits in the kernel, not in the server.
 */
export function tcpQueues(localPort, serverPort) {
  const out = { clientUnreadBytes: null, serverUnsentBytes: null };
  let text;
  try {
    text = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return out;
  }
  const port = (address) => parseInt(address.split(":")[1], 16);
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const [tx, rx] = f[4].split(":").map((h) => parseInt(h, 16));
    const local = port(f[1]);
    const remote = port(f[2]);
    if (local === localPort && remote === serverPort) out.clientUnreadBytes = rx;
    else if (local === serverPort && remote === localPort) out.serverUnsentBytes = tx;
  }
  return out;
}
