/**
 * Per-socket state that must survive hibernation, stored with `serializeAttachment`
 * (≤ 16 KiB). Roomcast's own fields sit under `rc` so that later user data under
 * another key can never overwrite them; `v` versions the layout. Only the
 * connection registry (connections.ts) reads and writes attachments.
 *
 * Layouts:
 * - v1 (before the connection registry): the session, and `replayedTo` while a
 *   paged replay was in flight.
 * - v2: adds `announced` (the connection was listed in presence at its join; set
 *   once, never recomputed from permissions a refresh may have changed),
 *   `confirmed` (flow control: the last seq the client reported applied) and
 *   `closing` (the connection has departed: the room closed it, or its close was
 *   handled; an event that arrives for it later, even after a wake, is not a
 *   second departure).
 * A v1 attachment is read as v2 with `announced` taken from its permissions (what
 * v1 used to decide presence). At the room's start, migrate-room.ts rewrites every
 * hibernated socket's older attachment in the current layout (`upgradeAttachment`);
 * `readAttachment` still reads the old layouts for a socket that start could not see
 * (the runtime leaves out sockets whose close is queued; they are adopted when it
 * arrives, connections.ts).
 *
 * Adding a layout: a new `AttachmentVn` in the variant, `ATTACHMENT_VERSION` = n, and
 * the step from n-1 in `readAttachment`. Never change an existing layout.
 */
import * as v from "valibot";
import { Permission } from "@roomcast/protocol";

const SessionFields = {
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
   * The connection is `joining` (live broadcasts skip it) until the replay reaches
   * the head; after a wake the replay restarts from here, so an eviction mid-replay
   * leaves no gap.
   */
  replayedTo: v.optional(v.number()),
};

export const SessionV1 = v.object(SessionFields);

export const SessionV2 = v.object({
  ...SessionFields,
  announced: v.boolean(),
  confirmed: v.optional(v.number()),
  closing: v.optional(v.literal(true)),
  /**
   * The room's name and log epoch at the join. A room that has stored nothing yet
   * keeps both only in memory; after a wake it takes them back from here, so its
   * name and the epoch its clients were told survive hibernation.
   */
  room: v.optional(v.string()),
  epoch: v.optional(v.string()),
  /** The token's `rate` claim, if any: the user's rate budget in this room. */
  rate: v.optional(v.object({ perSecond: v.number(), burst: v.number() })),
});
export type Session = v.InferOutput<typeof SessionV2>;

const AttachmentV1 = v.object({ v: v.literal(1), rc: SessionV1 });
const AttachmentV2 = v.object({ v: v.literal(2), rc: SessionV2 });
const Attachment = v.variant("v", [AttachmentV1, AttachmentV2]);

/** The layout this code writes. */
export const ATTACHMENT_VERSION = 2;

export function writeAttachment(ws: WebSocket, session: Session): void {
  ws.serializeAttachment({ v: ATTACHMENT_VERSION, rc: session } satisfies v.InferOutput<typeof AttachmentV2>);
}

/**
 * Rewrites a socket's attachment in the current layout if it is in an older one.
 * `current`: nothing to do; `rewritten`: upgraded; `foreign`: not a Roomcast attachment
 * (or unreadable), left alone; the registry will not adopt it.
 */
export function upgradeAttachment(ws: WebSocket): "current" | "rewritten" | "foreign" {
  let raw: unknown;
  try {
    raw = ws.deserializeAttachment();
  } catch {
    return "foreign";
  }
  const version = (raw as { v?: unknown } | null)?.v;
  if (version === ATTACHMENT_VERSION) return "current";
  const session = readAttachment(ws, raw);
  if (!session) return "foreign";
  writeAttachment(ws, session);
  return "rewritten";
}

/** The socket's session in the v2 layout, or undefined for a socket that is not (or no longer) ours. */
export function readAttachment(ws: WebSocket, raw: unknown = undefined): Session | undefined {
  if (raw === undefined) {
    try {
      raw = ws.deserializeAttachment();
    } catch {
      return undefined;
    }
  }
  const result = v.safeParse(Attachment, raw);
  if (!result.success) return undefined;
  const { v: version, rc } = result.output;
  if (version === 2) return rc as Session;
  return { ...rc, announced: rc.permissions.includes("presence") };
}
