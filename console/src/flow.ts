import type { TraceEvent } from "./api.js";

/** What the flow chart shows: frames in, frames out and errors per bucket, oldest first. */
export interface FlowBuckets {
  start: number;
  bucketMs: number;
  inbound: number[];
  outbound: number[];
  errors: number[];
}

/**
 * An event counts as an error when it is an `error` frame or carries an outcome other
 * than success (a refused publish's code, a close code's name).
 */
export function isErrorEvent(e: TraceEvent): boolean {
  if (e.type === "error") return true;
  return e.outcome !== undefined && e.outcome !== "accepted" && e.outcome !== "ok" && e.outcome !== "duplicate";
}

export function bucketEvents(events: readonly TraceEvent[], now: number, spanMs = 5 * 60_000, bucketMs = 5_000): FlowBuckets {
  const n = Math.ceil(spanMs / bucketMs);
  const end = Math.floor(now / bucketMs) * bucketMs + bucketMs;
  const start = end - n * bucketMs;
  const inbound = new Array<number>(n).fill(0);
  const outbound = new Array<number>(n).fill(0);
  const errors = new Array<number>(n).fill(0);
  for (const e of events) {
    const i = Math.floor((e.at - start) / bucketMs);
    if (i < 0 || i >= n) continue;
    (e.dir === "in" ? inbound : outbound)[i]!++;
    if (isErrorEvent(e)) errors[i]!++;
  }
  return { start, bucketMs, inbound, outbound, errors };
}

/** Most events the console keeps for one room (oldest dropped first), and for how long. */
export const MAX_EVENTS = 5_000;
export const KEEP_MS = 10 * 60_000;

/** Appends new events (ids above what is held), drops what is too old or too many. */
export function mergeEvents(held: readonly TraceEvent[], fresh: readonly TraceEvent[], now: number): TraceEvent[] {
  const lastId = held.length ? held[held.length - 1]!.id : 0;
  const merged = held.concat(fresh.filter((e) => e.id > lastId).sort((a, b) => a.id - b.id));
  let from = Math.max(0, merged.length - MAX_EVENTS);
  while (from < merged.length && merged[from]!.at < now - KEEP_MS) from++;
  return from === 0 ? merged : merged.slice(from);
}
