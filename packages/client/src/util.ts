/** Small helpers shared by the room, the tab-shared room and tab election. */

let idCounter = 0;

/** A fresh message or request id (1-64 of the protocol's id characters); `tag` tells the makers apart in logs. */
export function newId(tag = ""): string {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `${random}-${tag}${(idCounter++).toString(36)}`.slice(0, 64);
}

/** `promise`, or a rejection with `onTimeout()` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error = () => new Error(`no answer within ${ms} ms`)): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** Publish data as the JSON text that will be sent, or the TypeError a publish rejects with. */
export function publishJson(data: unknown): { json: string } | { error: TypeError } {
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (cause) {
    return { error: new TypeError("publish data must be JSON-serialisable", { cause }) };
  }
  if (json === undefined) return { error: new TypeError("publish data must be a JSON value (not undefined or a function)") };
  return { json };
}

/** Whether two sets of feature flags (`room.features`) hold the same names and values. */
export function sameFlags(a: Readonly<Record<string, boolean>>, b: Readonly<Record<string, boolean>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
