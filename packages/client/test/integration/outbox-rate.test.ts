/**
 * Against a real `wrangler dev` with a small rate budget (burst 10, 5 per second):
 * what an app does right after joining (presence, a history page, a backlog of
 * publishes) costs more tokens than the burst, and nothing is refused or lost.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type PublishFailure, type RoomcastClient, type RoomcastClientError } from "../../src/index.js";
import { mintToken, startServer, uniqueRoom, waitFor, type TestServer } from "./server.js";

let server: TestServer;
const clients: RoomcastClient[] = [];

beforeAll(async () => {
  server = await startServer({ PUBLISH_BURST: "10", PUBLISH_RATE_PER_SECOND: "5" });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await server?.dispose();
});

describe("the rate budget against a real server", () => {
  it("presence, history and 12 queued publishes right after the welcome: every publish acked once, none refused", async () => {
    const c = createClient({ url: server.url, token: () => mintToken({ sub: "pacer" }), backoff: { minMs: 50, maxMs: 500 } });
    clients.push(c);
    const room = c.room(uniqueRoom("rate"));
    const errors: RoomcastClientError[] = [];
    const failures: PublishFailure[] = [];
    room.on("error", (e) => errors.push(e));
    room.on("publish_failed", (f) => failures.push(f));
    const seen: string[] = [];
    room.on("message", (m) => seen.push(m.id));

    // Queued before the socket is up, so they all go right after the welcome.
    room.setPresence({ typing: false });
    const page = room.history({ limit: 5 });
    const started = Date.now();
    const acks = await Promise.all(Array.from({ length: 12 }, (_, i) => room.publish({ i }, { id: `r-${i}` })));
    const elapsed = Date.now() - started;
    await page;

    expect(acks.map((a) => a.duplicate)).toEqual(Array(12).fill(false));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(12);
    await waitFor("every message delivered", () => seen.length === 12);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `r-${i}`));
    expect(errors).toEqual([]);
    expect(failures).toEqual([]);
    // 14 charged frames, 9 at once (one token kept), then 5 at 5 per second: about a second.
    expect(elapsed).toBeGreaterThan(700);
    console.log(`14 charged frames against burst 10 @ 5/s: all 12 publishes acked after ${elapsed} ms`);
  });
});
