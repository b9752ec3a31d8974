/**
 * The React bindings on fake sockets (happy-dom, real timers): what a component
 * renders, how many sockets it opens (StrictMode, shared rooms, SSR), and when
 * they close.
 */
import { act, cleanup, render, screen } from "@testing-library/react";
import { StrictMode } from "react";
import { renderToString } from "react-dom/server";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ClientOptions, RoomcastClient } from "../../src/client.js";
import { memoryStorage } from "../../src/outbox.js";
import { RoomcastProvider, useConnectionState, useFeatures, useMessages, usePresence, useRoom } from "../../src/react.js";
import type { Room } from "../../src/room.js";
import { BASE_URL, TOKEN, advance, fakeSockets, member, testClient, type FakeSockets } from "../unit/fake-socket.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const clients: RoomcastClient[] = [];

afterEach(async () => {
  cleanup();
  await settle();
  for (const client of clients.splice(0)) client.close();
  vi.restoreAllMocks();
});

function setup(options: Partial<ClientOptions> = {}) {
  const { client, server } = testClient({ pingIntervalMs: 3_600_000, ...options });
  clients.push(client);
  return { client, server };
}

/** Lets effects, the room's async start-up and timers up to `ms` run, inside act. */
async function settle(ms = 5): Promise<void> {
  await act(async () => {
    await advance(ms);
  });
}

/** Runs a fake-server action inside act, so React renders what it caused. */
function serve(action: () => void): void {
  act(action);
}

function Chat({ name, label = name }: { name: string; label?: string }) {
  const room = useRoom(name);
  const state = useConnectionState(room);
  const messages = useMessages(room);
  const members = usePresence(room);
  return (
    <section aria-label={label}>
      <p data-testid={`${label}-state`}>{state}</p>
      <ul data-testid={`${label}-messages`}>
        {messages.map((m) => (
          <li key={m.seq}>{`${m.seq}:${JSON.stringify(m.data)}`}</li>
        ))}
      </ul>
      <p data-testid={`${label}-members`}>{members.map((m) => m.userId).join(",")}</p>
    </section>
  );
}

const text = (testId: string) => screen.getByTestId(testId).textContent;
const items = (testId: string) => [...screen.getByTestId(testId).querySelectorAll("li")].map((li) => li.textContent);

describe("hooks", () => {
  it("useConnectionState goes from idle/connecting to connected after the welcome", async () => {
    const { client, server } = setup();
    render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    expect(["idle", "connecting"]).toContain(text("lobby-state"));

    await settle();
    expect(text("lobby-state")).toBe("connecting");
    expect(server.sockets).toHaveLength(1);

    serve(() => server.last().welcome());
    expect(text("lobby-state")).toBe("connected");
  });

  it("useMessages re-renders with the replay and each live message", async () => {
    const { client, server } = setup();
    render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    await settle();
    expect(items("lobby-messages")).toEqual([]);

    serve(() => {
      server.last().welcome({ seq: 2, replay: 2 });
      server.last().messages(1, 2);
    });
    expect(items("lobby-messages")).toEqual(['1:{"n":1}', '2:{"n":2}']);

    serve(() => server.last().message(3, { data: "live" }));
    expect(items("lobby-messages")).toEqual(['1:{"n":1}', '2:{"n":2}', '3:"live"']);
  });

  it("useFeatures is {} before the welcome, then each welcome's flags", async () => {
    function Flags() {
      const features = useFeatures(useRoom("lobby"));
      return <p data-testid="flags">{JSON.stringify(features)}</p>;
    }
    vi.spyOn(Math, "random").mockReturnValue(0); // the reconnect below happens at once
    const { client, server } = setup();
    render(
      <RoomcastProvider client={client}>
        <Flags />
      </RoomcastProvider>,
    );
    await settle();
    expect(text("flags")).toBe("{}");
    serve(() => server.last().welcome({ features: { new_composer: true } }));
    expect(text("flags")).toBe('{"new_composer":true}');
    serve(() => server.last().serverClose(1006));
    await settle(50);
    expect(server.sockets).toHaveLength(2);
    serve(() => server.last().welcome({ features: { new_composer: false } }));
    expect(text("flags")).toBe('{"new_composer":false}');
  });

  it("usePresence shows the members and follows diffs", async () => {
    const { client, server } = setup();
    render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    await settle();
    serve(() => {
      server.last().welcome();
      server.last().presenceState([member("alice"), member("bob")]);
    });
    expect(text("lobby-members")).toBe("alice,bob");

    serve(() => server.last().presenceDiff({ joins: [member("carol")], leaves: ["alice"] }));
    expect(text("lobby-members")).toBe("bob,carol");
  });

  it("sends the token as a subprotocol in a browser", async () => {
    const { client, server } = setup();
    render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    await settle();
    expect(server.last().protocols).toEqual(["roomcast.v2", "roomcast.v1", `roomcast.bearer.${TOKEN}`]);
    expect(server.last().headers).toEqual({});
  });

  it("throws a clear error outside a RoomcastProvider", () => {
    vi.spyOn(console, "error").mockImplementation(() => {}); // React reports the render error too
    expect(() => render(<Chat name="lobby" />)).toThrow("inside <RoomcastProvider>");
  });
});

