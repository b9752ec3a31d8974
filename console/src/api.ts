/**
 * The admin HTTP API the console reads (docs/operations.md "The console"; shapes from the
 * observability contract). Every call sends the admin token as `Authorization: Bearer`,
 * never in a URL, and every answer is checked before the views use it.
 */

export interface ConnectionInfo {
  connectionId: string;
  userId: string;
  joinedAt: number;
  lastPingAt: number | null;
  lagBehindHead: number;
  protocol: string;
}

export interface RoomSummary {
  room: string;
  epoch: string;
  headSeq: number;
  firstSeq: number;
  connections: number;
  users: number;
  lastActivityAt: number | null;
  connectionList?: ConnectionInfo[];
  presence?: unknown[];
  /** Set when the directory lists the room but the room did not answer its summary. */
  error?: string;
}

export interface TraceEvent {
  id: number;
  at: number;
  dir: "in" | "out";
  type: string;
  bytes: number;
  userId?: string;
  connectionId?: string;
  seq?: number;
  outcome?: string;
  data?: unknown;
}

export interface TraceState {
  enabled: boolean;
  until: number | null;
}

export interface TraceEvents extends TraceState {
  events: TraceEvent[];
}

export interface DrainAllResult {
  rooms: number;
  drained: number;
  failed: number;
}

/** An answer that is not a success: the server's `{error: {code, message}}` when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
const isStr = (x: unknown): x is string => typeof x === "string";

/** Longest a call may take before the console reports it failed (the views poll again). */
const TIMEOUT_MS = 10_000;

function invalid(what: string): never {
  throw new ApiError(0, "invalid_answer", `the server's answer is not a valid ${what}`);
}

/** A listed room; one the directory knows but that failed its summary comes with `error` and what the directory knew. */
export function parseListing(x: unknown): RoomSummary {
  if (isObject(x) && isStr(x.room) && isStr(x.error)) {
    return { room: x.room, epoch: "", headSeq: 0, firstSeq: 0, connections: isNum(x.connections) ? x.connections : 0, users: 0, lastActivityAt: isNum(x.lastActivityAt) ? x.lastActivityAt : null, error: x.error };
  }
  return parseSummary(x);
}

export function parseSummary(x: unknown): RoomSummary {
  if (!isObject(x) || !isStr(x.room) || !isNum(x.headSeq) || !isNum(x.firstSeq) || !isNum(x.connections) || !isNum(x.users)) invalid("room summary");
  const summary: RoomSummary = {
    room: x.room,
    epoch: isStr(x.epoch) ? x.epoch : "",
    headSeq: x.headSeq,
    firstSeq: x.firstSeq,
    connections: x.connections,
    users: x.users,
    lastActivityAt: isNum(x.lastActivityAt) ? x.lastActivityAt : null,
  };
  if (Array.isArray(x.connectionList)) {
    summary.connectionList = x.connectionList.filter(isObject).map((c) => ({
      connectionId: isStr(c.connectionId) ? c.connectionId : "",
      userId: isStr(c.userId) ? c.userId : "",
      joinedAt: isNum(c.joinedAt) ? c.joinedAt : 0,
      lastPingAt: isNum(c.lastPingAt) ? c.lastPingAt : null,
      lagBehindHead: isNum(c.lagBehindHead) ? c.lagBehindHead : 0,
      protocol: isStr(c.protocol) ? c.protocol : "",
    }));
  }
  if (Array.isArray(x.presence)) summary.presence = x.presence;
  return summary;
}

function parseTraceState(x: unknown): TraceState {
  if (!isObject(x) || typeof x.enabled !== "boolean") invalid("trace state");
  return { enabled: x.enabled, until: isNum(x.until) ? x.until : null };
}

export function parseTraceEvents(x: unknown): TraceEvents {
  const state = parseTraceState(x);
  const raw = isObject(x) && Array.isArray(x.events) ? x.events : invalid("trace events answer");
  const events: TraceEvent[] = [];
  for (const e of raw) {
    if (!isObject(e) || !isNum(e.id) || !isNum(e.at) || (e.dir !== "in" && e.dir !== "out") || !isStr(e.type)) continue;
    const event: TraceEvent = { id: e.id, at: e.at, dir: e.dir, type: e.type, bytes: isNum(e.bytes) ? e.bytes : 0 };
    if (isStr(e.userId)) event.userId = e.userId;
    if (isStr(e.connectionId)) event.connectionId = e.connectionId;
    if (isNum(e.seq)) event.seq = e.seq;
    if (isStr(e.outcome)) event.outcome = e.outcome;
    if ("data" in e) event.data = e.data;
    events.push(event);
  }
  return { ...state, events };
}

