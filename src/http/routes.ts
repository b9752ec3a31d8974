import { Hono, type Context } from "hono";
import * as v from "valibot";
import { MESSAGE_ID, SUPPORTED_PROTOCOLS, isProtocolVersion } from "@roomcast/protocol";
import type { AppEnv } from "../env.js";
import { LIMIT_SPECS, readLimits } from "../config.js";
import { IDENTITY_HEADER, PROTOCOL_HEADER, RESUME_HEADER } from "../room/room.js";
import { historyBody } from "../room/wire.js";
import { readCredentials, subprotocols } from "../auth/token-source.js";
import { authorize, checkOrigin, readBodyText, roomParam } from "./middleware.js";
import { fail } from "./errors.js";
import { throwRoomRefusal } from "./refusal.js";
import { describeError, log } from "../log.js";

const PublishBody = v.object({
  id: v.optional(v.pipe(v.string(), v.regex(MESSAGE_ID, "id must be 1-64 characters of A-Z a-z 0-9 _ . : -"))),
  data: v.custom<unknown>((x) => x !== undefined, "data is required"),
});

const nonNegativeInt = (raw: string | undefined, name: string, fallback: number): number => {
  if (raw === undefined) return fallback;
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) fail("invalid_request", `${name} must be a non-negative integer`);
  return Number(raw);
};

/** Largest `POST /drain` body: `{"windowSeconds": N}` needs a few dozen bytes. */
export const MAX_DRAIN_BODY_BYTES = 1_024;

/**
 * The value of an internal header (IDENTITY_HEADER, RESUME_HEADER): JSON, percent-encoded
 * so a non-ASCII user id still makes an ASCII header value; room.ts `readHeader` decodes it.
 */
const internalHeader = (value: unknown): string => encodeURIComponent(JSON.stringify(value));

/** The connect limiter's verdict; a limiter that fails lets the attempt through (and says so in the log). */
async function connectAllowed(limiter: RateLimit | undefined, key: string): Promise<boolean> {
  if (!limiter) return true;
  try {
    return (await limiter.limit({ key })).success;
  } catch (err) {
    log("warn", "http.connect_limiter_failed", { error: describeError(err) });
    return true;
  }
}

/** The longest ban a kick can set: 30 days. */
const MAX_BAN_SECONDS = 30 * 24 * 3_600;

export const rooms = new Hono<AppEnv>();

rooms.use("/:room/*", roomParam, checkOrigin);

rooms.get("/:room/ws", async (c, next) => {
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") fail("upgrade_required", "this route only accepts WebSocket upgrades");
  if (!readCredentials(c.req.raw).offersProtocol) {
    fail("unsupported_protocol", `offer one of the subprotocols ${SUPPORTED_PROTOCOLS.map((p) => `"${p}"`).join(", ")}`);
  }
  await next();
}, authorize("subscribe"), async (c) => {
  const identity = c.get("identity");
  // The version selected here (the first of SUPPORTED_PROTOCOLS offered) is the one the room serves and echoes.
  const protocol = readCredentials(c.req.raw).protocol!;
  const headers: Record<string, string> = { Upgrade: "websocket", [IDENTITY_HEADER]: internalHeader(identity), [PROTOCOL_HEADER]: protocol };
  // Resume position: `?epoch=E&after=SEQ` (both or neither).
  const epoch = c.req.query("epoch");
  const afterRaw = c.req.query("after");
  if ((epoch === undefined) !== (afterRaw === undefined)) fail("invalid_request", "resume needs both epoch and after");
  if (epoch !== undefined) {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(epoch)) fail("invalid_request", "epoch must be 1-64 characters of A-Z a-z 0-9 -");
    headers[RESUME_HEADER] = internalHeader({ epoch, after: nonNegativeInt(afterRaw, "after", 0) });
  }
  // Connection attempts per user per room, at the edge, before the room is woken: a
  // reconnect loop (or a flood) of one user costs the room nothing past the limit.
  if (!(await connectAllowed(c.env.CONNECT_LIMITER, `${identity.room}\n${identity.userId}`))) {
    fail("rate_limited", "too many connection attempts for this user in this room; retry with backoff");
  }
  // A fresh request: nothing the client sent (least of all its token) reaches the room.
  const answer = await c.env.ROOMS.getByName(identity.room).fetch("https://room.internal/connect", { headers });
  if (answer.status === 101) {
    // A room still on an older release (a gradual deploy or a rollback) ignores
    // PROTOCOL_HEADER and may select a version the client did not offer (an offer of
    // roomcast.v2 only, answered roomcast.v1): an RFC 6455 client fails that handshake
    // and sees no frame. Pass the 101 through only when it selects a version the client
    // offered; otherwise close the room's socket and refuse readably (retryable: the
    // deploy finishes, or the client offers both versions).
    const selected = answer.headers.get("Sec-WebSocket-Protocol")?.trim() ?? "";
    if (isProtocolVersion(selected) && subprotocols(c.req.raw).includes(selected)) return answer;
    try {
      answer.webSocket?.accept();
      answer.webSocket?.close(4000, "going_away");
    } catch {
      // already closed: nothing to release
    }
    log("warn", "http.room_protocol_mismatch", { offered: protocol, selected: isProtocolVersion(selected) ? selected : selected === "" ? "(none)" : "(other)" });
    fail("going_away", `this room runs an older server release that cannot serve ${protocol}; retry with backoff, or offer both ${SUPPORTED_PROTOCOLS.join(" and ")}`);
  }
  // Banned, full, too many of the user's connections, or a failure: the room accepted no
  // socket; the refusal is answered like the Worker's own (readable, see ./refusal.ts).
  return throwRoomRefusal(answer);
});

