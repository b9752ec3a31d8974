/**
 * Per-socket state that must survive hibernation, stored with `serializeAttachment`
 * (≤ 16 KiB). Roomcast's own fields sit under `rc` so that later user data under
 * another key can never overwrite them; `v` versions the layout.
 */
import * as v from "valibot";
import { Permission } from "@roomcast/protocol";

export const SessionV1 = v.object({
  connectionId: v.string(),
  userId: v.string(),
  permissions: v.array(Permission),
  /** Token expiry, seconds since the epoch. */
  expiresAt: v.number(),
  protocol: v.string(),
  /** ms since the epoch. */
  joinedAt: v.number(),
  /** Custom presence state (JSON value, null when unset). */
  state: v.optional(v.unknown(), null),
  /**
   * Set while a paged replay is still catching this socket up: the last seq sent.
   * Live broadcasts skip the socket until the replay reaches the head; after a wake
   * the replay restarts from here, so an eviction mid-replay leaves no gap.
   */
  replayedTo: v.optional(v.number()),
});
export type Session = v.InferOutput<typeof SessionV1>;

const Attachment = v.object({ v: v.literal(1), rc: SessionV1 });

export function writeSession(ws: WebSocket, session: Session): void {
  ws.serializeAttachment({ v: 1, rc: session } satisfies v.InferOutput<typeof Attachment>);
}

/** The socket's session, or undefined for a socket that is not (or no longer) ours. */
export function readSession(ws: WebSocket): Session | undefined {
  const result = v.safeParse(Attachment, ws.deserializeAttachment());
  return result.success ? result.output.rc : undefined;
}
