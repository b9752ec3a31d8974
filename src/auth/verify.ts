/**
 * JWT verification with jose. Algorithms are pinned per key type, so a token can
 * never choose how it is checked: HS256 only against JWT_SECRET, the public key's
 * algorithm only against JWT_PUBLIC_KEY, asymmetric algorithms only against a JWKS.
 * `exp` and `sub` are required; `aud`/`iss` are checked when configured, and the
 * lifetime when JWT_MAX_LIFETIME_SECONDS is set.
 *
 * Only a token that fails verification is `unauthorized`: when the key set itself
 * cannot be had (JWKS_URL down, slow, or serving something that is not a key set),
 * the answer is the retryable `auth_unavailable`, and the reason goes to the log.
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors as joseErrors,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type FetchImplementation,
  type JWTHeaderParameters,
  type FlattenedJWSInput,
  type JWTPayload,
} from "jose";
import * as v from "valibot";
import { RoomcastError } from "@roomcast/protocol";
import type { Env } from "../env.js";
import { readLimit } from "../config.js";
import { describeError, log } from "../log.js";
import { CAPABILITY_CLAIM, CapabilityClaim } from "./capabilities.js";

/** Prefix of the committed development secret; refused outside `ENVIRONMENT=development`. */
export const DEV_SECRET_PREFIX = "roomcast-dev-only-";
/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash, 256 bits. Enforced outside development. */
export const MIN_SECRET_BYTES = 32;
const ASYMMETRIC_ALGS = ["RS256", "ES256", "EdDSA"] as const;
type AsymmetricAlg = (typeof ASYMMETRIC_ALGS)[number];
const MAX_TOKEN_LENGTH = 8_192;

export interface AuthConfig {
  readonly secret?: string;
  readonly publicKeyPem?: string;
  readonly publicKeyAlg: AsymmetricAlg;
  readonly jwksUrl?: string;
  readonly jwks?: string;
  readonly audience?: string;
  readonly issuer?: string;
  readonly clockToleranceSeconds: number;
  /** JWT_MAX_LIFETIME_SECONDS: the longest `exp - iat` (and `exp - now`) accepted; 0 means no maximum. */
  readonly maxLifetimeSeconds: number;
  readonly development: boolean;
  /** How JWKS_URL is fetched: the global fetch, unless a test injects one. */
  readonly fetchJwks?: FetchImplementation;
}

export interface VerifiedToken {
  readonly userId: string;
  readonly cap: CapabilityClaim;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  /** The `rate` claim: a per-user rate budget for a backend (bounded; never unlimited). */
  readonly rate?: RateClaim;
}

/**
 * `"rate": {"perSecond": N, "burst": M}`: the rate budget the token's user gets in a
 * room, shared by its sockets and its HTTP requests, in place of PUBLISH_RATE_PER_SECOND
 * and PUBLISH_BURST. For a backend that publishes over HTTP. Bounded like those
 * settings (10,000/s, burst 100,000): there is no unlimited budget.
 */
export const RateClaim = v.object({
  perSecond: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(10_000)),
  burst: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100_000)),
});
export type RateClaim = v.InferOutput<typeof RateClaim>;

const nonEmpty = (s: string | undefined) => (s && s.trim() !== "" ? s.trim() : undefined);

export function authConfigFromEnv(env: Env): AuthConfig {
  const alg = nonEmpty(env.JWT_PUBLIC_KEY_ALG) ?? "RS256";
  if (!(ASYMMETRIC_ALGS as readonly string[]).includes(alg)) {
    throw new RoomcastError("server_misconfigured", `JWT_PUBLIC_KEY_ALG must be one of ${ASYMMETRIC_ALGS.join(", ")}`);
  }
  return {
    secret: nonEmpty(env.JWT_SECRET),
    publicKeyPem: nonEmpty(env.JWT_PUBLIC_KEY),
    publicKeyAlg: alg as AsymmetricAlg,
    jwksUrl: nonEmpty(env.JWKS_URL),
    jwks: nonEmpty(env.JWKS),
    audience: nonEmpty(env.JWT_AUDIENCE),
    issuer: nonEmpty(env.JWT_ISSUER),
    clockToleranceSeconds: readLimit(env, "JWT_CLOCK_TOLERANCE_SECONDS"),
    maxLifetimeSeconds: readLimit(env, "JWT_MAX_LIFETIME_SECONDS"),
    development: env.ENVIRONMENT === "development",
  };
}

