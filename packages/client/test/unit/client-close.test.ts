/**
 * `client.close()` ends the client: its rooms are left without forgetting durable
 * outbox entries (a closing page or app keeps them for the next session), and the
 * client opens nothing afterwards.
 */
import { describe, expect, test } from "vitest";
import { memoryStorage } from "../../src/outbox.js";
import { advance, observe, testClient } from "./fake-socket.js";

test("close() keeps durable outbox entries for the next session, and a new client sends them", async () => {
  const storage = memoryStorage();
  const first = testClient({ outbox: { storage } });
  const room = first.client.room("r");
  await advance();
  const socket = first.server.last();
  socket.open();
  socket.welcome({ userId: "alice" });
  await advance();
  socket.close(1006, "gone"); // offline: the publish waits in the outbox
  await advance();
  const pending = observe(room.publish({ text: "queued" }, { id: "m-1" }));
  await advance();
  expect(await storage.load("r", "alice")).toHaveLength(1);

  first.client.close();
  await advance();
  expect(pending.status).toBe("rejected"); // the promise is gone with the client ...
  expect((await storage.load("r", "alice")).map((e) => e.id)).toEqual(["m-1"]); // ... the entry is not

  const second = testClient({ outbox: { storage } });
  second.client.room("r");
  await advance();
  const next = second.server.last();
  next.open();
  next.welcome({ userId: "alice" });
  await advance();
  expect(next.publishedIds).toEqual(["m-1"]);
});

test("room() after close() throws instead of opening a socket behind the app", async () => {
  const { client, server } = testClient();
  client.room("r");
  await advance();
  client.close();
  expect(() => client.room("r")).toThrow(/client is closed/);
  expect(() => client.room("other")).toThrow(/client is closed/);
  await advance();
  expect(server.sockets).toHaveLength(1);
});

describe("a terminal end keeps the stored outbox unless it can never be sent", () => {
  for (const [code, close, kept] of [
    ["unauthorized", 4500, true],
    ["forbidden", 4501, false],
  ] as const) {
    test(`${code}: stored entries ${kept ? "kept for the next session" : "deleted"}`, async () => {
      const storage = memoryStorage();
      const { client, server } = testClient({ outbox: { storage }, backoff: { minMs: 10, maxMs: 10, networkMaxMs: 10 } });
      const room = client.room("r");
      await advance();
      const first = server.last();
      first.welcome({ userId: "alice" });
      await advance();
      first.close(1006, "gone");
      const publish = observe(room.publish({ text: "queued" }, { id: "m-1" }));
      await advance(50); // the next attempt
      const refused = server.last();
      expect(refused).not.toBe(first);
      refused.open();
      refused.error(code); // the readable refusal: one id-less error frame, then the close
      refused.close(close, code);
      await advance(50);
      expect(room.state).toBe("failed");
      expect(publish.status).toBe("rejected");
      expect((await storage.load("r", "alice")).map((e) => e.id)).toEqual(kept ? ["m-1"] : []);
      client.close();
    });
  }
});
