import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Room, type RoomcastClient, type StateChange } from "../../src/index.js";
import { mintToken, startServer, uniqueRoom, waitFor, type TestServer } from "./server.js";

let server: TestServer;
const clients: RoomcastClient[] = [];

beforeAll(async () => {
  // No clock tolerance, so a short token really expires when it says.
  server = await startServer({ JWT_CLOCK_TOLERANCE_SECONDS: "0" });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await server?.dispose();
});

function track(room: Room): StateChange[] {
  const changes: StateChange[] = [];
  room.on("state", (c) => changes.push(c));
  return changes;
}

describe("token lifecycle", () => {
  it("refreshes in-band before expiry without reconnecting", async () => {
    let calls = 0;
    const c = createClient({
      url: server.url,
      token: () => mintToken({ sub: "alice", expiresInSeconds: ++calls === 1 ? 3 : 600 }),
      refreshLeadMs: 2_000,
    });
    clients.push(c);
    const room = c.room(uniqueRoom());
    const changes = track(room);
    await waitFor("connected", () => room.state === "connected");
    await new Promise((r) => setTimeout(r, 4_000)); // past the first token's expiry
    expect(calls).toBe(2); // one connect, one in-band refresh
    expect(changes.map((s) => s.newState)).toEqual(["connecting", "connected"]);
    expect(await room.publish("still the same socket")).toMatchObject({ seq: 1 });
  });

  it("on token_expired, fetches a fresh token, reconnects at once and resumes", async () => {
    let calls = 0;
    const c = createClient({
      url: server.url,
      token: () => mintToken({ sub: "bob", expiresInSeconds: ++calls === 1 ? 2 : 600 }),
      // Refresh "after" expiry, so the server closes first (as if the refresh was lost).
      refreshLeadMs: -60_000,
    });
    clients.push(c);
    const room = c.room(uniqueRoom());
    const changes = track(room);
    const recovered: unknown[] = [];
    room.on("recovered", (r) => recovered.push(r));
    expect(await room.publish("before expiry")).toMatchObject({ seq: 1 });
    await waitFor("closed for expiry and back", () => changes.some((s) => s.error?.code === "token_expired") && room.state === "connected", 20_000);
    const expiry = changes.find((s) => s.error?.code === "token_expired")!;
    expect(expiry).toMatchObject({ newState: "reconnecting", retryInMs: 0 });
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(recovered.length).toBe(1);
    expect(await room.publish("after refresh")).toMatchObject({ seq: 2 });
    expect(room.messages.map((m) => m.seq)).toEqual([1, 2]);
  });
});

describe("terminal and drain closes", () => {
  it("stops for good when kicked (terminal code), with no retries", async () => {
    const name = uniqueRoom();
    let attempts = 0;
    const c = createClient({
      url: server.url,
      token: () => (attempts++, mintToken({ sub: "mallory" })),
      backoff: { minMs: 10, maxMs: 50 },
    });
    clients.push(c);
    const room = c.room(name);
    await waitFor("connected", () => room.state === "connected");
    const admin = await mintToken({ sub: "ops", cap: { "*": ["admin"] } });
    const res = await fetch(`${server.url}/v1/rooms/${name}/connections/mallory`, { method: "DELETE", headers: { Authorization: `Bearer ${admin}` } });
    expect(await res.json()).toEqual({ closed: 1 });
    await waitFor("failed", () => room.state === "failed");
    const before = attempts;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(attempts).toBe(before);
    await expect(room.publish("nope")).rejects.toMatchObject({ code: "room_closed" });
  });

  it("spreads reconnects over the drain window and every client resumes", async () => {
    const name = uniqueRoom();
    const rooms: Room[] = [];
    for (let i = 0; i < 8; i++) {
      const c = createClient({ url: server.url, token: () => mintToken({ sub: `user-${i}` }) });
      clients.push(c);
      rooms.push(c.room(name));
    }
    await waitFor("all connected", () => rooms.every((r) => r.state === "connected"));
    await rooms[0]!.publish("before drain");
    const backAt = new Map<Room, number>();
    const recovered = new Set<Room>();
    for (const r of rooms) {
      r.on("state", (s) => s.newState === "connected" && backAt.set(r, Date.now()));
      r.on("recovered", () => recovered.add(r));
    }
    const admin = await mintToken({ sub: "ops", cap: { "*": ["admin"] } });
    const drainedAt = Date.now();
    const res = await fetch(`${server.url}/v1/rooms/${name}/drain`, {
      method: "POST",
      headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
      body: JSON.stringify({ windowSeconds: 3 }),
    });
    expect(await res.json()).toEqual({ connections: 8, windowMs: 3_000 });
    await waitFor("all back", () => backAt.size === 8, 15_000);
    const offsets = [...backAt.values()].map((t) => t - drainedAt).sort((a, b) => a - b);
    // Spread over the window, not a stampede: eight uniform draws over 3 s.
    expect(offsets[offsets.length - 1]! - offsets[0]!).toBeGreaterThan(600);
    expect(offsets[offsets.length - 1]!).toBeLessThan(3_000 + 3_000);
    expect(recovered.size).toBe(8);
    for (const r of rooms) expect(r.messages.map((m) => m.data)).toEqual(["before drain"]);
  });
});
