import * as v from "valibot";
import { Permission } from "@roomcast/protocol";

/**
 * A verified identity, resolved for one room. The Worker builds it from a verified
 * JWT; the Durable Object receives only this and never sees a raw token.
 */
export const Identity = v.object({
  userId: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
  room: v.string(),
  permissions: v.array(Permission),
  /** Token expiry, seconds since the epoch. */
  expiresAt: v.number(),
  /** A rate budget the token grants its user in this room (the `rate` claim), instead of the default. */
  rate: v.optional(v.object({ perSecond: v.number(), burst: v.number() })),
});
export type Identity = v.InferOutput<typeof Identity>;
