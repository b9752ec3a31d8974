/**
 * Small decisions the connection makes after a socket ends, kept apart so they can
 * be read (and changed) in one place. What a close code means is the protocol's
 * table (`reconnectAdviceForClose`); this adds how long to be patient.
 */
import { ERRORS, isErrorCode } from "@roomcast/protocol";

/** The close code an error code ends a connection with, if it is one this version knows. */
export function closeCodeOf(code: string): number | undefined {
  return isErrorCode(code) ? (ERRORS[code] as { close?: number }).close : undefined;
}

/**
 * The server answered and asked for patience (overload, its own failure, a limit):
 * back off up to `maxMs`. Anything else (the network, a crash, a restart, a stale
 * link) only waits up to `networkMaxMs`, so a crowd is back soon after the server is.
 */
export function isPushback(code: number): boolean {
  if (code === 1013) return true; // "try again later"
  return code >= 4000 && code < 4500 && code !== 4000 && code !== 4001 && code !== 4004;
}

/** A browser that knows it is offline: attempts would only fail. */
export function isKnownOffline(): boolean {
  return typeof navigator !== "undefined" && (navigator as { onLine?: boolean }).onLine === false;
}
