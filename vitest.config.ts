import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** Shared with the tests through `env.TEST_JWT_SECRET`; never a real secret. */
const TEST_JWT_SECRET = "roomcast-test-secret-0123456789abcdef0123456789abcdef";

const common = {
  ENVIRONMENT: "test",
  JWT_SECRET: TEST_JWT_SECRET,
  TEST_JWT_SECRET,
  JWT_AUDIENCE: "roomcast-test",
  JWT_ISSUER: "https://issuer.test",
  ALLOWED_ORIGINS: "https://app.example.com,http://localhost:8787",
};

/** Tests never reach the network: any outbound fetch fails loudly. */
const outboundService = (request: Request) =>
  new Response(`tests must not call out to the network (${new URL(request.url).host})`, { status: 599 });

/** The Worker and its rooms inside workerd, with these vars on top of the common ones. */
const workerd = (bindings: Record<string, string>) =>
  cloudflareTest({
    wrangler: { configPath: "./wrangler.toml" },
    miniflare: { bindings: { ...common, ...bindings }, outboundService },
  });

/**
 * The Worker's structured info lines (room.start, room.kicked, …) are one per room per test, and the
 * `http.refused` warning is what a refusal test expects: noise in test output. Other warnings and
 * errors still show; ROOMCAST_TEST_LOGS=1 shows everything.
 */
const quietInfo = (line: string) =>
  process.env.ROOMCAST_TEST_LOGS !== "1" && (line.startsWith('{"level":"info"') || line.startsWith('{"level":"warn","event":"http.refused"'))
    ? false
    : undefined;

export default defineConfig({
  test: {
    testTimeout: 15_000,
    onConsoleLog: quietInfo,
    projects: [
      {
        plugins: [
          workerd({
            // Small limits so each one can be hit quickly in tests.
            MAX_MESSAGE_BYTES: "1024",
            PUBLISH_RATE_PER_SECOND: "5",
            PUBLISH_BURST: "10",
            MAX_CONNECTIONS_PER_ROOM: "4",
            HISTORY_ON_JOIN: "5",
            HISTORY_PAGE_MAX: "20",
            PRESENCE_STATE_MAX_BYTES: "256",
            PRESENCE_GRACE_SECONDS: "2",
            // Each presence change on its own, so these tests can assert diff by diff; the
            // coalescing itself is tested in test/presence-fanout.test.ts and test/busy/.
            PRESENCE_MAX_DELAY_MS: "0",
            LIVENESS_TIMEOUT_SECONDS: "60",
            RETENTION_MAX_MESSAGES: "30",
            REPLAY_PAGE_SIZE: "5",
            DRAIN_WINDOW_SECONDS: "10",
            // The smallest flow-control budget (64 KiB), so a client that never confirms hits it quickly.
            MAX_UNCONFIRMED_BYTES: "65536",
            // Flags for test/flags.test.ts: an A/B split, a room pattern, one not exposed, the built-in.
            FEATURE_FLAGS: JSON.stringify({
              adaptive_batching: { rollout: "on" },
              new_composer: { rollout: { percent: 50, by: "user" }, expose: true },
              beta_rooms: { rollout: { rooms: ["beta-*"] }, expose: true },
              server_only: { rollout: "on" },
            }),
          }),
        ],
        // globalSetup: test/migration-attachments.test.ts imports earlier releases' attachment code, generated from git.
        test: { name: "worker", include: ["test/*.test.ts"], testTimeout: 15_000, globalSetup: ["./test/old-attachments.setup.ts"] },
      },
      {
        // Busy rooms: over 100 sockets (every broadcast opens a batching window), a
        // batching window held open, coalesced presence, room for bursts.
        plugins: [
          workerd({
            MAX_CONNECTIONS_PER_ROOM: "400",
            // Above the 55 sockets each crowd user holds in test/busy/joins.test.ts; test/busy/fair-use.test.ts
            // hits it (and stays under the Worker's 120 connection attempts a minute per user and room).
            MAX_CONNECTIONS_PER_USER: "60",
            PUBLISH_RATE_PER_SECOND: "10000",
            PUBLISH_BURST: "100000",
            BROADCAST_MAX_DELAY_MS: "40",
            PRESENCE_MAX_DELAY_MS: "150",
            HISTORY_ON_JOIN: "20",
            REPLAY_PAGE_SIZE: "7",
            PRESENCE_GRACE_SECONDS: "2",
          }),
        ],
        test: { name: "busy", include: ["test/busy/*.test.ts"], testTimeout: 30_000 },
      },
    ],
  },
});
