/**
 * Presence diffs out to the room, coalesced under churn.
 *
 * Every presence change goes to every socket, so N connections joining one room
 * one by one cost N²/2 sends: after a deploy or an outage, 5,000 clients coming
 * back would be 12.5 million sends, minutes of CPU at workerd's per-send cost
 * (docs/benchmarks.md). So a change is held for `maxDelayMs` and goes out merged
 * with every change that came meanwhile: one send per socket per window, however
 * many changes.
 *
 * Every change waits, even in a quiet room. A first version sent a change at once
 * when the previous one was long enough ago; under a storm that rule defeats
 * itself: Date.now() only moves between events, so when one join's sends take
 * longer than `maxDelayMs` the next join looks "late" and is sent alone too
 * (measured: 4,000 joins took 149 s of CPU and 1,202 diffs).
 *
 * Merging keeps the protocol's contract: each user appears once, with their
 * latest snapshot (`joins`/`updates`: set it) or in `leaves` (delete it), so a
 * client applying the merged diff ends where applying every diff in order would,
 * whatever point inside the window its own view was taken at. That is why a user
 * who joined and left inside one window is still sent as a leave: a connection that
 * joined inside the window got a `presence_state` listing that user, and only the
 * leave removes them (deleting a user you never listed changes nothing). A merged
 * diff also reaches the connections whose own join is in it; applying your own
 * snapshot, or a change your `presence_state` already contained, changes nothing.
 */
import type { Connection } from "./connections.js";
import { isEmptyDiff, type Member, type PresenceDiff } from "./presence.js";
import { presenceDiffFrame } from "./wire.js";
import { sendQuiet } from "./send.js";
import type { Tracer } from "./trace.js";

type Kind = "join" | "update" | "leave";

/** One diff equivalent to applying `diffs` in order (for clients that apply joins/updates, then leaves). */
export function mergeDiffs(diffs: readonly PresenceDiff[]): PresenceDiff {
  const users = new Map<string, { first: Kind; last: Kind; member?: Member }>();
  const note = (userId: string, kind: Kind, member?: Member) => {
    const seen = users.get(userId);
    if (seen) {
      seen.last = kind;
      seen.member = member;
    } else users.set(userId, { first: kind, last: kind, member });
  };
  for (const d of diffs) {
    for (const m of d.joins) note(m.userId, "join", m);
    for (const m of d.updates) note(m.userId, "update", m);
    for (const userId of d.leaves) note(userId, "leave");
  }
  const merged = { joins: [] as Member[], updates: [] as Member[], leaves: [] as string[] };
  for (const [userId, { first, last, member }] of users) {
    if (last === "leave") {
      // Even after a join in the same window: a connection that joined meanwhile saw it.
      merged.leaves.push(userId);
    } else if (first === "join") merged.joins.push(member!);
    else merged.updates.push(member!); // an update, or a leave and a return: present, with this snapshot
  }
  return merged;
}

export interface PresenceTargets {
  /** Everyone presence goes to (joining and live connections). */
  targets(): readonly Connection[];
  /** Connections already past their flow-control budget when a diff was due (flow.ts). */
  slow(conns: Connection[]): void;
  budget: number;
  /** The room's debug-mode tracer: a diff is one trace event with its recipient count. */
  trace?: Tracer;
}

export class PresenceFanout {
  readonly #to: PresenceTargets;
  readonly #maxDelayMs: number;
  #pending: PresenceDiff[] | undefined;

  /** `maxDelayMs` 0 sends every diff at once (PRESENCE_MAX_DELAY_MS). */
  constructor(to: PresenceTargets, maxDelayMs: number) {
    this.#to = to;
    this.#maxDelayMs = maxDelayMs;
  }

  /**
   * A presence change for everyone. `except` (the connection that caused it, which
   * already knows) is skipped only when the change goes out on its own (delay 0).
   */
  diff(diff: PresenceDiff, except?: Connection): void {
    if (isEmptyDiff(diff)) return;
    if (this.#maxDelayMs === 0) return this.#send(diff, except);
    if (this.#pending) {
      this.#pending.push(diff);
      return;
    }
    this.#pending = [diff];
    setTimeout(() => this.flush(), this.#maxDelayMs);
  }

  /** Sends what is held, now. */
  flush(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    if (!pending) return;
    const merged = pending.length === 1 ? pending[0]! : mergeDiffs(pending);
    if (!isEmptyDiff(merged)) this.#send(merged);
  }

  #send(diff: PresenceDiff, except?: Connection): void {
    const frame = presenceDiffFrame(diff);
    let slow: Connection[] | undefined;
    let recipients = 0;
    for (const conn of this.#to.targets()) {
      if (conn === except) continue;
      if (conn.flow.unconfirmed > this.#to.budget) (slow ??= []).push(conn);
      else if (sendQuiet(conn, frame)) recipients++;
    }
    if (this.#to.trace?.on) this.#to.trace.fanout(frame, recipients);
    if (slow) this.#to.slow(slow);
  }
}
