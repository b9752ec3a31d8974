/**
 * The fallback for a socket that failed before it opened (close 1006 with no frame):
 * a server that follows protocol.md §5 answers a refused upgrade with an `error`
 * frame and a close code, but an older one (or a proxy) answers plain HTTP, whose
 * status WebSocket APIs hide. Asking the HTTP API the same question tells a bad
 * token from a blip. Bounded in time: a half-broken proxy that hangs plain HTTP
 * must not hang the reconnect loop.
 */
import { httpUrl } from "./transport.js";

/** The longest a probe may take, whatever the connect timeout allows. */
export const PROBE_TIMEOUT_MS = 3_000;

/** The error code the HTTP API answers for this room and token; undefined: unknown (or no answer in time). */
export async function probeRefusal(
  fetchImpl: typeof fetch | undefined,
  base: string,
  room: string,
  token: string,
  timeoutMs: number,
): Promise<string | undefined> {
  if (!fetchImpl) return undefined;
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  // The race, not only the signal: a fetch that ignores its signal must not hang us either.
  const timedOut = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      abort.abort();
      resolve(undefined);
    }, Math.max(0, timeoutMs));
  });
  const ask = async (): Promise<string | undefined> => {
    const res = await fetchImpl(`${httpUrl(base, `/v1/rooms/${encodeURIComponent(room)}/messages`)}?limit=1`, {
      headers: { Authorization: `Bearer ${token}` },
      signal: abort.signal,
    });
    if (res.ok) return undefined;
    const body = (await res.json().catch(() => undefined)) as { error?: { code?: unknown } } | undefined;
    return typeof body?.error?.code === "string" ? body.error.code : undefined;
  };
  try {
    return await Promise.race([ask(), timedOut]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
