/**
 * The test page of e2e/tabs.e2e.ts: one room with `shareAcrossTabs`, a durable
 * outbox, and everything the test reads exposed on `window.tab` (and drawn, for
 * the screenshots). Bundled by the test with esbuild and served by it on loopback.
 */
import { createClient, indexedDbStorage, SharedRoom } from "../../packages/client/src/index.js";

declare global {
  interface Window {
    /** Exposed by the test (Playwright `exposeFunction`): a fresh token for this tab's user. */
    roomcastToken(): Promise<string>;
    tab: TabProbe;
  }
}

interface TabProbe {
  readonly state: string;
  readonly leader: boolean;
  readonly messages: { seq: number; text: string }[];
  readonly acks: Record<string, number>;
  readonly errors: string[];
  /** ms since page load when this tab became the leader (undefined if it never did). */
  leaderSince: number | undefined;
  publish(text: string): void;
}

const params = new URLSearchParams(location.search);
const roomName = params.get("room") ?? "tabs";
const client = createClient({
  url: params.get("server") ?? location.origin,
  token: () => window.roomcastToken(),
  shareAcrossTabs: true,
  ...(params.has("debug") ? { debug: true } : {}),
  outbox: { storage: indexedDbStorage({ name: "roomcast-tabs-e2e" }) },
});
const room = client.room(roomName);

const messages: { seq: number; text: string }[] = [];
const acks: Record<string, number> = {};
const errors: string[] = [];
const probe: TabProbe = {
  get state() {
    return room.state;
  },
  get leader() {
    return room instanceof SharedRoom && room.isLeader;
  },
  messages,
  acks,
  errors,
  leaderSince: undefined,
  publish(text) {
    room.publish({ text }, { id: `t-${text.replace(/[^A-Za-z0-9]/g, "_")}` }).then(
      (ack) => {
        acks[text] = ack.seq;
        render();
      },
      (err: { code?: string; message?: string }) => errors.push(`publish ${text}: ${err.code}: ${err.message}`),
    );
  },
};
window.tab = probe;

room.on("message", (m) => {
  const text = (m.data as { text?: unknown } | null)?.text;
  messages.push({ seq: m.seq, text: typeof text === "string" ? text : JSON.stringify(m.data) });
  render();
});
room.on("state", (change) => {
  if (change.error) errors.push(`state ${change.newState}: ${change.error.code}: ${change.error.message}`);
  if (probe.leader && probe.leaderSince === undefined) probe.leaderSince = performance.now();
  render();
});
room.on("gap", (g) => errors.push(`gap ${g.reason} from ${g.from}`));
room.on("error", (e) => errors.push(`error ${e.code}: ${e.message}`));

function render(): void {
  document.body.innerHTML = "";
  const h = document.createElement("h1");
  h.textContent = `${roomName} · ${room.state} · ${probe.leader ? "leader (holds the socket)" : "follower"}`;
  const list = document.createElement("ol");
  for (const m of messages) {
    const li = document.createElement("li");
    li.textContent = `#${m.seq} ${m.text}${acks[m.text] ? " ✓ acked here" : ""}`;
    list.append(li);
  }
  document.body.append(h, list);
}
render();
