/**
 * roomcast.v2 and the fallback to v1 (docs/protocol.md, "Versions"): the client offers
 * both, speaks what the server selected, and under v2 takes its own message frame
 * (live, batched or replayed) as the ack of its publish.
 */
import { PROTOCOL_V1, PROTOCOL_V2, type Message } from "@roomcast/protocol";
import { describe, expect, it } from "vitest";
import type { ClientOptions, RoomcastClient } from "../../src/client.js";
import type { PublishAck } from "../../src/outbox.js";
import type { StateChange } from "../../src/connection.js";
import { TOKEN, advance, messageAt, observe, testClient, useFakeTime } from "./fake-socket.js";

let client: RoomcastClient | undefined;

useFakeTime(() => {
  client?.close();
  client = undefined;
});

async function started(options: Partial<ClientOptions> = {}) {
  const setup = testClient({ connectTimeoutMs: 5_000, pingIntervalMs: 3_600_000, backoff: { minMs: 1_000, maxMs: 8_000, factor: 2 }, ...options });
  client = setup.client;
  const room = setup.client.room("lobby");
  const acks: PublishAck[] = [];
  const states: StateChange[] = [];
  room.on("ack", (a) => acks.push(a));
  room.on("state", (s) => states.push(s));
  await advance();
  return { ...setup, room, acks, states, socket: setup.server.last() };
}

/** One of alice's own messages, as the server broadcasts it. */
const mine = (seq: number, id: string): Message => ({ ...messageAt(seq, "alice"), id });

describe("offering versions", () => {
  it("offers roomcast.v2 then roomcast.v1 (and the bearer entry last in browsers' transport)", async () => {
    const header = await started({ transport: "header" });
    expect(header.socket.protocols).toEqual([PROTOCOL_V2, PROTOCOL_V1]);
    client?.close();
    const sub = await started({ transport: "subprotocol" });
    expect(sub.socket.protocols).toEqual([PROTOCOL_V2, PROTOCOL_V1, `roomcast.bearer.${TOKEN}`]);
  });

  it("`protocols` pins the offer, e.g. to roomcast.v1 only", async () => {
    const { socket, room } = await started({ protocols: ["roomcast.v1"], transport: "subprotocol" });
    expect(socket.protocols).toEqual([PROTOCOL_V1, `roomcast.bearer.${TOKEN}`]);
    socket.welcome();
    expect(room.protocol).toBe(PROTOCOL_V1);
  });

  it("refuses a `protocols` option that is empty, unknown or repeated", () => {
    for (const protocols of [[], ["roomcast.v3"], ["roomcast.v1", "roomcast.v1"], "roomcast.v2"]) {
      expect(() => testClient({ protocols: protocols as never }), JSON.stringify(protocols)).toThrow(TypeError);
    }
  });
});

describe("roomcast.v2: the echo is the ack", () => {
  it("settles a publish from its own message frame, once; an explicit ack that follows changes nothing", async () => {
    const { socket, room, acks } = await started();
    socket.welcome({ protocol: PROTOCOL_V2 });
    expect(room.protocol).toBe(PROTOCOL_V2);
    const sent = observe(room.publish({ text: "hi" }, { id: "p-1" }));
    await advance();
    expect(socket.publishedIds).toEqual(["p-1"]);
    socket.message(1, { id: "p-1", from: "alice" });
    await advance();
    expect(sent.status).toBe("resolved");
    expect(sent.value).toEqual({ id: "p-1", seq: 1, duplicate: false });
    expect(room.pending).toEqual([]);
    socket.ack("p-1", 1, true); // e.g. a resend acked as a duplicate
    await advance();
    expect(acks).toEqual([{ id: "p-1", seq: 1, duplicate: false }]);
  });

  it("does not take another user's message with the same id for our ack", async () => {
    const { socket, room } = await started();
    socket.welcome({ protocol: PROTOCOL_V2 });
    const sent = observe(room.publish("x", { id: "same" }));
    await advance();
    socket.message(1, { id: "same", from: "bob" });
    await advance();
    expect(sent.status).toBe("pending");
    socket.message(2, { id: "same", from: "alice" });
    await advance();
    expect(sent.value).toEqual({ id: "same", seq: 2, duplicate: false });
  });

  it("settles every publish of a batched `messages` frame, in order, after delivering them", async () => {
    const { socket, room, acks } = await started();
    socket.welcome({ protocol: PROTOCOL_V2 });
    const order: string[] = [];
    room.on("message", (m) => order.push(`message ${m.id}`));
    room.on("ack", (a) => order.push(`ack ${a.id}`));
    const a = observe(room.publish(1, { id: "a" }));
    const b = observe(room.publish(2, { id: "b" }));
    await advance();
    socket.deliver({ type: "messages", messages: [mine(1, "a"), messageAt(2), mine(3, "b")] });
    await advance();
    expect([a.value, b.value]).toEqual([{ id: "a", seq: 1, duplicate: false }, { id: "b", seq: 3, duplicate: false }]);
    expect(acks.map((x) => x.id)).toEqual(["a", "b"]);
    expect(order).toEqual(["message a", "message m-2", "message b", "ack a", "ack b"]);
  });

  it("settles a publish whose echo was lost with the socket from the replay after the resume", async () => {
    const { socket, room, server, acks } = await started();
    socket.welcome({ protocol: PROTOCOL_V2, seq: 2, replay: 2 });
    socket.messages(1, 2);
    const sent = observe(room.publish("lost echo", { id: "r-1" }));
    await advance();
    expect(socket.publishedIds).toEqual(["r-1"]);
    // Stored as seq 3, but the socket dies before its message frame arrives.
    socket.serverClose(1006);
    await advance();
    const next = server.last();
    expect(next).not.toBe(socket);
    expect(next.resume).toEqual({ epoch: "epoch-1", after: "2" });
    next.welcome({ protocol: PROTOCOL_V2, seq: 3, replay: 1, resume: { recovered: true } });
    next.message(3, { id: "r-1", from: "alice" });
    await advance();
    expect(sent.value).toEqual({ id: "r-1", seq: 3, duplicate: false });
    // It was resent after the welcome (the outbox cannot know yet); the server's duplicate ack is ignored.
    next.ack("r-1", 3, true);
    await advance();
    expect(acks).toEqual([{ id: "r-1", seq: 3, duplicate: false }]);
    expect(room.pending).toEqual([]);
  });

  it("settles a publish from the explicit ack the server still sends during a replay", async () => {
    const { socket, room } = await started();
    socket.welcome({ protocol: PROTOCOL_V2, seq: 10, replay: 10 });
    const sent = observe(room.publish("early", { id: "e-1" }));
    await advance();
    socket.ack("e-1", 11);
    await advance();
    expect(sent.value).toEqual({ id: "e-1", seq: 11, duplicate: false });
  });
});

