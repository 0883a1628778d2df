import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { Rng } from '../util/random.js';
import { isExcluded, type Balancer, type PickRequest } from './balancer.js';

/**
 * "How to measure load" for {@link p2c}: the cost of sending one more request to `state`, per unit of weight
 * (lower is better). Normalising by weight here, not in `p2c`, lets idle endpoints of different weights tie
 * exactly, and a tie is where `p2c` applies the weights.
 *
 * @example
 * const load: LoadFn = (s) => s.inflight / s.weight;
 */
export type LoadFn = (state: EndpointState, now: number) => number;

/** Rejected draws before giving up on O(1) sampling and scanning the list (a fallback, see `draw`). */
const MAX_DRAWS = 8;

/**
 * Power of two choices, "how to choose" apart from "how to measure load", as Finagle does
 * (finagle-core `loadbalancer/p2c/P2CPick.scala` and, for weights, `aperture/WeightedP2CPick.scala`;
 * Mitzenmacher, "The Power of Two Choices", 2001).
 *
 * Draws two distinct eligible candidates (not excluded: see isExcluded), each in proportion to its weight, and returns the one with the
 * lower `load`. On a tie it returns the first draw, which is itself a weighted random choice: with equal load
 * the shares match the weights exactly, and with equal weights ties are broken uniformly at random.
 * (Finagle divides a raw load by weight instead; then at equal load the heavier endpoint wins every
 * comparison and gets more than its share. See {@link LoadFn}.)
 * Returns `undefined` when every candidate is excluded.
 *
 * O(1) and allocation-free in the usual case: draws are rejection-sampled against `maxWeight` (always
 * accepted when weights are equal); only after `MAX_DRAWS` (8) rejections (most candidates tried, or very
 * skewed weights) does it fall back to an exact O(n) weighted scan, which keeps the distribution exact.
 *
 * @param maxWeight an upper bound of the candidates' weights, cached by the caller (see {@link maxWeightOf});
 *   computed here in O(n) when left out. A bound that is too high is only slower; one that is too low
 *   under-weights the heaviest endpoints.
 * @example
 * const chosen = p2c(candidates, request, rng, (s) => s.inflight / s.weight);
 */
export function p2c(
  endpoints: readonly EndpointState[],
  request: PickRequest,
  rng: Rng,
  load: LoadFn,
  maxWeight: number = maxWeightOf(endpoints),
): EndpointState | undefined {
  const i = draw(endpoints, request, rng, maxWeight, -1);
  if (i < 0) return undefined;
  const a = endpoints[i] as EndpointState;
  const j = draw(endpoints, request, rng, maxWeight, i);
  if (j < 0) return a;
  const b = endpoints[j] as EndpointState;
  const now = request.now;
  return load(b, now) < load(a, now) ? b : a;
}

/**
 * The largest weight among `endpoints`, counting the configured weight too, so that the bound stays valid
 * while a ramp (slow start) raises an effective weight towards it. Balancers compute it in `update()`.
 */
export function maxWeightOf(endpoints: readonly EndpointState[]): number {
  let max = 0;
  for (let i = 0; i < endpoints.length; i++) {
    const s = endpoints[i] as EndpointState;
    if (s.weight > max) max = s.weight;
    if (s.endpoint.weight > max) max = s.endpoint.weight;
  }
  return max;
}

/**
 * Index of an eligible candidate other than `skip` (-1 for none), drawn in proportion to weight:
 * a uniform index among the others, accepted with probability weight / bound.
 */
function draw(
  endpoints: readonly EndpointState[],
  request: PickRequest,
  rng: Rng,
  bound: number,
  skip: number,
): number {
  const m = skip < 0 ? endpoints.length : endpoints.length - 1;
  if (m <= 0) return -1;
  for (let t = 0; t < MAX_DRAWS; t++) {
    let i = Math.floor(rng() * m);
    if (skip >= 0 && i >= skip) i++;
    const s = endpoints[i] as EndpointState;
    if (isExcluded(s, request)) continue;
    const w = s.weight;
    if (w >= bound || rng() * bound < w) return i;
  }
  return scan(endpoints, request, rng, skip);
}

/** Exact O(n) weighted draw over the eligible candidates (not excluded: see isExcluded) other than `skip`; uniform if all weigh 0. */
function scan(endpoints: readonly EndpointState[], request: PickRequest, rng: Rng, skip: number): number {
  let total = 0;
  let count = 0;
  for (let i = 0; i < endpoints.length; i++) {
    const s = endpoints[i] as EndpointState;
    if (i === skip || isExcluded(s, request)) continue;
    count++;
    if (s.weight > 0) total += s.weight;
  }
  if (count === 0) return -1;
  const weighted = total > 0;
  let r = rng() * (weighted ? total : count);
  let last = -1;
  for (let i = 0; i < endpoints.length; i++) {
    const s = endpoints[i] as EndpointState;
    if (i === skip || isExcluded(s, request)) continue;
    const w = weighted ? s.weight : 1;
    if (!(w > 0)) continue;
    last = i;
    r -= w;
    if (r < 0) return i;
  }
  return last; // rounding left r at ~0: the last candidate owns the end of the interval
}

/**
 * A balancer that is {@link p2c} on one {@link LoadFn}: least-request and peak-EWMA are this with
 * different loads. It caches the largest weight at `update()`.
 */
export class P2cBalancer implements Balancer {
  private maxWeight = 0;

  constructor(
    readonly name: string,
    private readonly rng: Rng,
    private readonly load: LoadFn,
  ) {}

  update(endpoints: readonly EndpointState[]): void {
    this.maxWeight = maxWeightOf(endpoints);
  }

  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined {
    // Without an update() the bound is unknown: computing it per pick stays correct, only O(n).
    return p2c(endpoints, request, this.rng, this.load, this.maxWeight || maxWeightOf(endpoints));
  }
}
