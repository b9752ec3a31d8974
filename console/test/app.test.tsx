/** The console on the fake admin API (happy-dom, real timers). */
import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError, createApi, type Api } from "../src/api.js";
import { App } from "../src/app.js";
import { fakeApi, fakeRoom } from "./fake-api.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln";

beforeEach(() => {
  sessionStorage.clear();
  location.hash = "";
});
afterEach(() => cleanup());

function signIn(api: Api) {
  const tokens: string[] = [];
  render(<App makeApi={(t) => (tokens.push(t), api)} />);
  fireEvent.change(screen.getByLabelText("Admin token"), { target: { value: `Bearer ${TOKEN}` } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
  return tokens;
}

describe("console", () => {
  it("keeps the pasted token in sessionStorage only, never in the URL, and lists the rooms", async () => {
    const api = fakeApi([fakeRoom("lobby", ["alice", "bob", "bob"], 12), fakeRoom("quiet", [], 0)]);
    api.data[0]!.errors = 3;
    const tokens = signIn(api);
    expect(tokens).toEqual([TOKEN]);
    expect(sessionStorage.getItem("roomcast.console.token")).toBe(TOKEN);
    expect(location.href).not.toContain(TOKEN);
    const row = await screen.findByText("lobby").then((a) => a.closest("tr")!);
    expect(within(row).getByText("3", { selector: "[data-col=connections]" })).toBeTruthy();
    expect(row.querySelector("[data-col=users]")!.textContent).toBe("2");
    expect(row.querySelector("[data-col=head]")!.textContent).toBe("12");
    await waitFor(() => expect(row.querySelector("[data-col=errors]")!.textContent).toBe("0 (3 total)"));
    expect(screen.getByTestId("rooms-total").textContent).toContain("2 active rooms, 3 connections");
  });

  it("derives the message rate from headSeq between polls", async () => {
    const api = fakeApi([fakeRoom("busy", ["a"], 100)]);
    signIn(api);
    const cell = await screen.findByText("busy").then((a) => a.closest("tr")!.querySelector("[data-col=rate]")!);
    expect(cell.textContent).toBe("…");
    api.data[0]!.summary.headSeq = 140;
    await waitFor(() => expect(cell.textContent).toMatch(/^\d+(\.\d)?\/s$/), { timeout: 5_000 });
    expect(Number(cell.textContent!.replace("/s", ""))).toBeGreaterThan(0);
  });

  it("shows one room: connections, presence, retention; kicks a user and drains the room", async () => {
    const api = fakeApi([fakeRoom("team:1", ["alice", "bob"], 9)]);
    location.hash = "#/rooms/team%3A1";
    signIn(api);
    const table = await screen.findByTestId("connections-table");
    expect(within(table).getAllByRole("row")).toHaveLength(3);
    expect(screen.getByTestId("summary-retention").textContent).toBe("1..9");
    expect(screen.getByTestId("presence").querySelectorAll("li")).toHaveLength(2);
    expect(within(table).getAllByText("roomcast.v1")).toHaveLength(2);
    fireEvent.click(screen.getByRole("button", { name: "Kick bob" }));
    await waitFor(() => expect(screen.getByTestId("kick-result").textContent).toContain("Kicked bob: 1 connection closed"));
    expect(api.calls).toContain("kick team:1 bob 0");
    fireEvent.click(screen.getByRole("button", { name: "Drain this room…" }));
    fireEvent.click(screen.getByRole("button", { name: "Confirm drain" }));
    await waitFor(() => expect(screen.getByTestId("drain-result").textContent).toContain("1 connection told to reconnect within 10 s"));
    expect(api.calls).toContain("drain team:1 10");
  });

  it("starts tracing, follows events into the timeline, and polls nothing while tracing is off", async () => {
    const api = fakeApi([fakeRoom("r", ["alice"], 1)]);
    location.hash = "#/rooms/r";
    signIn(api);
    await screen.findByText("Tracing off");
    await new Promise((r) => setTimeout(r, 1_500));
    expect(api.calls.filter((c) => c.startsWith("events")).length).toBe(1); // one look, no polling
    fireEvent.click(screen.getByRole("button", { name: "Start tracing" }));
    await screen.findByText(/^Tracing until/);
    expect(api.calls).toContain("trace r 60 false");
    const now = Date.now();
    api.data[0]!.trace.events.push(
      { id: 1, at: now, dir: "in", type: "publish", bytes: 42, userId: "alice", connectionId: "c", outcome: "accepted" },
      { id: 2, at: now, dir: "out", type: "messages", bytes: 80, seq: 2 },
      { id: 3, at: now, dir: "in", type: "publish", bytes: 42, userId: "alice", outcome: "rate_limited" },
    );
    const timeline = screen.getByTestId("trace-timeline");
    await waitFor(() => expect(timeline.querySelectorAll("tr[data-event]")).toHaveLength(3), { timeout: 4_000 });
    expect(timeline.querySelector("tr[data-event='3']")!.className).toBe("bad");
    expect(screen.getByTestId("flow-rates").textContent).toContain("errors (1 min) 1");
    expect(screen.getByTestId("flow-chart").querySelectorAll("rect.in, rect.out").length).toBe(2);
    // Polls ask only for what is new.
    await waitFor(() => expect(api.calls).toContain("events r 3"), { timeout: 4_000 });
    fireEvent.click(screen.getByRole("button", { name: "Stop tracing" }));
    await screen.findByText("Tracing off");
    expect(api.calls).toContain("untrace r");
  });

  it("drains every room after a confirmation", async () => {
    const api = fakeApi([fakeRoom("a", ["x"]), fakeRoom("b", ["y"])]);
    signIn(api);
    fireEvent.click(await screen.findByRole("button", { name: "Drain all rooms…" }));
    fireEvent.change(screen.getByLabelText("Drain window (seconds)"), { target: { value: "30" } });
    fireEvent.click(screen.getByRole("button", { name: "Confirm drain of every room" }));
    await waitFor(() => expect(screen.getByTestId("drain-all-result").textContent).toBe("Drained 2 of 2 rooms."));
    expect(api.calls).toContain("drainAll 30");
  });

  it("signs out when the server refuses the token", async () => {
    const api = fakeApi([]);
    api.rooms = async () => {
      throw new ApiError(403, "forbidden", 'the token does not grant "admin" on this room');
    };
    signIn(api);
    await screen.findByLabelText("Admin token");
    expect(screen.getByRole("alert").textContent).toContain("forbidden");
    expect(sessionStorage.getItem("roomcast.console.token")).toBeNull();
  });
});

describe("createApi", () => {
  it("sends the token as Authorization only, encodes room names and reads error bodies", async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const fetchImpl = async (url: string, init?: RequestInit) => {
      seen.push({ url, init: init! });
      if (url.includes("/connections/")) return Response.json({ error: { code: "invalid_request", message: "userId must be 1-200 characters" } }, { status: 400 });
      if (url.endsWith("/trace?after=5")) return Response.json({ enabled: true, until: 99, events: [{ id: 6, at: 1, dir: "in", type: "ping", bytes: 3 }, { bogus: true }] });
      return Response.json({ rooms: [{ room: "a/b", epoch: "e", headSeq: 1, firstSeq: 1, connections: 1, users: 1, lastActivityAt: null }, { room: "stuck", firstSeenAt: 1, lastActivityAt: 2, connections: 4, error: "the room did not answer" }], cursor: "next" });
    };
    const api = createApi(TOKEN, fetchImpl);
    await expect(api.rooms()).resolves.toMatchObject({ cursor: "next", rooms: [{ room: "a/b" }, { room: "stuck", connections: 4, error: "the room did not answer" }] });
    await expect(api.traceEvents("a/b", 5)).resolves.toMatchObject({ enabled: true, events: [{ id: 6, type: "ping" }] });
    expect(seen[1]!.url).toBe("/v1/admin/rooms/a%2Fb/trace?after=5");
    const err = await api.kick("a/b", "u").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: "invalid_request" });
    for (const { url, init } of seen) {
      expect(url).not.toContain(TOKEN);
      expect((init.headers as Record<string, string>).Authorization).toBe(`Bearer ${TOKEN}`);
      expect(init.credentials).toBe("omit");
    }
    await act(async () => {});
  });
});
