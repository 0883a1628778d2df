import type { Rng } from '../util/random.js';
import type { AdaptiveConcurrencyPolicy } from './health-policy.js';

/**
 * When the limiter measures the no-load RTT again, and how long a measure lasts: Envoy's `min_rtt_calc_params`
 * and `concurrency_update_interval`. Internal tuning, not policy keys (tests and the bench may pass their own).
 */
export interface Gradient2Timing {
  /** Between two min RTT measures, before jitter. Default 30 s. */
  readonly probeIntervalMs: number;
  /** Up to this share of the interval is added at random to it (Envoy's `jitter`, 15 %), so clients spread out. */
  readonly jitter: number;
  /** Samples a min RTT measure takes (Envoy's `request_count`, 50). */
  readonly probeSamples: number;
  /** A measure that lasts this long ends with what it has, once it has `windowSamples` (a quiet service). */
  readonly probeMaxMs: number;
  /** The shortest and longest update window (Envoy 100 ms; Netflix WindowedLimit: 2 × the window's best RTT, ≤ 1 s). */
  readonly windowMinMs: number;
  readonly windowMaxMs: number;
  /** Samples a window needs before it updates the limit (Netflix WindowedLimit's `windowSize`, 10). */
  readonly windowSamples: number;
}

export const DEFAULT_GRADIENT2_TIMING: Gradient2Timing = Object.freeze({
  probeIntervalMs: 30_000,
  jitter: 0.15,
  probeSamples: 50,
  probeMaxMs: 2_000,
  windowMinMs: 100,
  windowMaxMs: 1_000,
  windowSamples: 10,
});

/**
 * How much above the measured no-load RTT is not queueing: Envoy's `min_rtt_calc_params.buffer` (25 %), which goes
 * with a minimum measured at low concurrency. (Netflix's `rttTolerance` of 1.5 goes with its averaged long-term RTT,
 * which already carries some load. Over a measured minimum, bench/overload.ts at 2× load measured a limit of 17
 * and a p99 of 64 ms with 1.5, against 15 and 46 ms with 25 %, for the same goodput; unloaded: 21.5 ms.)
 */
const RTT_TOLERANCE = 1.25;
/** Netflix Gradient2Limit's default `queueSize`: how far the limit may grow per update while latency is low. */
const QUEUE_SIZE = 4;
/** Envoy: the limit set to the minimum in this many updates in a row means the min RTT is off: measure it again. */
const AT_MIN_REPROBE = 5;
/** A window this old without enough samples is thrown away rather than mixed with a new burst. */
const STALE_WINDOW_MS = 10_000;

/**
 * A Gradient2 concurrency limit (Netflix concurrency-limits `Gradient2Limit._update`, fed window by window as its
 * `WindowedLimit` does), with the long-term RTT measured as Envoy's gradient controller measures its minRTT
 * (`controller/gradient_controller.cc`: `enterMinRTTSamplingWindow`, `updateMinRTT`, `calculateNewLimit`).
 *
 * The limit follows long-term RTT ÷ short-term RTT: each window's mean RTT is the short-term one, and
 * `limit × clamp(0.5, 1, 1.25 × long ÷ short) + 4`, smoothed by `smoothing`, is the next limit (Gradient2's
 * formula, with Envoy's 25 % buffer over its minimum as the tolerance).
 *
 * Why not Gradient2's own long-term RTT: it is an exponential average of the short-term one (600 samples), so
 * against a backend that queues, it climbs to the queued latency, the gradient returns to 1, and the limit grows
 * by its queue size each window until `max`: the drift. Envoy instead measures the no-load RTT: it drops the limit
 * to `min` until `probeSamples` requests sent after that moment have returned, takes their median, and restores the
 * limit; again every `probeIntervalMs` (plus jitter), and at once when the limit sat at `min` five updates in a row.
 * That median is the long-term RTT here, so a backend that queues keeps showing a gradient below 1.
 *
 * Protocol-free and timer-free: the caller passes clock readings (`now`), and every transition happens on a sample.
 * Not thread-safe by design (one event loop).
 */
export class Gradient2Limit {
  /** The limit now, an integer: the admission step rejects a call when this many are in flight. */
  limit: number;
  private estimate: number;
  private min: number;
  private max: number;
  private smoothing: number;
  /** The no-load RTT (ms) of the last measure; 0 until the first one ends. */
  minRttMs = 0;
  /** The short-term RTT of the last update window (ms); 0 before the first. */
  lastRttMs = 0;
  /** True while the min RTT is being measured (the limit is held at `min`). */
  probing = false;
  /** Samples of calls admitted before this reading are ignored (Envoy's `min_rtt_epoch_`). */
  private epoch = -Infinity;
  private nextProbeAt = Infinity;
  private readonly probe: Float64Array;
  private probeCount = 0;
  private atMin = 0;
  // The update window: plain numbers, no array per window.
  private windowStart = 0;
  private windowEndsAt = 0;
  private sum = 0;
  private count = 0;
  private best = Infinity;
  private maxInflight = 0;

  constructor(
    policy: Required<AdaptiveConcurrencyPolicy>,
    private readonly rng: Rng,
    now: number,
    private readonly timing: Gradient2Timing = DEFAULT_GRADIENT2_TIMING,
  ) {
    this.min = policy.min;
    this.max = policy.max;
    this.smoothing = policy.smoothing;
    this.estimate = Math.min(this.max, Math.max(this.min, policy.initial));
    this.limit = Math.floor(this.estimate);
    this.probe = new Float64Array(timing.probeSamples);
    // Envoy starts with a measure: there is no long-term RTT to compare with before it.
    this.startProbe(now);
  }

