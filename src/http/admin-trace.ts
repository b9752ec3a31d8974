/**
 * Debug mode over HTTP (docs/protocol.md §9, docs/operations.md "Debug mode (tracing
 * one room)"), mounted by the admin API (admin.ts: `admin.route("/", adminTrace)`):
 *
 * - `POST   /rooms/:room/trace` `{ "seconds"?: 1..600 (60), "payloads"?: boolean (false) }` → `{ enabled, until }`
 * - `GET    /rooms/:room/trace?after=ID` → `{ enabled, until, events }` (events with an id above ID)
 * - `DELETE /rooms/:room/trace` → `{ enabled: false, until: null }`
 *
 * Like every admin route these need `admin` for the room pattern `*`. Under admin.ts
 * that was checked already (its `authorize("admin")` set the identity for `*`); mounted
 * anywhere else, this router checks it itself the same way, so it is never open.
 */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import * as v from "valibot";
import { isValidRoomName } from "@roomcast/protocol";
import type { AppEnv } from "../env.js";
import { TRACE_DEFAULT_SECONDS, TRACE_MAX_SECONDS } from "../room/trace.js";
import { authorize, checkOrigin, readBodyText } from "./middleware.js";
import { fail } from "./errors.js";

/** `{"seconds": 600, "payloads": false}` needs a few dozen bytes. */
export const MAX_TRACE_BODY_BYTES = 1_024;

const TraceBody = v.strictObject({
  seconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(TRACE_MAX_SECONDS))),
  payloads: v.optional(v.boolean()),
});

/** `admin` on `*`: already checked by admin.ts, or checked here exactly as admin.ts does. */
const adminOnly = createMiddleware<AppEnv>(async (c, next) => {
  const identity = c.get("identity") as AppEnv["Variables"]["identity"] | undefined;
  if (identity?.room === "*" && identity.permissions.includes("admin")) return next();
  c.set("room", "*");
  await checkOrigin(c, async () => {
    await authorize("admin")(c, next);
  });
});

/** The room of the path, validated before any Durable Object is reached. */
function roomOf(name: string | undefined): string {
  if (name === undefined || !isValidRoomName(name)) {
    fail("invalid_room", "room names are 1-128 characters of A-Z a-z 0-9 _ . : - and start with a letter or digit");
  }
  return name;
}

export const adminTrace = new Hono<AppEnv>();

adminTrace.use("/rooms/:room/trace", adminOnly);

adminTrace.post("/rooms/:room/trace", async (c) => {
  const room = roomOf(c.req.param("room"));
  const usage = `{"seconds"?: 1..${TRACE_MAX_SECONDS}, "payloads"?: boolean}`;
  const text = await readBodyText(c.req.raw, MAX_TRACE_BODY_BYTES, () => fail("invalid_request", `the body may be at most ${MAX_TRACE_BODY_BYTES} bytes: ${usage}`));
  let json: unknown = {};
  if (text.trim() !== "") {
    try {
      json = JSON.parse(text);
    } catch {
      fail("invalid_request", `body must be empty or JSON: ${usage}`);
    }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("invalid_request", `body must be empty or a JSON object: ${usage}`);
  const body = v.safeParse(TraceBody, json);
  if (!body.success) {
    const issue = body.issues[0];
    const key = issue.path?.map((p) => String(p.key)).join(".");
    fail("invalid_request", key === "seconds" || key === "payloads" ? `${key}: ${issue.message}` : `unexpected field ${key ?? ""}: the body may only hold seconds and payloads`);
  }
  const state = await c.env.ROOMS.getByName(room).setTrace({ seconds: body.output.seconds ?? TRACE_DEFAULT_SECONDS, payloads: body.output.payloads ?? false });
  return c.json(state);
});

adminTrace.get("/rooms/:room/trace", async (c) => {
  const room = roomOf(c.req.param("room"));
  const raw = c.req.query("after");
  let after = 0;
  if (raw !== undefined) {
    if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) fail("invalid_request", "after must be a non-negative integer (an event id)");
    after = Number(raw);
  }
  // Events hold `unknown` payloads, which RPC's types cannot spell: they are JSON values.
  const result = (await c.env.ROOMS.getByName(room).traceEvents(after)) as unknown;
  return c.json(result as Record<string, unknown>);
});

adminTrace.delete("/rooms/:room/trace", async (c) => {
  const room = roomOf(c.req.param("room"));
  return c.json(await c.env.ROOMS.getByName(room).setTrace({ off: true }));
});
