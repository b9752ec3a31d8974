/**
 * A room's summary for the admin API (`GET /v1/admin/rooms`, `GET /v1/admin/rooms/:room`):
 * what the room knows right now, read from memory and one indexed SQLite row, nothing
 * written. `detail` adds one line per connection and the presence members.
 */
import type { Member } from "@roomcast/protocol";
import type { RoomCore } from "./room-core.js";

export interface ConnectionInfo {
  connectionId: string;
  userId: string;
  /** ms since the epoch. */
  joinedAt: number;
  /** When the runtime last answered its ping (ms since the epoch), null if it never pinged. */
  lastPingAt: number | null;
  /** Messages the room has yet to send it: a replay still catching it up; 0 once it is live. */
  lagBehindHead: number;
  /** Characters sent to it that it has not confirmed reading (flow control, docs/protocol.md §6.9). */
  unconfirmedBytes: number;
  /** `joining` while its replay runs, then `live`. */
  phase: string;
  protocol: string;
}

export interface RoomSummary {
  room: string;
  epoch: string;
  headSeq: number;
  /** Oldest retained seq; headSeq + 1 when nothing is retained. */
  firstSeq: number;
  connections: number;
  /** Distinct users among the connections. */
  users: number;
  /** The latest of: the newest stored message, a connection's join, frame or ping (ms since the epoch); null if none. */
  lastActivityAt: number | null;
  /** UTF-8 bytes of the retained messages' data (RETENTION_MAX_BYTES). */
  logBytes: number;
  /** The room database's schema version (schema.ts); null for a room that has stored nothing yet. */
  schemaVersion: number | null;
  connectionList?: ConnectionInfo[];
  presence?: Member[];
}

type SummaryHost = Pick<RoomCore, "room" | "log" | "connections" | "lastSeen" | "presence">;

export function roomSummary(core: SummaryHost, fallbackRoom: string, detail: boolean): RoomSummary {
  const { log, connections } = core;
  const open = connections.open();
  // One row, by the primary key (the newest message).
  let last: number | null = log.recent(1)[0]?.ts ?? null;
  const users = new Set<string>();
  for (const conn of open) {
    users.add(conn.userId);
    const seen = core.lastSeen(conn);
    if (last === null || seen > last) last = seen;
  }
  const summary: RoomSummary = {
    room: core.room ?? fallbackRoom,
    epoch: log.epoch,
    headSeq: log.head,
    firstSeq: log.oldestSeq,
    connections: open.length,
    users: users.size,
    lastActivityAt: last,
    logBytes: log.bytes,
    schemaVersion: log.schemaVersion ?? null,
  };
  if (!detail) return summary;
  summary.connectionList = open.map((conn) => {
    const ping = connections.lastPing(conn);
    const cursor = conn.session.replayedTo;
    return {
      connectionId: conn.id,
      userId: conn.userId,
      joinedAt: conn.session.joinedAt,
      lastPingAt: ping > 0 ? ping : null,
      lagBehindHead: conn.phase === "joining" ? Math.max(0, log.head - (cursor ?? 0)) : 0,
      unconfirmedBytes: conn.flow.unconfirmed,
      phase: conn.phase,
      protocol: conn.session.protocol,
    };
  });
  summary.presence = core.presence().members();
  return summary;
}
