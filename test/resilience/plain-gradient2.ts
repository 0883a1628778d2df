/**
 * Netflix concurrency-limits' Gradient2Limit as it ships (test reference only): the long-term RTT is an exponential
 * average of the window RTTs (`ExpAvgMeasurement(600, 10)`), fed by `WindowedLimit` (windows of ≥ 10 samples,
 * 2 × the window's best RTT within [100 ms, 1 s]). Used to show the drift that src/resilience/gradient2.ts avoids.
 */
export class PlainGradient2 {
  limit: number;
  private estimate: number;
  private long = 0;
  private longCount = 0;
  private sum = 0;
  private count = 0;
  private best = Infinity;
  private inflight = 0;
  private endsAt = 0;

  constructor(initial: number, private readonly min: number, private readonly max: number, private readonly smoothing = 0.2) {
    this.estimate = initial;
    this.limit = initial;
  }

  admitted(inflight: number): void {
    this.inflight = Math.max(this.inflight, inflight);
  }

  sample(_start: number, rtt: number, now: number): void {
    this.sum += rtt;
    this.count++;
    this.best = Math.min(this.best, rtt);
    if (now < this.endsAt || this.count < 10) return;
    this.update(this.sum / this.count, this.inflight);
    this.endsAt = now + Math.min(1_000, Math.max(100, 2 * this.best));
    this.sum = 0;
    this.count = 0;
    this.best = Infinity;
    this.inflight = 0;
  }

  private update(short: number, inflight: number): void {
    if (this.longCount < 10) this.long = (this.long * this.longCount + short) / ++this.longCount;
    else this.long = this.long * (1 - 2 / 601) + short * (2 / 601);
    if (this.long / short > 2) this.long *= 0.95;
    if (inflight < this.estimate / 2) return;
    const gradient = Math.max(0.5, Math.min(1, (1.5 * this.long) / short));
    const next = this.estimate * (1 - this.smoothing) + (this.estimate * gradient + 4) * this.smoothing;
    this.estimate = Math.max(this.min, Math.min(this.max, next));
    this.limit = Math.floor(this.estimate);
  }
}
