/**
 * An in-memory server behind the admin API contract, for the console's tests (and the
 * shapes the console expects of O2/O3's endpoints): rooms with connections, presence
 * and a trace log. Every call is recorded.
 */
import type { Api, ConnectionInfo, RoomSummary, TraceEvent } from "../src/api.js";

export interface FakeRoom {
  summary: RoomSummary;
  connections: ConnectionInfo[];
  presence: unknown[];
  trace: { enabled: boolean; until: number | null; events: TraceEvent[] };
  errors: number;
}

export function fakeRoom(room: string, users: string[], headSeq = 0): FakeRoom {
  const now = Date.now();
  const connections = users.map((u, i) => ({ connectionId: `c-${room}-${i}`, userId: u, joinedAt: now - 65_000, lastPingAt: now - 3_000, lagBehindHead: i, protocol: "roomcast.v1" }));
  return {
    summary: { room, epoch: "e-1234567890", headSeq, firstSeq: headSeq ? 1 : 0, connections: users.length, users: new Set(users).size, lastActivityAt: now - 1_000 },
    connections,
    presence: [...new Set(users)].map((u) => ({ userId: u, connections: connections.filter((c) => c.userId === u).map((c) => ({ connectionId: c.connectionId, state: null })) })),
    trace: { enabled: false, until: null, events: [] },
    errors: 0,
  };
}

export function fakeApi(rooms: FakeRoom[]): Api & { calls: string[]; data: FakeRoom[] } {
  const find = (room: string) => {
    const r = rooms.find((x) => x.summary.room === room);
    if (!r) throw Object.assign(new Error("no such room"), { code: "not_found" });
    return r;
  };
  const calls: string[] = [];
  return {
    calls,
    data: rooms,
    async rooms() {
      calls.push("rooms");
      return { rooms: rooms.map((r) => ({ ...r.summary })) };
    },
    async room(room) {
      calls.push(`room ${room}`);
      const r = find(room);
      return { ...r.summary, connectionList: r.connections, presence: r.presence };
    },
    async metrics() {
      calls.push("metrics");
      return rooms.map((r) => `roomcast_publishes_total{room="${r.summary.room}",outcome="rate_limited"} ${r.errors}`).join("\n") + "\n";
    },
    async drainAll(windowSeconds) {
      calls.push(`drainAll ${windowSeconds}`);
      return { rooms: rooms.length, drained: rooms.length, failed: 0 };
    },
    async drainRoom(room, windowSeconds) {
      calls.push(`drain ${room} ${windowSeconds}`);
      return { connections: find(room).connections.length, windowMs: (windowSeconds ?? 10) * 1000 };
    },
    async kick(room, userId, banSeconds) {
      calls.push(`kick ${room} ${userId} ${banSeconds ?? 0}`);
      const r = find(room);
      const before = r.connections.length;
      r.connections = r.connections.filter((c) => c.userId !== userId);
      return { closed: before - r.connections.length };
    },
    async startTrace(room, seconds, payloads) {
      calls.push(`trace ${room} ${seconds} ${payloads}`);
      const r = find(room);
      r.trace.enabled = true;
      r.trace.until = Date.now() + seconds * 1000;
      return { enabled: true, until: r.trace.until };
    },
    async stopTrace(room) {
      calls.push(`untrace ${room}`);
      const r = find(room);
      r.trace.enabled = false;
      r.trace.until = null;
      return { enabled: false, until: null };
    },
    async traceEvents(room, after) {
      calls.push(`events ${room} ${after}`);
      const r = find(room);
      return { enabled: r.trace.enabled, until: r.trace.until, events: r.trace.events.filter((e) => e.id > after) };
    },
  };
}
