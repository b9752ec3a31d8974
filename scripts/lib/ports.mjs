/**
 * Loopback ports for the servers tests, checks and benchmarks start.
 *
 * "Ask the kernel for port 0, close it, hand the number to a server" races: the number
 * comes from the ephemeral range, and until the server binds it the kernel can give it
 * to anything else that asks — another `wrangler dev`'s inspector or internal workerd
 * ports, or the local end of any outgoing connection (CI once failed on exactly that:
 * "Address already in use (127.0.0.1:36549)"). So ports are drawn at random from below
 * the ephemeral range, which the kernel never hands out on its own, checked free by
 * binding them, and never handed out twice by one process.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const LOWEST = 10_000;
const given = new Set();

/** The first port of the kernel's ephemeral range (Linux; 32768 elsewhere or if unreadable). */
export function ephemeralLow() {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && low > 1024) return low;
  } catch {
    // not Linux, or no /proc
  }
  return 32_768;
}

function tryListen(host, port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(0));
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/** True when nothing listens on `port` of `host`: it could be bound (and is let go at once). */
export async function portFree(port, host = "127.0.0.1") {
  return (await tryListen(host, port)) !== 0;
}

/**
 * A port that is free on `host` now, outside the ephemeral range when there is room below
 * it, and not one this process handed out before or one listed in `not`.
 */
export async function freePort(host = "127.0.0.1", { not = [] } = {}) {
  const high = ephemeralLow() - 1;
  const below = high - LOWEST >= 1_000;
  for (let i = 0; i < 100; i++) {
    const wanted = below ? LOWEST + Math.floor(Math.random() * (high - LOWEST + 1)) : 0;
    const port = await tryListen(host, wanted);
    if (port === 0 || given.has(port) || not.includes(port)) continue;
    given.add(port);
    return port;
  }
  throw new Error(`no free port on ${host} after 100 tries`);
}

/** True when `err` (or its message) is a server start that lost its port to another process. */
export function isAddressInUse(err) {
  const text = String(err && typeof err === "object" && "message" in err ? err.message : err);
  return text.includes("EADDRINUSE") || text.includes("Address already in use");
}
