import { useCallback, useEffect, useState } from "react";
import type { PublishAck, Room } from "@roomcast/client";

export interface Outgoing {
  id: string;
  text: string;
  /** performance.now() when published. */
  sentAt: number;
  ack?: PublishAck;
  /** publish → ack, ms. */
  latencyMs?: number;
  error?: string;
  /** The room delivered it back (it may later leave `room.messages`, which keeps only the recent ones). */
  delivered?: boolean;
}

/**
 * Own messages from publish to ack: what the composer sent (with latency) and what a
 * durable outbox restored after a reload (room.pending; no latency, they predate this page).
 */
export function useOutgoing(room: Room | undefined) {
  const [outgoing, setOutgoing] = useState<Map<string, Outgoing>>(() => new Map());
  const update = useCallback((id: string, patch: Partial<Outgoing>) => {
    setOutgoing((prev) => {
      const current = prev.get(id);
      return current ? new Map(prev).set(id, { ...current, ...patch }) : prev;
    });
  }, []);

  useEffect(() => {
    if (!room) return;
    // Restored from IndexedDB after a reload: show them as queued until acked.
    setOutgoing((prev) => {
      const next = new Map(prev);
      for (const entry of room.pending) {
        const text = (entry.data as { text?: unknown }).text;
        if (!next.has(entry.id)) next.set(entry.id, { id: entry.id, text: typeof text === "string" ? text : "", sentAt: performance.now() });
      }
      return next;
    });
    const offAck = room.on("ack", (ack) => update(ack.id, { ack }));
    const offMessage = room.on("message", (m) => update(m.id, { delivered: true }));
    return () => {
      offAck();
      offMessage();
    };
  }, [room, update]);

  const send = useCallback(
    (text: string) => {
      if (!room) return;
      const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
      const sentAt = performance.now();
      setOutgoing((prev) => new Map(prev).set(id, { id, text, sentAt }));
      room.publish({ text }, { id }).then(
        (ack) => update(id, { ack, latencyMs: Math.round(performance.now() - sentAt) }),
        (err: Error & { code?: string }) => update(id, { error: err.code ?? err.message }),
      );
    },
    [room, update],
  );

  return { outgoing, send };
}
