/**
 * Getting a token for an attempt, and reading who it is for. The provider decides:
 * a string goes on, `null` or a terminal `RoomcastClientError` (`unauthorized`,
 * `forbidden`) means "stop for good" (the user signed out, the account is gone), and
 * anything else it throws is a transient failure worth a retry.
 */
import { ERRORS, isErrorCode } from "@roomcast/protocol";
import { RoomcastClientError } from "./errors.js";

export type TokenProvider = string | (() => string | null | Promise<string | null>);

export type TokenResult =
  | { readonly ok: true; readonly token: string }
  | { readonly ok: false; readonly terminal: boolean; readonly error: RoomcastClientError };

/**
 * What a token may contain. A JWT is base64url segments and dots, which fits both.
 * Sent as a subprotocol (`roomcast.bearer.<token>`) it must be an HTTP token
 * (RFC 6455 §4.1, no `/` or `=`); in an `Authorization: Bearer` header, a token68
 * (RFC 6750 §2.1). Anything else (a "Bearer " prefix, quotes, whitespace) would make
 * the WebSocket constructor throw, and browsers quote the offending subprotocol, the
 * token, in that error's message.
 */
const TOKEN_CHARS = {
  subprotocol: /^[A-Za-z0-9._~+-]+$/,
  header: /^[A-Za-z0-9._~+/-]+=*$/,
} as const;

export async function tokenFrom(provider: TokenProvider, transport: "subprotocol" | "header" = "header"): Promise<TokenResult> {
  let token: unknown;
  try {
    token = typeof provider === "function" ? await provider() : provider;
  } catch (cause) {
    if (cause instanceof RoomcastClientError && isErrorCode(cause.code) && ERRORS[cause.code].reconnect === "never") {
      return { ok: false, terminal: true, error: cause };
    }
    return { ok: false, terminal: false, error: new RoomcastClientError("token_unavailable", "the token provider failed; retrying", { cause }) };
  }
  if (token === null) {
    return { ok: false, terminal: true, error: new RoomcastClientError("unauthorized", "the token provider returned null: stopped for good") };
  }
  if (typeof token !== "string" || token === "") {
    return { ok: false, terminal: false, error: new RoomcastClientError("token_unavailable", "the token provider must return a non-empty string (or null to stop)") };
  }
  if (!TOKEN_CHARS[transport].test(token)) {
    // Never echo the token. A fixed string stays wrong; a provider may answer better next time.
    const hint = /^bearer\s/i.test(token) ? ' (it starts with "Bearer ": pass the token alone)' : /["'\s]/.test(token) ? " (it holds quotes or whitespace)" : "";
    const error = new RoomcastClientError(
      "token_unavailable",
      `the token has characters a JWT cannot have${hint}; a ${transport === "subprotocol" ? "subprotocol" : "Bearer"} token may only use A-Z a-z 0-9 - . _ ~ +${transport === "header" ? " / and a trailing =" : ""}`,
    );
    return { ok: false, terminal: typeof provider === "string", error };
  }
  return { ok: true, token };
}

/**
 * The `sub` of a JWT's payload, decoded WITHOUT verification (the server verifies;
 * this only says whose outbox an attempt serves until `welcome.userId` arrives).
 * Undefined when the token is not a decodable JWT with a string `sub`.
 */
export function tokenSubject(token: string): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const payload: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    const sub = typeof payload === "object" && payload !== null ? (payload as { sub?: unknown }).sub : undefined;
    return typeof sub === "string" ? sub : undefined;
  } catch {
    return undefined;
  }
}
