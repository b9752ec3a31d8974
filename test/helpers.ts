import { env, exports } from "cloudflare:workers";
import { SignJWT } from "jose";
import { BEARER_PROTOCOL_PREFIX, PROTOCOL_VERSION, decodeServerFrame, type Member, type ServerFrame } from "@roomcast/protocol";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_JWT_SECRET: string;
    }
  }
}

export const AUDIENCE = "roomcast-test";
export const ISSUER = "https://issuer.test";
export const ORIGIN = "https://app.example.com";
export const BASE = "https://roomcast.test";

let counter = 0;
/** A room name no other test uses. */
export function uniqueRoom(prefix = "room"): string {
  return `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

export interface TokenOptions {
  sub?: string;
  /** The `rate` claim: a per-user rate budget (for a backend). */
  rate?: { perSecond: number; burst: number };
  cap?: Record<string, string[]>;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  notBefore?: number;
  audience?: string;
  issuer?: string;
  secret?: string;
}

/** An HS256 token signed with the test secret, valid for the test audience and issuer. */
export async function token(options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ cap: options.cap ?? { "*": ["subscribe", "publish", "presence"] }, ...(options.rate ? { rate: options.rate } : {}) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.sub ?? "alice")
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 300))
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuer(options.issuer ?? ISSUER);
  if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(new TextEncoder().encode(options.secret ?? env.TEST_JWT_SECRET));
}

export function fetchWorker(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}${path}`, init));
}

export interface ConnectOptions {
  /** How the token travels: Authorization header (default) or the browser subprotocol. */
  via?: "header" | "subprotocol";
  origin?: string;
  protocols?: string[];
  /** Resume position, sent as `?epoch=&after=`. */
  resume?: { epoch: string; after: number };
  /**
   * Report reads with `progress` frames as docs/protocol.md §6.9 asks (default true).
   * false: a client that never confirms anything, as a stalled reader looks to the room.
   */
  progress?: boolean;
}

/** Sends the WebSocket upgrade request; returns the raw response (101 or an error). */
export function upgrade(room: string, jwt: string | undefined, options: ConnectOptions = {}): Promise<Response> {
  const protocols = options.protocols ?? [PROTOCOL_VERSION];
  const headers: Record<string, string> = { Upgrade: "websocket" };
  if (jwt !== undefined && options.via === "subprotocol") protocols.push(`${BEARER_PROTOCOL_PREFIX}${jwt}`);
  else if (jwt !== undefined) headers.Authorization = `Bearer ${jwt}`;
  if (protocols.length) headers["Sec-WebSocket-Protocol"] = protocols.join(", ");
  if (options.origin) headers.Origin = options.origin;
  const query = options.resume ? `?epoch=${encodeURIComponent(options.resume.epoch)}&after=${options.resume.after}` : "";
  return fetchWorker(`/v1/rooms/${encodeURIComponent(room)}/ws${query}`, { headers });
}

/** A test client that records every decoded frame and lets tests wait for them in order. */
export class TestSocket {
  readonly frames: ServerFrame[] = [];
  /** Messages per received frame, in order (1 for anything but a `messages` batch). */
  readonly batches: number[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Per frame type, how many of that type tests have consumed already. */
  readonly #consumed = new Map<string, number>();
  #wake: (() => void) | undefined;
  /** Flow control, as §6.9 tells clients: characters read (all frames but pongs) since the last report, and the budget. */
  #unreported = 0;
  #budget: number | undefined;
  #applied = 0;

  constructor(readonly ws: WebSocket, readonly response: Response, reportProgress = true) {
    ws.addEventListener("message", (event) => {
      const decoded = decodeServerFrame(event.data);
      if (!decoded.ok) throw new Error(`server sent an invalid frame: ${decoded.message}: ${String(event.data)}`);
      if (reportProgress) this.#report(decoded.frame, String(event.data).length);
      this.batches.push(decoded.frame.type === "messages" ? decoded.frame.messages.length : 1);
      // A `messages` frame is several `message` frames in one: tests see them one by one.
      if (decoded.frame.type === "messages") for (const m of decoded.frame.messages) this.frames.push({ type: "message", ...m });
      else this.frames.push(decoded.frame);
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => {
        resolve({ code: event.code, reason: event.reason });
        this.#wake?.();
      });
    });
  }

