/**
 * The auth matrix: token verification (unit, against hand-built AuthConfigs),
 * room capabilities (unit), and what a client actually receives from the Worker
 * when a token, room, permission or Origin is refused (integration).
 */
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { env } from "cloudflare:workers";
import { listDurableObjectIds } from "cloudflare:test";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type FetchImplementation, type JWK, type JWTPayload } from "jose";
import { PROTOCOL_VERSION, RoomcastError, type ErrorCode } from "@roomcast/protocol";
import { app } from "../src/index.js";
import { authConfigFromEnv, DEV_SECRET_PREFIX, verifyToken, type AuthConfig } from "../src/auth/verify.js";
import { permissionsFor, roomMatches } from "../src/auth/capabilities.js";
import { AUDIENCE, BASE, fetchWorker, ISSUER, ORIGIN, token, uniqueRoom, upgrade } from "./helpers.js";
import { expectRefused } from "./refusals.js";

// ---- unit helpers -------------------------------------------------------------

const encoder = new TextEncoder();
const SECRET = "unit-test-secret-" + "0123456789abcdef".repeat(3);
const ALL = ["subscribe", "publish", "presence"];

const baseConfig: AuthConfig = {
  publicKeyAlg: "RS256",
  audience: AUDIENCE,
  issuer: ISSUER,
  clockToleranceSeconds: 5,
  maxLifetimeSeconds: 0,
  development: false,
};

const hsConfig = (overrides: Partial<AuthConfig> = {}): AuthConfig => ({ ...baseConfig, secret: SECRET, ...overrides });

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Claims of a token that is valid for `baseConfig`; override or drop (`undefined`) any of them. */
function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const now = nowSeconds();
  const all: Record<string, unknown> = {
    sub: "alice",
    aud: AUDIENCE,
    iss: ISSUER,
    iat: now,
    exp: now + 300,
    cap: { "*": ALL },
    ...overrides,
  };
  return Object.fromEntries(Object.entries(all).filter(([, value]) => value !== undefined)) as JWTPayload;
}

interface SignOptions {
  alg?: string;
  kid?: string;
  typ?: string;
}

