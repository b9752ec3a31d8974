/**
 * A flag that changes what the server does (`adaptive_batching`, broadcaster.adaptive),
 * switched through the admin API while a room runs, and how long an override takes to
 * reach a connection when nothing tells the cache (another isolate's admin call).
 * The broadcaster's own rules are tested in test/broadcaster-adaptive.test.ts (F); here
 * only that the flag reaches a real room, measured by what a subscriber receives.
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import type { Room } from "../src/room/room.js";
import { afterAll, describe, expect, it } from "vitest";
import { CACHE_TTL_MS } from "../src/flags/flags.js";
import { FLAG_STORE_NAME } from "../src/flags/flag-store.js";
import { BACKEND_RATE, connect, fetchWorker, token, uniqueRoom } from "./helpers.js";

const adminToken = () => token({ sub: "ops", cap: { "*": ["admin"] } });

async function setFlag(name: string, definition: unknown | null): Promise<void> {
  const res = await fetchWorker(`/v1/admin/flags/${name}`, {
    method: definition === null ? "DELETE" : "PUT",
    headers: { Authorization: `Bearer ${await adminToken()}`, "Content-Type": "application/json" },
    ...(definition === null ? {} : { body: JSON.stringify(definition) }),
  });
  expect(res.status).toBe(200);
}

const CLUMPS = 10;
const CLUMP = 4;
/**
 * The pause before each burst: over the fixed rules' 2 ms (their window is closed again and the
 * burst starts afresh), well under the adaptive window that is still open after the previous
 * burst (up to MAX_WAIT_MS twice: it held the burst's tail, and traffic came, so it opened again).
 */
const PAUSE_STEPS = 2;
const STEP_MS = 2;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Clump {
  /** The seq of its first message. */
  first: number;
  /** The pause before it, measured in the room (ms). */
  pauseMs: number;
  /**
   * Not the first burst, and the pause was as meant: 4-7 ms in short steps (so the fixed rules' 1 ms window chain has run), none more than 2 ms late.
   */
  clean: boolean;
}

/**
 * Inside the room: one warm-up message (the first after a flag change starts the room's
 * read of the overrides; the pause lets it answer), then CLUMPS bursts of CLUMP publishes
 * in one synchronous turn, each after a pause of PAUSE_STEPS short timers.
 */
async function clumpsInRoom(instance: Room, room: string, tag: string): Promise<Clump[]> {
  const identity = { userId: "backend", room, permissions: ["subscribe", "publish"] as ("subscribe" | "publish")[], expiresAt: Math.floor(Date.now() / 1000) + 300, rate: BACKEND_RATE };
  await instance.publish(identity, `${tag}-warm`, "0");
  await sleep(100);
  const clumps: Clump[] = [];
  for (let c = 0; c < CLUMPS; c++) {
    const from = Date.now();
    let late = false;
    for (let i = 0; i < PAUSE_STEPS; i++) {
      const due = Date.now() + STEP_MS;
      await sleep(STEP_MS);
      if (Date.now() - due > 2) late = true;
    }
    const pauseMs = Date.now() - from;
    const results = Array.from({ length: CLUMP }, (_, i) => instance.publish(identity, `${tag}-${c}-${i}`, String(i))); // one turn
    const first = await results[0]!;
    if (!first.ok) throw new Error(`publish refused: ${first.code}`);
    await Promise.all(results);
    // The first burst follows the warm-up's long pause (no window open in either mode), not counted.
    clumps.push({ first: first.seq, pauseMs, clean: c > 0 && !late && pauseMs >= 4 && pauseMs <= 7 });
  }
  return clumps;
}

afterAll(async () => {
  await setFlag("adaptive_batching", null);
});

