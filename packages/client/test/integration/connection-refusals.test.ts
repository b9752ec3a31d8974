/**
 * Every refused upgrade surfaces within ONE attempt as a named error on the `state`
 * event, against the real server (protocol.md §5: for a client that offered
 * `roomcast.v1` the Worker accepts, sends one `error` frame and closes with that
 * error's close code). No HTTP probe is needed (it is made to fail loudly here).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type RoomcastClient, type StateChange } from "../../src/index.js";
import type { SocketFactory } from "../../src/transport.js";
import { mintToken, startServer, uniqueRoom, waitFor, type TestServer } from "./server.js";

let server: TestServer;
const clients: RoomcastClient[] = [];

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  for (const c of clients) c.close();
  await server?.dispose();
});

async function attempt(options: { token: string | (() => Promise<string>); origin?: string; room?: string }) {
  let sockets = 0;
  let probes = 0;
  const createSocket: SocketFactory = (url, protocols, headers) => {
    sockets++;
    return new WebSocket(url, protocols, { headers: { ...headers, ...(options.origin ? { Origin: options.origin } : {}) } }) as never;
  };
  const client = createClient({
    url: server.url,
    token: options.token,
    createSocket,
    transport: "header",
    backoff: { minMs: 2_000, maxMs: 4_000, networkMaxMs: 4_000 }, // a second attempt would show
    fetch: async () => {
      probes++;
      throw new Error("no probe expected");
    },
  });
  clients.push(client);
  const room = client.room(options.room ?? uniqueRoom("refused"));
  const states: StateChange[] = [];
  room.on("state", (s) => states.push(s));
  const started = Date.now();
  await waitFor("a decision", () => states.some((s) => s.newState === "failed" || s.newState === "reconnecting"), 10_000);
  const decided = states.find((s) => s.newState === "failed" || s.newState === "reconnecting")!;
  return { decided, ms: Date.now() - started, sockets, probes, room };
}

describe("refused upgrades against the real server", () => {
  it("a page origin not in ALLOWED_ORIGINS: failed, origin_not_allowed", async () => {
    const r = await attempt({ token: () => mintToken({ sub: "alice" }), origin: "http://evil.test" });
    expect(r.decided.newState).toBe("failed");
    expect(r.decided.error?.code).toBe("origin_not_allowed");
    expect(r.decided.error?.message).toMatch(/origin/i);
    expect(r.sockets).toBe(1);
    expect(r.probes).toBe(0);
  });

  it("an invalid token: failed, unauthorized", async () => {
    const r = await attempt({ token: "not-a-jwt" });
    expect(r.decided.newState).toBe("failed");
    expect(r.decided.error?.code).toBe("unauthorized");
    expect(r.sockets).toBe(1);
    expect(r.probes).toBe(0);
  });

  it("a token without the room: failed, forbidden", async () => {
    const r = await attempt({ token: () => mintToken({ sub: "alice", cap: { "other-*": ["subscribe"] } }), room: uniqueRoom("mine") });
    expect(r.decided.newState).toBe("failed");
    expect(r.decided.error?.code).toBe("forbidden");
    expect(r.sockets).toBe(1);
    expect(r.probes).toBe(0);
  });

  it("an expired token: reconnecting with token_expired, and a fresh token gets in", async () => {
    let n = 0;
    const r = await attempt({ token: () => (n++ === 0 ? mintToken({ sub: "alice", expiresInSeconds: -60 }) : mintToken({ sub: "alice" })) });
    expect(r.decided.newState).toBe("reconnecting");
    expect(r.decided.error?.code).toBe("token_expired");
    await waitFor("connected with the fresh token", () => r.room.state === "connected", 10_000);
    expect(r.probes).toBe(0);
  });
});