function sign(payload: JWTPayload, key: CryptoKey | Uint8Array, options: SignOptions = {}): Promise<string> {
  const header = { alg: options.alg ?? "HS256", typ: options.typ ?? "JWT", ...(options.kid ? { kid: options.kid } : {}) };
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

const signHS = (payload: JWTPayload = claims(), secret = SECRET, options: SignOptions = {}) =>
  sign(payload, encoder.encode(secret), { ...options, alg: "HS256" });

function b64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The RoomcastError `promise` rejects with; fails the test when it resolves or throws anything else. */
async function rejection(promise: Promise<unknown>): Promise<RoomcastError> {
  let result: unknown;
  try {
    result = await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(RoomcastError);
    return err as RoomcastError;
  }
  throw new Error(`expected a rejection, got ${JSON.stringify(result)}`);
}

async function expectRejected(jwt: string, config: AuthConfig, code: ErrorCode, message?: RegExp, now?: Date): Promise<void> {
  const err = await rejection(verifyToken(jwt, config, now));
  expect({ code: err.code, message: err.message }).toMatchObject({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  if (jwt !== "") expect(err.message).not.toContain(jwt);
}

/** Every line logged (console.log/warn/error) from now until the test ends; the console stays quiet. */
function captureLogs(): { lines: string[]; events: (event: string) => Record<string, unknown>[] } {
  const lines: string[] = [];
  for (const level of ["log", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
  }
  const events = (event: string) =>
    lines.filter((line) => line.includes(`"event":"${event}"`)).map((line) => JSON.parse(line) as Record<string, unknown>);
  return { lines, events };
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** Asserts no log line holds the token or its signature. */
function expectNotLogged(lines: string[], jwt: string): void {
  const signature = jwt.split(".")[2]!;
  for (const line of lines) {
    expect(line.includes(jwt), `a log line holds the token: ${line}`).toBe(false);
    expect(line.includes(signature), `a log line holds the token's signature: ${line}`).toBe(false);
  }
}

// ---- verifyToken --------------------------------------------------------------

describe("verifyToken with an HS256 secret", () => {
  it("accepts a valid HS256 token and returns its subject, capabilities and expiry", async () => {
    const payload = claims({ sub: "user-7", cap: { "team-1:*": ["subscribe"] } });
    const verified = await verifyToken(await signHS(payload), hsConfig());
    expect(verified).toEqual({ userId: "user-7", cap: { "team-1:*": ["subscribe"] }, expiresAt: payload.exp });
  });

  it("treats a token without a cap claim as granting nothing", async () => {
    const verified = await verifyToken(await signHS(claims({ cap: undefined })), hsConfig());
    expect(verified.cap).toEqual({});
  });

  it("rejects a token without exp as unauthorized", async () => {
    await expectRejected(await signHS(claims({ exp: undefined })), hsConfig(), "unauthorized", /"exp".*missing/);
  });

  it("rejects a token without sub as unauthorized", async () => {
    await expectRejected(await signHS(claims({ sub: undefined })), hsConfig(), "unauthorized", /"sub".*missing/);
  });

  it("rejects a token whose sub is not a string as unauthorized", async () => {
    await expectRejected(await signHS(claims({ sub: 42 })), hsConfig(), "unauthorized");
  });

  it("rejects an expired token with token_expired", async () => {
    const now = nowSeconds();
    await expectRejected(await signHS(claims({ iat: now - 600, exp: now - 60 })), hsConfig(), "token_expired");
  });

  it("accepts a token up to, but not at, exp + clock tolerance", async () => {
    const exp = nowSeconds() + 60;
    const jwt = await signHS(claims({ exp }));
    const at = (seconds: number) => new Date(seconds * 1000);
    await expect(verifyToken(jwt, hsConfig(), at(exp + 4))).resolves.toMatchObject({ userId: "alice" });
    await expectRejected(jwt, hsConfig(), "token_expired", undefined, at(exp + 5));
    // Without tolerance the token is expired from the second of exp itself.
    await expect(verifyToken(jwt, hsConfig({ clockToleranceSeconds: 0 }), at(exp - 1))).resolves.toMatchObject({ userId: "alice" });
    await expectRejected(jwt, hsConfig({ clockToleranceSeconds: 0 }), "token_expired", undefined, at(exp));
  });

  it("rejects a not-yet-valid token (nbf) as unauthorized, allowing the clock tolerance", async () => {
    const now = nowSeconds();
    await expectRejected(await signHS(claims({ nbf: now + 60 })), hsConfig(), "unauthorized", /"nbf"/);

    const nbf = now + 60;
    const jwt = await signHS(claims({ nbf, exp: nbf + 300 }));
    await expect(verifyToken(jwt, hsConfig(), new Date((nbf - 5) * 1000))).resolves.toMatchObject({ userId: "alice" });
    await expectRejected(jwt, hsConfig(), "unauthorized", /"nbf"/, new Date((nbf - 6) * 1000));
  });

  it("rejects a token for another audience as unauthorized", async () => {
    await expectRejected(await signHS(claims({ aud: "someone-else" })), hsConfig(), "unauthorized", /"aud"/);
  });

  it("rejects a token from another issuer as unauthorized", async () => {
    await expectRejected(await signHS(claims({ iss: "https://evil.test" })), hsConfig(), "unauthorized", /"iss"/);
  });

  it("rejects an unsecured alg:none token as unauthorized", async () => {
    const unsecured = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims())}.`;
    await expectRejected(unsecured, hsConfig(), "unauthorized");
    // The same token with its alg header stripped to "none" but the original signature kept.
    const signed = await signHS();
    const [, payload, signature] = signed.split(".");
    await expectRejected(`${b64url({ alg: "none" })}.${payload}.${signature}`, hsConfig(), "unauthorized");
  });

  it("rejects a token signed with another HS256 secret as unauthorized", async () => {
    await expectRejected(await signHS(claims(), `${SECRET}-but-different`), hsConfig(), "unauthorized", /signature/);
  });

  it("rejects a token whose signature was tampered with as unauthorized", async () => {
    const [header, payload] = (await signHS()).split(".");
    const forged = await signHS(claims({ sub: "mallory" }));
    await expectRejected(`${header}.${payload}.${forged.split(".")[2]}`, hsConfig(), "unauthorized", /signature/);
  });

  it("rejects a malformed cap claim as unauthorized", async () => {
    await expectRejected(await signHS(claims({ cap: { lobby: ["root"] } })), hsConfig(), "unauthorized", /"cap"/);
    await expectRejected(await signHS(claims({ cap: { lobby: "subscribe" } })), hsConfig(), "unauthorized", /"cap"/);
    await expectRejected(await signHS(claims({ cap: "*" })), hsConfig(), "unauthorized", /"cap"/);
  });

  it("does not echo the offending cap claim value in its error message", async () => {
    const err = await rejection(verifyToken(await signHS(claims({ cap: { lobby: ["claim-value-7f3a"] } })), hsConfig()));
    expect(err.code).toBe("unauthorized");
    expect(err.message).toMatch(/"cap"/);
    expect(err.message).not.toContain("claim-value-7f3a");
  });

  it("rejects a token whose typ is not JWT (e.g. at+jwt) as unauthorized", async () => {
    await expect(verifyToken(await signHS(claims(), SECRET, { typ: "jwt" }), hsConfig())).resolves.toMatchObject({ userId: "alice" });
    await expectRejected(await signHS(claims(), SECRET, { typ: "at+jwt" }), hsConfig(), "unauthorized", /typ/);
  });

  it("rejects a garbage string, an empty string and an oversized token as unauthorized", async () => {
    await expectRejected("definitely-not-a-jwt", hsConfig(), "unauthorized");
    await expectRejected("a.b.c", hsConfig(), "unauthorized");
    await expectRejected("", hsConfig(), "unauthorized");
    await expectRejected(await signHS(claims({ pad: "x".repeat(9_000) })), hsConfig(), "unauthorized", /too long/);
  });

  it("refuses the committed development secret with server_misconfigured outside development", async () => {
    const devSecret = `${DEV_SECRET_PREFIX}0123456789abcdef0123456789abcdef`;
    const jwt = await signHS(claims(), devSecret);
    await expectRejected(jwt, hsConfig({ secret: devSecret }), "server_misconfigured");
    await expect(verifyToken(jwt, hsConfig({ secret: devSecret, development: true }))).resolves.toMatchObject({ userId: "alice" });
  });

  it("refuses to verify anything with server_misconfigured when no key is configured", async () => {
    await expectRejected(await signHS(), baseConfig, "server_misconfigured");
  });

  it("refuses a JWT_SECRET under 32 bytes with server_misconfigured outside development, and logs why without the secret", async () => {
    const logs = captureLogs();
    const short = "short-secret-7f3a9c-abcdefghijk"; // 31 bytes
    expect(new TextEncoder().encode(short)).toHaveLength(31);
    const jwt = await signHS(claims(), short);
    await expectRejected(jwt, hsConfig({ secret: short }), "server_misconfigured", /shorter than 32 bytes/);
    const err = await rejection(verifyToken(jwt, hsConfig({ secret: short })));
    expect(err.message).not.toContain(short);
    // The client-visible message does not tell the secret's length (the log does).
    expect(err.message).not.toContain("31");
    expect(logs.events("auth.secret_too_short")).toEqual([
      expect.objectContaining({ level: "error", bytes: 31, minimum: 32, message: expect.stringMatching(/RFC 7518/) }),
    ]);
    for (const line of logs.lines) expect(line).not.toContain(short);
    expectNotLogged(logs.lines, jwt);

    // The length is counted in UTF-8 bytes: 16 two-byte characters are enough.
    const wide = "é".repeat(16);
    await expect(verifyToken(await signHS(claims(), wide), hsConfig({ secret: wide }))).resolves.toMatchObject({ userId: "alice" });
    const exact = "0123456789abcdef0123456789abcdef";
    await expect(verifyToken(await signHS(claims(), exact), hsConfig({ secret: exact }))).resolves.toMatchObject({ userId: "alice" });
  });

  it("accepts a short JWT_SECRET in development, with one warning", async () => {
    const logs = captureLogs();
    const jwt = await signHS(claims(), "x");
    await expect(verifyToken(jwt, hsConfig({ secret: "x", development: true }))).resolves.toMatchObject({ userId: "alice" });
    await expect(verifyToken(jwt, hsConfig({ secret: "x", development: true }))).resolves.toMatchObject({ userId: "alice" });
    expect(logs.events("auth.secret_too_short")).toEqual([expect.objectContaining({ level: "warn", bytes: 1 })]);
  });
});

describe("verifyToken with JWT_MAX_LIFETIME_SECONDS", () => {
  const at = (seconds: number) => new Date(seconds * 1000);
  const capped = (maxLifetimeSeconds: number) => hsConfig({ maxLifetimeSeconds });

  it("reads JWT_MAX_LIFETIME_SECONDS from the environment (0, no maximum, by default)", () => {
    expect(authConfigFromEnv(env).maxLifetimeSeconds).toBe(0);
    expect(authConfigFromEnv({ ...env, JWT_MAX_LIFETIME_SECONDS: "3600" }).maxLifetimeSeconds).toBe(3600);
  });

  it("rejects a token whose exp - iat is over the maximum as unauthorized, and accepts one at it", async () => {
    const now = nowSeconds();
    await expectRejected(await signHS(claims({ iat: now, exp: now + 3601 })), capped(3600), "unauthorized", /lifetime.*3601 s.*3600 s/, at(now));
    await expect(verifyToken(await signHS(claims({ iat: now, exp: now + 3600 })), capped(3600), at(now))).resolves.toMatchObject({ userId: "alice" });
    // Measured from iat, not from now: a token issued 10 minutes ago with a 2 h lifetime is refused.
    await expectRejected(await signHS(claims({ iat: now - 600, exp: now + 6600 })), capped(3600), "unauthorized", /lifetime/, at(now));
  });

  it("measures exp - now for a token without iat, allowing the clock tolerance", async () => {
    const now = nowSeconds();
    const config = capped(3600); // clock tolerance 5 s
    await expect(verifyToken(await signHS(claims({ iat: undefined, exp: now + 3605 })), config, at(now))).resolves.toMatchObject({ userId: "alice" });
    await expectRejected(await signHS(claims({ iat: undefined, exp: now + 3606 })), config, "unauthorized", /maximum token lifetime of 3600 s/, at(now));
  });

  it("is not fooled by an iat in the future", async () => {
    const now = nowSeconds();
    const jwt = await signHS(claims({ iat: now + 86_400, exp: now + 86_460 }));
    await expectRejected(jwt, capped(3600), "unauthorized", /maximum token lifetime/, at(now));
  });

  it("accepts any lifetime when it is 0", async () => {
    const now = nowSeconds();
    const jwt = await signHS(claims({ iat: now, exp: now + 10 * 365 * 86_400 }));
    await expect(verifyToken(jwt, capped(0), at(now))).resolves.toMatchObject({ userId: "alice" });
  });
});

describe("verifyToken with a public key (JWT_PUBLIC_KEY)", () => {
  let rsa: { publicKey: CryptoKey; privateKey: CryptoKey };
  let pem: string;

  beforeAll(async () => {
    rsa = await generateKeyPair("RS256", { extractable: true });
    pem = await exportSPKI(rsa.publicKey);
  });

  const rsConfig = (overrides: Partial<AuthConfig> = {}): AuthConfig => ({ ...baseConfig, publicKeyPem: pem, publicKeyAlg: "RS256", ...overrides });

  it("accepts an RS256 token verified with the PEM public key", async () => {
    const jwt = await sign(claims({ sub: "rs-user" }), rsa.privateKey, { alg: "RS256" });
    await expect(verifyToken(jwt, rsConfig())).resolves.toMatchObject({ userId: "rs-user" });
  });

  it("rejects an RS256 token signed by another key as unauthorized", async () => {
    const other = await generateKeyPair("RS256");
    const jwt = await sign(claims(), other.privateKey, { alg: "RS256" });
    await expectRejected(jwt, rsConfig(), "unauthorized", /signature/);
  });

  it("rejects an HS256 token keyed with the public key PEM (alg confusion) when only the public key is configured", async () => {
    const confused = await signHS(claims(), pem);
    // Control: the token itself is well-formed and correctly signed for a server that used the PEM as its secret.
    await expect(verifyToken(confused, hsConfig({ secret: pem }))).resolves.toMatchObject({ userId: "alice" });
    await expectRejected(confused, rsConfig(), "unauthorized", /algorithm/);
  });

  it("rejects an HS256 token keyed with the public key PEM (alg confusion) when a secret and the public key are configured", async () => {
    const confused = await signHS(claims(), pem);
    await expectRejected(confused, rsConfig({ secret: SECRET }), "unauthorized", /signature/);
    // The same configuration still accepts both legitimate kinds of token.
    await expect(verifyToken(await signHS(), rsConfig({ secret: SECRET }))).resolves.toMatchObject({ userId: "alice" });
    const rs = await sign(claims(), rsa.privateKey, { alg: "RS256" });
    await expect(verifyToken(rs, rsConfig({ secret: SECRET }))).resolves.toMatchObject({ userId: "alice" });
  });
});

describe("verifyToken with an inline JWKS", () => {
  let es: { publicKey: CryptoKey; privateKey: CryptoKey };
  let ed: { publicKey: CryptoKey; privateKey: CryptoKey };
  let jwks: string;

  beforeAll(async () => {
    es = await generateKeyPair("ES256", { extractable: true });
    ed = await generateKeyPair("EdDSA", { extractable: true });
    const keys: JWK[] = [
      { ...(await exportJWK(es.publicKey)), kid: "es-1", alg: "ES256", use: "sig" },
      { ...(await exportJWK(ed.publicKey)), kid: "ed-1", alg: "EdDSA", use: "sig" },
    ];
    jwks = JSON.stringify({ keys });
  });

  const jwksConfig = (): AuthConfig => ({ ...baseConfig, jwks });

  it("accepts an ES256 token whose kid is in the JWKS", async () => {
    const jwt = await sign(claims({ sub: "es-user" }), es.privateKey, { alg: "ES256", kid: "es-1" });
    await expect(verifyToken(jwt, jwksConfig())).resolves.toMatchObject({ userId: "es-user" });
  });

  it("accepts an EdDSA token whose kid is in the JWKS", async () => {
    const jwt = await sign(claims({ sub: "ed-user" }), ed.privateKey, { alg: "EdDSA", kid: "ed-1" });
    await expect(verifyToken(jwt, jwksConfig())).resolves.toMatchObject({ userId: "ed-user" });
  });

  it("rejects a token whose kid is not in the JWKS as unauthorized", async () => {
    const jwt = await sign(claims(), es.privateKey, { alg: "ES256", kid: "es-unknown" });
    await expectRejected(jwt, jwksConfig(), "unauthorized", /kid/);
  });

  it("rejects a token that names a JWKS kid but is signed by another key as unauthorized", async () => {
    const other = await generateKeyPair("ES256");
    const jwt = await sign(claims(), other.privateKey, { alg: "ES256", kid: "es-1" });
    await expectRejected(jwt, jwksConfig(), "unauthorized", /signature/);
  });

  it("rejects an HS256 token when only a JWKS is configured", async () => {
    await expectRejected(await signHS(claims(), jwks), jwksConfig(), "unauthorized", /algorithm/);
  });

  it("refuses a JWKS that is not a key set with server_misconfigured", async () => {
    const jwt = await sign(claims(), es.privateKey, { alg: "ES256", kid: "es-1" });
    await expectRejected(jwt, { ...baseConfig, jwks: '{"keys": "none"}' }, "server_misconfigured", /JSON Web Key Set/);
  });
});

describe("a key set used without JWT_AUDIENCE", () => {
  /** A fresh inline key set (its own source, so its warning is its own) and a token for it. */
  async function keySetAndToken(): Promise<{ jwks: string; jwt: string }> {
    const pair = await generateKeyPair("ES256", { extractable: true });
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k", alg: "ES256" }] });
    return { jwks, jwt: await sign(claims({ aud: undefined }), pair.privateKey, { alg: "ES256", kid: "k" }) };
  }

  it("logs one auth.no_audience warning outside development", async () => {
    const logs = captureLogs();
    const { jwks, jwt } = await keySetAndToken();
    const config: AuthConfig = { ...baseConfig, audience: undefined, jwks };
    await expect(verifyToken(jwt, config)).resolves.toMatchObject({ userId: "alice" });
    await expect(verifyToken(jwt, config)).resolves.toMatchObject({ userId: "alice" });
    expect(logs.events("auth.no_audience")).toEqual([
      expect.objectContaining({ level: "warn", keySet: "JWKS", message: expect.stringMatching(/JWT_AUDIENCE/) }),
    ]);
    expectNotLogged(logs.lines, jwt);
  });

  it("does not warn with JWT_AUDIENCE set, in development, or without a key set", async () => {
    const logs = captureLogs();
    const { jwks, jwt } = await keySetAndToken();
    await expectRejected(jwt, { ...baseConfig, jwks }, "unauthorized", /"aud"/); // the token has no aud
    await expect(verifyToken(jwt, { ...baseConfig, audience: undefined, jwks, development: true })).resolves.toMatchObject({ userId: "alice" });
    await expect(verifyToken(await signHS(claims({ aud: undefined })), hsConfig({ audience: undefined }))).resolves.toMatchObject({ userId: "alice" });
    expect(logs.events("auth.no_audience")).toEqual([]);
  });
});

describe("verifyToken with a remote JWKS (JWKS_URL)", () => {
  let es: { publicKey: CryptoKey; privateKey: CryptoKey };
  let jwksBody: string;

  beforeAll(async () => {
    es = await generateKeyPair("ES256", { extractable: true });
    jwksBody = JSON.stringify({ keys: [{ ...(await exportJWK(es.publicKey)), kid: "remote-1", alg: "ES256", use: "sig" }] });
  });

  /** A JWKS_URL no other test uses (jose caches per URL). */
  const jwksUrl = () => `https://${uniqueRoom("idp")}.test/.well-known/jwks.json?tenant=t-1`;
  const remote = (fetchJwks?: FetchImplementation, url = jwksUrl()): AuthConfig => ({ ...baseConfig, jwksUrl: url, ...(fetchJwks ? { fetchJwks } : {}) });
  /** A fetch that answers each call with the next of `answers` (the last one repeats). */
  function fetchAnswering(...answers: (() => Response | Promise<Response>)[]): FetchImplementation & { readonly calls: number } {
    let calls = 0;
    const fetchJwks: FetchImplementation = async () => answers[Math.min(calls++, answers.length - 1)]!();
    return Object.defineProperty(fetchJwks, "calls", { get: () => calls }) as FetchImplementation & { readonly calls: number };
  }
  const serving = () => new Response(jwksBody, { headers: { "Content-Type": "application/json" } });
  const remoteToken = (kid = "remote-1", key: CryptoKey = es.privateKey) => sign(claims({ sub: "remote-user" }), key, { alg: "ES256", kid });

  /** The key set failure surfaces as 503 auth_unavailable, logged with `reason` and never the token. */
  async function expectUnavailable(config: AuthConfig, reason: RegExp): Promise<void> {
    const logs = captureLogs();
    const jwt = await remoteToken();
    const err = await rejection(verifyToken(jwt, config));
    expect({ code: err.code, status: err.status }).toEqual({ code: "auth_unavailable", status: 503 });
    const [logged, ...more] = logs.events("auth.keyset_unavailable");
    expect(more).toEqual([]);
    expect(logged).toMatchObject({ level: "error", url: expect.stringMatching(/^https:\/\/idp-.*\.test\/\.well-known\/jwks\.json$/) });
    expect(JSON.stringify(logged)).toMatch(reason);
    expect(JSON.stringify(logged)).not.toContain("tenant"); // the query is not logged
    expectNotLogged(logs.lines, jwt);
  }

  it("accepts a token whose kid is in the fetched set", async () => {
    const fetchJwks = fetchAnswering(serving);
    await expect(verifyToken(await remoteToken(), remote(fetchJwks))).resolves.toMatchObject({ userId: "remote-user" });
    expect(fetchJwks.calls).toBe(1);
  });

  it("answers 503 auth_unavailable, not 401, when JWKS_URL answers an error status", async () => {
    // No fetch injected: the test runtime answers every outbound request with 599.
    await expectUnavailable(remote(), /JWKS_URL answered HTTP 599/);
    await expectUnavailable(remote(fetchAnswering(() => new Response("down", { status: 503 }))), /HTTP 503/);
  });

  it("answers 503 auth_unavailable when fetching JWKS_URL times out", async () => {
    // What fetch rejects with when jose's AbortSignal.timeout (5 s) fires.
    const timedOut = fetchAnswering(() => Promise.reject(new DOMException("The operation was aborted due to timeout", "TimeoutError")));
    await expectUnavailable(remote(timedOut), /JWKSTimeout/);
  });

  it("answers 503 auth_unavailable when the fetch fails outright", async () => {
    await expectUnavailable(remote(fetchAnswering(() => Promise.reject(new TypeError("Network connection lost.")))), /Network connection lost/);
  });

  it("answers 503 auth_unavailable when JWKS_URL serves something that is not JSON, or not a key set", async () => {
    await expectUnavailable(remote(fetchAnswering(() => new Response("<html>maintenance</html>"))), /parse the JSON Web Key Set/);
    await expectUnavailable(remote(fetchAnswering(() => Response.json({ keys: "none" }))), /JWKSInvalid/);
  });

  it("recovers once JWKS_URL does: a failed fetch is not remembered", async () => {
    captureLogs();
    const fetchJwks = fetchAnswering(() => new Response("down", { status: 503 }), serving);
    const config = remote(fetchJwks);
    const jwt = await remoteToken();
    expect((await rejection(verifyToken(jwt, config))).code).toBe("auth_unavailable");
    await expect(verifyToken(jwt, config)).resolves.toMatchObject({ userId: "remote-user" });
    expect(fetchJwks.calls).toBe(2);
  });

  it("still rejects bad tokens with 401: unknown kid, wrong signature, and malformed while JWKS_URL is down", async () => {
    const config = remote(fetchAnswering(serving));
    await expectRejected(await remoteToken("remote-unknown"), config, "unauthorized", /kid/);
    await expectRejected(await remoteToken("remote-1", (await generateKeyPair("ES256")).privateKey), config, "unauthorized", /signature/);
    // A token that is not even a JWS never needs the key set.
    const down = remote();
    await expectRejected("a.b.c", down, "unauthorized");
    await expectRejected(await signHS(), down, "unauthorized", /algorithm/);
  });
});

// ---- capabilities -------------------------------------------------------------

describe("room capabilities", () => {
  it("team-42:* matches rooms of team 42 only, and requires the colon", () => {
    expect(roomMatches("team-42:*", "team-42:general")).toBe(true);
    expect(roomMatches("team-42:*", "team-42:")).toBe(true);
    expect(roomMatches("team-42:*", "team-43:general")).toBe(false);
    expect(roomMatches("team-42:*", "team-420:x")).toBe(false);
    expect(roomMatches("team-42:*", "team-420")).toBe(false);
    expect(roomMatches("team-42:*", "team-42")).toBe(false);
    expect(roomMatches("team-42:*", "x-team-42:general")).toBe(false);
  });

  it("an exact pattern matches only that room", () => {
    expect(roomMatches("lobby", "lobby")).toBe(true);
    expect(roomMatches("lobby", "lobby-2")).toBe(false);
    expect(roomMatches("lobby", "the-lobby")).toBe(false);
  });

  it("* matches any run of characters, including several in one pattern", () => {
    expect(roomMatches("*", "anything.at:all")).toBe(true);
    expect(roomMatches("org-*:team-*", "org-1:team-2")).toBe(true);
    expect(roomMatches("org-*:team-*", "org-1:group-2")).toBe(false);
  });

  it("treats regex metacharacters in patterns literally", () => {
    expect(roomMatches("a.b", "a.b")).toBe(true);
    expect(roomMatches("a.b", "axb")).toBe(false);
    expect(roomMatches("a.*", "a.b")).toBe(true);
    expect(roomMatches("a.*", "ab")).toBe(false);
    expect(roomMatches("room+", "roommm")).toBe(false);
    expect(roomMatches("room?", "roo")).toBe(false);
    expect(roomMatches("(a|b)", "a")).toBe(false);
    expect(roomMatches("[ab]", "a")).toBe(false);
    expect(roomMatches("^lobby$", "lobby")).toBe(false);
    expect(roomMatches("^lobby$", "^lobby$")).toBe(true);
  });

  it("matches many-star patterns against near-miss room names without backtracking blow-up", () => {
    // A regex with one .* per star took ~80 s for a pair like this at only 36
    // characters; the bound here is the test timeout (Date.now() is frozen in workerd).
    const pattern = `${"*a".repeat(60)}*b`;
    const room = "a".repeat(128);
    expect(roomMatches(pattern, room)).toBe(false);
    expect(roomMatches(pattern, `${room.slice(0, 127)}b`)).toBe(true);
  });

  it("combines the permissions of every matching pattern, de-duplicated, in a stable order", () => {
    const cap = {
      "*": ["presence" as const],
      "team-42:general": ["publish" as const, "subscribe" as const],
      "team-42:*": ["subscribe" as const],
      "team-43:*": ["admin" as const],
    };
    expect(permissionsFor(cap, "team-42:general")).toEqual(["subscribe", "publish", "presence"]);
    expect(permissionsFor(cap, "team-42:random")).toEqual(["subscribe", "presence"]);
    expect(permissionsFor(cap, "team-43:general")).toEqual(["presence", "admin"]);
    expect(permissionsFor({ "team-42:*": ["subscribe"] }, "lobby")).toEqual([]);
  });
});

// ---- through the Worker -------------------------------------------------------

/** A request to the Worker with some variables changed (the room binding stays the real one). */
function fetchWorkerWith(vars: Record<string, string>, path: string, init?: RequestInit): Promise<Response> {
  return Promise.resolve(app.request(`${BASE}${path}`, init, { ...env, ...vars }));
}
const wsHeaders = (jwt: string) => ({ Upgrade: "websocket", "Sec-WebSocket-Protocol": PROTOCOL_VERSION, Authorization: `Bearer ${jwt}` });

/** Asserts the client got `status` with `{error:{code,message}}`, and that nothing echoes the token. */
async function expectError(res: Response, status: number, code: ErrorCode, jwt?: string): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.webSocket).toBeNull();
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  expect(body).toEqual({ error: { code, message: expect.any(String) } });
  expect(body.error.message.length).toBeGreaterThan(0);
  if (jwt !== undefined) {
    const signature = jwt.split(".")[2];
    expect(text.includes(jwt)).toBe(false);
    if (signature) expect(text.includes(signature)).toBe(false);
    for (const [name, value] of res.headers) expect(value.includes(jwt), `header ${name} echoes the token`).toBe(false);
  }
}

/**
 * Asserts a readable refusal (§5: 101, one id-less error frame, the code's close) and
 * that neither the frame, the close reason nor a header echoes the token.
 */
async function expectRefusedUpgrade(res: Response, code: ErrorCode, jwt?: string): Promise<void> {
  const headers = [...res.headers];
  const refusal = await expectRefused(res, code);
  if (jwt !== undefined) {
    const text = JSON.stringify(refusal);
    const signature = jwt.split(".")[2];
    expect(text.includes(jwt)).toBe(false);
    if (signature) expect(text.includes(signature)).toBe(false);
    for (const [name, value] of headers) expect(value.includes(jwt), `header ${name} echoes the token`).toBe(false);
  }
}

/** Asserts a 101 and closes the socket so nothing leaks. */
async function expectUpgraded(res: Response): Promise<void> {
  expect(res.status, res.status === 101 ? "" : await res.text()).toBe(101);
  const ws = res.webSocket!;
  ws.accept();
  ws.close(1000, "test done");
}

/** Whether a Room Durable Object was ever created for `room`. */
async function roomObjectExists(room: string): Promise<boolean> {
  const id = env.ROOMS.idFromName(room).toString();
  return (await listDurableObjectIds(env.ROOMS)).some((other) => other.toString() === id);
}

describe("WebSocket upgrade auth", () => {
  it("rejects an upgrade without a token with 401 unauthorized", async () => {
    await expectRefusedUpgrade(await upgrade(uniqueRoom(), undefined), "unauthorized");
  });

  it("rejects an upgrade with a malformed token with 401 unauthorized", async () => {
    const jwt = `malformed-${crypto.randomUUID()}`;
    await expectRefusedUpgrade(await upgrade(uniqueRoom(), jwt), "unauthorized", jwt);
  });

  it("rejects an upgrade with a token signed by another secret with 401 unauthorized", async () => {
    const jwt = await token({ secret: "some-other-secret-0123456789abcdef0123456789" });
    await expectRefusedUpgrade(await upgrade(uniqueRoom(), jwt), "unauthorized", jwt);
  });

  it("rejects an upgrade with an expired token with 401 token_expired", async () => {
    const jwt = await token({ expiresIn: -60 });
    await expectRefusedUpgrade(await upgrade(uniqueRoom(), jwt), "token_expired", jwt);
  });

  it("rejects an upgrade with a token for another audience or issuer with 401 unauthorized", async () => {
    const wrongAud = await token({ audience: "another-app" });
    await expectRefusedUpgrade(await upgrade(uniqueRoom(), wrongAud), "unauthorized", wrongAud);
    const wrongIss = await token({ issuer: "https://evil.test" });
    await expectRefusedUpgrade(await upgrade(uniqueRoom(), wrongIss), "unauthorized", wrongIss);
  });

  it("rejects a room outside the token's capability with 403 forbidden and admits one inside it", async () => {
    const jwt = await token({ cap: { "team-42:*": ALL } });
    const outside = `team-43:${uniqueRoom("general")}`;
    await expectRefusedUpgrade(await upgrade(outside, jwt), "forbidden", jwt);
    expect(await roomObjectExists(outside)).toBe(false);
    await expectUpgraded(await upgrade(`team-42:${uniqueRoom("general")}`, jwt));
  });

  it("rejects an upgrade with 403 forbidden when the token grants publish but not subscribe", async () => {
    const room = uniqueRoom();
    const jwt = await token({ cap: { [room]: ["publish"] } });
    await expectRefusedUpgrade(await upgrade(room, jwt), "forbidden", jwt);
  });

  it("accepts every exactly-listed Origin", async () => {
    for (const origin of [ORIGIN, "http://localhost:8787"]) {
      await expectUpgraded(await upgrade(uniqueRoom(), await token(), { via: "subprotocol", origin }));
    }
  });

  it.each([
    ["a foreign Origin", "https://evil.test"],
    ["a look-alike Origin", "https://app.example.com.evil.test"],
    ["an Origin differing only in scheme", "http://app.example.com"],
    ["the literal null Origin", "null"],
  ])("rejects %s with 403 origin_not_allowed and creates no room object", async (_, origin) => {
    const room = uniqueRoom();
    const jwt = await token();
    await expectRefusedUpgrade(await upgrade(room, jwt, { via: "subprotocol", origin }), "origin_not_allowed", jwt);
    await expectRefusedUpgrade(await upgrade(room, jwt, { via: "header", origin }), "origin_not_allowed", jwt);
    expect(await roomObjectExists(room)).toBe(false);
  });

  it("rejects a subprotocol-token upgrade without Origin with 403 origin_not_allowed, but admits a Bearer-header one", async () => {
    const room = uniqueRoom();
    const jwt = await token();
    await expectRefusedUpgrade(await upgrade(room, jwt, { via: "subprotocol" }), "origin_not_allowed", jwt);
    expect(await roomObjectExists(room)).toBe(false);
    await expectUpgraded(await upgrade(room, jwt, { via: "header" }));
  });

  it("creates the room object on an accepted upgrade (so the absence checks above can fail)", async () => {
    const room = uniqueRoom();
    expect(await roomObjectExists(room)).toBe(false);
    await expectUpgraded(await upgrade(room, await token(), { via: "subprotocol", origin: ORIGIN }));
    expect(await roomObjectExists(room)).toBe(true);
  });

  it("rejects an invalid room name with 400 invalid_room before creating a room object", async () => {
    const jwt = await token();
    const bad = `bad room!-${uniqueRoom()}`;
    await expectRefusedUpgrade(await upgrade(bad, jwt, { origin: ORIGIN }), "invalid_room", jwt);
    expect(await roomObjectExists(bad)).toBe(false);

    const prefix = uniqueRoom("long");
    const tooLong = prefix + "x".repeat(129 - prefix.length);
    expect(tooLong).toHaveLength(129);
    await expectRefusedUpgrade(await upgrade(tooLong, jwt, { origin: ORIGIN }), "invalid_room", jwt);
    expect(await roomObjectExists(tooLong)).toBe(false);

    // The boundary itself is a valid room.
    const longest = tooLong.slice(0, 128);
    await expectUpgraded(await upgrade(longest, jwt, { origin: ORIGIN }));
  });
});

describe("auth configuration through the Worker", () => {
  it("answers an upgrade and an HTTP request with 503 auth_unavailable while JWKS_URL is down", async () => {
    captureLogs();
    const pair = await generateKeyPair("ES256");
    const jwt = await sign(claims(), pair.privateKey, { alg: "ES256", kid: "idp-1" });
    // The runtime answers the key set fetch with 599.
    const vars = { JWKS_URL: `https://${uniqueRoom("idp")}.test/jwks.json` };
    const room = uniqueRoom();
    await expectRefusedUpgrade(await fetchWorkerWith(vars, `/v1/rooms/${room}/ws`, { headers: wsHeaders(jwt) }), "auth_unavailable", jwt);
    await expectError(await fetchWorkerWith(vars, `/v1/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${jwt}` } }), 503, "auth_unavailable", jwt);
    expect(await roomObjectExists(room)).toBe(false);
  });

  it("answers 500 server_misconfigured with JWT_SECRET=x outside development", async () => {
    captureLogs();
    const jwt = await token({ secret: "x" });
    const room = uniqueRoom();
    await expectError(await fetchWorkerWith({ JWT_SECRET: "x" }, `/v1/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${jwt}` } }), 500, "server_misconfigured", jwt);
    await expectRefusedUpgrade(await fetchWorkerWith({ JWT_SECRET: "x" }, `/v1/rooms/${room}/ws`, { headers: wsHeaders(jwt) }), "server_misconfigured", jwt);
  });

  it("refuses a token longer-lived than JWT_MAX_LIFETIME_SECONDS at the handshake and over HTTP", async () => {
    const vars = { JWT_MAX_LIFETIME_SECONDS: "600" };
    const room = uniqueRoom();
    const long = await token({ expiresIn: 3600 });
    await expectRefusedUpgrade(await fetchWorkerWith(vars, `/v1/rooms/${room}/ws`, { headers: wsHeaders(long) }), "unauthorized", long);
    await expectError(await fetchWorkerWith(vars, `/v1/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${long}` } }), 401, "unauthorized", long);
    const ok = await fetchWorkerWith(vars, `/v1/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${await token({ expiresIn: 600 })}` } });
    expect(ok.status, await ok.clone().text()).toBe(200);
  });
});

