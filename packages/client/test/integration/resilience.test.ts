import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Room, type RoomcastClient } from "../../src/index.js";
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

function join(sub: string, room: string): Room {
  const c = createClient({
    url: server.url,
    token: () => mintToken({ sub }),
    backoff: { minMs: 100, maxMs: 1_000 },
    connectTimeoutMs: 5_000,
  });
  clients.push(c);
  return c.room(room);
}

describe("a server crash in the middle of a stream", () => {
  it("delivers every acked message exactly once, in order, to every client", async () => {
    const name = uniqueRoom("crash");
    const publisher = join("publisher", name);
    const readers = [join("reader-1", name), join("reader-2", name)];
    await waitFor("everyone connected", () => [publisher, ...readers].every((r) => r.state === "connected"));
    const dropped = new Set<Room>();
    for (const r of [publisher, ...readers]) r.on("state", (s) => s.newState === "reconnecting" && dropped.add(r));
    const gaps: string[] = [];
    const recovered: number[] = [];
    for (const r of readers) {
      r.on("gap", (g) => gaps.push(g.reason));
      r.on("recovered", () => recovered.push(1));
    }

    const TOTAL = 60;
    const acks: number[] = [];
    const publishes: Promise<unknown>[] = [];
    for (let i = 0; i < TOTAL; i++) {
      publishes.push(publisher.publish({ i }).then((ack) => acks.push(ack.seq)));
      if (i === 20) {
        await waitFor("some acks before the crash", () => acks.length >= 10);
        await server.kill();
        // Publishes go on while the server is down: they wait in the outbox.
      }
      if (i === 35) await server.start();
      await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all(publishes);

    // Every publish was acked exactly once, with distinct, contiguous sequence numbers.
    expect([...acks].sort((a, b) => a - b)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
    for (const reader of readers) {
      await waitFor(`${TOTAL} messages at a reader`, () => reader.messages.length >= TOTAL, 30_000);
      expect(reader.messages.map((m) => m.seq)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1));
      // In publish order: the outbox resent in order and the server deduplicated retries.
      expect(reader.messages.map((m) => (m.data as { i: number }).i)).toEqual(Array.from({ length: TOTAL }, (_, i) => i));
    }
    // The crash really dropped every connection...
    expect(dropped.size).toBe(3);
    // ...and every reader resumed without a gap.
    expect(gaps).toEqual([]);
    expect(recovered.length).toBeGreaterThanOrEqual(readers.length);
  });
});
