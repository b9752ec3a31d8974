import { useEffect, useState } from "react";
import type { ConnectionState, Room, RoomcastClientError } from "@roomcast/client";
import { ServerUnreachableError } from "./session.js";

export interface ConnectionView {
  state: ConnectionState;
  /** When the next attempt starts (ms since the epoch), while reconnecting. */
  retryAt?: number;
  /** Why the last attempt failed, if the client said (reconnecting after an error, failed). */
  error?: RoomcastClientError;
  /** An attempt failed since the room was last live: `connecting` is a retry, not news. */
  retrying: boolean;
  /** False while the browser says the network is gone. */
  online: boolean;
  /** True once the room has been live at least once. */
  wasLive: boolean;
}

/** Connection state plus what the status bar needs: the retry countdown, the last error and the browser's online flag. */
export function useConnection(room: Room | undefined): ConnectionView {
  const [view, setView] = useState<ConnectionView>({ state: room?.state ?? "idle", online: navigator.onLine, wasLive: false, retrying: false });
  useEffect(() => {
    if (!room) return;
    setView((v) => ({ ...v, state: room.state, wasLive: v.wasLive || room.state === "connected" }));
    const off = room.on("state", (change) =>
      setView((v) => {
        const next = change.newState;
        // While an attempt is under way, the last failure still says what is wrong.
        const keep = next === "connecting" && v.retrying;
        return {
          online: v.online,
          state: next,
          retryAt: change.retryInMs !== undefined ? Date.now() + change.retryInMs : keep ? v.retryAt : undefined,
          error: change.error ?? (keep ? v.error : undefined),
          retrying: next === "reconnecting" || keep,
          wasLive: v.wasLive || next === "connected",
        };
      }),
    );
    return off;
  }, [room]);
  useEffect(() => {
    const update = () => setView((v) => ({ ...v, online: navigator.onLine }));
    window.addEventListener("online", update);
    window.addEventListener("offline", update);
    return () => {
      window.removeEventListener("online", update);
      window.removeEventListener("offline", update);
    };
  }, []);
  return view;
}

/**
 * What is wrong, for the status badge and the banner:
 * - `offline`: the browser has no network (nothing to do but wait);
 * - `unreachable`: online, but the server does not answer (it is down, or something in between is);
 * - `refused`: the server answered and said no, for now (the client retries);
 * - `failed`: the server said no for good.
 */
export type Trouble = "offline" | "unreachable" | "refused" | "failed" | undefined;

export function troubleOf(view: ConnectionView): Trouble {
  if (!view.online) return "offline";
  if (view.state === "failed") return "failed";
  if (!view.retrying) return undefined;
  return noAnswer(view.error) ? "unreachable" : "refused";
}

/** The server never answered: no error (the socket died and the HTTP API did not answer either), a timeout, or a token request that failed. */
function noAnswer(error: ConnectionView["error"]): boolean {
  return !error || (error.code as string) === "connect_timeout" || causedBy(error, ServerUnreachableError.NAME);
}

/** Whether `err` or one of its causes is a `name` error. */
function causedBy(err: unknown, name: string): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++) {
    if (e.name === name) return true;
    e = e.cause;
  }
  return false;
}

/** Re-renders every `ms` while `active`, for countdowns. */
export function useTicker(active: boolean, ms = 500): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [active, ms]);
  return now;
}
