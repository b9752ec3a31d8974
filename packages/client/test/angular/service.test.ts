/**
 * The Angular bindings on fake sockets (happy-dom, real timers, zoneless), with
 * Angular's TestBed: what a component renders from the signals, how many sockets
 * it opens (shared rooms, route-like replacement, SSR), and when they close.
 *
 * Components are declared by calling the decorator functions (JIT, no decorator
 * syntax), so the test needs no Angular compiler plugin.
 */
import "@angular/compiler";
import { Component, PLATFORM_ID, provideZonelessChangeDetection, signal, type Type } from "@angular/core";
import { TestBed, type ComponentFixture } from "@angular/core/testing";
import { BrowserTestingModule, platformBrowserTesting } from "@angular/platform-browser/testing";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { injectRoom, provideRoomcast, RoomcastService, type RoomcastConfig } from "../../src/angular.js";
import type { ClientOptions, RoomcastClient } from "../../src/client.js";
import type { RoomcastClientError } from "../../src/errors.js";
import { memoryStorage } from "../../src/outbox.js";
import { BASE_URL, TOKEN, advance, fakeSockets, member, observe, testClient } from "../unit/fake-socket.js";

beforeAll(() => {
  TestBed.initTestEnvironment(BrowserTestingModule, platformBrowserTesting());
});

const clients: RoomcastClient[] = [];

afterEach(async () => {
  TestBed.resetTestingModule(); // destroys the components (and the environment injector)
  await advance(5);
  for (const client of clients.splice(0)) client.close();
});

function setup(options: Partial<ClientOptions> = {}) {
  const { client, server } = testClient({ pingIntervalMs: 3_600_000, ...options });
  clients.push(client);
  return { client, server };
}

const TEMPLATE = `
  <p class="state">{{ chat.state() }}</p>
  <ul class="messages">@for (m of chat.messages(); track m.seq) {<li>{{ m.seq }}:{{ json(m.data) }}</li>}</ul>
  <p class="members">{{ names(chat.members()) }}</p>
  <p class="pending">{{ pendingText(chat.pending()) }}</p>
  <p class="user">{{ chat.userId() ?? "-" }}</p>
  <p class="features">{{ json(chat.features()) }}</p>`;

class ChatBase {
  json = (value: unknown) => JSON.stringify(value);
  names = (members: { userId: string }[]) => members.map((m) => m.userId).join(",");
  pendingText = (entries: { data: unknown }[]) => entries.map((e) => JSON.stringify(e.data)).join(",");
}

const LobbyChat = Component({ selector: "lobby-chat", template: TEMPLATE })(
  class LobbyChat extends ChatBase {
    chat = injectRoom("lobby");
  },
);

/** The room name is a signal, as with a route parameter or an input. */
const SwitchingChat = Component({ selector: "switching-chat", template: TEMPLATE })(
  class SwitchingChat extends ChatBase {
    readonly roomName = signal("lobby");
    chat = injectRoom(this.roomName);
  },
);

const TwoPanels = Component({
  selector: "two-panels",
  imports: [LobbyChat],
  template: `@if (first()) {<lobby-chat class="first" />} @if (second()) {<lobby-chat class="second" />}`,
})(
  class TwoPanels {
    readonly first = signal(true);
    readonly second = signal(true);
  },
);

function configure(config: RoomcastConfig, extra: unknown[] = []) {
  TestBed.configureTestingModule({ providers: [provideZonelessChangeDetection(), provideRoomcast(config), ...(extra as never[])] });
}

/** Lets the room's async start-up, timers up to `ms` and change detection run. */
async function settle(fixture: ComponentFixture<unknown>, ms = 5): Promise<void> {
  await advance(ms);
  await fixture.whenStable();
}

function render<T>(type: Type<T>) {
  const fixture = TestBed.createComponent(type);
  const el = fixture.nativeElement as HTMLElement;
  const text = (selector: string) => el.querySelector(selector)?.textContent?.trim();
  const items = (selector = ".messages") => [...el.querySelectorAll(`${selector} li`)].map((li) => li.textContent?.trim());
  return { fixture, text, items };
}

