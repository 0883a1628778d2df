import type { Clock } from '../util/clock.js';

/**
 * A retry budget, after Finagle's `RetryBudget` (a leaky token bucket over a window of `ttlMs`):
 * every request deposits 1 token, every retry or hedge withdraws `1 / ratio` tokens, and a reserve of
 * `minPerSecond × ttl` retries is always there, so a quiet client can still retry. Deposits and
 * withdrawals leave the window after `ttlMs`. The balance never goes below 0.
 *
 * Counts are scaled (Finagle scales by 1000; we use 10^6, so even a ratio of 600 rounds to within 0.1 %)
 * so that `ratio` may be fractional with exact integer maths in doubles.
 */
const SCALE = 1_000_000;

export class RetryBudget {
  private static readonly SLICES = 10;
  private readonly slices = new Float64Array(RetryBudget.SLICES);
  private readonly sliceMs: number;
  private slice = 0;
  private sliceStart: number;
  private sum = 0;
  private readonly deposit: number;
  private readonly withdrawal: number;
  private readonly reserve: number;

  constructor(
    ratio: number,
    minPerSecond: number,
    ttlMs: number,
    private readonly clock: Clock,
  ) {
    this.sliceMs = ttlMs / RetryBudget.SLICES;
    this.sliceStart = clock.now();
    this.deposit = ratio === 0 ? 0 : SCALE;
    this.withdrawal = ratio === 0 ? 1 : Math.round(SCALE / ratio);
    this.reserve = Math.floor(minPerSecond * (ttlMs / 1000) * this.withdrawal);
  }

  /** One request was made (`now` saves a clock read when the caller has one). */
  onRequest(now: number = this.clock.now()): void {
    if (this.deposit === 0) return;
    this.roll(now);
    this.slices[this.slice]! += this.deposit;
    this.sum += this.deposit;
  }

  /** Takes one retry's worth, or returns false and takes nothing when the budget is spent. */
  tryWithdraw(): boolean {
    this.roll();
    if (this.sum + this.reserve < this.withdrawal) return false;
    this.add(-this.withdrawal);
    return true;
  }

  /** Retries that could be made now. */
  get balance(): number {
    this.roll();
    return Math.max(0, Math.floor((this.sum + this.reserve) / this.withdrawal));
  }

  private add(n: number): void {
    this.roll();
    this.slices[this.slice]! += n;
    this.sum += n;
  }

  /** Expires slices older than the window. */
  private roll(now: number = this.clock.now()): void {
    let elapsed = Math.floor((now - this.sliceStart) / this.sliceMs);
    if (elapsed <= 0) return;
    if (elapsed > RetryBudget.SLICES) elapsed = RetryBudget.SLICES;
    for (let i = 0; i < elapsed; i++) {
      this.slice = (this.slice + 1) % RetryBudget.SLICES;
      this.sum -= this.slices[this.slice]!;
      this.slices[this.slice] = 0;
    }
    this.sliceStart = elapsed === RetryBudget.SLICES ? now : this.sliceStart + elapsed * this.sliceMs;
  }
}