  #report(frame: ServerFrame, chars: number): void {
    if (frame.type === "welcome") {
      this.#budget = frame.limits.maxUnconfirmedBytes;
      this.#unreported = 0;
      return;
    }
    if (frame.type === "pong") return; // the one frame flow control does not count
    if (frame.type === "message") this.#applied = Math.max(this.#applied, frame.seq);
    else if (frame.type === "messages") this.#applied = Math.max(this.#applied, ...frame.messages.map((m) => m.seq));
    this.#unreported += chars;
    if (this.#budget !== undefined && (frame.type === "history" || this.#unreported >= this.#budget / 4)) {
      this.#unreported = 0;
      this.ws.send(JSON.stringify({ type: "progress", seq: this.#applied }));
    }
  }

  /** Sends text or binary as is; anything else as JSON. */
  send(frame: unknown): void {
    if (typeof frame === "string" || frame instanceof ArrayBuffer) this.ws.send(frame);
    else this.ws.send(JSON.stringify(frame));
  }

  /** The next not-yet-consumed frame of `type` (each type is consumed independently); fails after `timeoutMs`. */
  async next<T extends ServerFrame["type"]>(type: T, timeoutMs = 3_000): Promise<Extract<ServerFrame, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ofType = this.frames.filter((f) => f.type === type);
      const consumed = this.#consumed.get(type) ?? 0;
      if (ofType.length > consumed) {
        this.#consumed.set(type, consumed + 1);
        return ofType[consumed] as Extract<ServerFrame, { type: T }>;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for a "${type}" frame; got ${JSON.stringify(this.frames.map((f) => f.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Waits until `done(frames)` holds for all frames received so far. */
  async until(done: (frames: ServerFrame[]) => boolean, timeoutMs = 3_000): Promise<ServerFrame[]> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.frames)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms; got ${JSON.stringify(this.frames.map((f) => f.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.frames;
  }

  /** Collects the next `n` frames of `type`. */
  async take<T extends ServerFrame["type"]>(type: T, n: number, timeoutMs = 3_000): Promise<Extract<ServerFrame, { type: T }>[]> {
    const out: Extract<ServerFrame, { type: T }>[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(type, timeoutMs));
    return out;
  }

  close(): void {
    try {
      this.ws.close(1000, "test done");
    } catch {
      // already closed
    }
  }
}

/** Opens a socket and waits for its welcome frame. */
export async function connect(room: string, jwt?: string, options: ConnectOptions = {}): Promise<TestSocket> {
  const response = await upgrade(room, jwt ?? (await token()), options);
  const ws = response.webSocket;
  if (response.status !== 101 || !ws) {
    throw new Error(`expected 101, got ${response.status}: ${await response.text()}`);
  }
  ws.accept();
  return new TestSocket(ws, response, options.progress ?? true);
}

export async function publish(socket: TestSocket, id: string, data: unknown) {
  socket.send({ type: "publish", id, data });
  for (;;) {
    const frame = await socket.next("ack");
    if (frame.id === id) return frame;
  }
}

/** A backend's budget: what the tests' HTTP publishes get with the `rate` claim. */
export const BACKEND_RATE = { perSecond: 10_000, burst: 100_000 };

/** Publishes over the HTTP API as a backend (its token carries a `rate` claim), returning the seq. */
export async function httpPublish(room: string, id: string, data: unknown, sub = "backend"): Promise<number> {
  const res = await fetchWorker(`/v1/rooms/${room}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${await token({ sub, rate: BACKEND_RATE })}`, "Content-Type": "application/json" },
    body: JSON.stringify({ id, data }),
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`publish failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { seq: number }).seq;
}

/**
 * Rewrites every socket attachment in a room (to backdate times, for example) from
 * inside the object, then hibernates it: the connection registry holds sessions in
 * memory and reads attachments when the room wakes, as it would in production.
 */
export async function editSessions(
  room: string,
  edit: (session: Record<string, unknown>) => Record<string, unknown> | undefined,
): Promise<void> {
  const { evictDurableObject, runInDurableObject } = await import("cloudflare:test");
  await runInDurableObject(env.ROOMS.getByName(room), (_instance, state) => {
    for (const ws of state.getWebSockets()) {
      const attachment = ws.deserializeAttachment() as { v: number; rc: Record<string, unknown> } | null;
      if (!attachment) continue;
      const rc = edit(attachment.rc);
      if (rc) ws.serializeAttachment({ ...attachment, rc });
    }
  });
  try {
    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });
  } catch (err) {
    // Not running (already hibernated): it reads the attachments when it wakes anyway.
    if (!String(err).includes("not currently running")) throw err;
  }
}

/** The user ids `GET /v1/rooms/:room/presence` lists, sorted. */
export async function presentUsers(room: string): Promise<string[]> {
  const res = await fetchWorker(`/v1/rooms/${room}/presence`, { headers: { Authorization: `Bearer ${await token()}` } });
  if (res.status !== 200) throw new Error(`GET /presence answered ${res.status}`);
  return ((await res.json()) as { members: Member[] }).members.map((m) => m.userId).sort();
}

/** The user ids a client keeping presence as docs/protocol.md §6.5 says ends up listing, sorted. */
export function listedBy(socket: TestSocket): string[] {
  const map = new Map<string, Member>();
  for (const f of socket.frames) {
    if (f.type === "presence_state") {
      map.clear();
      for (const m of f.members) map.set(m.userId, m);
    } else if (f.type === "presence_diff") {
      for (const m of [...f.joins, ...f.updates]) map.set(m.userId, m);
      for (const id of f.leaves) map.delete(id);
    }
  }
  return [...map.keys()].sort();
}
