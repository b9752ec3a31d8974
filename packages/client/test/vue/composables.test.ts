/**
 * The Vue bindings on fake sockets (happy-dom, real timers), mounted with
 * @vue/test-utils: what a component renders, how many sockets it opens (shared
 * rooms, remounts, SSR), and when they close.
 */
import { flushPromises, mount, type VueWrapper } from "@vue/test-utils";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createSSRApp, defineComponent, effectScope, h, ref, type PropType } from "vue";
import { renderToString } from "vue/server-renderer";
import { createClient, type ClientOptions } from "../../src/client.js";
import { RoomcastClientError } from "../../src/errors.js";
import { memoryStorage } from "../../src/outbox.js";
import {
  createRoomcast,
  useConnectionState,
  useFeatures,
  useMessages,
  usePending,
  usePresence,
  usePublish,
  useRoom,
  useUserId,
} from "../../src/vue.js";
import { BASE_URL, TOKEN, advance, fakeSockets, member, observe, testClient } from "../unit/fake-socket.js";

const clients: { close(): void }[] = [];
const wrappers: VueWrapper[] = [];

afterEach(async () => {
  for (const wrapper of wrappers.splice(0)) wrapper.unmount();
  await advance(5);
  for (const client of clients.splice(0)) client.close();
  vi.restoreAllMocks();
});

function setup(options: Partial<ClientOptions> = {}) {
  const { client, server } = testClient({ pingIntervalMs: 3_600_000, ...options });
  clients.push(client);
  return { client, server };
}

/** Lets mounts, the room's async start-up, timers up to `ms` and Vue's re-render run. */
async function settle(ms = 5): Promise<void> {
  await advance(ms);
  await flushPromises();
}

/** A chat panel: what the composables give, rendered as text. */
const Chat = defineComponent({
  props: { name: { type: String, required: true }, label: { type: String, default: "" } },
  setup(props) {
    const room = useRoom(() => props.name);
    const state = useConnectionState(room);
    const messages = useMessages(room);
    const members = usePresence(room);
    const pending = usePending(room);
    const userId = useUserId(room);
    const features = useFeatures(room);
    const publish = usePublish(room);
    const label = props.label || props.name;
    const sent = ref<string>("");
    const send = (text: string) =>
      publish({ text }).then(
        (ack) => (sent.value = `acked:${ack.seq}`),
        (err: RoomcastClientError) => (sent.value = `rejected:${err.code}`),
      );
    return () =>
      h("section", { "data-label": label }, [
        h("p", { "data-test": `${label}-state` }, state.value),
        h("ul", { "data-test": `${label}-messages` }, messages.value.map((m) => h("li", { key: m.seq }, `${m.seq}:${JSON.stringify(m.data)}`))),
        h("p", { "data-test": `${label}-members` }, members.value.map((m) => m.userId).join(",")),
        h("p", { "data-test": `${label}-pending` }, pending.value.map((e) => JSON.stringify(e.data)).join(",")),
        h("p", { "data-test": `${label}-user` }, userId.value ?? "-"),
        h("p", { "data-test": `${label}-features` }, JSON.stringify(features.value)),
        h("p", { "data-test": `${label}-sent` }, sent.value),
        h("button", { "data-test": `${label}-send`, onClick: () => void send("hi") }, "send"),
      ]);
  },
});

/** Several panels, toggled by props (to unmount some and keep others). */
const Page = defineComponent({
  props: { rooms: { type: Array as PropType<{ name: string; label: string }[]>, required: true } },
  setup(props) {
    return () => h("main", props.rooms.map((r) => h(Chat, { key: r.label, name: r.name, label: r.label })));
  },
});

function mountWith(client: ReturnType<typeof createClient>, rooms: { name: string; label: string }[] | string) {
  const list = typeof rooms === "string" ? [{ name: rooms, label: rooms }] : rooms;
  const wrapper = mount(Page, { props: { rooms: list }, global: { plugins: [createRoomcast({ client })] } });
  wrappers.push(wrapper);
  const text = (testId: string) => wrapper.get(`[data-test="${testId}"]`).text();
  const items = (testId: string) => wrapper.get(`[data-test="${testId}"]`).findAll("li").map((li) => li.text());
  return { wrapper, text, items };
}

