
import type { FailurePercentPolicy, SuccessRatePolicy } from './health-policy.js';

/**
 * Passive outlier ejection, with Envoy's semantics: consecutive failures on every attempt, and the statistical
 * rules (success rate, failure percentage) every `intervalMs`.
 * @example { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 10, successRate: { stdevFactor: 1.9 } }
 */
export interface OutlierPolicy {
  /** Failures in a row that eject an endpoint. Default 5. */
  consecutiveFailures?: number | undefined;
  /** First ejection's length, in ms; each further one is longer by as much. Default 30 s. */
  baseEjectionMs?: number | undefined;
  /** Longest ejection, in ms. Default 300 s. */
  maxEjectionMs?: number | undefined;
  /** Most endpoints ejected at once, in percent (one can always be). Default 10. */
  maxEjectionPercent?: number | undefined;
  /**
   * How often the statistical rules run over the attempts of the interval just ended. Default 10 s (Envoy's). The
   * timer is armed by traffic: a service with no attempt since the last run has none.
   */
  intervalMs?: number | undefined;
  /** Success-rate ejection; `false` turns it off. Default on, as Envoy's (`{ minHosts: 5, requestVolume: 100, stdevFactor: 1.9 }`). */
  successRate?: false | SuccessRatePolicy | undefined;
  /** Failure-percentage ejection. Default `false`, as Envoy's (`enforcing_failure_percentage` 0); `{}` turns it on at 85 %. */
  failurePercent?: false | FailurePercentPolicy | undefined;
}

/** An outlier policy with every default filled in. */
export interface ResolvedOutlier {
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  readonly intervalMs: number;
  readonly successRate: false | Required<SuccessRatePolicy>;
  readonly failurePercent: false | Required<FailurePercentPolicy>;
}

/**
 * Passive outlier detection for one endpoint, after Envoy's `consecutive_5xx` detector: after
 * `consecutiveFailures` failures in a row it asks to be ejected; an ejection lasts
 * `baseEjectionMs × times ejected`, capped at `maxEjectionMs`. The multiplier comes down by one for each
 * `baseEjectionMs` the endpoint then stays in service, as Envoy's does.
 */
export type OutlierState =
  | { readonly kind: 'active'; readonly failures: number; readonly timesEjected: number; readonly since: number }
  | { readonly kind: 'ejected'; readonly until: number; readonly timesEjected: number };

export class OutlierDetector {
  state: OutlierState;
  /**
   * Attempts with a verdict, and failures, since the statistical rules last ran (Envoy's success-rate
   * accumulator bucket): plain counters, so recording an attempt allocates nothing.
   */
  intervalAttempts = 0;
  intervalFailures = 0;

  constructor(
    /** Mutable: `configure` may change the policy of a detector in place. */
    public policy: ResolvedOutlier,
    now: number,
  ) {
    this.state = { kind: 'active', failures: 0, timesEjected: 0, since: now };
  }

  get ejected(): boolean {
    return this.state.kind === 'ejected';
  }

  /** Records an attempt's verdict. Returns true when the endpoint has now earned an ejection. */
  record(ok: boolean): boolean {
    this.intervalAttempts++;
    if (!ok) this.intervalFailures++;
    const s = this.state;
    if (s.kind !== 'active') return false;
    if (ok) {
      if (s.failures !== 0) this.state = { ...s, failures: 0 };
      return false;
    }
    this.state = { ...s, failures: s.failures + 1 };
    return s.failures + 1 >= this.policy.consecutiveFailures;
  }

  /** Ejects the endpoint; returns how long for. */
  eject(now: number): number {
    const s = this.state;
    if (s.kind !== 'active') return 0;
    const healthyPeriods = Math.floor((now - s.since) / this.policy.baseEjectionMs);
    const times = Math.max(0, s.timesEjected - healthyPeriods) + 1;
    const duration = Math.min(this.policy.baseEjectionMs * times, this.policy.maxEjectionMs);
    this.state = { kind: 'ejected', until: now + duration, timesEjected: times };
    return duration;
  }

  /** Brings an ejected endpoint back when its time is up; returns true if it did. */
  restoreIfDue(now: number): boolean {
    const s = this.state;
    if (s.kind !== 'ejected' || now < s.until) return false;
    // In service since the ejection ended, not since the pick that noticed it (restoration is lazy).
    this.resetInterval(); // what it did while ejected (in panic) is not what it does now
    this.state = { kind: 'active', failures: 0, timesEjected: s.timesEjected, since: s.until };
    return true;
  }

  /** Starts a new interval for the statistical rules. */
  resetInterval(): void {
    this.intervalAttempts = 0;
    this.intervalFailures = 0;
  }

  /** When an ejected endpoint is due back (Infinity when active). */
  get dueAt(): number {
    return this.state.kind === 'ejected' ? this.state.until : Infinity;
  }
}
