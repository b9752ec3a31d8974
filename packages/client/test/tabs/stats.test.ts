/**
 * SharedRoom.stats(): the leader tab's room measures the group's one socket; the
 * other tabs get its numbers relayed after each of its pongs.
 */
import { expect, it } from "vitest";
import type { SharedRoom } from "../../src/tabs/shared-room.js";
import { advance } from "../unit/fake-socket.js";
import { FakeBrowser, tokenFor, useFakeBrowser } from "./fake-tabs.js";

let browser: FakeBrowser;
useFakeBrowser((b) => (browser = b));

it("relays the leader's RTT and publish→ack numbers to the other tabs after each pong; state is each tab's", async () => {
  const options = { pingIntervalMs: 1_000, pongTimeoutMs: 900 };
  const leader = browser.open(tokenFor("alice"), "lobby", options);
  await advance(10);
  const follower = browser.open(tokenFor("alice"), "lobby", options);
  await advance(10);
  expect((leader.room as SharedRoom).isLeader).toBe(true);
  const socket = leader.server.last();
  socket.welcome({ userId: "alice", limits: { maxMessageBytes: 65_536, publishRatePerSecond: 20, publishBurst: 40, livenessTimeoutSeconds: 60 } });
  await advance(10);
  expect(follower.room.stats()).toMatchObject({ rtt: { last: null, count: 0 }, publishAck: { count: 0 }, state: "connected" });

  // A publish from the follower, acked 25 ms after it went on the leader's socket.
  void follower.room.publish({ n: 1 });
  // Hop by hop (channel messages arrive a task later), without moving the clock past the send.
  for (let i = 0; i < 100 && socket.publishedIds.length === 0; i++) await advance(0);
  const [id] = socket.publishedIds;
  await advance(25);
  socket.ack(id!, 1);
  await advance(10);
  expect(leader.room.stats().publishAck).toMatchObject({ p50: 25, count: 1 });
  expect(follower.room.stats().publishAck.count).toBe(0); // not relayed before the next pong

  const pings = () => socket.sent.filter((t) => t === '{"type":"ping"}').length;
  for (let ms = 0; ms < 2_000 && pings() === 0; ms++) await advance(1); // the leader pings
  expect(pings()).toBe(1);
  await advance(40);
  socket.pong();
  await advance(10);
  for (const tab of [leader, follower]) {
    expect(tab.room.stats()).toMatchObject({ rtt: { last: 40, p50: 40, count: 1 }, publishAck: { p50: 25, count: 1 }, reconnects: 0, state: "connected" });
  }
});