describe("HTTP API auth", () => {
  const messages = (room: string) => `/v1/rooms/${encodeURIComponent(room)}/messages`;
  const bearer = (jwt: string) => ({ Authorization: `Bearer ${jwt}` });

  it("rejects GET /messages without a token with 401 unauthorized", async () => {
    await expectError(await fetchWorker(messages(uniqueRoom())), 401, "unauthorized");
  });

  it("rejects GET /messages with an expired token with 401 token_expired", async () => {
    const jwt = await token({ expiresIn: -60 });
    await expectError(await fetchWorker(messages(uniqueRoom()), { headers: bearer(jwt) }), 401, "token_expired", jwt);
  });

  it("rejects POST /messages with a subscribe-only token with 403 forbidden and stores nothing", async () => {
    const room = uniqueRoom();
    const jwt = await token({ cap: { [room]: ["subscribe"] } });
    const post = await fetchWorker(messages(room), {
      method: "POST",
      headers: { ...bearer(jwt), "Content-Type": "application/json" },
      body: JSON.stringify({ id: "m1", data: "hello" }),
    });
    await expectError(post, 403, "forbidden", jwt);
    // The same token may read the room, and the room is empty.
    const get = await fetchWorker(messages(room), { headers: bearer(jwt) });
    expect(get.status).toBe(200);
    expect(await get.json()).toMatchObject({ room, head: 0, messages: [] });
  });

  it("rejects POST /messages from a foreign Origin with 403 origin_not_allowed", async () => {
    const room = uniqueRoom();
    const jwt = await token();
    const post = await fetchWorker(messages(room), {
      method: "POST",
      headers: { ...bearer(jwt), Origin: "https://app.example.com.evil.test", "Content-Type": "application/json" },
      body: JSON.stringify({ data: 1 }),
    });
    await expectError(post, 403, "origin_not_allowed", jwt);
    expect(await roomObjectExists(room)).toBe(false);
  });
});
