import type { FailurePercentPolicy, SuccessRatePolicy } from './health-policy.js';

/**
 * The statistics of Envoy's interval-based outlier detection, pure: no clock, no endpoint, no random draw.
 * Anchor: envoy source/common/upstream/outlier_detection_impl.cc, `DetectorImpl::processSuccessRateEjections`
 * and `DetectorImpl::successRateEjectionThreshold`. The caller (service-health.ts) gathers one sample per
 * endpoint that is not ejected, applies the ejection cap and the enforcing percentage, and resets the counts.
 */

/** One endpoint's attempts over the interval just ended. */
export interface IntervalSample {
  /** Attempts with a verdict (success or failure) in the interval. */
  readonly attempts: number;
  /** How many of them failed. */
  readonly failures: number;
}

/** What the success-rate rule computed, in percent (Envoy's `success_rate_average` and `_ejection_threshold`). */
export interface SuccessRateThreshold {
  readonly mean: number;
  readonly stdev: number;
  /** mean − stdevFactor × stdev: an endpoint strictly below it is an outlier. */
  readonly threshold: number;
}

/** An endpoint's success rate in percent, as Envoy reports it (100 × successes ÷ attempts). */
export function successRate(sample: IntervalSample): number {
  return ((sample.attempts - sample.failures) * 100) / sample.attempts;
}

/**
 * Envoy's `successRateEjectionThreshold`: the mean of the rates, their population standard deviation (the
 * variance divided by n, not n − 1, as Envoy does), and mean − factor × stdev. `rates` must not be empty.
 */
export function successRateThreshold(rates: readonly number[], stdevFactor: number): SuccessRateThreshold {
  let sum = 0;
  for (const r of rates) sum += r;
  const mean = sum / rates.length;
  let variance = 0;
  for (const r of rates) variance += (r - mean) * (r - mean);
  variance /= rates.length;
  const stdev = Math.sqrt(variance);
  return { mean, stdev, threshold: mean - stdevFactor * stdev };
}

/**
 * Success-rate outliers: among samples with at least `requestVolume` attempts, and only when at least
 * `minHosts` of them have that volume, those whose success rate is strictly below the threshold. Returns
 * their indices into `samples`, worst first: when the ejection cap allows only some, the worst go (Envoy
 * walks its host map in no particular order; worst first is the same rule with a better tie-break).
 */
export function successRateOutliers(samples: readonly IntervalSample[], policy: Required<SuccessRatePolicy>): number[] {
  const qualified: number[] = [];
  const rates: number[] = [];
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    // No attempt has no rate (0 ÷ 0 would make the mean NaN and spare every outlier): Envoy's accumulator
    // reports none either. `requestVolume` is validated >= 1, but these functions are exported.
    if (s.attempts === 0 || s.attempts < policy.requestVolume) continue;
    qualified.push(i);
    rates.push(successRate(s));
  }
  if (qualified.length === 0 || qualified.length < policy.minHosts) return [];
  const { threshold } = successRateThreshold(rates, policy.stdevFactor);
  const out: { index: number; rate: number }[] = [];
  for (let k = 0; k < qualified.length; k++) {
    if (rates[k]! < threshold) out.push({ index: qualified[k]!, rate: rates[k]! });
  }
  return out.sort((a, b) => a.rate - b.rate).map((o) => o.index);
}

/**
 * Failure-percentage outliers: among samples with at least `requestVolume` attempts, and only when at least
 * `minHosts` of them have that volume, those whose failure percentage is at or above `threshold` (Envoy:
 * `100 − success_rate >= failure_percentage_threshold`). Indices into `samples`, worst first.
 */
export function failurePercentOutliers(samples: readonly IntervalSample[], policy: Required<FailurePercentPolicy>): number[] {
  const out: { index: number; percent: number }[] = [];
  let qualified = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.attempts === 0 || s.attempts < policy.requestVolume) continue; // no rate to judge, as above
    qualified++;
    // failures × 100 ÷ attempts rather than Envoy's 100 − rate: the same figure, without a rounding step.
    const percent = (s.failures * 100) / s.attempts;
    if (percent >= policy.threshold) out.push({ index: i, percent });
  }
  if (qualified === 0 || qualified < policy.minHosts) return [];
  return out.sort((a, b) => b.percent - a.percent).map((o) => o.index);
}
