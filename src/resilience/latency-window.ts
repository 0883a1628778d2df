/**
 * A rolling estimate of a service's latency percentiles, from its last 256 successful attempts, for
 * `hedge.delayMs: 'p95'`. The percentile is recomputed every 32 samples (a sort of 256 numbers), so
 * recording costs a store and reading costs nothing.
 */
export class LatencyWindow {
  private static readonly SIZE = 256;
  private static readonly EVERY = 32;
  private readonly samples = new Float64Array(LatencyWindow.SIZE);
  private count = 0;
  private cached = Number.NaN;

  add(ms: number): void {
    this.samples[this.count % LatencyWindow.SIZE] = ms;
    this.count++;
    if (this.count % LatencyWindow.EVERY === 0) this.cached = Number.NaN;
  }

  /** The 95th percentile of the window, or `undefined` before the first 32 samples. */
  p95(): number | undefined {
    if (this.count < LatencyWindow.EVERY) return undefined;
    if (Number.isNaN(this.cached)) {
      const n = Math.min(this.count, LatencyWindow.SIZE);
      const sorted = this.samples.slice(0, n).sort();
      this.cached = sorted[Math.min(n - 1, Math.floor(n * 0.95))] as number;
    }
    return this.cached;
  }
}
