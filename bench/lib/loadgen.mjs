/**
 * The load generator's building blocks: connect many clients, publish open-loop at
 * a fixed rate, and record every delivery. Timestamps come from this process's
 * high-resolution clock (publisher and subscribers share it), never the server's:
 * Workers freeze Date.now() while code runs.
 */
import { histogram, summarize } from "./stats.mjs";

/** Loopback source addresses, so many sockets fit in the ephemeral port range. */
export function localAddresses(connections) {
  const count = Math.min(200, Math.max(1, Math.ceil(connections / 20_000)));
  return Array.from({ length: count }, (_, i) => `127.0.0.${i + 1}`);
}

/**
 * Opens connections with bounded concurrency.
 * @param {import("./adapter.mjs").Adapter} adapter
 * @returns {Promise<{ connections: import("./adapter.mjs").Connection[], failures: number, seconds: number }>}
 */
export async function connectMany(adapter, url, specs, { concurrency = 100, onMessage, log, timeoutMs = 120_000, connectOptions = {} } = {}) {
  const addresses = localAddresses(specs.length);
  const connections = new Array(specs.length);
  let next = 0;
  let failures = 0;
  let done = 0;
  const started = performance.now();
  const deadline = started + timeoutMs;
  const worker = async () => {
    while (next < specs.length && performance.now() < deadline) {
      const index = next++;
      const spec = specs[index];
      try {
        connections[index] = await withTimeout(
          adapter.connect({ ...connectOptions, url, room: spec.room, user: spec.user, localAddress: addresses[index % addresses.length], onMessage: (data) => onMessage?.(data, index) }),
          30_000,
        );
      } catch {
        failures++;
      }
      done++;
      if (log && done % 5_000 === 0) log(`  connected ${done}/${specs.length}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, worker));
  // `bySpec[i]` is the connection for specs[i] (undefined where it failed).
  return { connections: connections.filter(Boolean), bySpec: connections, failures: failures + (specs.length - done), seconds: (performance.now() - started) / 1000 };
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * Publishes `rate` messages per second for `durationMs`, open loop: each message is
 * stamped with its *scheduled* time, so a slow system cannot hide latency by
 * delaying the publisher (no coordinated omission).
 */
export async function openLoop({ rate, durationMs, publish }) {
  const start = performance.now();
  const intervalMs = 1000 / rate;
  let sent = 0;
  const total = Math.floor((rate * durationMs) / 1000);
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
    for (; sent < due; sent++) publish(sent, start + sent * intervalMs);
    const wait = start + sent * intervalMs - performance.now();
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(wait, 5))));
  }
  return { sent, seconds: (performance.now() - start) / 1000 };
}

/** Builds payloads of about `bytes` bytes of JSON. */
export function payloadFactory(bytes) {
  const padding = "x".repeat(Math.max(0, bytes - 40));
  return (i, t, room = 0) => ({ t, i, r: room, p: padding });
}

/**
 * Records deliveries: latency of each (publish scheduled time → receipt), and for
 * each message the fan-out completion time (until the last expected subscriber has it).
 */
export class DeliveryTracker {
  constructor() {
    this.latency = histogram();
    this.completion = histogram();
    this.pending = new Map();
    this.delivered = 0;
    this.recording = false;
    this.expectedTotal = 0;
    this.unexpected = 0;
  }

  /** Announces a message: `expected` subscribers should receive it. Counted only while recording. */
  expect(key, t, expected) {
    this.pending.set(key, { t, remaining: expected, measured: this.recording });
    if (this.recording) this.expectedTotal += expected;
  }

  deliver(key) {
    const now = performance.now();
    const entry = this.pending.get(key);
    if (!entry) {
      this.unexpected++; // a duplicate, or a message announced before a reset
      return;
    }
    if (entry.measured) {
      this.delivered++;
      this.latency.recordValue(Math.max(1, Math.round((now - entry.t) * 1000)));
    }
    if (--entry.remaining === 0) {
      this.pending.delete(key);
      if (entry.measured) this.completion.recordValue(Math.max(1, Math.round((now - entry.t) * 1000)));
    }
  }

  /** Waits until nothing is outstanding, or `ms` passed. */
  async drain(ms) {
    const deadline = performance.now() + ms;
    while (this.pending.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  summary() {
    return {
      delivered: this.delivered,
      expected: this.expectedTotal,
      lost: Math.max(0, this.expectedTotal - this.delivered),
      unexpected: this.unexpected,
      latencyMs: summarize(this.latency),
      fanoutCompletionMs: summarize(this.completion),
    };
  }
}
