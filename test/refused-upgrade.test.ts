/**
 * Refused upgrades are readable (docs/protocol.md §5, contract C1): an upgrade that
 * offered roomcast.v1 and fails a check gets 101 + roomcast.v1, one id-less error
 * frame and the close code of that error; anything else keeps its HTTP error.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { BEARER_PROTOCOL_PREFIX, ERRORS, PROTOCOL_VERSION } from "@roomcast/protocol";
import { app } from "../src/index.js";
import { throwRoomRefusal } from "../src/http/refusal.js";
import { ORIGIN, connect, fetchWorker, token, uniqueRoom, upgrade } from "./helpers.js";
import { expectRefused, readRefusal } from "./refusals.js";

/** The upgrade request `upgrade()` sends, for app.request with a changed env. */
function upgradeInit(jwt: string | undefined, extra: Record<string, string> = {}): RequestInit {
  return {
    headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": PROTOCOL_VERSION, ...(jwt ? { Authorization: `Bearer ${jwt}` } : {}), ...extra },
  };
}

afterEach(() => vi.restoreAllMocks());

describe("a refused upgrade that offered roomcast.v1", () => {
  it("invalid room name (check 1): error frame, close 4504", async () => {
    await expectRefused(await upgrade("-starts-with-a-dash", await token()), "invalid_room", /room names/);
  });

  it("Origin not allowed (check 2): close 4505, the message names the Origin", async () => {
    await expectRefused(await upgrade(uniqueRoom(), await token(), { origin: "https://evil.test" }), "origin_not_allowed", /https:\/\/evil\.test/);
  });

  it("token in the subprotocol but no Origin (check 2): close 4505", async () => {
    await expectRefused(await upgrade(uniqueRoom(), await token(), { via: "subprotocol" }), "origin_not_allowed", /Origin header/);
  });

  it("no token (check 5): close 4500", async () => {
    await expectRefused(await upgrade(uniqueRoom(), undefined), "unauthorized", /no token/);
  });

  it("no key configured (check 6): close 4507, and the message names the cause, not the generic description", async () => {
    const res = await app.request(`/v1/rooms/${uniqueRoom()}/ws`, upgradeInit(await token()), { ...env, JWT_SECRET: "" });
    await expectRefused(res, "server_misconfigured", /no signing key configured: set JWT_SECRET/);
  });

  it("bad or expired token (check 7): close 4500, close 4001", async () => {
    await expectRefused(await upgrade(uniqueRoom(), await token({ secret: "another-secret-of-at-least-32-bytes!!" })), "unauthorized");
    await expectRefused(await upgrade(uniqueRoom(), await token({ expiresIn: -60 })), "token_expired");
  });

  it("key set unreachable (check 7): close 4007, retryable", async () => {
    // An RS256 token naming a kid: the key is looked up in JWKS_URL, which tests cannot reach (599).
    const b64 = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const jwt = `${b64({ alg: "RS256", kid: "k1" })}.${b64({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 60 })}.c2ln`;
    const res = await app.request(`/v1/rooms/${uniqueRoom()}/ws`, upgradeInit(jwt), { ...env, JWT_SECRET: "", JWKS_URL: `https://keys.test/${uniqueRoom()}` });
    const refusal = await expectRefused(res, "auth_unavailable");
    // Server-side detail (the key set's URL and error) stays in the log.
    expect(JSON.stringify(refusal.frames)).not.toContain("keys.test");
  });

  it("no subscribe on the room (check 8): close 4501", async () => {
    await expectRefused(await upgrade(uniqueRoom("locked"), await token({ cap: { "open-*": ["subscribe"] } })), "forbidden", /subscribe/);
  });

  it("malformed resume query (check 9): close 4506", async () => {
    const res = await fetchWorker(`/v1/rooms/${uniqueRoom()}/ws?epoch=abc`, upgradeInit(await token()));
    await expectRefused(res, "invalid_request", /both epoch and after/);
  });

  it("too many connection attempts (check 10, the connect limiter): close 4008, retryable", async () => {
    const limiter = { limit: async () => ({ success: false }) } as unknown as RateLimit;
    const res = await app.request(`/v1/rooms/${uniqueRoom()}/ws`, upgradeInit(await token()), { ...env, CONNECT_LIMITER: limiter });
    await expectRefused(res, "rate_limited");
    expect(ERRORS.rate_limited.reconnect).toBe("retry");
  });

  it("banned by a kick (check 11, decided in the room): close 4502, and the room keeps no socket for it", async () => {
    const room = uniqueRoom();
    const admin = await token({ sub: "admin", cap: { "*": ["admin", "subscribe"] } });
    const kick = await fetchWorker(`/v1/rooms/${room}/connections/mallory?banSeconds=60`, { method: "DELETE", headers: { Authorization: `Bearer ${admin}` } });
    expect(kick.status).toBe(200);
    await expectRefused(await upgrade(room, await token({ sub: "mallory" })), "kicked", /banned from this room until/);
    const presence = await fetchWorker(`/v1/rooms/${room}/presence`, { headers: { Authorization: `Bearer ${admin}` } });
    expect(await presence.json()).toMatchObject({ members: [] });
  });

  it("room full (check 12, decided in the room): close 4003, and the room's sockets are untouched", async () => {
    const room = uniqueRoom();
    // MAX_CONNECTIONS_PER_ROOM is 4 in the test configuration.
    const members = await Promise.all([1, 2, 3, 4].map(async (i) => connect(room, await token({ sub: `u${i}` }))));
    await expectRefused(await upgrade(room, await token({ sub: "u5" })), "room_full", /4 connections/);
    // The four still work: a publish reaches them all.
    members[0]!.send({ type: "publish", id: "after-refusal", data: 1 });
    for (const m of members) expect((await m.next("message")).id).toBe("after-refusal");
    for (const m of members) m.close();
  });

  it("never echoes a token sent as subprotocol", async () => {
    const jwt = await token({ expiresIn: -60 });
    const res = await upgrade(uniqueRoom(), jwt, { via: "subprotocol", origin: ORIGIN });
    expect(res.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_VERSION);
    const refusal = await expectRefused(res, "token_expired");
    expect(JSON.stringify(refusal)).not.toContain(jwt);
  });

  it("logs one http.refused line with the code and what to do, without the token", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const jwt = await token();
    await readRefusal(await upgrade(uniqueRoom(), jwt, { via: "subprotocol", origin: "http://localhost:5173" }));
    const lines = warn.mock.calls.map((args) => String(args[0])).filter((line) => line.includes('"http.refused"'));
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: "warn", event: "http.refused", code: "origin_not_allowed", status: 403, via: "websocket" });
    expect(line.hint).toMatch(/^origin_not_allowed: Origin http:\/\/localhost:5173 is not in ALLOWED_ORIGINS — add it /);
    expect(lines[0]).not.toContain(jwt);
    expect(lines[0]).not.toContain(BEARER_PROTOCOL_PREFIX + jwt.slice(0, 10));
  });
});