describe("composables", () => {
  it("useConnectionState goes from connecting to connected after the welcome, and useUserId shows the welcome's user", async () => {
    const { client, server } = setup();
    const { text } = mountWith(client, "lobby");
    await settle();
    expect(text("lobby-state")).toBe("connecting");
    expect(text("lobby-user")).toBe("-");
    expect(server.sockets).toHaveLength(1);

    server.last().welcome({ userId: "carol" });
    await settle();
    expect(text("lobby-state")).toBe("connected");
    expect(text("lobby-user")).toBe("carol");
  });

  it("useFeatures is {} before the welcome, then the welcome's flags", async () => {
    const { client, server } = setup();
    const { text } = mountWith(client, "lobby");
    await settle();
    expect(text("lobby-features")).toBe("{}");
    server.last().welcome({ features: { new_composer: true, beta: false } });
    await settle();
    expect(text("lobby-features")).toBe('{"new_composer":true,"beta":false}');
  });

  it("useMessages re-renders with the replay and each live message another client published", async () => {
    const { client, server } = setup();
    const { items } = mountWith(client, "lobby");
    await settle();
    expect(items("lobby-messages")).toEqual([]);

    server.last().welcome({ seq: 2, replay: 2 });
    server.last().messages(1, 2);
    await settle();
    expect(items("lobby-messages")).toEqual(['1:{"n":1}', '2:{"n":2}']);

    server.last().message(3, { from: "bob", data: "live" });
    await settle();
    expect(items("lobby-messages")).toEqual(['1:{"n":1}', '2:{"n":2}', '3:"live"']);
  });

  it("usePresence shows the members and follows diffs", async () => {
    const { client, server } = setup();
    const { text } = mountWith(client, "lobby");
    await settle();
    server.last().welcome();
    server.last().presenceState([member("alice"), member("bob")]);
    await settle();
    expect(text("lobby-members")).toBe("alice,bob");

    server.last().presenceDiff({ joins: [member("carol")], leaves: ["alice"] });
    await settle();
    expect(text("lobby-members")).toBe("bob,carol");
  });

  it("usePublish sends a publish frame, usePending shows it until the ack, and the promise settles with the ack", async () => {
    const { client, server } = setup();
    const { wrapper, text } = mountWith(client, "lobby");
    await settle();
    server.last().welcome();
    await settle();

    await wrapper.get('[data-test="lobby-send"]').trigger("click");
    await settle();
    expect(text("lobby-pending")).toBe('{"text":"hi"}');
    const [frame] = server.last().framesOf("publish");
    expect(frame?.data).toEqual({ text: "hi" });

    server.last().ack(frame!.id, 7);
    await settle();
    expect(text("lobby-pending")).toBe("");
    expect(text("lobby-sent")).toBe("acked:7");
  });

  it("usePending drops a publish the server rejected, which raises no room event", async () => {
    const { client, server } = setup();
    const { wrapper, text } = mountWith(client, "lobby");
    await settle();
    server.last().welcome();
    await wrapper.get('[data-test="lobby-send"]').trigger("click");
    await settle();
    expect(text("lobby-pending")).toBe('{"text":"hi"}');

    server.last().error("forbidden", server.last().publishedIds[0]);
    await settle();
    expect(text("lobby-sent")).toBe("rejected:forbidden");
    expect(text("lobby-pending")).toBe("");
  });

  it("usePublish rejects with room_closed before the room exists", async () => {
    const published: ReturnType<typeof observe>[] = [];
    const Early = defineComponent({
      setup() {
        const publish = usePublish(useRoom("lobby"));
        published.push(observe(publish("too early"))); // in setup: not mounted yet
        return () => h("p");
      },
    });
    const { client } = setup();
    wrappers.push(mount(Early, { global: { plugins: [createRoomcast({ client })] } }));
    const result = published[0]!;
    await settle();
    expect(result.status).toBe("rejected");
    expect((result.error as RoomcastClientError).code).toBe("room_closed");
  });

  it("a reactive room name leaves the old room and opens the new one", async () => {
    const { client, server } = setup();
    const { wrapper, text } = mountWith(client, [{ name: "lobby", label: "chat" }]);
    await settle();
    server.last().welcome();
    await settle();
    const lobby = server.last();

    await wrapper.setProps({ rooms: [{ name: "other", label: "chat" }] });
    await settle();
    expect(server.sockets.map((s) => s.room)).toEqual(["lobby", "other"]);
    expect(lobby.closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
    expect(text("chat-state")).toBe("connecting");
  });

  it("throws a clear error without the plugin", () => {
    vi.spyOn(console, "warn").mockImplementation(() => {}); // Vue warns about the setup error too
    expect(() => mount(Chat, { props: { name: "lobby" } })).toThrow("app.use(createRoomcast");
  });

  it("takes a client created with shareAcrossTabs (whose rooms are RoomHandles)", async () => {
    const server = fakeSockets();
    const client = createClient({ url: BASE_URL, token: TOKEN, createSocket: server.createSocket, shareAcrossTabs: true });
    clients.push(client);
    const wrapper = mount(Chat, { props: { name: "lobby" }, global: { plugins: [createRoomcast({ client })] } });
    wrappers.push(wrapper);
    await settle();
    server.last().welcome();
    await settle();
    expect(wrapper.get('[data-test="lobby-state"]').text()).toBe("connected");
  });

  it("rejects a plugin without a client or options", () => {
    expect(() => createRoomcast({})).toThrow(TypeError);
  });
});

describe("sockets", () => {
  it("shares one socket between components using the same room, and opens one per room", async () => {
    const { client, server } = setup();
    const { text, items } = mountWith(client, [
      { name: "lobby", label: "first" },
      { name: "lobby", label: "second" },
      { name: "other", label: "third" },
    ]);
    await settle();
    expect(server.sockets.map((s) => s.room).sort()).toEqual(["lobby", "other"]);

    const lobby = server.sockets.find((s) => s.room === "lobby")!;
    lobby.welcome();
    lobby.message(1);
    await settle();
    expect([text("first-state"), text("second-state"), text("third-state")]).toEqual(["connected", "connected", "connecting"]);
    expect(items("second-messages")).toEqual(['1:{"n":1}']);
  });

  it("closes the room's socket a tick after the last component using it unmounts", async () => {
    const { client, server } = setup();
    const { wrapper } = mountWith(client, [
      { name: "lobby", label: "first" },
      { name: "lobby", label: "second" },
    ]);
    await settle();
    server.last().welcome();
    const socket = server.last();

    await wrapper.setProps({ rooms: [{ name: "lobby", label: "first" }] }); // one user left: the room stays
    await settle();
    expect(socket.closedByClient).toBe(false);

    wrapper.unmount();
    expect(socket.closedByClient).toBe(false); // released a tick late, not at once
    await settle();
    expect(socket.closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
    await settle(50);
    expect(server.sockets).toHaveLength(1);
  });

  it("keeps the room and its socket when the component is replaced within the same tick", async () => {
    const { client, server } = setup();
    const { wrapper, text } = mountWith(client, [{ name: "lobby", label: "a" }]);
    await settle();
    server.last().welcome();
    await settle();

    // A different component instance (new key) for the same room: unmount + mount in one render.
    await wrapper.setProps({ rooms: [{ name: "lobby", label: "b" }] });
    expect(text("b-state")).toBe("connected");
    await settle(20);
    expect(server.sockets).toHaveLength(1);
    expect(server.last().closedByClient).toBe(false);
  });

  it("does not open a new room after client.close(), neither for a new component nor on unmount", async () => {
    const { client, server } = setup();
    const { wrapper, text } = mountWith(client, "lobby");
    await settle();
    server.last().welcome();
    await settle();

    const rooms = vi.spyOn(client, "room");
    client.close();
    await settle();
    expect(text("lobby-state")).toBe("closed");
    // Another panel for the room while the first still holds it: it shows the closed room, it does not reopen it.
    await wrapper.setProps({ rooms: [{ name: "lobby", label: "lobby" }, { name: "lobby", label: "again" }] });
    await settle();
    expect(text("again-state")).toBe("closed");
    expect(server.sockets).toHaveLength(1);
    wrapper.unmount();
    await settle(20);
    expect(rooms).not.toHaveBeenCalled();
    expect(server.sockets).toHaveLength(1);
  });

  it("closes a client the plugin created when the app unmounts", async () => {
    const server = fakeSockets();
    const options: ClientOptions = { url: BASE_URL, token: TOKEN, createSocket: server.createSocket, fetch: () => Promise.reject(new TypeError("no network")) };
    const wrapper = mount(Chat, { props: { name: "lobby" }, global: { plugins: [createRoomcast({ options })] } });
    await settle();
    server.last().welcome();
    await settle();
    expect(wrapper.get('[data-test="lobby-state"]').text()).toBe("connected");

    wrapper.unmount();
    await settle();
    expect(server.last().closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
  });

  it("opens no socket when rendered on the server", async () => {
    const { client, server } = setup();
    const app = createSSRApp(Chat, { name: "lobby" }).use(createRoomcast({ client }));
    const html = await renderToString(app);
    expect(html).toContain("idle");
    await advance(20);
    expect(server.sockets).toHaveLength(0);
  });

  it("outside a component, useRoom holds the room for the life of its effect scope", async () => {
    const { client, server } = setup();
    const app = createSSRApp({ render: () => null }).use(createRoomcast({ client }));
    const scope = effectScope();
    const state = app.runWithContext(() => scope.run(() => useConnectionState(useRoom("lobby"))))!;
    await settle();
    expect(server.sockets).toHaveLength(1);
    server.last().welcome();
    await settle();
    expect(state.value).toBe("connected");

    scope.stop();
    await settle();
    expect(server.last().closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
  });
});

describe("releasing rooms", () => {
  it("keeps a room's durable outbox when the room is switched away, and sends it when the room is opened again", async () => {
    const storage = memoryStorage();
    const { client, server } = setup({ outbox: { storage } });
    const { wrapper } = mountWith(client, [{ name: "first", label: "chat" }]);
    await settle();
    server.last().welcome();
    await settle();
    await wrapper.get('[data-test="chat-send"]').trigger("click"); // rejects with room_closed on release (shown, not thrown)
    const [id] = server.last().publishedIds;

    await wrapper.setProps({ rooms: [{ name: "second", label: "chat" }] }); // switched before the ack
    await settle();
    expect(server.sockets.find((s) => s.room === "first")!.closedByClient).toBe(true);
    expect((await storage.load("first", "alice")).map((e) => e.id)).toEqual([id]);

    await wrapper.setProps({ rooms: [{ name: "first", label: "chat" }] }); // and back: sent again, same id
    await settle();
    const again = server.sockets.filter((s) => s.room === "first").at(-1)!;
    again.welcome();
    expect(again.publishedIds).toEqual([id]);
  });

  it("useMessages starts over when the server's log changed (new epoch), never splicing the two", async () => {
    const { client, server } = setup();
    const { items } = mountWith(client, "lobby");
    await settle();
    server.last().welcome({ seq: 3, replay: 3 });
    server.last().messages(1, 3);
    await settle();
    expect(items("lobby-messages")).toHaveLength(3);

    server.last().serverClose(1006);
    await settle(1_000);
    server.last().welcome({ epoch: "epoch-2", seq: 0, replay: 0, resume: { recovered: false, reason: "epoch_changed" } });
    await settle();
    expect(items("lobby-messages")).toEqual([]); // emptied at the gap, though no message came
    server.last().messages(1, 2);
    await settle();
    expect(items("lobby-messages")).toEqual(['1:{"n":1}', '2:{"n":2}']);
  });
});
