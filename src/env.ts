import type { Room } from "./room/room.js";
import type { RoomsDirectory } from "./directory/directory.js";
import type { Identity } from "./auth/identity.js";

/** Bindings and vars from wrangler.toml, `.dev.vars` and `wrangler secret put`. */
export interface Env {
  ROOMS: DurableObjectNamespace<Room>;
  /**
   * The rooms directory, 16 shards by room-name hash (src/directory/), and one more instance that holds the
   * feature-flag overrides (src/flags/flag-store.ts). Optional: without it rooms just do not report and only FEATURE_FLAGS applies.
   */
  DIRECTORY?: DurableObjectNamespace<RoomsDirectory>;
  /** Workers Analytics Engine dataset `roomcast_rooms`: one data point per room per metrics flush (src/room/metrics.ts). Optional. */
  METRICS?: AnalyticsEngineDataset;
  /** Rate Limiting binding: WebSocket connection attempts per user per room (wrangler.toml [[ratelimits]]). Optional. */
  CONNECT_LIMITER?: RateLimit;
  /** "development" only under `wrangler dev` (set in .dev.vars); anything else is treated as production. */
  ENVIRONMENT?: string;
  ALLOWED_ORIGINS?: string;
  /** "enabled" turns on POST /dev/token (with ENVIRONMENT=development only). Set in .dev.vars. */
  DEV_TOKEN_ENDPOINT?: string;
  /** HS256 shared secret (local development, or simple deployments). Secret. */
  JWT_SECRET?: string;
  /** PEM (SPKI) public key for RS256 / ES256 / EdDSA tokens. */
  JWT_PUBLIC_KEY?: string;
  JWT_PUBLIC_KEY_ALG?: string;
  /** Remote JWKS, fetched and cached per isolate, keys picked by `kid`. */
  JWKS_URL?: string;
  /** Inline JWKS JSON (`{"keys":[...]}`), for static key sets. */
  JWKS?: string;
  JWT_AUDIENCE?: string;
  JWT_ISSUER?: string;
  JWT_CLOCK_TOLERANCE_SECONDS?: string;
  MAX_MESSAGE_BYTES?: string;
  PUBLISH_RATE_PER_SECOND?: string;
  PUBLISH_BURST?: string;
  MAX_CONNECTIONS_PER_ROOM?: string;
  MAX_CONNECTIONS_PER_USER?: string;
  JWT_MAX_LIFETIME_SECONDS?: string;
  HISTORY_ON_JOIN?: string;
  HISTORY_PAGE_MAX?: string;
  PRESENCE_STATE_MAX_BYTES?: string;
  LIVENESS_TIMEOUT_SECONDS?: string;
  PRESENCE_GRACE_SECONDS?: string;
  PRESENCE_MAX_DELAY_MS?: string;
  RETENTION_MAX_MESSAGES?: string;
  RETENTION_MAX_AGE_SECONDS?: string;
  RETENTION_MAX_BYTES?: string;
  REPLAY_PAGE_SIZE?: string;
  DRAIN_WINDOW_SECONDS?: string;
  MAX_UNCONFIRMED_BYTES?: string;
  /** "off" sends every live message in its own frame (for comparisons); default on. */
  BROADCAST_BATCHING?: string;
  /** Longest a live message may wait to share a frame in a busy room, in ms (default 0). */
  BROADCAST_MAX_DELAY_MS?: string;
  /** Feature flags, a JSON object `{"name": {"rollout": ..., "expose"?: bool}}` (src/flags/definition.ts, docs/operations.md "Feature flags"): a string, or a [vars] table (wrangler passes it parsed); anything else is reported as a config error. */
  FEATURE_FLAGS?: string | Record<string, unknown>;
}

type RoomcastEnv = Env;
declare global {
  // Lets `cloudflare:test` and `cloudflare:workers` see our bindings.
  namespace Cloudflare {
    interface Env extends RoomcastEnv {}
    interface GlobalProps {
      mainModule: typeof import("./index.js");
      durableNamespaces: "Room" | "RoomsDirectory";
    }
  }
}

/** Hono's typing: bindings plus the per-request variables our middleware sets. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    room: string;
    identity: Identity;
  };
}
