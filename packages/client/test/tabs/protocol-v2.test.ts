/**
 * Tabs sharing one socket under roomcast.v2: the leading tab's room settles a
 * follower's publish from its echo (no ack frame comes) and relays the outcome.
 */
import { PROTOCOL_V2 } from "@roomcast/protocol";
import { expect, it } from "vitest";
import { advance, observe } from "../unit/fake-socket.js";
import { FakeBrowser, tokenFor, useFakeBrowser } from "./fake-tabs.js";

let browser: FakeBrowser;
useFakeBrowser((b) => (browser = b));

it("settles a follower tab's publish from the echo on the leader's v2 socket, in that tab, with one ack event per tab", async () => {
  const leader = browser.open(tokenFor("alice"));
  await advance(10);
  const follower = browser.open(tokenFor("alice"));
  await advance(10);
  const socket = leader.server.last();
  expect(socket.protocols.slice(0, 2)).toEqual(["roomcast.v2", "roomcast.v1"]);
  socket.welcome({ protocol: PROTOCOL_V2, userId: "alice" });
  await advance(10);
  const acks = { leader: [] as string[], follower: [] as string[] };
  leader.room.on("ack", (a) => acks.leader.push(a.id));
  follower.room.on("ack", (a) => acks.follower.push(a.id));
  const sent = observe(follower.room.publish({ text: "hi" }, { id: "f-1" }));
  await advance(10);
  expect(socket.publishedIds).toEqual(["f-1"]);
  socket.message(1, { id: "f-1", from: "alice", data: { text: "hi" } }); // no ack frame under v2
  await advance(10);
  expect(sent.status).toBe("resolved");
  expect(sent.value).toEqual({ id: "f-1", seq: 1, duplicate: false });
  expect(follower.room.pending).toEqual([]);
  expect(acks).toEqual({ leader: ["f-1"], follower: ["f-1"] });
  expect(follower.room.messages.map((m) => m.id)).toEqual(["f-1"]);
});
