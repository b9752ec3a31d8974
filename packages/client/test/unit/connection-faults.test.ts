/**
 * The connection never gets stuck and never fails silently (#12 §1, §2): a token
 * provider or HTTP probe that hangs, an `offline` whose close event never comes, a
 * server announcing absurd limits, dead links, codes this version does not know, a
 * provider that says "stop", no WebSocket at all, and refusals a server explains
 * with an error frame before closing.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ClientOptions, RoomcastClient } from "../../src/client.js";
import { createClient } from "../../src/client.js";
import { Connection, type ConnectionHandler, type StateChange } from "../../src/connection.js";
import { DEFAULT_BACKOFF } from "../../src/backoff.js";
import { RoomcastClientError } from "../../src/errors.js";
import { FakeSocket, advance, fakeSockets, observe, testClient } from "./fake-socket.js";

const NOW = new Date("2030-01-01T00:00:00Z");
const PING = '{"type":"ping"}';
const defaults: Partial<ClientOptions> = {
  backoff: { minMs: 1_000, maxMs: 8_000, factor: 2 },
  connectTimeoutMs: 5_000,
  minUptimeMs: 2_000,
  pingIntervalMs: 3_600_000,
  pongTimeoutMs: 5_000,
};

let client: RoomcastClient | undefined;

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(NOW);
});

afterEach(() => {
  client?.close();
  client = undefined;
  vi.useRealTimers();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

function start(options: Partial<ClientOptions> = {}, name = "lobby") {
  const setup = testClient({ ...defaults, ...options });
  client = setup.client;
  const room = setup.client.room(name);
  const states: StateChange[] = [];
  room.on("state", (change) => states.push(change));
  return { ...setup, room, states, latest: () => states.at(-1)! };
}

const limits = (livenessTimeoutSeconds: number) => ({ maxMessageBytes: 65_536, publishRatePerSecond: 20, publishBurst: 40, livenessTimeoutSeconds });
const pings = (socket: FakeSocket) => socket.sent.filter((t) => t === PING).length;

describe("an attempt is bounded by connectTimeoutMs as a whole", () => {
  it("times out a token provider that never answers, and retries with backoff", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    let calls = 0;
    const token = vi.fn(() => (++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve("token-2")));
    const { room, server, latest } = start({ token });
    await advance();
    expect(room.state).toBe("connecting");

    await advance(4_999);
    expect(room.state).toBe("connecting");
    await advance(1);
    expect(latest()).toMatchObject({ oldState: "connecting", newState: "reconnecting", retryInMs: 500 });
    expect(latest().error?.code).toBe("connect_timeout");
    expect(server.sockets).toHaveLength(0);

    await advance(500);
    expect(token).toHaveBeenCalledTimes(2);
    server.last().welcome();
    expect(room.state).toBe("connected");
  });

  it("ignores a provider that answers after its attempt timed out", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    let release: (token: string) => void = () => {};
    let calls = 0;
    const token = () => (++calls === 1 ? new Promise<string>((resolve) => (release = resolve)) : new Promise<string>(() => {}));
    const { room, server } = start({ token });
    await advance(5_000); // the first attempt times out...
    await advance(500); // ...and the second one is waiting on the provider
    release("late-token");
    await advance();
    expect(server.sockets).toHaveLength(0); // no socket for the dead attempt
    expect(room.state).toBe("connecting");
  });

  it("bounds the HTTP probe: a hanging fetch (that ignores its signal) does not hold the retry", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const signals: AbortSignal[] = [];
    const fetch = vi.fn((_url: RequestInfo | URL, init?: RequestInit) => {
      signals.push(init!.signal!);
      return new Promise<Response>(() => {});
    });
    const { room, server, latest } = start({ fetch });
    await advance();
    server.last().refuse();
    await advance(2_999);
    expect(room.state).toBe("connecting"); // the probe may take up to 3 s
    await advance(1);
    expect(signals[0]?.aborted).toBe(true);
    expect(latest()).toMatchObject({ newState: "reconnecting", retryInMs: 500 });
  });

  it("recovers on its own when upgrades are reset and plain HTTP hangs, once the network heals", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.999);
    const fetch = vi.fn(() => new Promise<Response>(() => {}));
    const { room, server } = start({ fetch });
    await advance();
    // 40 s of a half-broken proxy: every upgrade is reset, every probe hangs.
    const brokenUntil = Date.now() + 40_000;
    while (Date.now() < brokenUntil) {
      const socket = server.last();
      if (socket.readyState === 0) socket.refuse();
      await advance(100);
    }
    expect(room.state).not.toBe("connected");
    const opened = server.sockets.length;
    expect(opened).toBeGreaterThan(5); // it kept trying all along

    // Healed: the next attempt, within one network backoff period (+ the probe), succeeds.
    const healedAt = Date.now();
    while (server.last().readyState !== 0 || server.sockets.length === opened) await advance(100);
    server.last().welcome();
    expect(room.state).toBe("connected");
    expect(Date.now() - healedAt).toBeLessThanOrEqual(DEFAULT_BACKOFF.networkMaxMs + 3_000);
  });
});

describe("offline", () => {
  it("drops the socket at once, without waiting for a close event that comes late or never", async () => {
    const { room, server, latest } = start();
    await advance();
    const socket = server.last();
    socket.welcome();
    // Like a stack that delivers `close` seconds late (or never): closing only marks it CLOSING.
    socket.close = (code?: number, reason?: string) => {
      socket.closeCalls.push({ code, reason });
      socket.readyState = 2;
    };
    room.nudge("offline");
    expect(room.state).toBe("reconnecting");
    expect(latest()).toMatchObject({ oldState: "connected", newState: "reconnecting" });
    expect(socket.closeCalls).toHaveLength(1);

    // `online` retries now, on a new socket.
    room.nudge("online");
    await advance();
    expect(server.sockets).toHaveLength(2);
    server.last().welcome();
    expect(room.state).toBe("connected");
  });

  it("cancels an attempt still waiting for the token provider", async () => {
    const token = vi.fn(() => new Promise<string>(() => {}));
    const { room, server } = start({ token });
    await advance();
    expect(room.state).toBe("connecting");
    room.nudge("offline");
    expect(room.state).toBe("reconnecting");
    expect(server.sockets).toHaveLength(0);
  });
});

describe("welcome.limits are clamped", () => {
  it.each([0, -5, 0.0001])("livenessTimeoutSeconds %s: pings at most once a second, never spins", async (liveness) => {
    const { server } = start({ pingIntervalMs: 15_000 });
    await advance();
    const socket = server.last();
    socket.welcome({ limits: limits(liveness) });
    for (let i = 0; i < 10; i++) {
      await advance(1_000);
      socket.pong();
    }
    expect(pings(socket)).toBeLessThanOrEqual(10);
  });

  it("ignores a liveness timeout that is not a finite number (1e400 parses as Infinity)", async () => {
    const { server } = start({ pingIntervalMs: 15_000 });
    await advance();
    const socket = server.last();
    socket.open();
    const text = JSON.stringify({ type: "welcome", protocol: "roomcast.v1", room: "lobby", connectionId: "c", userId: "alice", epoch: "e", seq: 0, replay: 0, permissions: ["subscribe"], expiresAt: Math.floor(Date.now() / 1000) + 3600, limits: limits(1) }).replace('"livenessTimeoutSeconds":1', '"livenessTimeoutSeconds":1e400');
    socket.receive(text);
    await advance(14_999);
    expect(pings(socket)).toBe(0);
    await advance(1);
    expect(pings(socket)).toBe(1);
  });

  it("derives the pong timeout from the server's liveness timeout (a third of it), the app's value an upper bound", async () => {
    const { room, server } = start({ pingIntervalMs: 15_000, pongTimeoutMs: 10_000 });
    await advance();
    const socket = server.last();
    socket.welcome({ limits: limits(9) }); // ping every 3 s, pong within 3 s
    await advance(3_000);
    expect(pings(socket)).toBe(1);
    await advance(2_999);
    expect(room.state).toBe("connected");
    await advance(1);
    expect(room.state).toBe("reconnecting"); // noticed at 6 s, before the server's 9 s
  });
});

describe("dead links", () => {
  class TerminableSocket extends FakeSocket {
    terminated = 0;
    terminate(): void {
      this.terminated++;
      this.readyState = 3;
    }
  }

  it("terminates a socket that has terminate() (the ws package) on a pong timeout, and drops its handlers", async () => {
    const sockets: TerminableSocket[] = [];
    const { room } = start({
      pingIntervalMs: 10_000,
      pongTimeoutMs: 3_000,
      createSocket: (url, protocols, headers) => {
        const s = new TerminableSocket(url, protocols, headers);
        sockets.push(s);
        return s;
      },
    });
    await advance();
    sockets[0]!.welcome();
    await advance(13_000);
    expect(room.state).toBe("reconnecting");
    expect(sockets[0]!.terminated).toBe(1);
    expect(sockets[0]!.closeCalls).toEqual([]); // no closing handshake to wait for
    expect(sockets[0]!.onmessage).toBeNull();
    expect(sockets[0]!.onclose).toBeNull();
    expect(typeof sockets[0]!.onerror).toBe("function"); // a no-op: ws throws on unheard errors
    expect(() => sockets[0]!.onerror!({})).not.toThrow();
  });

  it("closes one without terminate() and moves on without waiting for its close event", async () => {
    const { room, server } = start({ pingIntervalMs: 10_000, pongTimeoutMs: 3_000 });
    await advance();
    const socket = server.last();
    socket.welcome();
    await advance(13_000);
    expect(socket.closeCalls).toEqual([{ code: 4000, reason: "pong timeout" }]);
    expect(room.state).toBe("reconnecting");
    expect(socket.onclose).toBeNull();
  });
});

describe("codes this version does not know", () => {
  it("an unknown error code answering a publish rejects it with that code (a generic error)", async () => {
    const { room, server } = start();
    await advance();
    server.last().welcome();
    const sent = observe(room.publish("x", { id: "p-1" }));
    server.last().receive(JSON.stringify({ type: "error", code: "quota_exhausted", message: "try tomorrow", id: "p-1" }));
    await advance();
    expect(sent.status).toBe("rejected");
    expect(sent.error).toBeInstanceOf(RoomcastClientError);
    expect((sent.error as RoomcastClientError).code).toBe("quota_exhausted");
    expect(room.state).toBe("connected");
  });

  it("an unknown error code without an id is an error event, and the connection stays", async () => {
    const { room, server } = start();
    await advance();
    server.last().welcome();
    const errors: RoomcastClientError[] = [];
    room.on("error", (e) => errors.push(e));
    server.last().receive(JSON.stringify({ type: "error", code: "new_thing", message: "hello from the future" }));
    expect(errors.map((e) => e.code)).toEqual(["new_thing"]);
    expect(room.state).toBe("connected");
    expect(server.last().closedByClient).toBe(false);
  });

  it("an unknown reconnect reason is honoured like a drain hint", async () => {
    const { server, latest } = start();
    await advance();
    server.last().welcome();
    server.last().receive(JSON.stringify({ type: "reconnect", delayMs: 7_000, reason: "maintenance" }));
    server.last().serverClose(4000);
    expect(latest()).toMatchObject({ newState: "reconnecting", retryInMs: 7_000 });
  });
});

describe("a token provider that says stop", () => {
  const stops: [string, () => Promise<string | null> | null, string][] = [
    ["returns null", () => null, "unauthorized"],
    ["throws a terminal RoomcastClientError (forbidden)", () => Promise.reject(new RoomcastClientError("forbidden", "signed out")), "forbidden"],
    [
      "throws a terminal RoomcastClientError (unauthorized)",
      () => {
        throw new RoomcastClientError("unauthorized", "account gone");
      },
      "unauthorized",
    ],
  ];
  it.each(stops)("%s: failed with that error, no socket, no retry", async (_label, token, code) => {
    const { room, server, latest } = start({ token });
    await advance();
    expect(room.state).toBe("failed");
    expect(latest().error?.code).toBe(code);
    await advance(60 * 60_000);
    expect(server.sockets).toHaveLength(0);
  });

  it("a retryable RoomcastClientError from the provider is retried", async () => {
    let calls = 0;
    const token = () => (++calls === 1 ? Promise.reject(new RoomcastClientError("auth_unavailable", "idp down")) : Promise.resolve("ok"));
    const { room, server } = start({ token });
    await advance();
    expect(room.state).toBe("reconnecting");
    await advance(8_000);
    server.last().welcome();
    expect(room.state).toBe("connected");
  });

  it("null at refresh time ends the session", async () => {
    let calls = 0;
    const token = () => (++calls === 1 ? "first" : null);
    const { room, server, latest } = start({ token, refreshLeadMs: 60_000 });
    await advance();
    server.last().welcome({ expiresAt: Math.floor(Date.now() / 1000) + 120 });
    await advance(60_000);
    expect(room.state).toBe("failed");
    expect(latest().error?.code).toBe("unauthorized");
  });
});

describe("no WebSocket implementation (Node 20 without one injected)", () => {
  it("fails at once with websocket_unavailable, telling to pass WebSocket", async () => {
    vi.stubGlobal("WebSocket", undefined);
    const c = createClient({ url: "http://rc.test", token: "t", fetch: () => Promise.reject(new Error("no")) });
    client = c;
    const room = c.room("lobby");
    const states: StateChange[] = [];
    room.on("state", (s) => states.push(s));
    await advance();
    expect(room.state).toBe("failed");
    expect(states.at(-1)?.error?.code).toBe("websocket_unavailable");
    expect(states.at(-1)?.error?.message).toMatch(/WebSocket/);
    await advance(60_000);
    expect(states.map((s) => s.newState)).toEqual(["connecting", "failed"]);
  });
});

describe("a refusal the server explains with an error frame before closing (protocol.md §5)", () => {
  it.each([
    ["origin_not_allowed", 4505, "failed"],
    ["invalid_room", 4504, "failed"],
    ["unauthorized", 4500, "failed"],
    ["forbidden", 4501, "failed"],
    ["server_misconfigured", 4507, "failed"],
    ["invalid_request", 4506, "failed"],
    ["room_full", 4003, "reconnecting"],
    ["too_many_connections", 4006, "reconnecting"],
    ["rate_limited", 4008, "reconnecting"],
    ["auth_unavailable", 4007, "reconnecting"],
  ] as const)("%s (close %i) surfaces within one attempt as %s with the server's message, without a probe", async (code, closeCode, state) => {
    const fetch = vi.fn(() => Promise.reject(new Error("must not probe")));
    const { room, server, latest } = start({ fetch });
    await advance();
    const socket = server.last();
    socket.open();
    socket.error(code, undefined, `refused: ${code}`);
    socket.serverClose(closeCode, code);
    await advance();
    expect(room.state).toBe(state);
    expect(latest().error?.code).toBe(code);
    expect(latest().error?.message).toBe(`refused: ${code}`);
    expect(server.sockets).toHaveLength(1);
    expect(fetch).not.toHaveBeenCalled();
  });
});

describe("identity (contracts C2)", () => {
  const b64url = (json: unknown) => Buffer.from(JSON.stringify(json)).toString("base64url");
  const jwt = (payload: unknown) => `${b64url({ alg: "HS256" })}.${b64url(payload)}.sig`;

  function connection(token: () => string) {
    const server = fakeSockets();
    const seen: (string | undefined)[] = [];
    const handler: ConnectionHandler = {
      resumePosition: () => undefined,
      identity: (userId) => seen.push(userId),
      welcome: () => {},
      frame: () => {},
      down: () => {},
    };
    const conn = new Connection(
      {
        url: "http://rc.test",
        room: "lobby",
        token,
        transport: "header",
        createSocket: server.createSocket,
        backoff: DEFAULT_BACKOFF,
        connectTimeoutMs: 5_000,
        minUptimeMs: 1_000,
        pingIntervalMs: 3_600_000,
        pongTimeoutMs: 5_000,
        refreshLeadMs: 60_000,
        fetch: undefined,
        debug: () => {},
      },
      handler,
    );
    return { conn, server, seen };
  }

  it("reports each attempt's token sub (decoded, unverified) before the socket opens", async () => {
    const tokens = [jwt({ sub: "alice" }), jwt({ sub: "bøb✓" }), "not-a-jwt", jwt({ sub: 42 })];
    let i = 0;
    const { conn, server, seen } = connection(() => tokens[i++]!);
    conn.connect();
    await advance();
    expect(seen).toEqual(["alice"]);
    expect(server.sockets).toHaveLength(1);
    for (let n = 0; n < 3; n++) {
      server.last().serverClose(1006);
      conn.nudge();
      await advance();
    }
    expect(seen).toEqual(["alice", "bøb✓", undefined, undefined]);
    conn.close();
  });
});

describe("a fixed token string that expired (token_expired cannot be helped by retrying)", () => {
  const expiredProbe = () =>
    vi.fn(async () => new Response(JSON.stringify({ error: { code: "token_expired", message: "expired" } }), { status: 401, headers: { "content-type": "application/json" } }));

  it("fails with token_expired when an open socket closes with 4001, and never sends the dead token again", async () => {
    const { room, server, latest } = start({ token: "fixed.token" });
    await advance();
    server.last().welcome();
    server.last().serverClose(4001, "token expired");
    await advance();
    expect(room.state).toBe("failed");
    expect(latest().error?.code).toBe("token_expired");
    expect(latest().error?.message).toMatch(/token provider/);
    await advance(60 * 60_000);
    expect(server.sockets).toHaveLength(1);
  });

  it("fails when the server refuses the upgrade with a token_expired error frame", async () => {
    const { room, server, latest } = start({ token: "fixed.token" });
    await advance();
    server.last().open();
    server.last().error("token_expired", undefined, "The token has expired");
    await advance(60 * 60_000);
    expect(room.state).toBe("failed");
    expect(latest().error?.code).toBe("token_expired");
    expect(latest().error?.message).toMatch(/^The token has expired; /);
    expect(server.sockets).toHaveLength(1);
  });

  it("fails when the HTTP probe of a refused upgrade says token_expired", async () => {
    const fetch = expiredProbe();
    const { room, server, latest } = start({ token: "fixed.token", fetch });
    await advance();
    server.last().refuse();
    await advance(60 * 60_000);
    expect(room.state).toBe("failed");
    expect(latest().error?.code).toBe("token_expired");
    expect(server.sockets).toHaveLength(1);
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("with a token provider, 4001 still fetches a fresh token and retries", async () => {
    let n = 0;
    const { room, server } = start({ token: () => `token-${++n}` });
    await advance();
    server.last().welcome();
    server.last().serverClose(4001);
    await advance();
    expect(server.sockets).toHaveLength(2);
    server.last().welcome();
    expect(room.state).toBe("connected");
  });
});

describe("the token never reaches an error message", () => {
  const SECRET = "eyJhbGciOi.c2VjcmV0.sig";

  it.each([
    ["a Bearer prefix", `Bearer ${SECRET}`, /starts with "Bearer "/],
    ["quotes", `"${SECRET}"`, /quotes or whitespace/],
    ["a trailing newline", `${SECRET}\n`, /quotes or whitespace/],
  ])("a provider's token with %s: token_unavailable without echoing it, no socket, retried", async (_label, bad, hint) => {
    let calls = 0;
    const { room, server, latest } = start({ transport: "subprotocol", token: () => (++calls === 1 ? bad : SECRET) });
    await advance();
    expect(server.sockets).toHaveLength(0);
    expect(room.state).toBe("reconnecting");
    const error = latest().error!;
    expect(error.code).toBe("token_unavailable");
    expect(error.message).toMatch(hint);
    expect(error.message).not.toContain(SECRET);
    expect(JSON.stringify({ message: error.message, cause: String(error.cause) })).not.toContain("c2VjcmV0");
    await advance(8_000);
    expect(server.last().protocols).toEqual(["roomcast.v2", "roomcast.v1", `roomcast.bearer.${SECRET}`]);
  });

  it("a fixed token string with characters a token cannot have fails for good (it cannot change)", async () => {
    const { room, server, latest } = start({ transport: "header", token: `Bearer ${SECRET}` });
    await advance(60_000);
    expect(room.state).toBe("failed");
    expect(latest().error?.code).toBe("token_unavailable");
    expect(latest().error?.message).not.toContain(SECRET);
    expect(server.sockets).toHaveLength(0);
  });

  it("accepts a token68 with / and = padding in the Authorization header (not allowed in a subprotocol)", async () => {
    const { server, client: first } = start({ transport: "header", token: "abc/def+ghi==" });
    await advance();
    expect(server.last().headers.Authorization).toBe("Bearer abc/def+ghi==");
    first.close();
    const sub = start({ transport: "subprotocol", token: "abc/def+ghi==" });
    await advance();
    expect(sub.server.sockets).toHaveLength(0);
    expect(sub.latest().error?.code).toBe("token_unavailable");
  });

  it("a WebSocket constructor whose error quotes the token (Chrome's SyntaxError): only the error's name in the text, the cause scrubbed", async () => {
    const { room, latest } = start({
      transport: "subprotocol",
      token: SECRET,
      createSocket: (_url, protocols) => {
        const error = new Error(`Failed to construct 'WebSocket': The subprotocol '${protocols.at(-1)}' is invalid.`);
        error.name = "SyntaxError";
        throw error;
      },
    });
    await advance();
    expect(room.state).toBe("reconnecting");
    const error = latest().error!;
    expect(error.code).toBe("internal_error");
    expect(error.message).toBe("could not open a WebSocket (SyntaxError)");
    expect((error.cause as Error).name).toBe("SyntaxError");
    expect((error.cause as Error).message).toContain("roomcast.bearer.[redacted]");
    expect((error.cause as Error).message).not.toContain(SECRET);
  });
});