export interface Api {
  rooms(cursor?: string, limit?: number): Promise<{ rooms: RoomSummary[]; cursor?: string }>;
  room(room: string): Promise<RoomSummary>;
  metrics(): Promise<string>;
  drainAll(windowSeconds?: number): Promise<DrainAllResult>;
  drainRoom(room: string, windowSeconds?: number): Promise<{ connections: number; windowMs: number }>;
  kick(room: string, userId: string, banSeconds?: number): Promise<{ closed: number; bannedUntil?: number }>;
  startTrace(room: string, seconds: number, payloads: boolean): Promise<TraceState>;
  stopTrace(room: string): Promise<TraceState>;
  traceEvents(room: string, after: number): Promise<TraceEvents>;
}

const seg = (s: string) => encodeURIComponent(s);

/** The API of the server that served the console (same origin), with `token` as admin. */
export function createApi(token: string, fetchImpl: Fetch = (i, init) => fetch(i, init), base = ""): Api {
  async function call(method: string, path: string, body?: unknown, accept = "application/json"): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetchImpl(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (err) {
      throw new ApiError(0, "network", controller.signal.aborted ? "the server did not answer in time" : "the server could not be reached");
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      let code = "http_" + res.status;
      let message = `the server answered ${res.status}`;
      try {
        const json: unknown = await res.json();
        if (isObject(json) && isObject(json.error)) {
          if (isStr(json.error.code)) code = json.error.code;
          if (isStr(json.error.message)) message = json.error.message;
        }
      } catch {
        // not JSON: keep the status
      }
      throw new ApiError(res.status, code, message);
    }
    return res;
  }
  const json = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const res = await call(method, path, body);
    try {
      return await res.json();
    } catch {
      return invalid("JSON answer");
    }
  };
  const windowBody = (windowSeconds?: number) => (windowSeconds === undefined ? {} : { windowSeconds });

  return {
    async rooms(cursor, limit) {
      const q = new URLSearchParams();
      if (cursor) q.set("cursor", cursor);
      if (limit !== undefined) q.set("limit", String(limit));
      const qs = q.toString();
      const x = await json("GET", `/v1/admin/rooms${qs ? `?${qs}` : ""}`);
      if (!isObject(x) || !Array.isArray(x.rooms)) invalid("rooms page");
      return { rooms: x.rooms.map(parseListing), ...(isStr(x.cursor) && x.cursor !== "" ? { cursor: x.cursor } : {}) };
    },
    async room(room) {
      return parseSummary(await json("GET", `/v1/admin/rooms/${seg(room)}`));
    },
    async metrics() {
      return (await call("GET", "/v1/admin/metrics", undefined, "text/plain")).text();
    },
    async drainAll(windowSeconds) {
      const x = await json("POST", "/v1/admin/drain", windowBody(windowSeconds));
      if (!isObject(x) || !isNum(x.rooms)) invalid("drain answer");
      return { rooms: x.rooms, drained: isNum(x.drained) ? x.drained : 0, failed: isNum(x.failed) ? x.failed : 0 };
    },
    async drainRoom(room, windowSeconds) {
      const x = await json("POST", `/v1/rooms/${seg(room)}/drain`, windowBody(windowSeconds));
      if (!isObject(x) || !isNum(x.connections)) invalid("drain answer");
      return { connections: x.connections, windowMs: isNum(x.windowMs) ? x.windowMs : 0 };
    },
    async kick(room, userId, banSeconds) {
      const q = banSeconds ? `?banSeconds=${banSeconds}` : "";
      const x = await json("DELETE", `/v1/rooms/${seg(room)}/connections/${seg(userId)}${q}`);
      if (!isObject(x) || !isNum(x.closed)) invalid("kick answer");
      return { closed: x.closed, ...(isNum(x.bannedUntil) ? { bannedUntil: x.bannedUntil } : {}) };
    },
    async startTrace(room, seconds, payloads) {
      return parseTraceState(await json("POST", `/v1/admin/rooms/${seg(room)}/trace`, { seconds, payloads }));
    },
    async stopTrace(room) {
      return parseTraceState(await json("DELETE", `/v1/admin/rooms/${seg(room)}/trace`));
    },
    async traceEvents(room, after) {
      return parseTraceEvents(await json("GET", `/v1/admin/rooms/${seg(room)}/trace?after=${Math.max(0, Math.floor(after))}`));
    },
  };
}