describe("sockets", () => {
  it("opens exactly one socket for a room used under StrictMode", async () => {
    const { client, server } = setup();
    render(
      <StrictMode>
        <RoomcastProvider client={client}>
          <Chat name="lobby" />
        </RoomcastProvider>
      </StrictMode>,
    );
    await settle(20);
    expect(server.sockets).toHaveLength(1);
    expect(server.last().closedByClient).toBe(false);

    serve(() => server.last().welcome());
    expect(text("lobby-state")).toBe("connected");
    await settle(20);
    expect(server.sockets).toHaveLength(1);
  });

  it("opens exactly one socket under StrictMode when the provider creates its own client", async () => {
    const server: FakeSockets = fakeSockets();
    const options: ClientOptions = {
      url: BASE_URL,
      token: TOKEN,
      createSocket: server.createSocket,
      fetch: () => Promise.reject(new TypeError("no network")),
    };
    const view = render(
      <StrictMode>
        <RoomcastProvider options={options}>
          <Chat name="lobby" />
        </RoomcastProvider>
      </StrictMode>,
    );
    await settle(20);
    expect(server.sockets).toHaveLength(1);
    serve(() => server.last().welcome());
    expect(text("lobby-state")).toBe("connected");

    view.unmount(); // the provider owns the client: unmounting closes it
    await settle();
    expect(server.last().closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
  });

  it("shares one socket between components using the same room, and opens one per room", async () => {
    const { client, server } = setup();
    render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" label="first" />
        <Chat name="lobby" label="second" />
        <Chat name="other" label="third" />
      </RoomcastProvider>,
    );
    await settle();
    expect(server.sockets.map((s) => s.room).sort()).toEqual(["lobby", "other"]);

    const lobby = server.sockets.find((s) => s.room === "lobby")!;
    serve(() => {
      lobby.welcome();
      lobby.message(1);
    });
    expect([text("first-state"), text("second-state"), text("third-state")]).toEqual(["connected", "connected", "connecting"]);
    expect(items("second-messages")).toEqual(['1:{"n":1}']);
  });

  it("closes the room's socket a tick after the last component using it unmounts", async () => {
    const { client, server } = setup();
    function Page({ both }: { both: boolean }) {
      return (
        <RoomcastProvider client={client}>
          <Chat name="lobby" label="first" />
          {both && <Chat name="lobby" label="second" />}
        </RoomcastProvider>
      );
    }
    const view = render(<Page both />);
    await settle();
    serve(() => server.last().welcome());
    const socket = server.last();

    view.rerender(<Page both={false} />); // one user left: the room stays
    await settle();
    expect(socket.closedByClient).toBe(false);

    view.unmount();
    expect(socket.closedByClient).toBe(false); // released a tick late, not at once
    await settle();
    expect(socket.closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
    await settle(50);
    expect(server.sockets).toHaveLength(1);
  });

  it("keeps the room and its socket when a component remounts within the same tick", async () => {
    const { client, server } = setup();
    const page = (
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>
    );
    const view = render(page);
    await settle();
    serve(() => server.last().welcome());

    view.unmount();
    render(page); // e.g. a route change that renders the same room again
    expect(text("lobby-state")).toBe("connected");
    await settle(20);
    expect(server.sockets).toHaveLength(1);
    expect(server.last().closedByClient).toBe(false);
  });

  it("opens no socket when rendered on the server", async () => {
    const { client, server } = setup();
    const html = renderToString(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    expect(html).toContain("idle");
    await advance(20);
    expect(server.sockets).toHaveLength(0);
  });

  it("opens no socket when a provider that owns its client renders on the server", async () => {
    const server = fakeSockets();
    renderToString(
      <RoomcastProvider options={{ url: BASE_URL, token: TOKEN, createSocket: server.createSocket }}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    await advance(20);
    expect(server.sockets).toHaveLength(0);
  });
});

describe("releasing rooms", () => {
  /** Shows a room and hands its handle to the test. */
  function Probe({ name, onRoom }: { name: string; onRoom: (room: Room | undefined) => void }) {
    const room = useRoom(name);
    onRoom(room);
    return <Chat name={name} />;
  }

  it("keeps a room's durable outbox when its component unmounts (a room switch), and sends it when the room is opened again", async () => {
    const storage = memoryStorage();
    const { client, server } = setup({ outbox: { storage } });
    let current: Room | undefined;
    const page = (name: string) => (
      <RoomcastProvider client={client}>
        <Probe name={name} onRoom={(r) => (current = r)} />
      </RoomcastProvider>
    );
    const view = render(page("first"));
    await settle();
    serve(() => server.last().welcome());
    const unacked = current!.publish({ text: "queued" }, { id: "q-1" });
    unacked.catch(() => {}); // rejects with room_closed when the room is released
    expect(server.last().publishedIds).toEqual(["q-1"]);

    view.rerender(page("second")); // the user switches rooms before the ack
    await settle();
    expect(server.sockets.find((s) => s.room === "first")!.closedByClient).toBe(true);
    expect((await storage.load("first", "alice")).map((e) => e.id)).toEqual(["q-1"]);

    view.rerender(page("first")); // and back: the queued publish goes out again, same id
    await settle();
    const again = server.sockets.filter((s) => s.room === "first").at(-1)!;
    serve(() => again.welcome());
    expect(again.publishedIds).toEqual(["q-1"]);
  });

  it("after client.close(), an unmount creates no room (and opens nothing)", async () => {
    const { client, server } = setup();
    const view = render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    await settle();
    serve(() => server.last().welcome());
    const rooms = vi.spyOn(client, "room");

    client.close(); // e.g. sign-out
    view.unmount();
    await settle(20);
    expect(rooms).not.toHaveBeenCalled();
    expect(server.sockets).toHaveLength(1);
  });

  it("useMessages starts over when the server's log changed (new epoch), never splicing the two", async () => {
    const { client, server } = setup();
    render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    await settle();
    serve(() => {
      server.last().welcome({ seq: 3, replay: 3 });
      server.last().messages(1, 3);
    });
    expect(items("lobby-messages")).toHaveLength(3);

    await act(async () => {
      server.last().serverClose(1006);
      await advance(1_000);
    });
    serve(() => server.last().welcome({ epoch: "epoch-2", seq: 0, replay: 0, resume: { recovered: false, reason: "epoch_changed" } }));
    expect(items("lobby-messages")).toEqual([]); // emptied at the gap, though no message came
    serve(() => server.last().messages(1, 2));
    expect(items("lobby-messages")).toEqual(['1:{"n":1}', '2:{"n":2}']);
  });
});

describe("browser signals", () => {
  it("retries at once when the network comes back, and drops the socket when it goes", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.99); // the backoff would wait ~59 s
    const { client, server } = setup({ backoff: { minMs: 60_000, maxMs: 60_000, factor: 2 } });
    render(
      <RoomcastProvider client={client}>
        <Chat name="lobby" />
      </RoomcastProvider>,
    );
    await settle();
    serve(() => server.last().welcome());

    await act(async () => {
      window.dispatchEvent(new Event("offline"));
      await advance();
    });
    expect(server.last().closedByClient).toBe(true); // dropped at once, not after timeouts
    expect(text("lobby-state")).toBe("reconnecting");
    expect(server.sockets).toHaveLength(1);

    await act(async () => {
      window.dispatchEvent(new Event("online"));
      await advance();
    });
    expect(server.sockets).toHaveLength(2);
    serve(() => server.last().welcome());
    expect(text("lobby-state")).toBe("connected");
  });
});