describe("requests that did not offer roomcast.v1 keep their HTTP errors", () => {
  it("an upgrade without roomcast.v1 gets HTTP, whatever check fails", async () => {
    const bad = await upgrade("-bad-name", await token(), { protocols: ["chat"] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_room" } });
    const origin = await upgrade(uniqueRoom(), await token(), { protocols: [], origin: "https://evil.test" });
    expect(origin.status).toBe(403);
    expect(await origin.json()).toMatchObject({ error: { code: "origin_not_allowed" } });
    const proto = await upgrade(uniqueRoom(), await token(), { protocols: ["roomcast.v0"] });
    expect(proto.status).toBe(400);
    expect(await proto.json()).toMatchObject({ error: { code: "unsupported_protocol" } });
  });

  it("a plain GET of the socket route offering roomcast.v1 (no Upgrade) gets HTTP", async () => {
    const res = await fetchWorker(`/v1/rooms/${uniqueRoom()}/ws`, { headers: { "Sec-WebSocket-Protocol": PROTOCOL_VERSION } });
    expect(res.status).toBe(426);
    expect(await res.json()).toMatchObject({ error: { code: "upgrade_required" } });
  });

  it("the HTTP API keeps its HTTP errors", async () => {
    const res = await fetchWorker(`/v1/rooms/${uniqueRoom()}/messages`, { headers: { Origin: "https://evil.test", Upgrade: "websocket", "Sec-WebSocket-Protocol": PROTOCOL_VERSION } });
    expect(res.status).toBe(403);
    const unauth = await fetchWorker(`/v1/rooms/${uniqueRoom()}/messages`);
    expect(unauth.status).toBe(401);
  });

  it("HTTP still names the missing key (server_misconfigured), never the generic description", async () => {
    const res = await app.request(`/v1/rooms/${uniqueRoom()}/messages`, { headers: { Authorization: `Bearer ${await token()}` } }, { ...env, JWT_SECRET: "" });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("server_misconfigured");
    expect(body.error.message).toMatch(/no signing key configured: set JWT_SECRET/);
  });
});

describe("a refusal from the room", () => {
  it("becomes internal_error when the room's answer is not a JSON error", async () => {
    await expect(throwRoomRefusal(new Response("oops", { status: 500 }))).rejects.toMatchObject({ code: "internal_error" });
    await expect(throwRoomRefusal(Response.json({ error: { code: "room_full", message: "full" } }, { status: 503 }))).rejects.toMatchObject({ code: "room_full", message: "full" });
  });
});

describe("the dev server's own origin", () => {
  const ownOrigin = "http://localhost:8788"; // a second `npm run dev` moves to 8788

  it("is allowed in development, on whatever port it got", async () => {
    const dev = { ...env, ENVIRONMENT: "development", ALLOWED_ORIGINS: "http://localhost:8787" };
    const res = await app.request(`${ownOrigin}/v1/rooms/${uniqueRoom()}/messages`, { headers: { Origin: ownOrigin, Authorization: `Bearer ${await token()}` } }, dev);
    expect(res.status).toBe(200);
    // Another origin is still refused in development.
    const other = await app.request(`${ownOrigin}/v1/rooms/${uniqueRoom()}/messages`, { headers: { Origin: "http://localhost:5173", Authorization: `Bearer ${await token()}` } }, dev);
    expect(other.status).toBe(403);
  });

  it("is not allowed outside development (production rules unchanged)", async () => {
    for (const ENVIRONMENT of ["production", "test", undefined]) {
      const prod = { ...env, ENVIRONMENT, ALLOWED_ORIGINS: "http://localhost:8787" };
      const res = await app.request(`${ownOrigin}/v1/rooms/${uniqueRoom()}/messages`, { headers: { Origin: ownOrigin, Authorization: `Bearer ${await token()}` } }, prod);
      expect(res.status, String(ENVIRONMENT)).toBe(403);
    }
  });

  it("lets a browser upgrade from the dev server's own origin through", async () => {
    const dev = { ...env, ENVIRONMENT: "development", ALLOWED_ORIGINS: "" };
    const res = await app.request(`${ownOrigin}/v1/rooms/${uniqueRoom()}/ws`, {
      headers: { Upgrade: "websocket", Origin: ownOrigin, "Sec-WebSocket-Protocol": `${PROTOCOL_VERSION}, ${BEARER_PROTOCOL_PREFIX}${await token()}` },
    }, dev);
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    const first = new Promise<unknown>((resolve) => ws.addEventListener("message", (e) => resolve(JSON.parse(String(e.data)))));
    ws.accept();
    expect(await first).toMatchObject({ type: "welcome" });
    ws.close(1000);
  });
});

