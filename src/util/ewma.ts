/**
 * Peak-sensitive EWMA of round-trip time, after Finagle's `PeakEwma` (finagle-core
 * `loadbalancer/PeakEwma.scala`) and Linkerd's tower `PeakEwma`:
 * - a sample above the current cost replaces it at once (peaks are taken immediately),
 * - otherwise the cost decays towards the sample with weight `exp(-Δt / τ)`.
 * Reading the cost also decays it towards 0, so an endpoint that had one slow answer recovers while idle.
 */
export class PeakEwma {
  private cost: number;
  private stamp: number;

  constructor(
    private readonly tauMs: number,
    private readonly initialMs: number,
    now: number,
  ) {
    this.cost = initialMs;
    this.stamp = now;
  }

  observe(rttMs: number, now: number): void {
    const w = Math.exp(-Math.max(now - this.stamp, 0) / this.tauMs);
    this.cost = rttMs > this.cost ? rttMs : this.cost * w + rttMs * (1 - w);
    this.stamp = now;
  }

  /**
   * Raises the cost to `costMs` at once when that is above the decayed cost (a peak, as a sample above the cost
   * is), without the blend `observe` applies below it; it then decays like any peak. For a penalty that must
   * enter exactly (load biasing): `observe` would land a little above it when the stored cost was higher still.
   */
  peak(costMs: number, now: number): void {
    if (costMs <= this.get(now)) return;
    this.cost = costMs;
    this.stamp = now;
  }

  /** The decayed cost at `now`, without recording a sample. */
  get(now: number): number {
    const td = now - this.stamp;
    return td <= 0 ? this.cost : this.cost * Math.exp(-td / this.tauMs);
  }

  /** Forget history and start from a neutral cost (used when an endpoint comes back). */
  reset(costMs: number, now: number): void {
    this.cost = costMs;
    this.stamp = now;
  }

  /** The configured starting cost. */
  get initial(): number {
    return this.initialMs;
  }
}
