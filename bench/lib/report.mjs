/** Results as JSON, a markdown table per scenario, and an SVG chart. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const fmt = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? String(v) : String(v));

function table(headers, rows) {
  return [`| ${headers.join(" | ")} |`, `|${headers.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.map(fmt).join(" | ")} |`)].join("\n");
}

/** Ratio of a system's value to a peer's in the same run ("×1.23"). */
function ratio(value, peer) {
  if (!value || !peer) return "–";
  return `×${(value / peer).toFixed(2)}`;
}

export function markdown(run) {
  const out = [];
  const by = (scenario) => run.results.filter((r) => r.scenario === scenario && !r.error);
  const fan = by("fanout");
  if (fan.length) {
    out.push("### Fan-out latency vs room size (one publisher, open loop)\n");
    const sio = (r) => fan.find((x) => x.system === "socketio" && x.subscribers === r.subscribers && x.payloadBytes === r.payloadBytes);
    out.push(
      table(
        ["system", "subscribers", "payload B", "rate/s", "delivered/s", "lost", "p50 ms", "p99 ms", "p99.9 ms", "fan-out p99 ms", "server CPU s", "deliveries per server CPU-s", "vs Socket.IO (per CPU-s)"],
        fan.map((r) => [r.system, r.subscribers, r.payloadBytes, r.publishRate, r.deliveredPerSecond, r.lost, r.latencyMs.p50, r.latencyMs.p99, r.latencyMs.p999, r.fanoutCompletionMs.p99, r.serverCpuSeconds, r.deliveredPerServerCpuSecond, ratio(r.deliveredPerServerCpuSecond, sio(r)?.deliveredPerServerCpuSecond)]),
      ),
    );
  }
  const rooms = by("rooms");
  if (rooms.length) {
    out.push("\n### Many rooms (a trickle into every room)\n");
    out.push(
      table(
        ["system", "rooms × per room", "connections held", "connect failures", "connect s", "rate/s", "delivered/s", "lost", "p50 ms", "p99 ms", "server CPU s", "server RSS MB"],
        rooms.map((r) => [r.system, `${r.rooms} × ${r.perRoom}`, r.connections, r.connectFailures, r.connectSeconds, r.publishRate, r.deliveredPerSecond, r.lost, r.latencyMs.p50, r.latencyMs.p99, r.serverCpuSeconds, r.serverRssMb]),
      ),
    );
  }
  const ramps = by("ramp");
  if (ramps.length) {
    out.push("\n### Throughput ramp (highest publish rate with p99 ≤ 8 ms and nothing lost; stops after two misses in a row)\n");
    out.push(table(["system", "subscribers", "max rate/s within target", "steps (rate: p99 ms)"], ramps.map((r) => [r.system, r.subscribers, r.maxRateWithinTarget, r.steps.map((s) => `${s.rate}: ${s.p99}`).join(", ")])));
  }
  const mem = by("memory");
  if (mem.length) {
    out.push("\n### Memory per idle connection and connect rate\n");
    out.push(table(["system", "connections", "held", "failures", "connects/s", "server RSS MB", "bytes per connection", "after s idle", "RSS MB then", "bytes per connection then"], mem.map((r) => [r.system, r.connections, r.held, r.connectFailures, r.connectsPerSecond, r.rssMb, r.bytesPerConnection, r.idleSeconds ?? "–", r.idleRssMb ?? "–", r.idleBytesPerConnection ?? "–"])));
  }
  const wakes = by("wake");
  if (wakes.length) {
    out.push("\n### Hibernation wake (fan-out completion of one message)\n");
    out.push(table(["system", "subscribers", "idle s", "warm ms", "first after idle ms", "next ms"], wakes.map((r) => [r.system, r.subscribers, r.idleSeconds, r.warmMs.join(", "), r.firstAfterIdleMs, r.nextMs])));
  }
  const storms = by("storm");
  if (storms.length) {
    out.push("\n### Reconnect storm (server killed and restarted)\n");
    out.push(table(["system", "clients", "jitter ms", "reconnected", "failures", "p50 ms", "p99 ms", "all back ms"], storms.map((r) => [r.system, r.clients, r.jitterMs, r.reconnected ?? r.skipped, r.failures, r.p50Ms, r.p99Ms, r.allBackMs])));
  }
  const presence = by("presence").filter((r) => !r.skipped);
  if (presence.length) {
    out.push("\n### Presence storm (listed clients join one room at once, then all leave)\n");
    out.push(table(["system", "clients", "held", "failures", "consistent", "all joins seen ms", "join server CPU s", "join diffs seen", "all leaves seen ms", "leave server CPU s", "leave diffs seen"], presence.map((r) => [r.system, r.clients, r.held, r.connectFailures, r.consistent, r.joinAllSeenMs, r.joinServerCpuSeconds, r.joinDiffFrames, r.leaveAllSeenMs, r.leaveServerCpuSeconds, r.leaveDiffFrames])));
  }
  const slow = by("slow").filter((r) => !r.skipped);
  if (slow.length) {
    out.push("\n### Slow consumer (one subscriber stops reading and asks for large history pages; the others read on)\n");
    const mb = (chars) => (chars === null || chars === undefined ? "–" : (chars / 2 ** 20).toFixed(1));
    const three = (a, b, c) => `${a ?? "–"} / ${b ?? "–"} / ${c ?? "–"}`;
    const pct = (cpu, seconds) => (cpu === null || cpu === undefined || !seconds ? null : Math.round((100 * cpu) / seconds));
    out.push(
      table(
        ["system", "subscribers", "rate/s", "payload B", "stall s", "history requests", "budget MiB", "server RSS MB: no traffic / stall start / stall peak / stall end / end", "others delivered/s before / stall / after", "others p99 ms before / stall / after", "server CPU % before / stall / after", "others lost", "others closed", "slow client backlog MiB (sent, unconfirmed)", "slow closed 4005", "history answers read", "resumed", "missed", "duplicates", "live again after ms", "consistent"],
        slow.map((r) => {
          const n = r.normal;
          const c = r.slowClient;
          return [
            r.system, r.receivers, r.publishRate, r.payloadBytes, r.stallSeconds, r.historyRequests, r.budgetBytes ? mb(r.budgetBytes) : "none",
            [r.rssMb.start, r.rssMb.stallStart, r.rssMb.stallPeak, r.rssMb.stallEnd, r.rssMb.end].map((v) => v ?? "–").join(" / "),
            three(n.before.deliveredPerSecond, n.stall.deliveredPerSecond, n.after.deliveredPerSecond), three(n.before.p99, n.stall.p99, n.after.p99), three(pct(n.before.serverCpuSeconds, r.beforeSeconds), pct(n.stall.serverCpuSeconds, r.stallSeconds), pct(n.after.serverCpuSeconds, r.afterSeconds)),
            n.before.lost + n.stall.lost + n.after.lost, n.closed,
            mb(c.backlogChars), c.closedSlow ? `yes (${c.close.seenAs})` : "no", c.historyAnswers,
            c.resume.length ? c.resume.map((v) => (v?.recovered ? "recovered" : (v?.reason ?? "?"))).join(", ") : "–",
            c.missed, c.duplicates, c.liveAgainMs, r.consistent,
          ];
        }),
      ),
    );
  }
  const skippedSlow = by("slow").filter((r) => r.skipped);
  if (skippedSlow.length) out.push(`\nSlow consumer skipped for ${skippedSlow.map((r) => r.system).join(", ")}: ${skippedSlow[0].skipped}.`);
  const comp = by("compression");
  if (comp.length) {
    out.push("\n### Compression (permessage-deflate offered by every client vs not; two rooms on one server, phases interleaved)\n");
    out.push(
      table(
        ["system", "subscribers × rate/s", "payload", "mean payload B", "mode", "extension accepted", "delivered", "lost", "server CPU µs per delivery", "wire bytes per delivery", "p50 ms", "p99 ms", "load generator CPU µs per delivery", "per round (µs, bytes, p99)"],
        comp.flatMap((r) =>
          r.cells.map((c) => [r.system, `${r.subscribers} × ${r.publishRate}`, c.payload, c.payloadBytesMean, c.mode, c.extensions || "none", c.delivered, c.lost, c.serverCpuUsPerDelivery, c.wireBytesPerDelivery, c.latencyMs.p50, c.latencyMs.p99, c.loadgenCpuUsPerDelivery, c.rounds.map((x) => `${x.serverCpuUsPerDelivery}, ${x.wireBytesPerDelivery}, ${x.p99}`).join("; ")]),
        ),
      ),
    );
    out.push("\ndeflate ÷ off (below 1: deflate cheaper, smaller or faster):\n");
    out.push(table(["system", "payload", "server CPU per delivery", "wire bytes per delivery", "p50", "p99"], comp.flatMap((r) => r.deflateOverOff.map((q) => [r.system, q.payload, q.serverCpuPerDelivery, q.wireBytesPerDelivery, q.p50, q.p99]))));
  }
  const notRun = run.results.filter((r) => r.error && r.notRun);
  if (notRun.length) {
    out.push("\n### Runs that cannot run on this machine\n");
    out.push(table(["system", "scenario", "run", "why"], notRun.map((r) => [r.system, r.scenario, r.label, r.error])));
  }
  const errors = run.results.filter((r) => r.error && !r.notRun);
  if (errors.length) {
    out.push("\n### Runs that failed\n");
    out.push(table(["system", "scenario", "error"], errors.map((r) => [r.system, r.scenario, r.error])));
  }
  return out.join("\n");
}

