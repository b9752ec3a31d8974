/**
 * Several browser tabs in one process: a fake Web Locks manager and fake
 * BroadcastChannels shared by the tabs of one "browser", each tab with its own
 * client on its own fake sockets. Channel messages go through `structuredClone`
 * and arrive a task later, as in a browser; killing a tab drops its channels and
 * releases its locks at once, as closing a tab does.
 */
import { afterEach, beforeEach, vi } from "vitest";
import { createClient, type ClientOptions, type RoomcastClient } from "../../src/client.js";
import type { RoomHandle } from "../../src/tabs/handle.js";
import type { ChannelLike, LockManagerLike, TabPlatform } from "../../src/tabs/platform.js";
import { fakeSockets, type FakeSocket, type FakeSockets, BASE_URL } from "../unit/fake-socket.js";

interface Waiter {
  readonly tab: FakeTab;
  readonly grant: () => void;
}

class FakeChannel implements ChannelLike {
  onmessage: ((event: { data: unknown }) => void) | null = null;
  closed = false;
  constructor(
    readonly browser: FakeBrowser,
    readonly name: string,
    readonly tab: FakeTab,
  ) {
    browser.channels.add(this);
  }
  postMessage(message: unknown): void {
    if (this.closed) throw new Error("InvalidStateError: channel is closed");
    const data = structuredClone(message);
    this.browser.posted.push(data);
    for (const other of this.browser.channels) {
      if (other !== this && other.name === this.name) setTimeout(() => !other.closed && other.onmessage?.({ data: structuredClone(data) }), 0);
    }
  }
  close(): void {
    this.closed = true;
    this.browser.channels.delete(this);
  }
}

export class FakeBrowser {
  readonly channels = new Set<FakeChannel>();
  readonly holders = new Map<string, { tab: FakeTab; release: () => void }>();
  readonly queues = new Map<string, Waiter[]>();
  /** Every message any tab posted, in order. */
  readonly posted: unknown[] = [];
  readonly tabs: FakeTab[] = [];

  /** Opens a tab whose client uses `token` and shares rooms across tabs (`options` added to its client's). */
  open(token: string, room = "lobby", options: Partial<ClientOptions> = {}): FakeTab {
    const tab = new FakeTab(this, token, room, options);
    this.tabs.push(tab);
    return tab;
  }

  /** Posts raw data on a channel, as a foreign script of the origin could. */
  inject(name: string, data: unknown): void {
    for (const c of this.channels) if (c.name === name) setTimeout(() => c.onmessage?.({ data }), 0);
  }

  locksFor(tab: FakeTab): LockManagerLike {
    return {
      request: (name, options, callback) =>
        new Promise((resolve, reject) => {
          const grant = () => {
            let released = false;
            const release = () => {
              if (released) return;
              released = true;
              this.holders.delete(name);
              resolve(undefined);
              this.#next(name);
            };
            this.holders.set(name, { tab, release });
            callback({ name }).then(release, release);
          };
          if (options.signal?.aborted) return reject(new DOMException("aborted", "AbortError"));
          const queue = this.queues.get(name) ?? [];
          this.queues.set(name, queue);
          const waiter = { tab, grant };
          options.signal?.addEventListener("abort", () => {
            const i = queue.indexOf(waiter);
            if (i !== -1) {
              queue.splice(i, 1);
              reject(new DOMException("aborted", "AbortError"));
            }
          });
          queue.push(waiter);
          if (!this.holders.has(name)) this.#next(name);
        }),
    };
  }

  #next(name: string): void {
    const waiter = this.queues.get(name)?.shift();
    waiter?.grant();
  }

  /** The tab that holds `name`'s lock. */
  holderOf(name: string): FakeTab | undefined {
    return this.holders.get(name)?.tab;
  }

  /** Every socket any tab opened. */
  get sockets(): FakeSocket[] {
    return this.tabs.flatMap((t) => t.server.sockets);
  }
}

export class FakeTab {
  readonly server: FakeSockets = fakeSockets();
  readonly client: RoomcastClient<RoomHandle>;
  readonly room: RoomHandle;
  dead = false;

  constructor(
    readonly browser: FakeBrowser,
    token: string,
    roomName: string,
    options: Partial<ClientOptions> = {},
  ) {
    const platform: TabPlatform = {
      locks: browser.locksFor(this),
      channel: (name) => new FakeChannel(browser, name, this),
    };
    this.client = createClient({
      url: BASE_URL,
      token,
      createSocket: this.server.createSocket,
      fetch: () => Promise.reject(new TypeError("fetch failed (no network in unit tests)")),
      backoff: { minMs: 100, maxMs: 1_000, factor: 2 },
      pingIntervalMs: 3_600_000,
      shareAcrossTabs: { platform },
      ...options,
    });
    this.room = this.client.room(roomName);
  }

  /** The tab closes: its channels go silent and its locks are released, with no goodbye. */
  kill(): void {
    this.dead = true;
    for (const c of [...this.browser.channels]) if (c.tab === this) c.close();
    for (const [, holder] of this.browser.holders) if (holder.tab === this) holder.release();
    for (const queue of this.browser.queues.values()) {
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i]!.tab === this) queue.splice(i, 1);
    }
    // Its sockets die with it; stop its timers (nothing it says can reach the other tabs any more).
    for (const s of this.server.sockets) if (s.readyState === 1) s.serverClose(1006);
    this.client.close();
  }

  /** This tab's open socket, if any. */
  get openSocket(): FakeSocket | undefined {
    return this.server.sockets.find((s) => s.readyState === 1);
  }
}

/** A JWT-shaped token for `sub` (not signed: the fake server does not check). */
export function tokenFor(sub: string): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp: 4_000_000_000 })}.sig`;
}

/**
 * The setup every tabs test shares: fake timers at a fixed date, `Math.random` pinned to 0 and
 * a fresh FakeBrowser per test (handed to `use`), every live tab's client closed afterwards.
 */
export function useFakeBrowser(use: (browser: FakeBrowser) => void): void {
  let browser: FakeBrowser | undefined;
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    vi.spyOn(Math, "random").mockReturnValue(0);
    browser = new FakeBrowser();
    use(browser);
  });
  afterEach(() => {
    for (const tab of browser?.tabs ?? []) if (!tab.dead) tab.client.close();
    vi.useRealTimers();
    vi.restoreAllMocks();
  });
}
