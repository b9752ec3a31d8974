/**
 * `room.features` and the `features` event: the feature flags a welcome carries, per
 * connection, and nothing from a server that sends none (docs/client.md).
 */
import { decodeServerFrame } from "@roomcast/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RoomcastClient } from "../../src/client.js";
import { advance, testClient } from "./fake-socket.js";

let client: RoomcastClient | undefined;

beforeEach(() => {
  vi.useFakeTimers();
  vi.spyOn(Math, "random").mockReturnValue(0); // retries happen at once
});

afterEach(() => {
  client?.close();
  client = undefined;
  vi.useRealTimers();
  vi.restoreAllMocks();
});

async function started() {
  const setup = testClient({ backoff: { minMs: 1_000, maxMs: 8_000, factor: 2 }, pingIntervalMs: 3_600_000 });
  client = setup.client;
  const room = setup.client.room("lobby");
  const events: Readonly<Record<string, boolean>>[] = [];
  room.on("features", (f) => events.push(f));
  await advance();
  return { ...setup, room, events };
}

describe("room.features", () => {
  it("is empty before the first welcome, then holds the welcome's flags, with a features event", async () => {
    const { room, server, events } = await started();
    expect(room.features).toEqual({});
    server.last().welcome({ features: { new_composer: true, beta_rooms: false } });
    expect(room.features).toEqual({ new_composer: true, beta_rooms: false });
    expect(events).toEqual([{ new_composer: true, beta_rooms: false }]);
    expect(Object.isFrozen(room.features)).toBe(true);
  });

  it("is set by the time the features event fires, after the connected state", async () => {
    const { room, server } = await started();
    const seen: string[] = [];
    room.on("state", (s) => seen.push(`state:${s.newState}`));
    room.on("features", () => seen.push(`features:${JSON.stringify(room.features)}`));
    server.last().welcome({ features: { x: true } });
    expect(seen).toEqual(["state:connected", 'features:{"x":true}']);
  });

  it("follows each reconnect's welcome (an override changed while away)", async () => {
    const { room, server, events } = await started();
    server.last().welcome({ features: { new_composer: true } });
    server.last().serverClose(1006);
    await advance(1_000);
    server.last().welcome({ features: { new_composer: false } });
    expect(room.features).toEqual({ new_composer: false });
    expect(events).toEqual([{ new_composer: true }, { new_composer: false }]);
  });

  it("keeps the same object across a reconnect whose welcome has the same flags (a UI bound to it does not re-render)", async () => {
    const { room, server, events } = await started();
    server.last().welcome({ features: { a: true, b: false } });
    const first = room.features;
    server.last().serverClose(1006);
    await advance(1_000);
    server.last().welcome({ features: { b: false, a: true } });
    expect(room.features).toBe(first);
    expect(events).toHaveLength(2); // the event still follows every welcome
    server.last().serverClose(1006);
    await advance(2_000);
    server.last().welcome({ features: { a: true } });
    expect(room.features).not.toBe(first);
    expect(room.features).toEqual({ a: true });
  });

  it("is empty against a server that sends no features (v0.1.0), and the event still fires", async () => {
    const { room, server, events } = await started();
    server.last().welcome();
    expect(room.features).toEqual({});
    expect(events).toEqual([{}]);
  });

  it("a welcome whose features are not booleans is refused by the decoder, like any bad frame", () => {
    const bad = { type: "welcome", protocol: "roomcast.v1", room: "r", connectionId: "c", userId: "u", epoch: "e", seq: 0, replay: 0, permissions: [], expiresAt: 1, limits: { maxMessageBytes: 1, publishRatePerSecond: 1, publishBurst: 1, livenessTimeoutSeconds: 60 }, features: { x: "yes" } };
    expect(decodeServerFrame(JSON.stringify(bad)).ok).toBe(false);
    expect(decodeServerFrame(JSON.stringify({ ...bad, features: { x: true } })).ok).toBe(true);
  });
});