// ---- keys, created once per isolate ------------------------------------------

const encoder = new TextEncoder();
const secretKeys = new Map<string, Uint8Array>();
const publicKeys = new Map<string, Promise<CryptoKey>>();
type KeySet = ReturnType<typeof createRemoteJWKSet>;
const keySets = new Map<string, KeySet>();
/** Key sets fetched through an injected fetch (tests), kept apart from the real ones. */
const injectedKeySets = new WeakMap<FetchImplementation, Map<string, KeySet>>();

/** Configuration warnings already logged by this isolate. */
const logged = new Set<string>();
function logOnce(key: string, write: () => void): void {
  if (logged.has(key)) return;
  logged.add(key);
  write();
}

/** JWKS_URL answered something other than 200 (jose itself would only say "Expected 200 OK"). */
class KeySetHttpError extends Error {
  override name = "KeySetHttpError";
}

function secretKey(secret: string): Uint8Array {
  let key = secretKeys.get(secret);
  if (!key) secretKeys.set(secret, (key = encoder.encode(secret)));
  return key;
}

function publicKey(pem: string, alg: AsymmetricAlg): Promise<CryptoKey> {
  const cacheKey = `${alg}\n${pem}`;
  let key = publicKeys.get(cacheKey);
  if (!key) {
    key = importSPKI(pem, alg);
    // A bad PEM is a configuration error: do not cache the rejection forever.
    key.catch(() => publicKeys.delete(cacheKey));
    publicKeys.set(cacheKey, key);
  }
  return key;
}

/** JWKS_URL without its query or credentials, for the log. */
function urlForLog(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

function remoteKeySet(jwksUrl: string, fetchImpl: FetchImplementation | undefined): KeySet {
  let url: URL;
  try {
    url = new URL(jwksUrl);
  } catch (cause) {
    throw new RoomcastError("server_misconfigured", "JWKS_URL is not a valid URL", { cause });
  }
  const doFetch: FetchImplementation = fetchImpl ?? ((href, init) => fetch(href, init));
  const fetchSet: FetchImplementation = async (href, init) => {
    const response = await doFetch(href, init);
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {});
      throw new KeySetHttpError(`JWKS_URL answered HTTP ${response.status}`);
    }
    return response;
  };
  // jose caches the fetched set and refetches (rate-limited) when a token names an unknown `kid`.
  // A failed fetch is not cached: the next verification tries again.
  return createRemoteJWKSet(url, { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5_000, [customFetch]: fetchSet });
}

function keySet(config: AuthConfig): KeySet | undefined {
  const source = config.jwksUrl ?? config.jwks;
  if (!source) return undefined;
  let cache = keySets;
  if (config.jwksUrl && config.fetchJwks) {
    cache = injectedKeySets.get(config.fetchJwks) ?? new Map();
    injectedKeySets.set(config.fetchJwks, cache);
  }
  let set = cache.get(source);
  if (!set) {
    if (config.jwksUrl) {
      set = remoteKeySet(config.jwksUrl, config.fetchJwks);
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(config.jwks!);
      } catch (cause) {
        throw new RoomcastError("server_misconfigured", "JWKS is not valid JSON", { cause });
      }
      try {
        set = createLocalJWKSet(parsed as Parameters<typeof createLocalJWKSet>[0]) as unknown as KeySet;
      } catch (cause) {
        throw new RoomcastError("server_misconfigured", 'JWKS is not a JSON Web Key Set ({"keys": [...]})', { cause });
      }
    }
    cache.set(source, set);
  }
  return set;
}

/**
 * The key for a token from the key set. Only "no key (or several) for this `kid`" is
 * the token's fault. Anything else is the key set failing: JWKS_URL unreachable, timing
 * out, answering non-200, not JSON, not a key set, or holding a key that cannot be
 * imported. From JWKS_URL that is `auth_unavailable` (retry later); from the inline
 * JWKS it is a configuration error.
 */
