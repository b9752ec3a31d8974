/**
 * Numeric limits read from env vars. Every limit has a safe default; a value that is
 * missing, not an integer, or outside its bounds falls back to the default (with one
 * warning per isolate) rather than running the room unprotected.
 */
import type { Env } from "./env.js";

interface LimitSpec {
  readonly default: number;
  readonly min: number;
  readonly max: number;
}

export const LIMIT_SPECS = {
  MAX_MESSAGE_BYTES: { default: 65_536, min: 1, max: 1_048_576 },
  PUBLISH_RATE_PER_SECOND: { default: 20, min: 1, max: 10_000 },
  PUBLISH_BURST: { default: 40, min: 1, max: 100_000 },
  // The platform allows 32,768 hibernatable sockets per object; stay well under it.
  MAX_CONNECTIONS_PER_ROOM: { default: 5_000, min: 1, max: 32_000 },
  // One user (sub) may hold this many connections in one room: several tabs and devices, not the room.
  MAX_CONNECTIONS_PER_USER: { default: 10, min: 1, max: 32_000 },
  HISTORY_ON_JOIN: { default: 50, min: 0, max: 1_000 },
  HISTORY_PAGE_MAX: { default: 500, min: 1, max: 5_000 },
  JWT_CLOCK_TOLERANCE_SECONDS: { default: 5, min: 0, max: 300 },
  // Optional: refuse tokens whose lifetime (exp - iat, or exp - now without iat) is longer (0: no maximum).
  JWT_MAX_LIFETIME_SECONDS: { default: 0, min: 0, max: 31_536_000 },
  // Presence: custom state per connection, liveness, and the no-flap reconnect grace.
  PRESENCE_STATE_MAX_BYTES: { default: 1_024, min: 2, max: 8_192 },
  LIVENESS_TIMEOUT_SECONDS: { default: 60, min: 5, max: 3_600 },
  PRESENCE_GRACE_SECONDS: { default: 5, min: 0, max: 300 },
  // Presence changes are held this long and sent as one merged diff (0: every change at once).
  // Keeps a mass reconnect from costing N² sends.
  PRESENCE_MAX_DELAY_MS: { default: 50, min: 0, max: 1_000 },
  // Retention of the message log; resume reaches back exactly as far as this keeps.
  RETENTION_MAX_MESSAGES: { default: 10_000, min: 1, max: 10_000_000 },
  RETENTION_MAX_AGE_SECONDS: { default: 30 * 24 * 3_600, min: 60, max: 3_650 * 24 * 3_600 },
  // UTF-8 bytes of message data kept per room (oldest go first); the platform allows 10 GB of SQLite per object.
  RETENTION_MAX_BYTES: { default: 256 * 1_048_576, min: 1_024, max: 8 * 1_073_741_824 },
  // Replay of a resume is sent this many messages per turn, so a large gap never blocks the room.
  REPLAY_PAGE_SIZE: { default: 200, min: 1, max: 5_000 },
  // Default spread of reconnect hints when a room is drained.
  DRAIN_WINDOW_SECONDS: { default: 10, min: 0, max: 600 },
  // Flow control: most characters of message/history frames sent to one connection and not
  // confirmed by its `progress` reports; past it the room closes it with 4005 slow_consumer.
  MAX_UNCONFIRMED_BYTES: { default: 8 * 1_048_576, min: 65_536, max: 64 * 1_048_576 },
  // Opt-in: how long a live message may wait to share a frame in a busy room (0: no added wait).
  BROADCAST_MAX_DELAY_MS: { default: 0, min: 0, max: 1_000 },
} as const satisfies Record<string, LimitSpec>;

export type LimitName = keyof typeof LIMIT_SPECS;
export type Limits = { readonly [K in LimitName]: number };

const warned = new Set<string>();

export function readLimit(env: Env, name: LimitName): number {
  const spec = LIMIT_SPECS[name];
  const raw = env[name];
  if (raw === undefined || raw === "") return spec.default;
  const value = Number(raw);
  if (Number.isInteger(value) && value >= spec.min && value <= spec.max) return value;
  if (!warned.has(name)) {
    warned.add(name);
    console.warn(
      JSON.stringify({
        level: "warn",
        event: "config.invalid_limit",
        name,
        message: `${name} must be an integer in [${spec.min}, ${spec.max}]; using the default ${spec.default}`,
      }),
    );
  }
  return spec.default;
}

const cache = new WeakMap<Env, Limits>();

export function readLimits(env: Env): Limits {
  let limits = cache.get(env);
  if (!limits) {
    limits = Object.fromEntries(
      (Object.keys(LIMIT_SPECS) as LimitName[]).map((name) => [name, readLimit(env, name)]),
    ) as Limits;
    cache.set(env, limits);
  }
  return limits;
}
