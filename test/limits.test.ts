import { describe, expect, it } from "vitest";
import type { ServerFrame } from "@roomcast/protocol";
import { connect, fetchWorker, publish, token, uniqueRoom, upgrade } from "./helpers.js";
import { expectRefused } from "./refusals.js";

// vitest.config.ts sets small limits: MAX_MESSAGE_BYTES=1024, PUBLISH_RATE_PER_SECOND=5,
// PUBLISH_BURST=10, MAX_CONNECTIONS_PER_ROOM=4.

describe("message size", () => {
  it("answers an oversized publish with message_too_large, stores nothing, and leaves others unaffected", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    const bob = await connect(room, await token({ sub: "bob" }));
    alice.send({ type: "publish", id: "big", data: "x".repeat(1100) });
    expect(await alice.next("error")).toMatchObject({ code: "message_too_large", id: "big" });
    // Just under the limit is fine (1022 chars + 2 quotes = 1024 bytes of JSON).
    expect(await publish(alice, "fits", "x".repeat(1022))).toMatchObject({ seq: 1 });
    expect(await publish(bob, "bob-1", "hi")).toMatchObject({ seq: 2 });
    const seen = await bob.take("message", 2);
    expect(seen.map((m) => m.id)).toEqual(["fits", "bob-1"]);
    alice.close();
    bob.close();
  });

  it("counts bytes, not characters, so multi-byte payloads cannot slip past the limit", async () => {
    const alice = await connect(uniqueRoom());
    // 400 × "é" is 400 characters but 800 bytes; 600 × "é" is 1200 bytes.
    expect(await publish(alice, "ok", "é".repeat(400))).toMatchObject({ seq: 1 });
    alice.send({ type: "publish", id: "too-big", data: "é".repeat(600) });
    expect(await alice.next("error")).toMatchObject({ code: "message_too_large", id: "too-big" });
    alice.close();
  });

  it("refuses a frame far over the limit before parsing it", async () => {
    const alice = await connect(uniqueRoom());
    alice.send(`{"type":"publish","id":"huge","data":"${"y".repeat(5000)}"}`);
    expect(await alice.next("error")).toMatchObject({ code: "message_too_large" });
    alice.close();
  });

  it("rejects an oversized HTTP publish with 413", async () => {
    const res = await fetchWorker(`/v1/rooms/${uniqueRoom()}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${await token()}`, "Content-Type": "application/json" },
      body: JSON.stringify({ data: "z".repeat(1500) }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "message_too_large" } });
  });
});

describe("publish rate", () => {
  it("rate-limits a connection past its burst without affecting other connections", async () => {
    const room = uniqueRoom();
    const flooder = await connect(room, await token({ sub: "flooder" }));
    const calm = await connect(room, await token({ sub: "calm" }));
    await Promise.all([flooder.next("welcome"), calm.next("welcome")]);
    for (let i = 0; i < 16; i++) flooder.send({ type: "publish", id: `f${i}`, data: i });
    // Each publish gets exactly one answer: an ack or an error.
    const answered = (frames: ServerFrame[]) => frames.filter((f) => f.type === "ack" || f.type === "error");
    const answers = answered(await flooder.until((frames) => answered(frames).length >= 16));
    const acks = answers.filter((f) => f.type === "ack");
    const errors = answers.filter((f) => f.type === "error");
    expect(acks.length).toBeGreaterThanOrEqual(10);
    expect(acks.length).toBeLessThan(16);
    expect(errors.length).toBe(16 - acks.length);
    expect(errors.every((e) => e.code === "rate_limited")).toBe(true);
    // The calm user still publishes at once.
    expect(await publish(calm, "calm-1", "still fine")).toMatchObject({ duplicate: false });
    flooder.close();
    calm.close();
  });
});

describe("expensive frames share the publish budget", () => {
  it("rate-limits history requests past the burst", async () => {
    const alice = await connect(uniqueRoom());
    await alice.next("welcome");
    for (let i = 0; i < 14; i++) alice.send({ type: "history", id: `h${i}` });
    const answered = (frames: ServerFrame[]) => frames.filter((f) => f.type === "history" || f.type === "error");
    const answers = answered(await alice.until((frames) => answered(frames).length >= 14));
    const limited = answers.filter((f) => f.type === "error");
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.every((f) => f.type === "error" && f.code === "rate_limited")).toBe(true);
    alice.close();
  });
});

describe("connections per room", () => {
  it("answers the connection past MAX_CONNECTIONS_PER_ROOM with room_full (close 4003) and keeps the others", async () => {
    const room = uniqueRoom();
    const sockets = [];
    for (let i = 0; i < 4; i++) sockets.push(await connect(room, await token({ sub: `u${i}` })));
    await expectRefused(await upgrade(room, await token({ sub: "fifth" })), "room_full");
    expect(await publish(sockets[0]!, "still-here", 1)).toMatchObject({ seq: 1 });
    expect((await sockets[3]!.next("message")).id).toBe("still-here");
    // A slot frees up when someone leaves.
    sockets[1]!.close();
    await sockets[1]!.closed;
    let admitted = false;
    for (let attempt = 0; attempt < 20 && !admitted; attempt++) {
      const retry = await upgrade(room, await token({ sub: "fifth" }));
      admitted = retry.status === 101;
      if (admitted) retry.webSocket!.accept(), retry.webSocket!.close();
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(admitted).toBe(true);
    for (const s of sockets) s.close();
  });
});

describe("malformed frames", () => {
  const cases: [string, string | ArrayBuffer, string][] = [
    ["bad JSON", "{not json", "not valid JSON"],
    ["an unknown type", '{"type":"shout","id":"u1"}', "type"],
    ["a publish without an id", '{"type":"publish","data":1}', "id"],
    ["a publish without data", '{"type":"publish","id":"nodata"}', "data"],
    ["a wrongly typed id", '{"type":"publish","id":42,"data":1}', "id"],
    ["an id with forbidden characters", '{"type":"publish","id":"has space","data":1}', "id"],
    ["a history request with a negative after", '{"type":"history","id":"h","after":-1}', "after"],
    ["a JSON array", "[1,2,3]", ""],
    ["a binary frame", new TextEncoder().encode('{"type":"ping"}').buffer as ArrayBuffer, "binary"],
  ];
  for (const [name, frame, mention] of cases) {
    it(`answers ${name} with invalid_frame and keeps the connection usable`, async () => {
      const alice = await connect(uniqueRoom());
      alice.send(frame);
      const error = await alice.next("error");
      expect(error.code).toBe("invalid_frame");
      expect(error.message).toContain(mention);
      expect(await publish(alice, "after-bad-frame", "ok")).toMatchObject({ seq: 1 });
      alice.close();
    });
  }
});
