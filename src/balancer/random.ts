import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { Rng } from '../util/random.js';
import { isExcluded, type Balancer, type PickRequest } from './balancer.js';

/**
 * Weighted random: each untried candidate is chosen with probability weight ÷ total weight.
 * Stateless, so it needs no `update()`; O(n) per pick, without allocating. With all weights 0 it picks
 * uniformly rather than failing the call.
 *
 * @example
 * createMesh({ registry, defaults: { balancer: 'random' } });
 */
export class RandomBalancer implements Balancer {
  readonly name = 'random';

  constructor(private readonly rng: Rng) {}

  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined {
    let total = 0;
    let count = 0;
    for (let i = 0; i < endpoints.length; i++) {
      const s = endpoints[i] as EndpointState;
      if (isExcluded(s, request)) continue;
      count++;
      if (s.weight > 0) total += s.weight;
    }
    if (count === 0) return undefined;
    const weighted = total > 0;
    let r = this.rng() * (weighted ? total : count);
    let last: EndpointState | undefined;
    for (let i = 0; i < endpoints.length; i++) {
      const s = endpoints[i] as EndpointState;
      const w = weighted ? s.weight : 1;
      if (!(w > 0) || isExcluded(s, request)) continue;
      last = s;
      r -= w;
      if (r < 0) return s;
    }
    return last; // rounding left r at ~0: the last candidate owns the end of the interval
  }
}
