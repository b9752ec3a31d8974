/**
 * A token endpoint for local development only, so the demo page can sign in with
 * just a name. It exists only when DEV_TOKEN_ENDPOINT=enabled and
 * ENVIRONMENT=development (both set in .dev.vars, which is never deployed);
 * everywhere else the route answers 404 like any unknown path.
 *
 * A real app mints tokens on its own backend, after its own login, with the
 * claims in docs/protocol.md (see docs/operations.md).
 */
import { Hono } from "hono";
import { SignJWT } from "jose";
import * as v from "valibot";
import type { AppEnv } from "../env.js";
import { errorResponse, fail } from "./errors.js";

/** Demo tokens are short-lived, so the demo exercises in-band refresh. */
const DEV_TOKEN_TTL_SECONDS = 15 * 60;
const DevTokenBody = v.object({
  name: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,32}$/, "name must be 1-32 characters of A-Z a-z 0-9 _ -")),
});

export const devToken = new Hono<AppEnv>();

devToken.post("/token", async (c) => {
  if (c.env.DEV_TOKEN_ENDPOINT !== "enabled" || c.env.ENVIRONMENT !== "development" || !c.env.JWT_SECRET) {
    return errorResponse("not_found");
  }
  let json: unknown;
  try {
    json = await c.req.json();
  } catch {
    fail("invalid_request", 'body must be JSON: {"name": "alice"}');
  }
  const body = v.safeParse(DevTokenBody, json);
  if (!body.success) fail("invalid_request", body.issues[0].message);
  const expiresAt = Math.floor(Date.now() / 1000) + DEV_TOKEN_TTL_SECONDS;
  const jwt = new SignJWT({ cap: { "demo:*": ["subscribe", "publish", "presence"] } })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(body.output.name)
    .setIssuedAt()
    .setExpirationTime(expiresAt);
  if (c.env.JWT_AUDIENCE) jwt.setAudience(c.env.JWT_AUDIENCE);
  if (c.env.JWT_ISSUER) jwt.setIssuer(c.env.JWT_ISSUER);
  const token = await jwt.sign(new TextEncoder().encode(c.env.JWT_SECRET));
  return c.json({ token, expiresAt }, 200, { "Cache-Control": "no-store" });
});
