import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Message, type RoomcastClient } from "../../src/index.js";
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

function client(sub: string): RoomcastClient {
  const c = createClient({ url: server.url, token: () => mintToken({ sub }), backoff: { minMs: 50, maxMs: 500 } });
  clients.push(c);
  return c;
}

describe("against a real server", () => {
  it("publishes and resolves with the server's ack", async () => {
    const room = client("alice").room(uniqueRoom());
    const ack = await room.publish({ text: "hello" });
    expect(ack).toMatchObject({ seq: 1, duplicate: false });
    await waitFor("own message", () => room.messages.length === 1);
    expect(room.messages[0]).toMatchObject({ seq: 1, from: "alice", data: { text: "hello" } });
    expect(room.state).toBe("connected");
  });

  it("shows two clients the same messages in the same order", async () => {
    const name = uniqueRoom();
    const alice = client("alice").room(name);
    const bob = client("bob").room(name);
    const acks = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => alice.publish({ by: "alice", i })),
      ...Array.from({ length: 10 }, (_, i) => bob.publish({ by: "bob", i })),
    ]);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(20);
    await waitFor("20 messages at both", () => alice.messages.length === 20 && bob.messages.length === 20);
    const order = (msgs: Message[]) => msgs.map((m) => `${m.seq}:${m.from}:${JSON.stringify(m.data)}`);
    expect(order(alice.messages)).toEqual(order(bob.messages));
    expect(alice.messages.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it("delivers recent history on join and presence of both users", async () => {
    const name = uniqueRoom();
    const alice = client("alice").room(name);
    await alice.publish("before bob");
    const bob = client("bob").room(name);
    await waitFor("bob sees history", () => bob.messages.length === 1);
    expect(bob.messages[0]!.data).toBe("before bob");
    await waitFor("both present", () => alice.members.length === 2 && bob.members.length === 2);
    expect(bob.members.map((m) => m.userId).sort()).toEqual(["alice", "bob"]);
    bob.setPresence({ typing: true });
    await waitFor("alice sees bob typing", () =>
      alice.members.some((m) => m.userId === "bob" && (m.connections[0]?.state as { typing?: boolean } | null)?.typing === true),
    );
  });

  it("rejects a publish that is too large with a typed error and keeps the room usable", async () => {
    const room = client("alice").room(uniqueRoom());
    await room.publish("warm-up"); // the welcome tells the client the limit
    await expect(room.publish("x".repeat(70_000))).rejects.toMatchObject({ code: "message_too_large" });
    expect(await room.publish("small")).toMatchObject({ seq: 2 });
  });

  it("fails a room the token does not grant, without retrying", async () => {
    const c = createClient({ url: server.url, token: () => mintToken({ sub: "eve", cap: { "other:*": ["subscribe"] } }), backoff: { minMs: 50, maxMs: 100 } });
    clients.push(c);
    const room = c.room(uniqueRoom());
    const failed = new Promise((resolve) => room.on("state", (s) => s.newState === "failed" && resolve(s.error?.code)));
    expect(await failed).toBe("forbidden");
    await new Promise((r) => setTimeout(r, 500));
    expect(room.state).toBe("failed");
  });
});
