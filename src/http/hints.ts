/**
 * One log line per refused request, saying what to do about it: the line an operator,
 * or a newcomer watching `npm run dev`, reads first. Facts only, never a token: the
 * Origin and the room name are the only request values quoted, clipped.
 */
import type { ErrorCode } from "@roomcast/protocol";
import type { Env } from "../env.js";
import { describeError, log } from "../log.js";

export interface RefusalFacts {
  readonly code: ErrorCode;
  readonly status: number;
  /** The message the client was sent. */
  readonly message: string;
  /** "websocket": a socket with one error frame and a close; "http": a JSON error response. */
  readonly via: "websocket" | "http";
  readonly request: Request;
  readonly env: Env | undefined;
  /** What went wrong on the server side, for server faults only (never shown to the client). */
  readonly cause?: unknown;
}

const MAX_QUOTED = 160;
const clip = (text: string) => (text.length <= MAX_QUOTED ? text : `${text.slice(0, MAX_QUOTED - 1)}…`);

export const isDevelopment = (env: Env | undefined) => env?.ENVIRONMENT === "development";

/** Where a setting is changed, and what makes it take effect. */
function whereToSet(env: Env | undefined): string {
  return isDevelopment(env)
    ? "in .dev.vars, then restart npm run dev (wrangler dev does not reload .dev.vars)"
    : "in wrangler.toml [vars] (or the dashboard), then deploy";
}

/** `code: what happened — what to do`. */
export function hintFor(facts: RefusalFacts): string {
  const { code, message, request, env } = facts;
  const text = (action?: string) => `${code}: ${message}${action ? ` — ${action}` : ""}`;
  switch (code) {
    case "origin_not_allowed": {
      const origin = request.headers.get("Origin");
      if (origin === null) return `${code}: the token came in the roomcast.bearer. subprotocol (as from a browser) but the request has no Origin header — browsers always send one; other clients should send the token as Authorization: Bearer`;
      if (origin === "null") return `${code}: Origin null (a sandboxed iframe or a file:// page) is never allowed — serve the page from an origin listed in ALLOWED_ORIGINS`;
      return `${code}: Origin ${clip(origin)} is not in ALLOWED_ORIGINS — add it ${whereToSet(env)}`;
    }
    case "invalid_room":
      return text(); // the message states the rule
    case "unauthorized":
      return text("the token must be signed with this server's key (JWT_SECRET, JWT_PUBLIC_KEY or JWKS) and match JWT_AUDIENCE/JWT_ISSUER; compare with `npm run -s token`");
    case "token_expired":
      return text("the client's token provider must return a fresh token for every attempt");
    case "forbidden":
      return text('the token\'s cap claim must grant it, e.g. {"cap": {"demo:*": ["subscribe", "publish", "presence"]}}');
    case "server_misconfigured":
      return text(isDevelopment(env) ? "fix it in .dev.vars, then restart npm run dev" : "fix the setting (wrangler secret put, wrangler.toml [vars]), then deploy");
    case "auth_unavailable":
      return text("check JWKS_URL (see the auth.keyset_unavailable line); clients retry with backoff");
    case "rate_limited":
      return text(facts.via === "websocket" || request.headers.get("Upgrade") !== null ? "a client reconnects too often: it must back off (CONNECT_LIMITER in wrangler.toml)" : "the user's rate budget (PUBLISH_RATE_PER_SECOND, PUBLISH_BURST or the token's rate claim) is spent; the client must send again later");
    case "room_full":
      return text("raise MAX_CONNECTIONS_PER_ROOM " + whereToSet(env) + ", or spread users over more rooms");
    case "too_many_connections":
      return text("a client may be leaking sockets (one per tab or device is expected); or raise MAX_CONNECTIONS_PER_USER " + whereToSet(env));
    case "kicked":
      return text("an administrator banned this user from the room (DELETE …/connections/:userId?banSeconds=N)");
    case "internal_error":
      return text("a server bug or platform failure: `error` says what failed (a room failure is logged as room.fetch)");
    default:
      return text();
  }
}

/** Server-side failures: logged as errors, with what failed. Everything else is a warning (a 404 is info). */
const SERVER_FAULTS: ReadonlySet<ErrorCode> = new Set(["internal_error", "server_misconfigured", "auth_unavailable"]);

/** Writes the one line for a refusal: `http.refused`. */
export function logRefusal(facts: RefusalFacts): void {
  const level = SERVER_FAULTS.has(facts.code) ? "error" : facts.code === "not_found" ? "info" : "warn";
  log(level, "http.refused", {
    code: facts.code,
    status: facts.status,
    via: facts.via,
    method: facts.request.method,
    path: clip(new URL(facts.request.url).pathname),
    hint: hintFor(facts),
    ...(facts.cause !== undefined && SERVER_FAULTS.has(facts.code) ? { error: describeError(facts.cause) } : {}),
  });
}
