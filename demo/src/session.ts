/** Sign-in for the demo: a name, exchanged for a short-lived token by the dev-only endpoint. */
const NAME_KEY = "roomcast-demo-name";

export function savedName(): string | null {
  return localStorage.getItem(NAME_KEY);
}

export function saveName(name: string | null): void {
  if (name === null) localStorage.removeItem(NAME_KEY);
  else localStorage.setItem(NAME_KEY, name);
}

/** A token provider: called by the client on every connection attempt and before expiry. */
export function tokenProvider(name: string): () => Promise<string> {
  return async () => {
    const res = await fetch("/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name }),
    });
    if (!res.ok) {
      const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
      throw new Error(body?.error?.message ?? `token endpoint answered ${res.status}`);
    }
    return ((await res.json()) as { token: string }).token;
  };
}

/** The room from the URL (`?room=demo:lobby`); rooms the demo token opens start with `demo:`. */
export function roomFromUrl(): string {
  const room = new URLSearchParams(location.search).get("room");
  return room && /^demo:[A-Za-z0-9_.:-]{1,64}$/.test(room) ? room : "demo:lobby";
}

export function setRoomInUrl(room: string): void {
  const url = new URL(location.href);
  url.searchParams.set("room", room);
  history.pushState(null, "", url);
}
