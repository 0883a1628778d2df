import type { Rng } from '../util/random.js';
import type { AdmissionPolicy } from './health-policy.js';

/** Buckets per window: the window slides by a tenth of `windowMs` (30 s: 3 s steps). */
const BUCKETS = 10;

/**
 * Client-side throttling (Google SRE book, ch. 21 "Handling Overload", adaptive throttling; Envoy's
 * `admission_control` filter, `ThreadLocalControllerImpl`): over a sliding window, a call is rejected locally
 * with probability
 *
 *     p = min(maxRejectPercent ÷ 100, max(0, (requests − accepts ÷ successRatio) ÷ (requests + 1)))
 *
 * `requests` counts every call the application made in the window, those rejected here included (so a backend
 * that keeps failing keeps being mostly refused); `accepts` counts the calls that succeeded. `successRatio` is the
 * SRE book's 1 ÷ K. The draw uses the mesh's seeded random, and only when p > 0 (a healthy service draws nothing).
 *
 * The window is {@link BUCKETS} buckets in two typed arrays with running totals; buckets age out when read or
 * written (Envoy ages its per-second buckets the same way), so there is no timer and nothing to stop.
 */
export class AdmissionThrottle {
  private readonly requests = new Float64Array(BUCKETS);
  private readonly accepts = new Float64Array(BUCKETS);
  private totalRequests = 0;
  private totalAccepts = 0;
  /** The bucket the latest reading fell in (a bucket number since the clock's origin). */
  private current = -Infinity;
  /** The window the counts cover; a change of it needs a new throttle. */
  readonly windowMs: number;
  private readonly bucketMs: number;
  private successRatio: number;
  private cap: number;

  constructor(
    policy: Required<AdmissionPolicy>,
    private readonly rng: Rng,
  ) {
    this.windowMs = policy.windowMs;
    this.bucketMs = policy.windowMs / BUCKETS;
    this.successRatio = policy.successRatio;
    this.cap = policy.maxRejectPercent / 100;
  }

  /** A new configuration with the same window: ratio and cap follow, the counts stay. */
  reconfigure(policy: Required<AdmissionPolicy>): void {
    this.successRatio = policy.successRatio;
    this.cap = policy.maxRejectPercent / 100;
  }

  /**
   * Counts one call and draws whether it is rejected: returns the probability it was rejected with, or 0 when it
   * is admitted. The probability is taken before this call is counted: the formula's `+ 1` is this call.
   */
  draw(now: number): number {
    const slot = this.advance(now);
    const p = this.probability();
    this.requests[slot]!++;
    this.totalRequests++;
    return p > 0 && this.rng() < p ? p : 0;
  }

  /** A call counted by {@link draw} succeeded. */
  accept(now: number): void {
    const slot = this.advance(now);
    this.accepts[slot]!++;
    this.totalAccepts++;
  }

  /** The rejection probability now, from 0 to the cap (for the snapshot and metrics). */
  rejectProbability(now: number): number {
    this.advance(now);
    return this.probability();
  }

  /** Calls and successes in the window now. */
  counts(now: number): { readonly requests: number; readonly accepts: number } {
    this.advance(now);
    return { requests: this.totalRequests, accepts: this.totalAccepts };
  }

  private probability(): number {
    const requests = this.totalRequests;
    const p = (requests - this.totalAccepts / this.successRatio) / (requests + 1);
    return p <= 0 ? 0 : p < this.cap ? p : this.cap;
  }

  /** Ages out the buckets that left the window since the last reading; returns the slot of `now`. */
  private advance(now: number): number {
    const bucket = Math.floor(now / this.bucketMs);
    const current = this.current;
    if (bucket !== current) {
      // A reading a little behind the latest one is not a clock going back: `accept` is given the winning
      // attempt's end, and another call may have drawn since, in a later bucket. It counts in the newest bucket;
      // starting empty there would wipe the whole window's evidence at every such boundary.
      if (bucket < current && current - bucket < BUCKETS) return slotOf(current);
      if (bucket - current >= BUCKETS || bucket < current) {
        // Idle for a whole window (or a clock that jumped a whole window back): start empty.
        this.requests.fill(0);
        this.accepts.fill(0);
        this.totalRequests = 0;
        this.totalAccepts = 0;
      } else {
        for (let b = current + 1; b <= bucket; b++) {
          const slot = slotOf(b);
          this.totalRequests -= this.requests[slot]!;
          this.totalAccepts -= this.accepts[slot]!;
          this.requests[slot] = 0;
          this.accepts[slot] = 0;
        }
      }
      this.current = bucket;
    }
    return slotOf(bucket);
  }
}

function slotOf(bucket: number): number {
  return ((bucket % BUCKETS) + BUCKETS) % BUCKETS;
}
