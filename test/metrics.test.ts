import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { AE_DOUBLES, RoomMeter, prometheusText, type RoomMetrics } from "../src/room/metrics.js";
import { connect, publish, token, uniqueRoom, upgrade } from "./helpers.js";
import { expectRefused } from "./refusals.js";

type Parsed = { name: string; type: string; metrics: { value: string; labels?: Record<string, string> }[] }[];

/** The value of one series, found by its exact label set (absent labels must be absent). */
function valueOf(parsed: Parsed, name: string, labels: Record<string, string>): number | undefined {
  const family = parsed.find((f) => f.name === name);
  const sample = family?.metrics.find((m) => JSON.stringify(Object.entries(m.labels ?? {}).sort()) === JSON.stringify(Object.entries(labels).sort()));
  return sample === undefined ? undefined : Number(sample.value);
}

function counter(m: RoomMetrics, name: string, labels?: Record<string, string>): number {
  return m.counters
    .filter((c) => c.name === name && JSON.stringify(Object.entries(c.labels ?? {}).sort()) === JSON.stringify(Object.entries(labels ?? {}).sort()))
    .reduce((a, c) => a + c.value, 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("prometheusText", () => {
  it("is valid text format 0.0.4 with per-room series per code and verdict, and service totals for gauges only", () => {
    const rooms: RoomMetrics[] = [
      {
        room: 'a"b\\c',
        at: 1,
        gauges: { connections: 3, log_head_seq: 10, log_messages: 7 },
        counters: [
          { name: "publishes_total", labels: { outcome: "accepted" }, value: 5 },
          { name: "publishes_total", labels: { outcome: "rate_limited" }, value: 2 },
          { name: "resumes_total", labels: { verdict: "trimmed" }, value: 1 },
          { name: "wakes_total", value: 4 },
        ],
      },
      {
        room: "lobby",
        at: 1,
        gauges: { connections: 1, log_head_seq: 3, log_messages: 3 },
        counters: [
          { name: "publishes_total", labels: { outcome: "accepted" }, value: 1 },
          { name: "publishes_total", labels: { outcome: "forbidden" }, value: 3 },
          { name: "resumes_total", labels: { verdict: "recovered" }, value: 6 },
          { name: "resumes_total", labels: { verdict: "trimmed" }, value: 2 },
        ],
      },
    ];
    const text = prometheusText(rooms);
    const parsed = parsePrometheusTextFormat(text) as Parsed;
    const pub = "roomcast_publishes_total";
    expect(parsed.find((f) => f.name === pub)?.type).toBe("COUNTER");
    expect(valueOf(parsed, pub, { room: 'a"b\\c', outcome: "rate_limited" })).toBe(2);
    expect(valueOf(parsed, pub, { room: "lobby", outcome: "forbidden" })).toBe(3);
    expect(valueOf(parsed, "roomcast_resumes_total", { room: "lobby", verdict: "recovered" })).toBe(6);
    expect(valueOf(parsed, "roomcast_wakes_total", { room: 'a"b\\c' })).toBe(4);
    // No service totals for counters: a sum over the rooms listed now drops when a room empties
    // (Prometheus would read a reset); aggregate per-room rates instead.
    expect(parsed.find((f) => f.name === pub)?.metrics.every((m) => m.labels?.room !== undefined)).toBe(true);
    expect(valueOf(parsed, pub, { outcome: "accepted" })).toBeUndefined();
    // Gauges: per room, and a total only where adding up means something.
    expect(parsed.find((f) => f.name === "roomcast_connections")?.type).toBe("GAUGE");
    expect(valueOf(parsed, "roomcast_connections", { room: "lobby" })).toBe(1);
    expect(valueOf(parsed, "roomcast_connections", {})).toBe(4);
    expect(valueOf(parsed, "roomcast_log_head_seq", {})).toBeUndefined();
    expect(valueOf(parsed, "roomcast_rooms", {})).toBe(2);
    // perRoom: false keeps only the gauges' totals.
    const totalsOnly = parsePrometheusTextFormat(prometheusText(rooms, { perRoom: false })) as Parsed;
    expect(totalsOnly.flatMap((f) => f.metrics).some((m) => m.labels?.room !== undefined)).toBe(false);
    expect(valueOf(totalsOnly, "roomcast_connections", {})).toBe(4);
    expect(valueOf(totalsOnly, pub, { outcome: "accepted" })).toBeUndefined();
  });
});

describe("room metrics", () => {
  it("counts publishes by outcome, resumes by verdict, frames, connections and closes where they happen", async () => {
    const room = uniqueRoom("metrics");
    const alice = await connect(room, await token({ sub: "alice" }));
    const welcome = await alice.next("welcome");
    await publish(alice, "m1", 1);
    await publish(alice, "m2", 2);
    await publish(alice, "m1", 1); // a duplicate is accepted
    const reader = await connect(room, await token({ sub: "reader", cap: { [room]: ["subscribe"] } }));
    await reader.next("welcome");
    reader.send({ type: "publish", id: "nope", data: 1 });
    expect(await reader.next("error")).toMatchObject({ code: "forbidden" });
    reader.send("not json");
    await reader.next("error");
    // Resumes: recovered, ahead, epoch_changed.
    const r1 = await connect(room, await token({ sub: "r1" }), { resume: { epoch: welcome.epoch, after: 1 } });
    expect((await r1.next("welcome")).resume).toEqual({ recovered: true });
    r1.close();
    await r1.closed;
    const r2 = await connect(room, await token({ sub: "r2" }), { resume: { epoch: welcome.epoch, after: 99 } });
    expect((await r2.next("welcome")).resume).toMatchObject({ reason: "ahead" });
    r2.close();
    await r2.closed;
    const r3 = await connect(room, await token({ sub: "r3" }), { resume: { epoch: "other", after: 1 } });
    expect((await r3.next("welcome")).resume).toMatchObject({ reason: "epoch_changed" });
    // r3 still open (4 connections = MAX_CONNECTIONS_PER_ROOM in tests): the next is room_full.
    const extra = await connect(room, await token({ sub: "r4" }));
    await expectRefused(await upgrade(room, await token({ sub: "late" })), "room_full");
    extra.close();
    r3.close();
    await sleep(50);

    const m = await env.ROOMS.getByName(room).metrics();
    expect(m.room).toBe(room);
    expect(counter(m, "publishes_total", { outcome: "accepted" })).toBe(3);
    expect(counter(m, "publishes_total", { outcome: "forbidden" })).toBe(1);
    expect(counter(m, "resumes_total", { verdict: "recovered" })).toBe(1);
    expect(counter(m, "resumes_total", { verdict: "ahead" })).toBe(1);
    expect(counter(m, "resumes_total", { verdict: "epoch_changed" })).toBe(1);
    expect(counter(m, "connections_opened_total")).toBe(6);
    expect(counter(m, "connections_refused_total", { code: "room_full" })).toBe(1);
    expect(counter(m, "connections_closed_total", { code: "1000" })).toBeGreaterThanOrEqual(3);
    expect(counter(m, "frames_in_total", { type: "publish" })).toBe(4);
    expect(counter(m, "frames_in_total", { type: "invalid" })).toBe(1);
    expect(counter(m, "bytes_in_total")).toBeGreaterThan(0);
    expect(counter(m, "bytes_out_total")).toBeGreaterThan(0);
    // m2 reached alice live (m1 too); the reader got both in its join replay.
    expect(counter(m, "deliveries_total")).toBeGreaterThanOrEqual(2);
    expect(counter(m, "replays_started_total")).toBe(6);
    expect(counter(m, "replays_finished_total")).toBe(6);
    expect(counter(m, "replayed_messages_total")).toBeGreaterThanOrEqual(2);
    expect(counter(m, "joins_total")).toBeGreaterThanOrEqual(2);
    expect(counter(m, "wakes_total")).toBeGreaterThanOrEqual(1);
    expect(m.gauges).toMatchObject({ log_head_seq: 2, log_messages: 2, log_first_seq: 1, max_connections: 4 });
    expect(m.gauges.storage_bytes).toBeGreaterThan(0);
    alice.close();
    reader.close();
  });

  it("keeps its totals across an eviction: the last connection leaving flushes them to SQLite", async () => {
    const room = uniqueRoom("metrics");
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    for (let i = 1; i <= 3; i++) await publish(alice, `m${i}`, i);
    alice.close();
    await alice.closed;
    await sleep(50);
    await evictDurableObject(env.ROOMS.getByName(room));
    const m = await env.ROOMS.getByName(room).metrics();
    expect(counter(m, "publishes_total", { outcome: "accepted" })).toBe(3);
    expect(counter(m, "connections_opened_total")).toBe(1);
    expect(counter(m, "connections_closed_total", { code: "1000" })).toBe(1);
    expect(counter(m, "wakes_total")).toBeGreaterThanOrEqual(1);
  });

  it("flushes while active at most every FLUSH_MS, so hibernated sockets' counts survive an eviction", async () => {
    const room = uniqueRoom("metrics");
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    await publish(alice, "m1", 1);
    await publish(alice, "m2", 2);
    await sleep(1_600); // the flush timer (1 s) fires while alice stays connected
    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });
    const m = await env.ROOMS.getByName(room).metrics();
    expect(counter(m, "publishes_total", { outcome: "accepted" })).toBe(2);
    expect(counter(m, "connections_opened_total")).toBe(1);
    alice.close();
  });

  it("writes one Analytics Engine data point per flush, with the documented columns, and nothing when idle", async () => {
    const room = uniqueRoom("metrics");
    const points: AnalyticsEngineDataPoint[] = [];
    const dataset = { writeDataPoint: (p?: AnalyticsEngineDataPoint) => void points.push(p!) };
    // A room that has stored something (so the row is written too), on the object's real SQLite.
    const s = await connect(room, await token({ sub: "alice" }));
    await s.next("welcome");
    await publish(s, "m1", 1);
    await runInDurableObject(env.ROOMS.getByName(room), (_instance, state) => {
      const meter = new RoomMeter({ storage: state.storage, stored: () => true, room: () => room, gauges: () => ({ connections: 2, storage_bytes: 4096 }), dataset, flushMs: 60_000 });
      meter.flush();
      expect(points).toHaveLength(0); // nothing counted: no point
      meter.inc("publishes_total", { outcome: "accepted" }, 3);
      meter.inc("publishes_total", { outcome: "rate_limited" }, 2);
      meter.inc("resumes_total", { verdict: "trimmed" });
      meter.inc("connections_closed_total", { code: "4005" });
      meter.inc("slow_consumer_closes_total");
      meter.flush();
      meter.flush(); // nothing new: no second point
    });
    expect(points).toHaveLength(1);
    const p = points[0]!;
    expect(p.indexes).toEqual([room]);
    expect(p.blobs?.slice(0, 2)).toEqual([room, "flush"]);
    expect(p.blobs?.[2]).toBe("accepted:3;rate_limited:2");
    expect(p.blobs?.[3]).toBe("4005:1");
    expect(p.blobs?.[4]).toBe("trimmed:1");
    expect(p.doubles).toHaveLength(20);
    const col = (what: string) => p.doubles![AE_DOUBLES.findIndex((c) => c.what === what)];
    expect(col("publishes accepted")).toBe(3);
    expect(col("publishes refused (all codes)")).toBe(2);
    expect(col("publishes refused rate_limited")).toBe(2);
    expect(col("resumes failed (epoch_changed + trimmed + ahead)")).toBe(1);
    expect(col("slow_consumer_closes")).toBe(1);
    expect(col("gauge connections at the flush")).toBe(2);
    expect(col("gauge storage_bytes at the flush")).toBe(4096);
    s.close();
  });

  it("a room that stored nothing writes no database for its metrics", async () => {
    const room = uniqueRoom("metrics");
    const s = await connect(room, await token({ sub: "watcher", cap: { [room]: ["subscribe"] } }));
    await s.next("welcome");
    s.close();
    await s.closed;
    await sleep(50);
    const tables = await runInDurableObject(env.ROOMS.getByName(room), (_i, state) =>
      state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray()
        .map((r) => r.name)
        .filter((name) => !name.startsWith("_cf_")), // the platform's own (the alarm)
    );
    expect(tables).toEqual([]);
    // Its counts are still answered from memory.
    expect(counter(await env.ROOMS.getByName(room).metrics(), "connections_opened_total")).toBe(1);
  });
});
