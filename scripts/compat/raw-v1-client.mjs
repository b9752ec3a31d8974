/**
 * A raw `roomcast.v1` client written from docs/protocol.md alone (§3 sending the token, §6
 * a connection's life, §7 frames, §12 minimal clients): a plain WebSocket offering only
 * `roomcast.v1`, the token in an `Authorization: Bearer` header (Node ≥ 22's WebSocket takes
 * `{ protocols, headers }`). It imports nothing from this repository, so it checks the
 * document, not our own client: what another team would write from it.
 *
 * It has just the surface the compat scenario (scenario.mjs) drives, the same names as
 * `@roomcast/client` (`createClient(...).room(name)` with `state`, `userId`, `members`,
 * `messages`, `on()`, `publish()`, `setPresence()`, `leave()`), and it is stricter than a
 * real app would be: every server frame is checked against §7 and a bad one fails the room;
 * a `message` that is not the next `seq` is reported as a `gap`, one already applied is
 * counted in `duplicates` (§6.2: strictly increasing, contiguous, no duplicate).
 */
const PROTOCOL = "roomcast.v1";
const PING_MS = 20_000; // LIVENESS_TIMEOUT_SECONDS / 3 with the default of 60 s (§6.6)
// §10: an id-less error frame with one of these codes announces the server's close.
const CLOSES = { going_away: 4000, token_expired: 4001, internal_error: 4002, connection_stale: 4004, slow_consumer: 4005, kicked: 4502 };

/** §12: Node's built-in WebSocket (undici) takes protocols and headers in one options object. */
const plainSocket = (url, protocols, headers) => new WebSocket(url, { protocols, headers });

/**
 * @param {{ url: string, token: string, createSocket?: (url: string, protocols: string[], headers: Record<string, string>) => WebSocket }} options
 */
export function createClient({ url, token, createSocket = plainSocket }) {
  if (typeof WebSocket === "undefined" && createSocket === plainSocket) throw new TypeError("no global WebSocket: the raw v1 client needs Node ≥ 22");
  const rooms = new Map();
  return {
    room(name) {
      if (!rooms.has(name)) rooms.set(name, new RawRoom(name, { url, token, createSocket }));
      return rooms.get(name);
    },
    close() {
      for (const r of rooms.values()) r.leave();
    },
  };
}

// ---- §7 server frames, checked ------------------------------------------------

const isInt = (v, min) => Number.isInteger(v) && v >= min;
const isStr = (v) => typeof v === "string";

function check(ok, what) {
  if (!ok) throw new Error(what);
}

function checkMember(m, where) {
  check(m && isStr(m.userId) && Array.isArray(m.connections), `${where}: a member needs userId and connections`);
  for (const c of m.connections) check(c && isStr(c.connectionId) && "state" in c && typeof c.joinedAt === "number", `${where}: bad connection of ${m.userId}`);
}

function checkMessage(m, where) {
  check(m && isInt(m.seq, 1) && isStr(m.id) && isStr(m.from) && typeof m.ts === "number" && "data" in m, `${where}: a message needs seq ≥ 1, id, from, ts and data`);
}

/** The frame, or an Error naming what is wrong with it. Unknown types pass (§ conventions: ignore them). */
function decode(text) {
  if (!isStr(text)) throw new Error("a binary frame (the server sends JSON text)");
  let f;
  try {
    f = JSON.parse(text);
  } catch {
    throw new Error("a frame that is not JSON");
  }
  check(f && typeof f === "object" && !Array.isArray(f) && isStr(f.type), "a frame without a string type");
  switch (f.type) {
    case "welcome":
      check(f.protocol === PROTOCOL, `welcome.protocol is ${JSON.stringify(f.protocol)}, expected "${PROTOCOL}"`);
      check(isStr(f.room) && isStr(f.connectionId) && isStr(f.userId) && isStr(f.epoch), "welcome needs room, connectionId, userId and epoch");
      check(isInt(f.seq, 0) && isInt(f.replay, 0) && f.replay <= f.seq, "welcome needs seq ≥ replay ≥ 0");
      check(Array.isArray(f.permissions) && typeof f.expiresAt === "number" && f.limits && typeof f.limits === "object", "welcome needs permissions, expiresAt and limits");
      check(f.resume === undefined || (typeof f.resume === "object" && typeof f.resume.recovered === "boolean"), "welcome.resume needs recovered");
      break;
    case "presence_state":
      check(Array.isArray(f.members), "presence_state needs members");
      f.members.forEach((m) => checkMember(m, "presence_state"));
      break;
    case "presence_diff":
      check(Array.isArray(f.joins) && Array.isArray(f.updates) && Array.isArray(f.leaves) && f.leaves.every(isStr), "presence_diff needs joins, updates and leaves");
      [...f.joins, ...f.updates].forEach((m) => checkMember(m, "presence_diff"));
      break;
    case "message":
      checkMessage(f, "message");
      break;
    case "messages":
      check(Array.isArray(f.messages) && f.messages.length > 0, "messages needs a non-empty messages list");
      f.messages.forEach((m) => checkMessage(m, "messages"));
      break;
    case "ack":
      check(isStr(f.id) && isInt(f.seq, 1) && typeof f.duplicate === "boolean", "ack needs id, seq ≥ 1 and duplicate");
      break;
    case "reconnect":
      check(isInt(f.delayMs, 0) && isStr(f.reason), "reconnect needs delayMs ≥ 0 and reason");
      break;
    case "error":
      check(isStr(f.code) && isStr(f.message) && (f.id === undefined || isStr(f.id)), "error needs code and message");
      break;
  }
  return f;
}