rooms.post("/:room/messages", authorize("publish"), async (c) => {
  const limits = readLimits(c.env);
  // Refused by Content-Length before reading, and the read stops once past the cap.
  const text = await readBodyText(c.req.raw, limits.MAX_MESSAGE_BYTES + 1_024, () =>
    fail("message_too_large", `body exceeds ${limits.MAX_MESSAGE_BYTES} bytes of data`),
  );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail("invalid_request", "body must be JSON: {\"id\"?: string, \"data\": any}");
  }
  const body = v.safeParse(PublishBody, json);
  if (!body.success) fail("invalid_request", body.issues[0].message);
  const identity = c.get("identity");
  const id = body.output.id ?? crypto.randomUUID();
  let data: string;
  try {
    data = JSON.stringify(body.output.data);
  } catch {
    fail("invalid_request", "data is nested too deeply"); // JSON.parse took it, JSON.stringify overflows
  }
  const result = await c.env.ROOMS.getByName(identity.room).publish(identity, id, data);
  if (!result.ok) fail(result.code, result.message);
  return c.json({ seq: result.seq, id: result.id, duplicate: result.duplicate }, result.duplicate ? 200 : 201);
});

rooms.get("/:room/messages", authorize("subscribe"), async (c) => {
  const limits = readLimits(c.env);
  const after = nonNegativeInt(c.req.query("after"), "after", 0);
  const limit = nonNegativeInt(c.req.query("limit"), "limit", limits.HISTORY_PAGE_MAX);
  if (limit < 1) fail("invalid_request", "limit must be at least 1");
  const room = c.get("room");
  const page = await c.env.ROOMS.getByName(room).history(c.get("identity"), after, limit);
  if (!page.ok) fail(page.code, page.message);
  // `data` is spliced in as stored JSON text rather than parsed and re-serialised.
  const body = historyBody({ room, epoch: page.epoch, head: page.head, hasMore: page.hasMore }, page.messages);
  return c.body(body, 200, { "Content-Type": "application/json" });
});

rooms.get("/:room/presence", authorize("subscribe"), async (c) => {
  const room = c.get("room");
  const members = await c.env.ROOMS.getByName(room).presence();
  return c.json({ room, members });
});

// Strict: `{}` or `{"windowSeconds": N}` only; arrays, other keys and other JSON are refused.
const DrainBody = v.strictObject({
  windowSeconds: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(LIMIT_SPECS.DRAIN_WINDOW_SECONDS.max))),
});

/** A drain request's window in ms (the body's `windowSeconds`, else DRAIN_WINDOW_SECONDS); one room's or every room's drain. */
export async function drainWindowMs(c: Context<AppEnv>): Promise<number> {
  const text = await readBodyText(c.req.raw, MAX_DRAIN_BODY_BYTES, () =>
    fail("invalid_request", `the body may be at most ${MAX_DRAIN_BODY_BYTES} bytes: {"windowSeconds"?: number}`),
  );
  let json: unknown = {};
  if (text.trim() !== "") {
    try {
      json = JSON.parse(text);
    } catch {
      fail("invalid_request", 'body must be empty or JSON: {"windowSeconds"?: number}');
    }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("invalid_request", 'body must be empty or a JSON object: {"windowSeconds"?: number}');
  const body = v.safeParse(DrainBody, json);
  if (!body.success) {
    const issue = body.issues[0];
    const key = issue.path?.map((p) => String(p.key)).join(".");
    fail("invalid_request", key === "windowSeconds" ? `windowSeconds: ${issue.message}` : `unexpected field ${key ?? ""}: the body may only hold windowSeconds`);
  }
  return Math.round((body.output.windowSeconds ?? readLimits(c.env).DRAIN_WINDOW_SECONDS) * 1000);
}

rooms.post("/:room/drain", authorize("admin"), async (c) => {
  const result = await c.env.ROOMS.getByName(c.get("room")).drain(await drainWindowMs(c));
  return c.json(result);
});

rooms.delete("/:room/connections/:userId", authorize("admin"), async (c) => {
  const userId = c.req.param("userId");
  if (userId.length === 0 || userId.length > 200) fail("invalid_request", "userId must be 1-200 characters");
  // Optional room-scoped ban: the user cannot reconnect (with any token) for that long.
  const banSeconds = nonNegativeInt(c.req.query("banSeconds"), "banSeconds", 0);
  if (banSeconds > MAX_BAN_SECONDS) fail("invalid_request", `banSeconds must be at most ${MAX_BAN_SECONDS} (30 days)`);
  return c.json(await c.env.ROOMS.getByName(c.get("room")).kick(userId, banSeconds));
});
