import { describe, expect, it } from "vitest";
import type { ServerFrame } from "@roomcast/protocol";
import { connect, fetchWorker, httpPublish, token, uniqueRoom, upgrade } from "./helpers.js";
import { upgradeOutcome } from "./refusals.js";

// vitest.config.ts: PUBLISH_RATE_PER_SECOND=5, PUBLISH_BURST=10, HISTORY_PAGE_MAX=20,
// MAX_MESSAGE_BYTES=1024. One bucket per (room, user), shared by the user's sockets and HTTP.

const answered = (frames: ServerFrame[]) => frames.filter((f) => f.type === "ack" || f.type === "error");

async function httpPost(room: string, jwt: string, id: string) {
  return fetchWorker(`/v1/rooms/${room}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ id, data: id }),
  });
}

describe("rate limits per user", () => {
  it("share one bucket across a user's sockets: three sockets together get one burst, not three", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "many" });
    const sockets = [await connect(room, jwt), await connect(room, jwt), await connect(room, jwt)];
    await Promise.all(sockets.map((s) => s.next("welcome")));
    for (const [n, s] of sockets.entries()) for (let i = 0; i < 10; i++) s.send({ type: "publish", id: `s${n}-${i}`, data: i });
    const answers = await Promise.all(sockets.map(async (s) => answered(await s.until((f) => answered(f).length >= 10))));
    const acks = answers.flat().filter((f) => f.type === "ack").length;
    // A burst of 10 (and a little refill while the 30 frames arrive), not 3 × 10.
    expect(acks).toBeGreaterThanOrEqual(10);
    expect(acks).toBeLessThan(15);
    for (const s of sockets) s.close();
  });

  it("keeps the bucket across a reconnect: closing and reopening buys nothing", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "hopper" });
    const first = await connect(room, jwt);
    await first.next("welcome");
    for (let i = 0; i < 10; i++) first.send({ type: "publish", id: `a${i}`, data: i });
    await first.until((f) => answered(f).length >= 10);
    first.close();
    const second = await connect(room, jwt);
    await second.next("welcome");
    for (let i = 0; i < 5; i++) second.send({ type: "publish", id: `b${i}`, data: i });
    const answers = answered(await second.until((f) => answered(f).length >= 5));
    expect(answers.filter((f) => f.type === "error" && f.code === "rate_limited").length).toBeGreaterThanOrEqual(3);
    second.close();
  });

  it("limits HTTP publishes with the same bucket (429 rate_limited), and a socket of that user feels it", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "poster" });
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) statuses.push((await httpPost(room, jwt, `h${i}`)).status);
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(10);
    expect(statuses.filter((s) => s === 201).length).toBeLessThan(14);
    const refused = await httpPost(room, jwt, "one-more");
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { code: "rate_limited" } });
    const socket = await connect(room, jwt);
    await socket.next("welcome");
    socket.send({ type: "publish", id: "ws-1", data: 1 });
    expect(await socket.next("error")).toMatchObject({ code: "rate_limited", id: "ws-1" });
    socket.close();
  });

  it("gives a backend the budget its token's rate claim grants, bounded, and refuses a malformed claim", async () => {
    const room = uniqueRoom();
    const backend = await token({ sub: "ingest", rate: { perSecond: 1_000, burst: 100 } });
    for (let i = 0; i < 60; i++) expect((await httpPost(room, backend, `b${i}`)).status).toBe(201);
    for (const rate of [{ perSecond: 0, burst: 1 }, { perSecond: 10_001, burst: 1 }, { perSecond: 5, burst: 1e9 }, "lots"]) {
      const res = await httpPost(room, await token({ sub: "ingest", rate: rate as never }), "x");
      expect(res.status, JSON.stringify(rate)).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: "unauthorized" } });
    }
  });

  it("limits HTTP history with the user's bucket too (429 rate_limited); by size: test/rate-limit.test.ts", async () => {
    const room = uniqueRoom();
    const big = "x".repeat(950);
    for (let i = 0; i < 30; i++) await httpPublish(room, `m${i}`, big);
    const reader = await token({ sub: "reader", cap: { [room]: ["subscribe"] } });
    // Each page of 20 messages is ~20 KB, under a token's 64 KiB: one token each, 14 against a burst of 10.
    let served = 0;
    let refused = 0;
    for (let i = 0; i < 14; i++) {
      const res = await fetchWorker(`/v1/rooms/${room}/messages?after=0&limit=20`, { headers: { Authorization: `Bearer ${reader}` } });
      if (res.status === 200) served++;
      else {
        expect(res.status).toBe(429);
        refused++;
      }
    }
    expect(served).toBeGreaterThanOrEqual(5);
    expect(refused).toBeGreaterThan(0);
  });
});

describe("connection attempts per user per room (the Rate Limiting binding, 120 a minute)", () => {
  it("answers attempts past the limit with 429 rate_limited at the Worker, and leaves other users and rooms alone", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "looper" });
    // The room holds 4 (MAX_CONNECTIONS_PER_ROOM): the rest are refused by the room with
    // room_full until the Worker's limiter refuses them first (rate_limited, close 4008).
    // Up to two windows' worth, in case a 60 s window ends in the middle.
    let limitedAfter: number | undefined;
    for (let i = 1; i <= 250 && limitedAfter === undefined; i++) {
      const { code } = await upgradeOutcome(await upgrade(room, jwt));
      if (code === "rate_limited") limitedAfter = i;
      else expect(["accepted", "room_full"]).toContain(code);
    }
    expect(limitedAfter).toBeDefined();
    expect(limitedAfter!).toBeGreaterThan(100);
    expect((await upgradeOutcome(await upgrade(room, await token({ sub: "someone-else" })))).code).not.toBe("rate_limited");
    expect((await upgradeOutcome(await upgrade(uniqueRoom(), jwt))).code).toBe("accepted");
  });
});
