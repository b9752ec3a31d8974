import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "@roomcast/protocol";
import { connect, publish, token, uniqueRoom } from "./helpers.js";

describe("joining a room", () => {
  it("welcomes the client with its identity, the room's epoch and head, and echoes only the protocol version", async () => {
    const room = uniqueRoom();
    const socket = await connect(room, await token({ sub: "alice" }));
    const welcome = await socket.next("welcome");
    expect(socket.response.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_VERSION);
    expect(welcome).toMatchObject({ protocol: PROTOCOL_VERSION, room, userId: "alice", seq: 0, replay: 0 });
    expect(welcome.permissions).toEqual(["subscribe", "publish", "presence"]);
    expect(welcome.epoch).toMatch(/^[0-9a-f-]{36}$/);
    socket.close();
  });

  it("accepts the token through the browser subprotocol and never echoes it", async () => {
    const socket = await connect(uniqueRoom(), await token(), { via: "subprotocol", origin: "https://app.example.com" });
    await socket.next("welcome");
    expect(socket.response.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_VERSION);
    socket.close();
  });
});

describe("publishing", () => {
  it("acks with increasing sequence numbers and every subscriber sees the same order", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    const carol = await connect(room, await token({ sub: "carol" }));
    await Promise.all([alice.next("welcome"), bob.next("welcome"), carol.next("welcome")]);

    // Interleave publishers without waiting for acks in between.
    for (let i = 0; i < 4; i++) {
      alice.send({ type: "publish", id: `a${i}`, data: { from: "alice", i } });
      bob.send({ type: "publish", id: `b${i}`, data: { from: "bob", i } });
    }
    const acks = [...(await alice.take("ack", 4)), ...(await bob.take("ack", 4))];
    expect(acks.map((a) => a.seq).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(acks.every((a) => !a.duplicate)).toBe(true);

    const seen = await Promise.all([alice, bob, carol].map((s) => s.take("message", 8)));
    const orders = seen.map((msgs) => msgs.map((m) => `${m.seq}:${m.id}`));
    expect(orders[0]).toEqual(orders[1]);
    expect(orders[1]).toEqual(orders[2]);
    expect(seen[2]!.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // Each message carries its publisher and payload.
    const a2 = seen[2]!.find((m) => m.id === "a2")!;
    expect(a2).toMatchObject({ from: "alice", data: { from: "alice", i: 2 } });
    expect(acks.find((a) => a.id === "a2")!.seq).toBe(a2.seq);
    for (const s of [alice, bob, carol]) s.close();
  });

  it("acks a repeated message id with the original seq and neither stores nor broadcasts it twice", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    const watcher = await connect(room, await token({ sub: "watcher" }));
    await watcher.next("welcome");
    const first = await publish(alice, "dup-1", "hello");
    const again = await publish(alice, "dup-1", "hello again");
    expect(first).toMatchObject({ seq: 1, duplicate: false });
    expect(again).toMatchObject({ seq: 1, duplicate: true });
    await publish(alice, "next", "after");
    const messages = await watcher.take("message", 2);
    expect(messages.map((m) => [m.seq, m.id, m.data])).toEqual([
      [1, "dup-1", "hello"],
      [2, "next", "after"],
    ]);
    alice.close();
    watcher.close();
  });

  it("scopes message ids per user, so another user's id cannot swallow a message", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    expect(await publish(alice, "same-id", 1)).toMatchObject({ seq: 1, duplicate: false });
    expect(await publish(bob, "same-id", 2)).toMatchObject({ seq: 2, duplicate: false });
    alice.close();
    bob.close();
  });

  it("refuses to publish without the publish permission, and stores nothing", async () => {
    const room = uniqueRoom();
    const reader = await connect(room, await token({ sub: "reader", cap: { [room]: ["subscribe"] } }));
    await reader.next("welcome");
    reader.send({ type: "publish", id: "nope", data: 1 });
    const error = await reader.next("error");
    expect(error).toMatchObject({ code: "forbidden", id: "nope" });
    const writer = await connect(room);
    expect(await publish(writer, "yes", 2)).toMatchObject({ seq: 1 });
    reader.close();
    writer.close();
  });
});

describe("history on join", () => {
  it("sends the most recent messages before live ones, with no gap and no duplicate", async () => {
    const room = uniqueRoom();
    const writer = await connect(room);
    for (let i = 1; i <= 8; i++) await publish(writer, `m${i}`, i);
    // HISTORY_ON_JOIN is 5 in tests.
    const late = await connect(room, await token({ sub: "late" }));
    const welcome = await late.next("welcome");
    expect(welcome).toMatchObject({ seq: 8, replay: 5 });
    await publish(writer, "m9", 9);
    const messages = await late.take("message", 6);
    expect(messages.map((m) => m.seq)).toEqual([4, 5, 6, 7, 8, 9]);
    writer.close();
    late.close();
  });
});
