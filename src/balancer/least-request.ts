import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { Rng } from '../util/random.js';
import { P2cBalancer } from './p2c.js';

/** In-flight attempts per unit of weight: an endpoint of weight 2 is as loaded with 4 in flight as one of weight 1 with 2. */
export function leastRequestLoad(state: EndpointState): number {
  return state.inflight / state.weight;
}

/**
 * Least request, as Envoy's `LEAST_REQUEST`: {@link p2c} on in-flight attempts (two choices, Finagle's
 * `P2CLeastLoaded`) while all weights are equal, O(1); when they differ, a weighted draw over
 * `weight / (1 + in-flight above the endpoint's weighted share)`, O(n) ({@link weightedLoadPick}), so that shares
 * follow the weights at any concurrency. Needs no latency history, so it suits services whose calls vary in kind.
 *
 * @example
 * createMesh({ registry, defaults: { balancer: 'least-request' } });
 */
export class LeastRequestBalancer extends P2cBalancer {
  constructor(rng: Rng) {
    super('least-request', rng, leastRequestLoad);
  }
}