async function keyFromSet(
  set: KeySet,
  config: AuthConfig,
  header: JWTHeaderParameters,
  input: FlattenedJWSInput,
): Promise<CryptoKey> {
  try {
    return await set(header, input);
  } catch (err) {
    if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw err;
    if (!config.jwksUrl) throw new RoomcastError("server_misconfigured", "a key in JWKS cannot be used", { cause: err });
    const reason = describeError(err);
    const cause = err instanceof Error && err.cause !== undefined ? { cause: describeError(err.cause) } : {};
    // Facts about the key set only: neither the token nor its header is logged.
    log("error", "auth.keyset_unavailable", { url: urlForLog(config.jwksUrl), error: reason, ...cause });
    throw new RoomcastError("auth_unavailable", `the key set (JWKS_URL) could not be used: ${reason.message}`, { cause: err });
  }
}

function allowedAlgorithms(config: AuthConfig): string[] {
  const algs = new Set<string>();
  if (config.secret) algs.add("HS256");
  if (config.publicKeyPem) algs.add(config.publicKeyAlg);
  if (config.jwksUrl || config.jwks) for (const a of ASYMMETRIC_ALGS) algs.add(a);
  return [...algs];
}

// ---- verification ------------------------------------------------------------

function unauthorized(message: string, cause?: unknown): RoomcastError {
  return new RoomcastError("unauthorized", message, { cause });
}

/** Maps jose's errors to ours; messages are generic so they never echo token contents. */
function mapJoseError(err: unknown): RoomcastError {
  if (err instanceof RoomcastError) return err;
  if (err instanceof joseErrors.JWTExpired) return new RoomcastError("token_expired", "token has expired", { cause: err });
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return unauthorized(`token claim "${err.claim}" check failed (${err.reason})`, err);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return unauthorized("token algorithm is not allowed", err);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return unauthorized("token signature is invalid", err);
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return unauthorized("no key matches the token's kid", err);
  }
  // keyFromSet maps key set failures itself; this is a safety net.
  if (err instanceof joseErrors.JWKSTimeout) return new RoomcastError("auth_unavailable", "key set fetch timed out", { cause: err });
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JOSEError) {
    return unauthorized("token is malformed", err);
  }
  return new RoomcastError("internal_error", "token verification failed unexpectedly", { cause: err });
}

/** Refuses the committed development secret and short secrets outside development. Never logs the secret. */
function checkSecret(secret: string, development: boolean): void {
  if (secret.startsWith(DEV_SECRET_PREFIX) && !development) {
    throw new RoomcastError(
      "server_misconfigured",
      "the development JWT secret is refused outside ENVIRONMENT=development; set a real secret with `wrangler secret put JWT_SECRET`",
    );
  }
  const bytes = secretKey(secret).byteLength;
  if (bytes >= MIN_SECRET_BYTES) return;
  const why = `JWT_SECRET is ${bytes} bytes; HS256 needs at least ${MIN_SECRET_BYTES} bytes (256 bits, RFC 7518 §3.2)`;
  if (development) {
    logOnce(`short-secret:${bytes}`, () =>
      log("warn", "auth.secret_too_short", { bytes, minimum: MIN_SECRET_BYTES, message: `${why}; accepted only because ENVIRONMENT=development` }),
    );
    return;
  }
  logOnce(`short-secret:${bytes}`, () =>
    log("error", "auth.secret_too_short", { bytes, minimum: MIN_SECRET_BYTES, message: `${why}; every token is refused until it is replaced` }),
  );
  // The client is not told the length (it would help guess the secret); the log has it.
  throw new RoomcastError(
    "server_misconfigured",
    `JWT_SECRET is shorter than ${MIN_SECRET_BYTES} bytes, which HS256 needs; set a longer one with \`wrangler secret put JWT_SECRET\` (e.g. \`openssl rand -base64 32\`)`,
  );
}

