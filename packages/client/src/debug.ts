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

/** A frame for the debug log: its type, and the seqs of messages (never data or tokens). */
export function frameSummary(frame: { type: string; seq?: number; messages?: readonly { seq: number }[] }): string {
  if (frame.type === "message") return `message ${frame.seq}`;
  if (frame.type === "messages" && frame.messages) {
    const first = frame.messages[0];
    const last = frame.messages.at(-1);
    return first && last ? `messages ${first.seq}-${last.seq}` : "messages (none)";
  }
  return frame.type;
}
