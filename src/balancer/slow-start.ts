import type { EndpointState } from '../endpoint/endpoint-state.js';

/** Slow start with its defaults filled in (see `SlowStartPolicy` in options.ts). */
export interface ResolvedSlowStart {
  readonly windowMs: number;
  readonly aggression: number;
  readonly minWeightPercent: number;
}

/** Envoy's defaults: linear ramp (aggression 1) from at least 10 % of the weight. */
export const DEFAULT_SLOW_START = { aggression: 1, minWeightPercent: 10 } as const;

/**
 * How often, at most, ramping weights are recomputed on the call path. Between two checks a weight is at most
 * 100 ms of ramp behind: a step of 100/windowMs of the weight with aggression 1.
 */
export const SLOW_START_RECHECK_MS = 100;

/**
 * The share of its weight an endpoint gets `elapsedMs` after it joined: Envoy's slow start
 * (`EdfLoadBalancerBase::applySlowStartFactor`, docs "Slow start mode"):
 * `max(minWeightPercent / 100, (max(elapsed, 1 ms) / window) ^ (1 / aggression))`, and 1 once the window is over.
 *
 * @example
 * slowStartFactor(15_000, { windowMs: 60_000, aggression: 1, minWeightPercent: 10 }); // 0.25
 */
export function slowStartFactor(elapsedMs: number, config: ResolvedSlowStart): number {
  if (!(elapsedMs < config.windowMs)) return 1;
  const t = Math.max(elapsedMs, 1) / config.windowMs;
  const ramp = config.aggression === 1 ? t : Math.pow(t, 1 / config.aggression);
  return Math.max(config.minWeightPercent / 100, ramp);
}

/**
 * Ramps the effective weight (`EndpointState.weight`) of endpoints that discovery adds after the service's first
 * list, over `windowMs`. Every weight-aware balancer reads `state.weight`, so round robin, random, least-request and
 * peak-EWMA all honour the ramp; the hash balancers (ring-hash, maglev) build their tables from the configured
 * weights and ignore it, as Envoy supports slow start only for its round-robin and least-request balancers.
 *
 * The initial set is not ramped. Envoy scales every host within the window, the initial ones included, but when all
 * of them ramp together their shares stay equal ("when all the endpoints are relatively new ... slow start is not
 * very effective as all endpoints end up getting same amount of requests", Envoy docs), so skipping them changes
 * nothing but the cost.
 *
 * No timers: the service asks {@link SlowStart.checkAt} on the call path (one comparison) and calls
 * {@link SlowStart.refresh} when it is due, at most every {@link SLOW_START_RECHECK_MS} of clock time.
 */
export class SlowStart {
  /** Ramping endpoints, by when they joined. */
  private readonly ramping = new Map<EndpointState, number>();
  /** Clock reading at which weights are next recomputed; Infinity while nothing ramps. */
  checkAt = Infinity;

  constructor(readonly config: ResolvedSlowStart) {}

  /** Endpoints that joined at `now` start at the minimum share. */
  begin(states: readonly EndpointState[], now: number): void {
    for (const state of states) {
      this.ramping.set(state, now);
      state.weight = state.endpoint.weight * slowStartFactor(0, this.config);
    }
    if (this.ramping.size > 0) this.checkAt = Math.min(this.checkAt, now + SLOW_START_RECHECK_MS);
  }

  /** Endpoints that left stop ramping. */
  forget(states: readonly EndpointState[]): void {
    for (const state of states) this.ramping.delete(state);
  }

  /** Whether `state` is ramping now. */
  has(state: EndpointState): boolean {
    return this.ramping.has(state);
  }

  /**
   * Recomputes the ramping weights for `now` (from the configured weight, so a weight that discovery changed
   * mid-ramp is followed) and retires endpoints whose window is over. Returns whether any weight changed.
   */
  refresh(now: number): boolean {
    let changed = false;
    for (const [state, since] of this.ramping) {
      const factor = slowStartFactor(now - since, this.config);
      const weight = state.endpoint.weight * factor;
      if (weight !== state.weight) {
        state.weight = weight;
        changed = true;
      }
      if (factor >= 1) this.ramping.delete(state);
    }
    this.checkAt = this.ramping.size > 0 ? now + SLOW_START_RECHECK_MS : Infinity;
    return changed;
  }
}
