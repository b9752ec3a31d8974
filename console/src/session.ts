/**
 * The admin token lives in this tab's sessionStorage only: never in a URL, localStorage
 * or a cookie, gone when the tab closes, sent only as `Authorization: Bearer`.
 */
const KEY = "roomcast.console.token";

/** A JWT's characters only (three base64url parts); anything else is refused before it is stored or sent. */
export const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
export const MAX_TOKEN_LENGTH = 8_192;

export function loadToken(): string | null {
  try {
    const t = sessionStorage.getItem(KEY);
    return t && TOKEN_SHAPE.test(t) && t.length <= MAX_TOKEN_LENGTH ? t : null;
  } catch {
    return null;
  }
}

export function saveToken(token: string): void {
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    // storage refused (private mode): the token lives in memory for this page only
  }
}

export function clearToken(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing stored
  }
}

/** Normalises what was pasted: a leading "Bearer " and surrounding whitespace are dropped. */
export function cleanToken(pasted: string): string | null {
  const t = pasted.trim().replace(/^Bearer\s+/i, "");
  return TOKEN_SHAPE.test(t) && t.length <= MAX_TOKEN_LENGTH ? t : null;
}
