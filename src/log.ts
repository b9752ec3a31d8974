/**
 * Structured logs, one JSON object per line. Callers pass facts, never tokens:
 * nothing here knows about Authorization headers or subprotocols.
 */
type Level = "info" | "warn" | "error";

export function log(level: Level, event: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ level, event, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/** The parts of an unknown thrown value that are safe to log. */
/** Runs `fn`; a throw is logged as `event` (with `fields`) instead of escaping. For cleanup that must not fail its caller. */
export function safely(event: string, fields: Record<string, unknown>, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log("error", event, { ...fields, error: describeError(err) });
  }
}

export function describeError(err: unknown): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: typeof err, message: String(err) };
}