  /** A new configuration: the bounds and smoothing follow; the limit and the measured RTT stay (clamped). */
  reconfigure(policy: Required<AdaptiveConcurrencyPolicy>): void {
    this.min = policy.min;
    this.max = policy.max;
    this.smoothing = policy.smoothing;
    this.estimate = Math.min(this.max, Math.max(this.min, this.estimate));
    this.limit = this.probing ? this.min : Math.floor(this.estimate);
  }

  /** A call was admitted with `inflight` calls now in flight (itself included): the window's peak, for Gradient2's app-limited rule. */
  admitted(inflight: number): void {
    if (inflight > this.maxInflight) this.maxInflight = inflight;
  }

  /**
   * A call admitted at `start` ended at `now` after `rttMs` (a success; a timeout comes through {@link timedOut}).
   * Other failures are not samples (Netflix's `onIgnore`): a fast 503 says nothing about queueing.
   */
  sample(start: number, rttMs: number, now: number): void {
    if (start < this.epoch) return; // sent before the latest measure began: it may have queued
    // A negative or NaN duration is a clock fault (an injected clock that went back): it would poison the sums.
    if (!(rttMs >= 0 && rttMs < Infinity)) return;
    if (this.probing) {
      this.probe[this.probeCount++] = rttMs;
      const minSamples = Math.min(this.timing.windowSamples, this.timing.probeSamples);
      if (this.probeCount >= this.timing.probeSamples || (now - this.epoch >= this.timing.probeMaxMs && this.probeCount >= minSamples)) {
        this.endProbe(now);
      }
      return;
    }
    if (now >= this.nextProbeAt) {
      this.startProbe(now);
      return;
    }
    if (now - this.windowStart > STALE_WINDOW_MS) this.openWindow(now);
    this.sum += rttMs;
    this.count++;
    if (rttMs < this.best) this.best = rttMs;
    if (now >= this.windowEndsAt && this.count >= this.timing.windowSamples) {
      this.update(this.sum / this.count, this.maxInflight, now);
      this.openWindow(now);
    }
  }

  /**
   * A call admitted at `start` timed out after `rttMs`: a lower bound on its RTT. It is a sample only when above
   * what a call without queueing takes (1.25 × the min RTT). A shorter one ran out of a deadline it was given
   * almost spent (an inbound deadline): counted as a fast call, it would raise the limit just as the backend slows.
   */
  timedOut(start: number, rttMs: number, now: number): void {
    if (rttMs > RTT_TOLERANCE * this.minRttMs) this.sample(start, rttMs, now);
  }

  /** Gradient2Limit._update with the measured min RTT as the long-term RTT. */
  private update(shortRtt: number, inflight: number, now: number): void {
    this.lastRttMs = shortRtt;
    // Netflix: don't move the limit while the application is not using it (app-limited).
    if (inflight < this.estimate / 2) return;
    // A window of 0 ms calls (a clock coarser than the backend, or one that did not move) shows no queueing:
    // 0 ÷ 0 would be NaN, and a NaN limit admits everything (`active >= NaN` is never true).
    const gradient = shortRtt > 0 ? Math.max(0.5, Math.min(1, (RTT_TOLERANCE * this.minRttMs) / shortRtt)) : 1;
    const target = this.estimate * gradient + QUEUE_SIZE;
    const next = this.estimate * (1 - this.smoothing) + target * this.smoothing;
    this.estimate = Math.max(this.min, Math.min(this.max, next));
    this.limit = Math.floor(this.estimate);
    // Envoy: the minimum five updates in a row suggests the min RTT measured is too low (the backend got slower).
    this.atMin = this.limit <= this.min ? this.atMin + 1 : 0;
    if (this.atMin >= AT_MIN_REPROBE) {
      this.atMin = 0;
      this.nextProbeAt = now;
    }
  }

  private startProbe(now: number): void {
    this.probing = true;
    this.epoch = now;
    this.probeCount = 0;
    this.limit = this.min;
  }

  private endProbe(now: number): void {
    // Envoy aggregates the measure at p50: robust to a slow outlier (a GC pause, a cold connection).
    const sorted = this.probe.slice(0, this.probeCount).sort();
    const n = sorted.length;
    this.minRttMs = n % 2 === 1 ? sorted[(n - 1) >> 1]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
    this.probing = false;
    this.limit = Math.floor(this.estimate); // Envoy's deferred limit, restored
    this.atMin = 0;
    this.nextProbeAt = now + this.timing.probeIntervalMs * (1 + this.timing.jitter * this.rng());
    this.openWindow(now);
  }

  private openWindow(now: number): void {
    // Netflix WindowedLimit: the next window lasts twice the best RTT seen, within bounds.
    const best = this.best === Infinity ? this.minRttMs : this.best;
    this.windowStart = now;
    this.windowEndsAt = now + Math.min(this.timing.windowMaxMs, Math.max(this.timing.windowMinMs, 2 * best));
    this.sum = 0;
    this.count = 0;
    this.best = Infinity;
    this.maxInflight = 0;
  }
}