describe("falling back to roomcast.v1", () => {
  it("against a server that selects v1 (v0.1.0), waits for the explicit ack, never for the echo", async () => {
    const { socket, room, acks } = await started();
    socket.welcome({ protocol: PROTOCOL_V1 });
    expect(room.protocol).toBe(PROTOCOL_V1);
    const sent = observe(room.publish("old server", { id: "o-1" }));
    await advance();
    socket.message(1, { id: "o-1", from: "alice" });
    await advance();
    expect(sent.status).toBe("pending");
    socket.ack("o-1", 1);
    await advance();
    expect(sent.value).toEqual({ id: "o-1", seq: 1, duplicate: false });
    expect(acks).toHaveLength(1);
  });

  it("an empty ws.protocol (a socket that does not report it) takes the welcome's version", async () => {
    const v2 = await started();
    v2.socket.open("");
    v2.socket.welcome({ protocol: PROTOCOL_V2 });
    expect(v2.room.protocol).toBe(PROTOCOL_V2);
    client?.close();
    const v1 = await started();
    v1.socket.open("");
    v1.socket.welcome({ protocol: "something-else" });
    expect(v1.room.protocol).toBe(PROTOCOL_V1);
  });

  it("drops a socket whose server selected a version it did not offer, and retries", async () => {
    const { socket, states, server, room } = await started({ protocols: ["roomcast.v1"] });
    socket.open(PROTOCOL_V2);
    socket.welcome({ protocol: PROTOCOL_V2 });
    await advance();
    expect(socket.closeCalls[0]?.code).toBe(1000);
    const reconnecting = states.find((s) => s.newState === "reconnecting");
    expect(reconnecting?.error?.code).toBe("unsupported_protocol");
    expect(states.some((s) => s.newState === "connected")).toBe(false);
    await advance(1_000);
    expect(server.sockets.length).toBe(2);
    expect(room.state).toBe("connecting");
  });
  it("never quotes a selected bearer entry (a proxy echoing the token) or any other non-version value in its error", async () => {
    for (const selected of [`roomcast.bearer.${TOKEN}`, `x-${TOKEN}`]) {
      const { socket, states } = await started({ protocols: ["roomcast.v1", "roomcast.v2"], transport: "subprotocol" });
      socket.open(selected);
      socket.welcome({ protocol: PROTOCOL_V2 });
      await advance();
      const error = states.find((s) => s.newState === "reconnecting")?.error;
      expect(error?.code).toBe("unsupported_protocol");
      expect(error?.message).not.toContain(TOKEN);
      expect(error?.message).toContain("redacted");
      client?.close();
      client = undefined;
    }
  });

  it("still quotes a plain roomcast.vN the server selected", async () => {
    const { socket, states } = await started({ protocols: ["roomcast.v1"] });
    socket.open("roomcast.v3");
    socket.welcome({ protocol: PROTOCOL_V2 });
    await advance();
    expect(states.find((s) => s.newState === "reconnecting")?.error?.message).toContain('"roomcast.v3"');
  });
});