// ---- one room ---------------------------------------------------------------------

class RawRoom {
  state = "connecting";
  userId = undefined;
  /** Messages applied, oldest first: `{ seq, id, from, ts, data }`. */
  messages = [];
  /** Message frames that repeated a seq already applied (must stay 0). */
  duplicates = 0;
  #members = new Map();
  #listeners = new Map();
  #pending = new Map(); // publish id -> { frame, resolve, reject }, oldest first
  #presence; // our presence state, set again after every welcome (§6.5)
  #position; // { epoch, lastSeq }
  #ws;
  #live = false; // the current socket got its welcome
  #leaving = false;
  #attempt = 0;
  #nextId = 0;
  #retry;

  constructor(name, options) {
    this.name = name;
    this.options = options;
    queueMicrotask(() => this.#connect());
  }

  get members() {
    return [...this.#members.values()];
  }

  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.#listeners.get(event).delete(fn);
  }

  #emit(event, value) {
    for (const fn of this.#listeners.get(event) ?? []) fn(value);
  }

  #setState(newState, error) {
    if (newState === this.state) return;
    const oldState = this.state;
    this.state = newState;
    this.#emit("state", { oldState, newState, ...(error ? { error } : {}) });
  }

  /** Resolves with the ack `{ seq, duplicate }`; resent with the same id after a reconnect until acked (§6.4). */
  publish(data) {
    if (this.#leaving) return Promise.reject(new Error("the room was left"));
    const id = `raw-${Date.now().toString(36)}-${(this.#nextId++).toString(36)}`;
    return new Promise((resolve, reject) => {
      const frame = JSON.stringify({ type: "publish", id, data });
      this.#pending.set(id, { frame, resolve, reject });
      if (this.#live) this.#ws.send(frame);
    });
  }

  setPresence(state) {
    this.#presence = { state };
    if (this.#live) this.#ws.send(JSON.stringify({ type: "presence", id: `p-${this.#nextId++}`, state }));
  }

  leave() {
    if (this.#leaving) return;
    this.#leaving = true;
    clearTimeout(this.#retry);
    this.#live = false;
    try {
      this.#ws?.close(1000);
    } catch {
      // already closing
    }
    for (const p of this.#pending.values()) p.reject(new Error("the room was left"));
    this.#pending.clear();
    this.#setState("closed");
  }

  #fail(code, message) {
    const error = { code, message };
    this.#emit("error", error);
    this.#leaving = true;
    this.#live = false;
    try {
      this.#ws?.close(1000);
    } catch {
      // already closing
    }
    for (const p of this.#pending.values()) p.reject(Object.assign(new Error(message), { code }));
    this.#pending.clear();
    this.#setState("failed", error);
  }

  #connect() {
    if (this.#leaving) return;
    const base = new URL(this.options.url);
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    base.pathname = `/v1/rooms/${this.name}/ws`;
    if (this.#position) base.search = `?epoch=${this.#position.epoch}&after=${this.#position.lastSeq}`;
    const ws = this.options.createSocket(base.toString(), [PROTOCOL], { Authorization: `Bearer ${this.options.token}` });
    this.#ws = ws;
    this.#live = false;
    const asked = this.#position !== undefined;
    let over = false; // this socket is finished: a drain hint, an announced close, or the close itself
    const ping = setInterval(() => ws.readyState === 1 && ws.send('{"type":"ping"}'), PING_MS);
    let unreported = 0;
    let reportAt = Infinity;

    /** `delayMs`: a drain hint's delay (§7 `reconnect`); without it, a close with `code`. */
    const finish = (code, reason, delayMs) => {
      if (over) return;
      over = true;
      clearInterval(ping);
      if (this.#ws === ws) this.#live = false;
      if (this.#leaving) return;
      if (delayMs === undefined && (code === 1000 || code === 1008 || code === 1009 || (code >= 4500 && code < 5000))) return this.#fail(reason || "closed", `closed for good: ${code} ${reason}`);
      // §6.8: after a drain hint wait its delay; otherwise full-jitter backoff, capped at 30 s.
      this.#setState("reconnecting");
      const delay = delayMs ?? Math.random() * Math.min(30_000, 500 * 2 ** this.#attempt++);
      this.#retry = setTimeout(() => this.#connect(), delay);
    };

    ws.onopen = () => {
      // §3: the server's reply is exactly roomcast.v1, never the bearer entry.
      if (ws.protocol !== PROTOCOL) this.#fail("protocol_mismatch", `the server selected ${JSON.stringify(ws.protocol)}, expected "${PROTOCOL}"`);
    };
    ws.onclose = ({ code, reason }) => finish(code, reason);
    ws.onmessage = (event) => {
      if (over || this.#leaving) return;
      let f;
      try {
        f = decode(event.data);
      } catch (err) {
        return this.#fail("invalid_server_frame", `the server sent ${err.message}`);
      }
      if (!this.#live && f.type !== "welcome" && f.type !== "error") return; // §6.2: nothing comes before welcome
      const read = (chars) => {
        // §6.9: report how far we have read every quarter of maxUnconfirmedBytes.
        unreported += chars;
        if (unreported >= reportAt) {
          unreported = 0;
          ws.send(JSON.stringify({ type: "progress", seq: this.#position.lastSeq }));
        }
      };
      switch (f.type) {
        case "welcome":
          return this.#welcome(f, asked, ws, (budget) => (reportAt = budget ? budget / 4 : Infinity));
        case "presence_state":
          this.#members = new Map(f.members.map((m) => [m.userId, m]));
          return this.#emit("presence", this.members);
        case "presence_diff":
          for (const m of [...f.joins, ...f.updates]) this.#members.set(m.userId, m);
          for (const u of f.leaves) this.#members.delete(u);
          return this.#emit("presence", this.members);
        case "message":
          this.#apply(f);
          return read(event.data.length);
        case "messages":
          f.messages.forEach((m) => this.#apply(m));
          return read(event.data.length);
        case "ack": {
          const p = this.#pending.get(f.id);
          this.#pending.delete(f.id);
          return p?.resolve({ seq: f.seq, duplicate: f.duplicate });
        }
        case "reconnect":
          return finish(4000, f.reason, f.delayMs);
        case "error": {
          const p = f.id !== undefined && this.#pending.get(f.id);
          if (p) {
            this.#pending.delete(f.id);
            return p.reject(Object.assign(new Error(f.message), { code: f.code }));
          }
          this.#emit("error", { code: f.code, message: f.message });
          // §6.8: act on the announcing frame, the close event can come seconds later.
          if (f.id === undefined && f.code in CLOSES) finish(CLOSES[f.code], f.code);
          return;
        }
      }
    };
  }

  #welcome(f, asked, ws, setBudget) {
    if (asked && f.resume === undefined) return this.#fail("invalid_server_frame", "asked to resume but welcome has no resume verdict");
    this.#live = true;
    this.#attempt = 0;
    this.userId = f.userId;
    setBudget(f.limits.maxUnconfirmedBytes);
    if (f.resume?.recovered === true) {
      if (f.epoch !== this.#position.epoch) return this.#fail("invalid_server_frame", `recovered into epoch ${f.epoch}, the position was in ${this.#position.epoch}`);
      if (f.replay !== f.seq - this.#position.lastSeq) return this.#fail("invalid_server_frame", `recovered from ${this.#position.lastSeq} to ${f.seq} announces ${f.replay} to replay`);
      this.#emit("recovered", { epoch: f.epoch, from: this.#position.lastSeq });
    } else {
      // §6.3: fresh start, or a failed resume (a gap): drop what we held, adopt the new position.
      if (f.resume) {
        this.messages = [];
        this.#emit("gap", { reason: f.resume.reason });
      }
      this.#position = { epoch: f.epoch, lastSeq: f.seq - f.replay };
    }
    this.#setState("connected");
    if (this.#presence) ws.send(JSON.stringify({ type: "presence", id: `p-${this.#nextId++}`, state: this.#presence.state }));
    // §6.4: unacked publishes go again with the same id; a repeat is acked as a duplicate.
    for (const p of this.#pending.values()) ws.send(p.frame);
  }

  #apply(m) {
    const { lastSeq } = this.#position;
    if (m.seq <= lastSeq) {
      this.duplicates++;
      return;
    }
    if (m.seq !== lastSeq + 1) this.#emit("gap", { reason: `message ${m.seq} after ${lastSeq}` });
    this.#position.lastSeq = m.seq;
    this.messages = [...this.messages, { seq: m.seq, id: m.id, from: m.from, ts: m.ts, data: m.data }];
    this.#emit("message", m);
  }
}