/** JWT_MAX_LIFETIME_SECONDS: `exp - iat`, and `exp - now` (so a missing or future `iat` does not get around it). */
function checkLifetime(payload: JWTPayload, config: AuthConfig, now: Date | undefined): void {
  const max = config.maxLifetimeSeconds;
  if (max <= 0) return;
  const exp = payload.exp!;
  if (typeof payload.iat === "number" && exp - payload.iat > max) {
    throw unauthorized(`token lifetime (exp - iat = ${exp - payload.iat} s) is longer than this server's maximum of ${max} s`);
  }
  const remaining = exp - Math.floor((now ?? new Date()).getTime() / 1000);
  if (remaining > max + config.clockToleranceSeconds) {
    throw unauthorized(`token expires in ${remaining} s, later than this server's maximum token lifetime of ${max} s allows`);
  }
}

export async function verifyToken(token: string, config: AuthConfig, now?: Date): Promise<VerifiedToken> {
  if (config.secret) checkSecret(config.secret, config.development);
  const algorithms = allowedAlgorithms(config);
  if (algorithms.length === 0) {
    // Without .dev.vars, ENVIRONMENT is wrangler.toml's "production": name both remedies.
    throw new RoomcastError(
      "server_misconfigured",
      "no signing key configured: set JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or JWKS (locally `npm run dev` creates .dev.vars with a development JWT_SECRET, then restart it; deployed: `wrangler secret put JWT_SECRET`)",
    );
  }
  if ((config.jwksUrl || config.jwks) && !config.audience && !config.development) {
    // Once per key set, which is once per isolate in a deployment.
    logOnce(`no-audience:${config.jwksUrl ?? config.jwks}`, () =>
      log("warn", "auth.no_audience", {
        keySet: config.jwksUrl ? "JWKS_URL" : "JWKS",
        message: "a key set is configured without JWT_AUDIENCE: tokens its identity provider issues for other applications are accepted too",
      }),
    );
  }
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw unauthorized("token is missing or too long");

  const jwks = keySet(config);
  const resolveKey = async (header: JWTHeaderParameters, input: FlattenedJWSInput) => {
    if (header.typ !== undefined && header.typ.toUpperCase() !== "JWT" && header.typ.toLowerCase() !== "application/jwt") {
      throw unauthorized("token typ must be JWT");
    }
    if (header.alg === "HS256") {
      if (!config.secret) throw unauthorized("token algorithm is not allowed");
      return secretKey(config.secret);
    }
    if (config.publicKeyPem && header.alg === config.publicKeyAlg && (!jwks || header.kid === undefined)) {
      return publicKey(config.publicKeyPem, config.publicKeyAlg);
    }
    if (jwks) return keyFromSet(jwks, config, header, input);
    throw unauthorized("token algorithm is not allowed");
  };

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, resolveKey, {
      algorithms,
      requiredClaims: ["exp", "sub"],
      clockTolerance: config.clockToleranceSeconds,
      ...(config.audience ? { audience: config.audience } : {}),
      ...(config.issuer ? { issuer: config.issuer } : {}),
      ...(now ? { currentDate: now } : {}),
    }));
  } catch (err) {
    throw mapJoseError(err);
  }
  checkLifetime(payload, config, now);

  const cap = v.safeParse(CapabilityClaim, payload[CAPABILITY_CLAIM] ?? {});
  if (!cap.success) throw unauthorized(`token claim "${CAPABILITY_CLAIM}" is malformed: it must map at most 64 room patterns (1-256 characters) to arrays of "subscribe", "publish", "presence", "admin"`);
  if (typeof payload.sub !== "string" || payload.sub.length === 0 || payload.sub.length > 200) {
    throw unauthorized('token claim "sub" must be a non-empty string of at most 200 characters');
  }
  let rate: RateClaim | undefined;
  if (payload.rate !== undefined) {
    const parsed = v.safeParse(RateClaim, payload.rate);
    if (!parsed.success) throw unauthorized('token claim "rate" is malformed: it must be {"perSecond": 1-10000, "burst": 1-100000} (integers)');
    rate = parsed.output;
  }
  return { userId: payload.sub, cap: cap.output, expiresAt: payload.exp!, ...(rate ? { rate } : {}) };
}