describe("injectRoom", () => {
  it("state follows the connection, and userId shows the welcome's user", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(LobbyChat);
    await settle(fixture);
    expect(text(".state")).toBe("connecting");
    expect(server.sockets).toHaveLength(1);

    server.last().welcome({ userId: "carol" });
    await settle(fixture);
    expect(text(".state")).toBe("connected");
    expect(text(".user")).toBe("carol");
  });

  it("features is {} before the welcome, then the welcome's flags", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(LobbyChat);
    await settle(fixture);
    expect(text(".features")).toBe("{}");
    server.last().welcome({ features: { new_composer: true } });
    await settle(fixture);
    expect(text(".features")).toBe('{"new_composer":true}');
  });

  it("messages re-render with the replay and each live message another client published", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, items } = render(LobbyChat);
    await settle(fixture);
    server.last().welcome({ seq: 2, replay: 2 });
    server.last().messages(1, 2);
    await settle(fixture);
    expect(items()).toEqual(['1:{"n":1}', '2:{"n":2}']);

    server.last().message(3, { from: "bob", data: "live" });
    await settle(fixture);
    expect(items()).toEqual(['1:{"n":1}', '2:{"n":2}', '3:"live"']);
  });

  it("members show presence and follow diffs", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(LobbyChat);
    await settle(fixture);
    server.last().welcome();
    server.last().presenceState([member("alice"), member("bob")]);
    await settle(fixture);
    expect(text(".members")).toBe("alice,bob");

    server.last().presenceDiff({ joins: [member("carol")], leaves: ["alice"] });
    await settle(fixture);
    expect(text(".members")).toBe("bob,carol");
  });

  it("publish sends a frame, pending shows it until the ack, and the promise settles with the ack", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(LobbyChat);
    await settle(fixture);
    server.last().welcome();
    const result = observe(fixture.componentInstance.chat.publish({ text: "hi" }));
    await settle(fixture);
    expect(text(".pending")).toBe('{"text":"hi"}');
    const [frame] = server.last().framesOf("publish");
    expect(frame?.data).toEqual({ text: "hi" });

    server.last().ack(frame!.id, 7);
    await settle(fixture);
    expect(text(".pending")).toBe("");
    expect(result.value).toEqual({ id: frame!.id, seq: 7, duplicate: false });
  });

  it("setPresence sends the state on the room's socket", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture } = render(LobbyChat);
    await settle(fixture);
    server.last().welcome();
    fixture.componentInstance.chat.setPresence({ typing: true });
    expect(server.last().framesOf("presence").map((f) => f.state)).toEqual([{ typing: true }]);
  });

  it("a signal room name leaves the old room and opens the new one", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(SwitchingChat);
    await settle(fixture);
    server.last().welcome();
    await settle(fixture);
    expect(text(".state")).toBe("connected");
    const lobby = server.last();

    fixture.componentInstance.roomName.set("other");
    await settle(fixture);
    expect(server.sockets.map((s) => s.room)).toEqual(["lobby", "other"]);
    expect(text(".state")).toBe("connecting");
    await settle(fixture);
    expect(lobby.closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
  });

  it("throws a clear error without provideRoomcast", () => {
    TestBed.configureTestingModule({ providers: [provideZonelessChangeDetection()] });
    expect(() => TestBed.createComponent(LobbyChat)).toThrow("provideRoomcast");
  });
});

