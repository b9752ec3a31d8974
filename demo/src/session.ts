/** Sign-in for the demo: a name, exchanged for a short-lived token by the dev-only endpoint. */
const NAME_KEY = "roomcast-demo-name";

export function savedName(): string | null {
  return localStorage.getItem(NAME_KEY);
}

export function saveName(name: string | null): void {
  if (name === null) localStorage.removeItem(NAME_KEY);
  else localStorage.setItem(NAME_KEY, name);
}

/** The token request never reached the server (it is down, or the network is): not a refusal. */
export class ServerUnreachableError extends Error {
  static readonly NAME = "ServerUnreachableError"; // a literal: minifiers rename classes
  override name = ServerUnreachableError.NAME;
}

/** A token provider: called by the client on every connection attempt and before expiry. */
export function tokenProvider(name: string): () => Promise<string> {
  return async () => {
    let res: Response;
    try {
      res = await fetch("/dev/token", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name }),
      });
    } catch (cause) {
      throw new ServerUnreachableError("the server did not answer", { cause });
    }
    if (!res.ok) {
      const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
      throw new Error(body?.error?.message ?? `token endpoint answered ${res.status}`);
    }
    return ((await res.json()) as { token: string }).token;
  };
}

/** Rooms the demo token opens: `demo:` and 1-64 letters, digits or `_ . : -`. */
export const DEMO_ROOM = /^demo:[A-Za-z0-9_.:-]{1,64}$/;
export const DEFAULT_ROOM = "demo:lobby";

/** The room the URL asks for (`?room=demo:lobby`), or what it asked for if that is not a demo room. */
export type RoomChoice = { room: string } | { invalid: string };

export function roomFromUrl(): RoomChoice {
  const room = new URLSearchParams(location.search).get("room");
  if (room === null) return { room: DEFAULT_ROOM };
  return DEMO_ROOM.test(room) ? { room } : { invalid: room };
}

export function setRoomInUrl(room: string): void {
  const url = new URL(location.href);
  url.searchParams.set("room", room);
  history.pushState(null, "", url);
}

/** `demo:lobby` → `#lobby`. */
export function roomLabel(room: string): string {
  return `#${room.startsWith("demo:") ? room.slice("demo:".length) : room}`;
}
