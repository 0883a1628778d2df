import type { EndpointState } from '../endpoint/endpoint-state.js';
import { mix32 } from '../util/hash.js';
import { isExcluded, type PickRequest } from './balancer.js';

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, arXiv:1608.01350), as Envoy's
 * `hash_balance_factor` does it (`ThreadAwareLoadBalancerBase::BoundedLoadHashingLoadBalancer`):
 *
 * - an endpoint may hold `slots = max(1, ceil(ceil((inflight of all + 1) × factor / 100) × weight share))`
 *   requests in flight; above that it is overloaded;
 * - when the hashed endpoint is overloaded, the other candidates are probed in a pseudo-random order seeded by the
 *   key's hash (the "random jumps" of arXiv:1908.08762, which avoid the cascade of walking to the next neighbour),
 *   so one key always probes the same sequence; the first one not overloaded wins;
 * - when every one is overloaded, the least overloaded wins.
 *
 * Envoy shuffles an index array per pick; here the order is `start + i × stride (mod n)` with a stride coprime to
 * n, which visits every candidate once without allocating. O(n) per overloaded pick (and one O(n) sum of in-flight
 * counts per pick), as Envoy documents: a lower factor probes more.
 *
 * @param factor percent, >= 100 (Envoy's unit): 150 lets an endpoint take up to 1.5 × its share of the load.
 * @param hash the key's 32-bit hash (seeds the probe order)
 */
export function boundedLoadPick(
  chosen: EndpointState,
  endpoints: readonly EndpointState[],
  request: PickRequest,
  factor: number,
  hash: number,
): EndpointState {
  const n = endpoints.length;
  let active = 0;
  let totalWeight = 0;
  for (let i = 0; i < n; i++) {
    const s = endpoints[i] as EndpointState;
    active += s.inflight;
    totalWeight += s.endpoint.weight;
  }
  const totalSlots = Math.ceil(((active + 1) * factor) / 100);
  const overload = (s: EndpointState): number =>
    s.inflight / Math.max(1, Math.ceil((totalSlots * s.endpoint.weight) / totalWeight));
  let best = chosen;
  let bestOverload = overload(chosen);
  if (bestOverload <= 1 || n < 2) return chosen;
  const start = hash % n;
  let stride = 1 + (mix32(hash) % (n - 1));
  while (gcd(stride, n) !== 1) stride++;
  for (let i = 0, j = start; i < n; i++, j = (j + stride) % n) {
    const s = endpoints[j] as EndpointState;
    if (s === chosen || isExcluded(s, request)) continue;
    const o = overload(s);
    if (o <= 1) return s;
    if (o < bestOverload) {
      best = s;
      bestOverload = o;
    }
  }
  return best;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