/** Grouped bar chart: one group per label, one bar per series; `log` for values spanning decades. */
export function barChart({ title, unit, groups, series, log = false }) {
  const perRow = 3;
  const legendRows = Math.ceil(series.length / perRow);
  const width = Math.max(860, 90 + groups.length * Math.max(70, series.length * 11));
  const left = 64;
  const bottom = 52 + legendRows * 18;
  const top = 40;
  const height = 300 + bottom;
  // Eight distinguishable colours (a series never shares one with another).
  const colors = ["#f38020", "#2f6fde", "#12805c", "#9a4fd6", "#c21f3a", "#5f6068", "#b8860b", "#17becf"];
  const values = series.flatMap((s) => s.values.filter((v) => typeof v === "number" && v > 0));
  const max = Math.max(1e-9, ...values);
  const minLog = Math.floor(Math.log10(Math.max(1e-3, Math.min(...values, max))));
  const maxLog = Math.ceil(Math.log10(max));
  const plotW = width - left - 20;
  const plotH = height - top - bottom;
  const scale = (v) => (log ? (plotH * (Math.log10(v) - minLog)) / Math.max(1, maxLog - minLog) : (plotH * v) / max);
  const groupW = plotW / Math.max(1, groups.length);
  const barW = (groupW * 0.8) / Math.max(1, series.length);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}${log ? " (log scale)" : ""}</text>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`,
  ];
  const ticks = log ? Array.from({ length: maxLog - minLog + 1 }, (_, i) => 10 ** (minLog + i)) : [0, 1, 2, 3, 4].map((t) => (max * t) / 4);
  for (const v of ticks) {
    const y = top + plotH - (v > 0 || !log ? scale(v) : 0);
    parts.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#ddd"/><text x="${left - 6}" y="${y + 4}" text-anchor="end">${round(v)}</text>`);
  }
  parts.push(`<text x="14" y="${top + plotH / 2}" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle">${escapeXml(unit)}</text>`);
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + groupW * 0.1;
    series.forEach((s, si) => {
      const v = s.values[gi];
      if (typeof v !== "number" || v <= 0) return;
      const h = Math.max(1, scale(v));
      const x = x0 + si * barW;
      parts.push(`<rect x="${x}" y="${top + plotH - h}" width="${barW - 2}" height="${h}" fill="${colors[si % colors.length]}"><title>${escapeXml(`${s.name} ${g}: ${v} ${unit}`)}</title></rect>`);
    });
    // Labels may carry a second line after " / ".
    const [line1, line2] = String(g).split(" / ");
    const cx = x0 + (groupW * 0.8) / 2;
    parts.push(`<text x="${cx}" y="${top + plotH + 16}" text-anchor="middle">${escapeXml(line1)}</text>`);
    if (line2) parts.push(`<text x="${cx}" y="${top + plotH + 30}" text-anchor="middle" fill="#555">${escapeXml(line2)}</text>`);
  });
  series.forEach((s, si) => {
    const x = left + (si % perRow) * 250;
    const y = top + plotH + 56 + Math.floor(si / perRow) * 18;
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${colors[si % colors.length]}"/><text x="${x + 16}" y="${y}">${escapeXml(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}

const round = (v) => (v >= 100 ? Math.round(v) : Math.round(v * 100) / 100);
const escapeXml = (s) => String(s).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);

/**
 * Fan-out by room size: `p99` latency (log scale) or `cpu`, deliveries per server
 * CPU-second (linear).
 */
export function fanoutChart(run, metric) {
  const fan = run.results.filter((r) => r.scenario === "fanout" && !r.error);
  const systems = [...new Set(fan.map((r) => r.system))];
  const sorted = [...fan].sort((a, b) => a.subscribers - b.subscribers || a.payloadBytes - b.payloadBytes);
  const label = (r) => `${r.subscribers} subs / ${r.payloadBytes} B`;
  const groups = [...new Set(sorted.map(label))];
  const value = (r) => (metric === "cpu" ? r.deliveredPerServerCpuSecond : r.latencyMs.p99);
  return barChart({
    title: metric === "cpu" ? "Fan-out deliveries per server CPU-second (higher is better)" : "Fan-out latency p99 by room size (lower is better)",
    unit: metric === "cpu" ? "deliveries / CPU-s" : "ms",
    log: metric !== "cpu",
    groups,
    series: systems.map((name) => ({ name, values: groups.map((g) => {
      const r = fan.find((x) => x.system === name && label(x) === g);
      return r ? value(r) : null;
    }) })),
  });
}

/** The chart for a run: fan-out p99 by room size if measured, else the first metric available. */
export function chartFor(run) {
  const fan = run.results.filter((r) => r.scenario === "fanout" && !r.error);
  const systems = [...new Set(run.results.filter((r) => !r.error).map((r) => r.system))];
  if (fan.length) return fanoutChart(run, "p99");
  const mem = run.results.filter((r) => r.scenario === "memory" && !r.error);
  const groups = [...new Set(mem.map((r) => `${r.connections} conns`))];
  return barChart({
    title: "Server memory per idle connection (lower is better)",
    unit: "bytes",
    groups,
    series: systems.map((name) => ({ name, values: groups.map((g) => mem.find((r) => r.system === name && `${r.connections} conns` === g)?.bytesPerConnection ?? null) })),
  });
}

export function writeRun(dir, run) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "results.json"), `${JSON.stringify(run, null, 2)}\n`);
  const md = `# Benchmark run ${run.startedAt}\n\n${header(run)}\n\n${markdown(run)}\n`;
  writeFileSync(join(dir, "results.md"), md);
  writeFileSync(join(dir, "chart.svg"), chartFor(run));
  if (run.results.some((r) => r.scenario === "fanout" && !r.error)) writeFileSync(join(dir, "chart-cpu.svg"), fanoutChart(run, "cpu"));
  return md;
}

export function header(run) {
  return [
    `- Machine: ${run.machine.cpus} × ${run.machine.cpuModel}, ${run.machine.memoryGb} GiB, ${run.machine.os}`,
    `- Versions: ${Object.entries(run.versions).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    `- Command: \`${run.command}\``,
    `- Pinning: server on CPU ${run.pinning.server}, load generator on CPU ${run.pinning.loadgen} (taskset)`,
  ].join("\n");
}
