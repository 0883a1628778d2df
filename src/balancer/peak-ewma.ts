import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { Rng } from '../util/random.js';
import { P2cBalancer } from './p2c.js';

/**
 * Expected latency of one more request, per unit of weight: peak-EWMA RTT × (in-flight ÷ weight + 1).
 * For weight 1 this is Finagle's cost `rtt × (pending + 1)` (finagle-core `loadbalancer/PeakEwma.scala`,
 * Linkerd's tower `PeakEwma`). A weight counts as capacity (weight w serves w at once), so idle endpoints
 * with equal RTT tie whatever their weights and {@link p2c} splits them by weight, instead of the heaviest
 * winning every comparison as `rtt × (pending + 1) ÷ weight` would have it. The RTT includes the
 * endpoint's fading failure penalty ({@link EndpointState.cost}).
 */
export function peakEwmaLoad(state: EndpointState, now: number): number {
  return state.cost(now) * (state.inflight / state.weight + 1);
}

/** The latency cost the weighted path compares: peak-EWMA RTT × the fading failure penalty. */
export function peakEwmaCost(state: EndpointState, now: number): number {
  return state.cost(now);
}

/**
 * Peak EWMA: {@link p2c} on {@link peakEwmaLoad} while all weights are equal, O(1). When they differ, a weighted
 * draw over `weight / ((1 + in-flight above the endpoint's weighted share) × max(1, cost ÷ median cost)³)`, O(n)
 * ({@link weightedLoadPick}): shares follow the weights at equal latency, and an endpoint 10× slower than the
 * median keeps 1/1000 of its weight. Reacts to a latency spike at once and forgives it slowly (τ = the endpoint
 * state's `decayMs`, 10 s by default); the default balancer.
 *
 * @example
 * createMesh({ registry, defaults: { balancer: 'peak-ewma' } });
 */
export class PeakEwmaBalancer extends P2cBalancer {
  constructor(rng: Rng) {
    super('peak-ewma', rng, peakEwmaLoad, peakEwmaCost);
  }
}
