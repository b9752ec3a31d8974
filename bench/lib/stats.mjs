/** Latency recording with HdrHistogram (microsecond resolution, up to 60 s). */
import * as hdr from "hdr-histogram-js";

export function histogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Summary in milliseconds. */
export function summarize(h) {
  if (h.totalCount === 0) return { count: 0, p50: null, p99: null, p999: null, max: null, mean: null };
  const ms = (us) => Math.round(us / 10) / 100;
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}
