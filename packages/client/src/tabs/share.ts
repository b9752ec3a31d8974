/**
 * The `shareAcrossTabs` switch: whether `client.room(name)` gets a `SharedRoom`,
 * and the name of its group (lock and channel).
 */
import type { TokenProvider } from "../connection.js";
import type { OutboxStorage } from "../outbox.js";
import type { ManagedRoom } from "./handle.js";
import { browserTabPlatform, unverifiedSubject, type TabPlatform } from "./platform.js";
import { SharedRoom } from "./shared-room.js";
import { withTimeout } from "../util.js";

export interface TabSharingOptions {
  /** Web Locks and BroadcastChannel to use instead of the browser's (tests). */
  platform?: TabPlatform;
}

export interface ShareSettings {
  readonly url: string;
  readonly token: TokenProvider;
  readonly shareAcrossTabs: boolean | TabSharingOptions | undefined;
  readonly messageBuffer: number;
  /** How long to wait for the token that names the group. */
  readonly tokenTimeoutMs: number;
  /** The outbox storage the rooms use: a leaving leader forgets its own tab's publishes there. */
  readonly storage: OutboxStorage;
}

/** A shared handle, or undefined when sharing is off or the platform lacks Web Locks or BroadcastChannel. */
export function shareRoom(name: string, settings: ShareSettings, open: () => ManagedRoom, onLeave: () => void): SharedRoom | undefined {
  const setting = settings.shareAcrossTabs;
  if (!setting) return undefined;
  const platform = (typeof setting === "object" ? setting.platform : undefined) ?? browserTabPlatform();
  if (!platform) return undefined;
  const group = groupName(settings, name);
  return new SharedRoom(name, {
    platform,
    group: group.then((g) => g.name),
    createRoom: open,
    messageBuffer: settings.messageBuffer,
    onLeave,
    forget: async (user, ids) => {
      const owner = user ?? (await group).sub;
      if (owner === undefined) return; // never stored: the room stores only once it knows its user
      for (const id of ids) await settings.storage.remove(name, owner, id);
    },
  });
}

/**
 * Tabs share a connection only with tabs of the same server, room and user: the
 * user is the `sub` of this tab's token, read without verification (the server
 * verifies the leader's token). A token that is not a JWT, or a provider that
 * fails or takes too long, puts the tab in the group of unknown users.
 */
export async function groupName(settings: Pick<ShareSettings, "url" | "token" | "tokenTimeoutMs">, room: string): Promise<{ name: string; sub: string | undefined }> {
  let sub: string | undefined;
  try {
    const token = typeof settings.token === "function" ? await withTimeout(Promise.resolve(settings.token()), settings.tokenTimeoutMs, () => new Error("token provider timed out")) : settings.token;
    if (typeof token === "string") sub = unverifiedSubject(token);
  } catch {
    sub = undefined;
  }
  const url = new URL(settings.url);
  const server = `${url.host}${url.pathname.replace(/\/+$/, "")}`;
  return { name: `roomcast:v1:${server}:${room}:${sub === undefined ? "?" : `u:${sub}`}`, sub };
}
