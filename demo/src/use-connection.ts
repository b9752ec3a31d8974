import { useEffect, useState } from "react";
import type { ConnectionState, Room } from "@roomcast/client";

export interface ConnectionView {
  state: ConnectionState;
  /** When the next attempt starts (ms since the epoch), while reconnecting. */
  retryAt?: number;
  /** False while the browser says the network is gone. */
  online: boolean;
  /** True once the room has been live at least once. */
  wasLive: boolean;
}

/** Connection state plus what the status bar needs: the retry countdown and the browser's online flag. */
export function useConnection(room: Room | undefined): ConnectionView {
  const [view, setView] = useState<ConnectionView>({ state: room?.state ?? "idle", online: navigator.onLine, wasLive: false });
  useEffect(() => {
    if (!room) return;
    setView((v) => ({ ...v, state: room.state, wasLive: v.wasLive || room.state === "connected" }));
    const off = room.on("state", (change) =>
      setView((v) => ({
        ...v,
        state: change.newState,
        ...(change.retryInMs !== undefined ? { retryAt: Date.now() + change.retryInMs } : { retryAt: undefined }),
        wasLive: v.wasLive || change.newState === "connected",
      })),
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
