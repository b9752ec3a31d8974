/** Debug logging of state transitions and frames. Tokens are never passed in. */
export type DebugLog = (event: string, detail?: string) => void;

export type DebugOption = boolean | ((room: string, event: string, detail?: string) => void);

const noop: DebugLog = () => {};

export function debugLog(option: DebugOption | undefined, room: string): DebugLog {
  if (!option) return noop;
  if (typeof option === "function") return (event, detail) => option(room, event, detail);
  return (event, detail) => console.debug(`[roomcast ${room}] ${event}${detail === undefined ? "" : ` ${truncate(detail)}`}`);
}

function truncate(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text;
}
