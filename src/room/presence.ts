/**
 * Presence, grouped by user (Phoenix-style): one user with several connections
 * (tabs, devices) is one member, who leaves only when the last connection goes.
 *
 * This is an in-memory index rebuilt from durable sources, never the source itself:
 * live connections come from socket attachments, connections in their reconnect
 * grace period from the `presence_grace` table. Rebuilding is silent, so a wake
 * from hibernation never re-announces anyone.
 *
 * Diffs are member-level and idempotent for a client to apply:
 * `joins` and `updates` carry the member's full current snapshot (set it), `leaves`
 * carries user ids (delete them).
 */

export interface PresenceConnection {
  readonly connectionId: string;
  readonly userId: string;
  /** Custom state set by the connection (any JSON value; null when unset). */
  readonly state: unknown;
  /** ms since the epoch. */
  readonly joinedAt: number;
}

export interface Member {
  readonly userId: string;
  readonly connections: { connectionId: string; state: unknown; joinedAt: number }[];
}

export interface PresenceDiff {
  readonly joins: Member[];
  readonly updates: Member[];
  readonly leaves: string[];
}

interface Entry extends PresenceConnection {
  /** Set while the connection is closed but inside its reconnect grace period (ms since the epoch). */
  readonly graceUntil?: number;
}

export class Presence {
  readonly #users = new Map<string, Map<string, Entry>>();

  /** Silent insert, for rebuilding after a wake. */
  restore(entry: PresenceConnection & { graceUntil?: number }): void {
    this.#connections(entry.userId).set(entry.connectionId, entry);
  }

  /**
   * A connection joined. Replaces any of the user's connections that are waiting
   * out their grace period (a quick reconnect): the others see an update, never a
   * leave/join pair. Returns the ids of the replaced grace connections too.
   */
  add(conn: PresenceConnection): { diff: PresenceDiff; replaced: string[] } {
    const existing = this.#users.get(conn.userId);
    // A user still listed (even only through grace-period connections) is not joining.
    const isJoin = !existing || existing.size === 0;
    const replaced: string[] = [];
    if (existing) {
      for (const [id, entry] of existing) {
        if (entry.graceUntil !== undefined) {
          existing.delete(id);
          replaced.push(id);
        }
      }
    }
    this.#connections(conn.userId).set(conn.connectionId, conn);
    const member = this.member(conn.userId)!;
    return { diff: isJoin ? { joins: [member], updates: [], leaves: [] } : { joins: [], updates: [member], leaves: [] }, replaced };
  }

  /**
   * A connection went away. With `graceUntil`, the user's last live connection is
   * kept (silently) until then; otherwise it is removed now.
   * Returns the diff, and whether the connection entered its grace period.
   */
  remove(connectionId: string, userId: string, graceUntil?: number): { diff: PresenceDiff; graced: boolean } {
    const conns = this.#users.get(userId);
    const entry = conns?.get(connectionId);
    // Unknown, or already waiting out a grace period (a server-initiated close set a
    // longer one): the close event that follows changes nothing.
    if (!conns || !entry || entry.graceUntil !== undefined) return { diff: EMPTY, graced: false };
    const othersLive = [...conns.values()].some((e) => e.connectionId !== connectionId && e.graceUntil === undefined);
    if (graceUntil !== undefined && !othersLive) {
      conns.set(connectionId, { ...entry, graceUntil });
      return { diff: EMPTY, graced: true };
    }
    conns.delete(connectionId);
    return { diff: this.#afterRemoval(userId), graced: false };
  }

  /** Drops every connection of a user at once (kick), announcing the leave now. */
  removeUser(userId: string): PresenceDiff {
    if (!this.#users.delete(userId)) return EMPTY;
    return { joins: [], updates: [], leaves: [userId] };
  }

  /** Sets a connection's custom state; an update diff, or undefined if unknown. */
  setState(connectionId: string, userId: string, state: unknown): PresenceDiff | undefined {
    const conns = this.#users.get(userId);
    const entry = conns?.get(connectionId);
    if (!conns || !entry) return undefined;
    conns.set(connectionId, { ...entry, state });
    return { joins: [], updates: [this.member(userId)!], leaves: [] };
  }

  /** Ends every grace period due by `now`. Returns the diff and the expired connection ids. */
  expireGrace(now: number): { diff: PresenceDiff; expired: string[] } {
    const expired: string[] = [];
    const touched = new Set<string>();
    for (const [userId, conns] of this.#users) {
      for (const [id, entry] of conns) {
        if (entry.graceUntil !== undefined && entry.graceUntil <= now) {
          conns.delete(id);
          expired.push(id);
          touched.add(userId);
        }
      }
    }
    return { diff: merge([...touched].map((u) => this.#afterRemoval(u))), expired };
  }

  /** The earliest grace deadline, for scheduling the alarm. */
  nextGraceDeadline(): number | undefined {
    let next: number | undefined;
    for (const conns of this.#users.values()) {
      for (const e of conns.values()) if (e.graceUntil !== undefined && (next === undefined || e.graceUntil < next)) next = e.graceUntil;
    }
    return next;
  }

  has(connectionId: string, userId: string): boolean {
    return this.#users.get(userId)?.has(connectionId) ?? false;
  }

  member(userId: string): Member | undefined {
    const conns = this.#users.get(userId);
    if (!conns || conns.size === 0) return undefined;
    return {
      userId,
      connections: [...conns.values()].map((e) => ({ connectionId: e.connectionId, state: e.state, joinedAt: e.joinedAt })),
    };
  }

  members(): Member[] {
    return [...this.#users.keys()].map((u) => this.member(u)).filter((m): m is Member => m !== undefined);
  }

  #connections(userId: string): Map<string, Entry> {
    let conns = this.#users.get(userId);
    if (!conns) this.#users.set(userId, (conns = new Map()));
    return conns;
  }

  #afterRemoval(userId: string): PresenceDiff {
    const member = this.member(userId);
    if (member) return { joins: [], updates: [member], leaves: [] };
    this.#users.delete(userId);
    return { joins: [], updates: [], leaves: [userId] };
  }
}

const EMPTY: PresenceDiff = { joins: [], updates: [], leaves: [] };

export function isEmptyDiff(diff: PresenceDiff): boolean {
  return diff.joins.length === 0 && diff.updates.length === 0 && diff.leaves.length === 0;
}

function merge(diffs: PresenceDiff[]): PresenceDiff {
  return {
    joins: diffs.flatMap((d) => d.joins),
    updates: diffs.flatMap((d) => d.updates),
    leaves: diffs.flatMap((d) => d.leaves),
  };
}
