/**
 * A small parser for the Prometheus text format 0.0.4 (what `GET /v1/admin/metrics`
 * answers): samples with their labels, comments and blank lines skipped, label values
 * unescaped (\\, \", \n). Lines it cannot read are skipped, never guessed at.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseLine(line: string): Sample | null {
  const name = NAME.exec(line)?.[0];
  if (!name) return null;
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    for (;;) {
      while (line[i] === " " || line[i] === ",") i++;
      if (line[i] === "}") {
        i++;
        break;
      }
      const key = LABEL.exec(line.slice(i))?.[0];
      if (!key) return null;
      i += key.length;
      if (line[i] !== "=" || line[i + 1] !== '"') return null;
      i += 2;
      let value = "";
      for (;;) {
        const ch = line[i];
        if (ch === undefined) return null;
        i++;
        if (ch === '"') break;
        if (ch === "\\") {
          const next = line[i++];
          value += next === "n" ? "\n" : next ?? "";
        } else value += ch;
      }
      labels[key] = value;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const raw = rest[0];
  if (raw === undefined || raw === "") return null;
  const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
  if (Number.isNaN(value) && raw !== "NaN") return null;
  return { name, labels, value };
}

export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const s = parseLine(t);
    if (s) out.push(s);
  }
  return out;
}

/**
 * Errors per room, from the per-room series: publishes refused (any `outcome` but
 * `accepted`) plus slow-consumer closes. Rooms without such series are absent.
 */
export function errorsByRoom(samples: Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    const room = s.labels.room;
    if (room === undefined || !Number.isFinite(s.value)) continue;
    const isError =
      (s.name === "roomcast_publishes_total" && s.labels.outcome !== undefined && s.labels.outcome !== "accepted") ||
      s.name === "roomcast_slow_consumer_closes_total";
    if (isError) out.set(room, (out.get(room) ?? 0) + s.value);
  }
  return out;
}
