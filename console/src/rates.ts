/**
 * Rates from counters sampled at each poll (a room's headSeq, its error count): the
 * increase over the samples of the last `windowMs`, per second. A counter that goes
 * down (a room reset: new epoch, or restarted metrics) starts over from that sample.
 */
export class RateTracker {
  private readonly samples = new Map<string, { at: number; value: number }[]>();

  constructor(private readonly windowMs = 10_000) {}

  record(key: string, at: number, value: number): void {
    let list = this.samples.get(key);
    if (!list) this.samples.set(key, (list = []));
    const last = list[list.length - 1];
    if (last && value < last.value) list.length = 0;
    list.push({ at, value });
    // Keep one sample at or before the window's start, so the rate spans the whole window.
    while (list.length > 2 && list[1]!.at <= at - this.windowMs) list.shift();
  }

  /** Per second over the window; null until two samples exist. */
  rate(key: string): number | null {
    const list = this.samples.get(key);
    if (!list || list.length < 2) return null;
    const first = list[0]!;
    const last = list[list.length - 1]!;
    const dt = (last.at - first.at) / 1000;
    return dt > 0 ? (last.value - first.value) / dt : null;
  }

  /** Increase over the window (0 until two samples). */
  increase(key: string): number {
    const list = this.samples.get(key);
    if (!list || list.length < 2) return 0;
    return list[list.length - 1]!.value - list[0]!.value;
  }

  /** Forgets keys not in `keep` (rooms gone from the directory). */
  retain(keep: ReadonlySet<string>): void {
    for (const key of this.samples.keys()) if (!keep.has(key)) this.samples.delete(key);
  }
}