describe("adaptive_batching", () => {
  it("switches the room's batching while it runs: a burst 4-7 ms after the previous reaches a subscriber in 1 frame with it on (mostly), 3 with it off", async () => {
    const room = uniqueRoom();
    await setFlag("adaptive_batching", { rollout: "off" }); // the room starts with it off
    const sub = await connect(room, await token({ sub: "reader" }));
    await sub.next("welcome");
    const received: number[][] = []; // seqs per frame, as the subscriber got them
    sub.ws.addEventListener("message", (event) => {
      const frame = JSON.parse(String(event.data)) as { type: string; seq?: number; messages?: { seq: number }[] };
      if (frame.type === "message") received.push([frame.seq!]);
      else if (frame.type === "messages") received.push(frame.messages!.map((m) => m.seq));
    });
    const stub = env.ROOMS.getByName(room);
    const perClump: Record<"on" | "off", number[]> = { on: [], off: [] };
    let published = 0;
    let discarded = 0;
    // Interleaved (ABBA), so load on the machine hits both alike, until each mode has a few
    // clean bursts (a loaded machine makes timers late; those bursts are not counted).
    // The subscriber never reconnects.
    const enough = () => perClump.on.length >= 3 && perClump.off.length >= 3;
    for (const mode of ["off", "on", "on", "off", "off", "on", "on", "off", "off", "on", "on", "off", "off", "on", "on", "off"] as const) {
      if (enough() && mode === "off") break;
      await setFlag("adaptive_batching", { rollout: mode });
      const clumps = await runInDurableObject(stub, (instance: Room) => clumpsInRoom(instance, room, `${mode}${published}`));
      published += clumps.length * CLUMP + 1;
      await sub.until(() => received.flat().length >= published, 10_000);
      for (const clump of clumps) {
        if (!clump.clean) {
          discarded++;
          continue;
        }
        perClump[mode].push(received.filter((seqs) => seqs.some((q) => q >= clump.first && q < clump.first + CLUMP)).length);
      }
    }
    console.log(JSON.stringify({ event: "test.adaptive_batching_frames_per_clump", clump: CLUMP, discarded, ...perClump }));
    // Every message once, in order, in both modes.
    expect(received.flat()).toEqual(received.flat().map((_, i) => received.flat()[0]! + i));
    expect(perClump.on.length).toBeGreaterThanOrEqual(3);
    expect(perClump.off.length).toBeGreaterThanOrEqual(3);
    // Fixed rules: the pause (over 2 ms) closes the burst, so the first two go alone and the rest share a frame.
    expect(perClump.off.every((n) => n === 3), `off ${JSON.stringify(perClump.off)}`).toBe(true);
    // Adaptive: the window the previous burst opened (up to MAX_WAIT_MS, twice) is still open: the whole
    // burst shares one frame. Where the loop ran late its window is shorter (its lag comes off it) and had
    // closed: then the burst starts afresh, as under the fixed rules (3). Most bursts here are the former.
    // (2: the burst came just as a late window closed, so its first message went alone and opened a window.)
    expect(perClump.on.every((n) => n >= 1 && n <= 3), `on ${JSON.stringify(perClump.on)}`).toBe(true);
    expect(perClump.on.filter((n) => n === 1).length, `on ${JSON.stringify(perClump.on)}`).toBeGreaterThanOrEqual(Math.ceil(perClump.on.length / 2));
    sub.close();
  }, 60_000);

  it("follows a room-name pattern: on in matching rooms only (a per-room flag)", async () => {
    await setFlag("adaptive_batching", { rollout: { rooms: ["adaptive-*"] } });
    const framesIn = async (room: string) => {
      const sub = await connect(room, await token({ sub: "reader" }));
      await sub.next("welcome");
      const clumps = await runInDurableObject(env.ROOMS.getByName(room), (instance: Room) => clumpsInRoom(instance, room, "p"));
      await sub.until((frames) => frames.filter((f) => f.type === "message").length >= clumps.length * CLUMP + 1, 10_000);
      sub.close();
      const clean = clumps.filter((c) => c.clean).length;
      // Every frame after welcome and presence_state: the warm-up message and the bursts.
      return { frames: sub.batches.length - 2, clumps: clumps.length, clean };
    };
    const on = await framesIn(uniqueRoom("adaptive"));
    const off = await framesIn(uniqueRoom("fixed"));
    console.log(JSON.stringify({ event: "test.adaptive_batching_by_pattern", on, off }));
    // The warm-up and the first burst take 1 + 3 frames in both; then 1 per burst with it on and 3 with it off
    // (a burst after a late pause can take fewer; the first test counts only clean ones).
    expect(off.frames - on.frames).toBeGreaterThanOrEqual(Math.min(on.clean, off.clean));
    expect(on.frames).toBeLessThan(off.frames);
  }, 60_000);
});

describe("when an override takes effect", () => {
  it("reaches a new connection within the cache TTL when only the store changed (no admin call in this isolate)", async () => {
    const room = uniqueRoom();
    const features = async () => {
      const s = await connect(room, await token({ sub: "ttl-user" }));
      const welcome = await s.next("welcome");
      s.close();
      return welcome.features ?? {};
    };
    await setFlag("ttl_probe", null);
    // This connect reads the store (the DELETE above forgot this isolate's cache).
    const readAt = Date.now();
    expect((await features()).ttl_probe).toBeUndefined();
    // As if another isolate's admin call had stored it: straight into the store.
    await env.DIRECTORY!.getByName(FLAG_STORE_NAME).putFlagOverride("ttl_probe", { rollout: "on", expose: true });
    let seenAt: number | undefined;
    let connectsBefore = 0;
    while (Date.now() - readAt < CACHE_TTL_MS + 2_000) {
      if ((await features()).ttl_probe === true) {
        seenAt = Date.now();
        break;
      }
      connectsBefore++;
      await new Promise((r) => setTimeout(r, 200));
    }
    try {
      expect(seenAt, "the override never showed").toBeDefined();
      const delay = seenAt! - readAt;
      console.log(JSON.stringify({ event: "test.override_delay", ttlMs: CACHE_TTL_MS, delayMs: delay, connectsBefore }));
      // Not before the cached read expired (the cache saved a read per connect), not much after.
      expect(delay).toBeGreaterThanOrEqual(CACHE_TTL_MS - 50);
      expect(delay).toBeLessThanOrEqual(CACHE_TTL_MS + 1_500);
      expect(connectsBefore).toBeGreaterThan(5);
    } finally {
      await setFlag("ttl_probe", null);
    }
  }, 20_000);
});
