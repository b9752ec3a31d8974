import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";

/** How close to the bottom (px) still counts as "at the bottom". */
const SLACK_PX = 48;

/**
 * Keeps a scrolling list at its newest row, as chat apps do, unless the reader
 * scrolled up to read older rows: then it stays put and reports what arrived unseen.
 *
 * - `newest`: the key of the newest message; `seen` is the newest the reader has seen.
 * - `rows`: how many rows there are; when it or `newest` changes, a stuck list scrolls down.
 * - `own`: changes when the reader sends something; that always scrolls down.
 *
 * Only scrolling *up* unsticks: rows added below never move `scrollTop`, so a
 * scroll event that fires after new rows landed does not count as the reader leaving.
 */
export function useStickToBottom<T extends HTMLElement>(newest: string | undefined, rows: number, own: unknown) {
  const ref = useRef<T>(null);
  const stuck = useRef(true);
  const lastTop = useRef(0);
  const newestRef = useRef(newest);
  newestRef.current = newest;
  const [atBottom, setAtBottom] = useState(true);
  /** The newest row the reader has seen (the newest while the list was at the bottom). */
  const [seen, setSeen] = useState(newest);

  const toBottom = useCallback(() => {
    const el = ref.current;
    if (!el) return;
    stuck.current = true;
    el.scrollTop = el.scrollHeight;
    lastTop.current = el.scrollTop;
    setAtBottom(true);
    setSeen(newestRef.current);
  }, []);

  const onScroll = useCallback(() => {
    const el = ref.current;
    if (!el) return;
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight <= SLACK_PX;
    stuck.current = bottom || (stuck.current && el.scrollTop >= lastTop.current);
    lastTop.current = el.scrollTop;
    setAtBottom(stuck.current);
    if (stuck.current) setSeen(newestRef.current);
  }, []);

  useLayoutEffect(() => {
    if (own !== undefined) toBottom();
  }, [own, toBottom]);

  useLayoutEffect(() => {
    if (stuck.current) toBottom();
  }, [newest, rows, toBottom]);

  // The list got shorter (a banner appeared, the phone keyboard opened): stay at the bottom.
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => {
      if (stuck.current) el.scrollTop = el.scrollHeight;
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  return { ref, onScroll, atBottom, seen, toBottom };
}
