/**
 * The `shareAcrossTabs` switch: whether `client.room(name)` gets a `SharedRoom`,
 * and the name of its group (lock and channel).
 */
import type { TokenProvider } from "../connection.js";
import type { ManagedRoom } from "./handle.js";
import { browserTabPlatform, unverifiedSubject, type TabPlatform } from "./platform.js";
import { SharedRoom } from "./shared-room.js";

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
}

/** A shared handle, or undefined when sharing is off or the platform lacks Web Locks or BroadcastChannel. */
export function shareRoom(name: string, settings: ShareSettings, open: () => ManagedRoom, onLeave: () => void): SharedRoom | undefined {
  const setting = settings.shareAcrossTabs;
  if (!setting) return undefined;
  const platform = (typeof setting === "object" ? setting.platform : undefined) ?? browserTabPlatform();
  if (!platform) return undefined;
  return new SharedRoom(name, {
    platform,
    group: groupName(settings, name),
    createRoom: open,
    messageBuffer: settings.messageBuffer,
    onLeave,
  });
}

/**
 * Tabs share a connection only with tabs of the same server, room and user: the
 * user is the `sub` of this tab's token, read without verification (the server
 * verifies the leader's token). A token that is not a JWT, or a provider that
 * fails or takes too long, puts the tab in the group of unknown users.
 */
export async function groupName(settings: Pick<ShareSettings, "url" | "token" | "tokenTimeoutMs">, room: string): Promise<string> {
  let sub: string | undefined;
  try {
    const token = typeof settings.token === "function" ? await withTimeout(Promise.resolve(settings.token()), settings.tokenTimeoutMs) : settings.token;
    if (typeof token === "string") sub = unverifiedSubject(token);
  } catch {
    sub = undefined;
  }
  const url = new URL(settings.url);
  const server = `${url.host}${url.pathname.replace(/\/+$/, "")}`;
  return `roomcast:v1:${server}:${room}:${sub === undefined ? "?" : `u:${sub}`}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("token provider timed out")), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
