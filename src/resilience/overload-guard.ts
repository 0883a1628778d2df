import type { Rng } from '../util/random.js';
import { Gradient2Limit } from './gradient2.js';
import type { AdaptiveConcurrencyPolicy, AdmissionPolicy } from './health-policy.js';
import { AdmissionThrottle } from './throttle.js';

/** The policy parts that shape a service's overload guard. */
export interface OverloadPolicy {
  readonly adaptiveConcurrency: false | Required<AdaptiveConcurrencyPolicy>;
  readonly admission: false | Required<AdmissionPolicy>;
}

/**
 * A service's overload guards, kept across configurations: the adaptive concurrency limit and the admission
 * throttle. The service holds `undefined` when both are off, so the admission step pays one field check for them.
 */
export interface OverloadGuard {
  readonly limiter: Gradient2Limit | undefined;
  readonly throttle: AdmissionThrottle | undefined;
}

/**
 * The guard a policy asks for, keeping what it can of `old`: the limiter keeps its limit and measured RTT (only
 * its bounds and smoothing follow), the throttle keeps its counts unless its window changed. Returns `old` itself
 * when nothing was made or dropped, so an unchanged guard stays the same object.
 */
export function adoptGuard(old: OverloadGuard | undefined, policy: OverloadPolicy, now: number, rng: Rng): OverloadGuard | undefined {
  const ac = policy.adaptiveConcurrency;
  const ad = policy.admission;
  let limiter = old?.limiter;
  if (ac === false) limiter = undefined;
  else if (limiter !== undefined) limiter.reconfigure(ac);
  else limiter = new Gradient2Limit(ac, rng, now);
  let throttle = old?.throttle;
  if (ad === false) throttle = undefined;
  else if (throttle !== undefined && throttle.windowMs === ad.windowMs) throttle.reconfigure(ad);
  else throttle = new AdmissionThrottle(ad, rng);
  if (limiter === undefined && throttle === undefined) return undefined;
  if (old !== undefined && old.limiter === limiter && old.throttle === throttle) return old;
  return { limiter, throttle };
}
