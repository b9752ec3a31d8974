import { useEffect, useRef, useState } from "react";

/**
 * Runs `fn` now and then `intervalMs` after each run ends (never two at once), while
 * mounted; a change of `key` restarts it. Returns the last value and the last error.
 */
export function usePoll<T>(fn: () => Promise<T>, intervalMs: number, key: string): { value: T | undefined; error: unknown; at: number } {
  const [state, setState] = useState<{ value: T | undefined; error: unknown; at: number }>({ value: undefined, error: undefined, at: 0 });
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setState({ value: undefined, error: undefined, at: 0 });
    const run = async () => {
      try {
        const value = await fnRef.current();
        if (!stopped) setState({ value, error: undefined, at: Date.now() });
      } catch (error) {
        if (!stopped) setState((s) => ({ value: s.value, error, at: Date.now() }));
      }
      if (!stopped) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [intervalMs, key]);
  return state;
}

/** The hash route: `#/` (rooms) or `#/rooms/<room>`. */
export function useHashRoute(): string | null {
  const read = () => {
    const m = /^#\/rooms\/(.+)$/.exec(location.hash);
    if (!m) return null;
    try {
      return decodeURIComponent(m[1]!);
    } catch {
      return null;
    }
  };
  const [room, setRoom] = useState(read);
  useEffect(() => {
    const on = () => setRoom(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return room;
}

export const roomHref = (room: string) => `#/rooms/${encodeURIComponent(room)}`;