describe("sockets", () => {
  it("shares one socket between components using the same room, and closes it a tick after the last is destroyed", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(TwoPanels);
    await settle(fixture);
    expect(server.sockets).toHaveLength(1);
    server.last().welcome();
    await settle(fixture);
    expect([text(".first .state"), text(".second .state")]).toEqual(["connected", "connected"]);
    const socket = server.last();

    fixture.componentInstance.second.set(false); // one panel destroyed: the room stays
    await settle(fixture);
    expect(socket.closedByClient).toBe(false);

    fixture.componentInstance.first.set(false);
    await fixture.whenStable();
    expect(socket.closedByClient).toBe(false); // released a tick late, not at once
    await settle(fixture);
    expect(socket.closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
    expect(server.sockets).toHaveLength(1);
  });

  it("keeps the room and its socket when one component is replaced by another in the same tick", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(TwoPanels);
    fixture.componentInstance.second.set(false);
    await settle(fixture);
    server.last().welcome();
    await settle(fixture);

    // Like a route change: the first panel goes, a new one for the same room comes.
    fixture.componentInstance.first.set(false);
    fixture.componentInstance.second.set(true);
    await fixture.whenStable();
    expect(text(".second .state")).toBe("connected");
    await settle(fixture, 20);
    expect(server.sockets).toHaveLength(1);
    expect(server.last().closedByClient).toBe(false);
  });

  it("RoomcastService.room() holds the room until release()", async () => {
    const { client, server } = setup();
    configure({ client });
    const handle = TestBed.inject(RoomcastService).room("lobby");
    await advance(5);
    expect(server.sockets).toHaveLength(1);
    server.last().welcome();
    await advance();
    expect(handle.state()).toBe("connected");

    handle.release();
    expect(handle.state()).toBe("idle");
    const late = observe(handle.publish("after release"));
    await advance(5);
    expect(server.last().closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
    expect((late.error as RoomcastClientError).code).toBe("room_closed");
  });

  it("does not open a new room after client.close(), neither for a new component nor on destroy", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, text } = render(TwoPanels);
    fixture.componentInstance.second.set(false);
    await settle(fixture);
    server.last().welcome();
    await settle(fixture);

    const rooms = vi.spyOn(client, "room");
    client.close();
    await settle(fixture);
    expect(text(".first .state")).toBe("closed");
    // Another panel for the room while the first still holds it: it shows the closed room, it does not reopen it.
    fixture.componentInstance.second.set(true);
    await settle(fixture);
    expect(text(".second .state")).toBe("closed");
    expect(server.sockets).toHaveLength(1);
    fixture.destroy();
    await advance(20);
    expect(rooms).not.toHaveBeenCalled();
    expect(server.sockets).toHaveLength(1);
  });

  it("closes a client the service created when its injector is destroyed", async () => {
    const server = fakeSockets();
    configure({ options: { url: BASE_URL, token: TOKEN, createSocket: server.createSocket, fetch: () => Promise.reject(new TypeError("no network")) } });
    const { fixture, text } = render(LobbyChat);
    await settle(fixture);
    server.last().welcome();
    await settle(fixture);
    expect(text(".state")).toBe("connected");

    TestBed.resetTestingModule();
    await advance(5);
    expect(server.last().closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
  });

  it("opens no socket on the server platform", async () => {
    const { client, server } = setup();
    configure({ client }, [{ provide: PLATFORM_ID, useValue: "server" }]);
    const { fixture, text } = render(SwitchingChat);
    await settle(fixture, 20);
    expect(text(".state")).toBe("idle");
    expect(server.sockets).toHaveLength(0);
    const result = observe(fixture.componentInstance.chat.publish("on the server"));
    await advance();
    expect((result.error as RoomcastClientError).code).toBe("room_closed");
  });

  it("rejects provideRoomcast without a client or options", () => {
    expect(() => provideRoomcast({})).toThrow(TypeError);
  });
});

describe("releasing rooms", () => {
  it("keeps a room's durable outbox when the room is switched away, and sends it when the room is opened again", async () => {
    const storage = memoryStorage();
    const { client, server } = setup({ outbox: { storage } });
    configure({ client });
    const { fixture } = render(SwitchingChat);
    await settle(fixture);
    server.last().welcome();
    const unacked = fixture.componentInstance.chat.publish({ text: "queued" }, { id: "q-1" });
    unacked.catch(() => {}); // rejects with room_closed when the room is released
    expect(server.last().publishedIds).toEqual(["q-1"]);

    fixture.componentInstance.roomName.set("second"); // switched before the ack
    await settle(fixture);
    await settle(fixture);
    expect(server.sockets.find((s) => s.room === "lobby")!.closedByClient).toBe(true);
    expect((await storage.load("lobby", "alice")).map((e) => e.id)).toEqual(["q-1"]);

    fixture.componentInstance.roomName.set("lobby"); // and back: sent again, same id
    await settle(fixture);
    const again = server.sockets.filter((s) => s.room === "lobby").at(-1)!;
    again.welcome();
    expect(again.publishedIds).toEqual(["q-1"]);
  });

  it("messages start over when the server's log changed (new epoch), never splicing the two", async () => {
    const { client, server } = setup();
    configure({ client });
    const { fixture, items } = render(LobbyChat);
    await settle(fixture);
    server.last().welcome({ seq: 3, replay: 3 });
    server.last().messages(1, 3);
    await settle(fixture);
    expect(items()).toHaveLength(3);

    server.last().serverClose(1006);
    await settle(fixture, 1_000);
    server.last().welcome({ epoch: "epoch-2", seq: 0, replay: 0, resume: { recovered: false, reason: "epoch_changed" } });
    await settle(fixture);
    expect(items()).toEqual([]); // emptied at the gap, though no message came
    server.last().messages(1, 2);
    await settle(fixture);
    expect(items()).toEqual(['1:{"n":1}', '2:{"n":2}']);
  });
});
