import type { FlowBuckets } from "./flow.js";

const W = 600;
const H = 120;
const PAD = 2;

/** Frames in (up) and out (down) per bucket with errors marked, over the last minutes: plain SVG. */
export function FlowChart({ buckets }: { buckets: FlowBuckets }) {
  const n = buckets.inbound.length;
  const max = Math.max(1, ...buckets.inbound, ...buckets.outbound);
  const mid = H / 2;
  const bw = (W - PAD) / n;
  const scale = (v: number) => (v / max) * (mid - 4);
  const minutes = Math.round((n * buckets.bucketMs) / 60_000);
  const totalErrors = buckets.errors.reduce((a, b) => a + b, 0);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`Frames per ${buckets.bucketMs / 1000} s over the last ${minutes} minutes`} data-testid="flow-chart">
        <line x1={PAD} x2={W} y1={mid} y2={mid} className="axis" />
        {buckets.inbound.map((v, i) => v > 0 && <rect key={`i${i}`} className="in" x={PAD + i * bw} width={Math.max(1, bw - 1)} y={mid - scale(v)} height={scale(v)} />)}
        {buckets.outbound.map((v, i) => v > 0 && <rect key={`o${i}`} className="out" x={PAD + i * bw} width={Math.max(1, bw - 1)} y={mid} height={scale(v)} />)}
        {buckets.errors.map((v, i) => v > 0 && <rect key={`e${i}`} className="err" x={PAD + i * bw} width={Math.max(1, bw - 1)} y={mid - 3} height={6} data-errors={v} />)}
      </svg>
      <figcaption className="muted">
        <span className="key in" /> frames in · <span className="key out" /> frames out · <span className="key err" /> errors ({totalErrors}) — {minutes} min, {buckets.bucketMs / 1000} s per bar, tallest {max}
      </figcaption>
    </figure>
  );
}
