import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { Rng } from '../util/random.js';
import { isExcluded, type Balancer, type PickRequest } from './balancer.js';

/**
 * "How to measure load" for {@link p2c}: the cost of sending one more request to `state`, per unit of weight
 * (lower is better). Normalising by weight here, not in `p2c`, lets idle endpoints of different weights tie
 * exactly, and a tie is where `p2c` applies the weights. Ties are rare in practice (any in-flight request or
 * latency difference breaks them), so {@link P2cBalancer} uses `p2c` only while all weights are equal.
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

/** Whether every endpoint has the same effective weight (true for none or one). O(n). */
export function weightsEqual(endpoints: readonly EndpointState[]): boolean {
  const first = endpoints[0]?.weight;
  for (let i = 1; i < endpoints.length; i++) if ((endpoints[i] as EndpointState).weight !== first) return false;
  return true;
}

/**
 * Envoy's `active_request_bias` (default 1.0): the exponent of the in-flight factor of {@link weightedLoadPick}.
 */
export const ACTIVE_REQUEST_BIAS = 1;

/**
 * The exponent of the latency factor of {@link weightedLoadPick}. With 3, an endpoint 10× slower than the
 * median keeps 1/1000 of its weight, about as much as P2C's comparisons leave it: in bench/lb-sim with one
 * backend weighted 2 (so the weighted path runs), the slow backend gets 0.16 % of requests while slow (P2C with
 * equal weights: 0.19 %) and p99.9 stays at 184 ms; with 1 it gets 0.96 % and p99.9 is 1.7 s.
 */
export const LATENCY_BIAS = 3;

/** Per-balancer buffers of {@link weightedLoadPick}, grown to the largest candidate list seen. */
export interface WeightedScratch {
  /** Per candidate index: -1 if excluded, then its effective weight. */
  effective: Float64Array;
  /** Per candidate index: its latency cost (when a cost function is given). */
  cost: Float64Array;
  /** The eligible candidates' costs and weights, compacted, for the median (permuted by it). */
  medianCost: Float64Array;
  medianWeight: Float64Array;
}

/** Empty buffers for {@link weightedLoadPick}; they grow on first use. */
export function weightedScratch(): WeightedScratch {
  const empty = new Float64Array(0);
  return { effective: empty, cost: empty, medianCost: empty, medianWeight: empty };
}

/**
 * The pick of least-request and peak-EWMA when weights differ: a weighted random draw over effective weights,
 * Envoy's answer to unequal weights in `LEAST_REQUEST` (`weight / (active_requests + 1) ^ active_request_bias`,
 * scheduled by EDF instead of P2C) with two changes so that, at equal latency, shares follow the weights at any
 * concurrency:
 *
 * - the in-flight count is taken relative to the endpoint's share of all attempts in flight: with `X` in flight
 *   over the eligible candidates of total weight `W`, `excess = max(0, inflight − X × weight ÷ W)`. Envoy's raw count
 *   flattens the weights as concurrency grows, since a heavy endpoint always has more in flight (in a closed-loop
 *   simulation of that formula, 99 : 1 gives the light one 9 % at 64 callers, and 1 : 2 : 5 gives 21 : 30 : 48).
 *   An endpoint at or under its share is not penalised, so the fixed point is the weights themselves;
 * - for peak-EWMA, the cost (`EndpointState.cost`: peak-EWMA latency × failure penalty) counts only above the
 *   weighted median cost `m` of the candidates: `max(1, cost ÷ m) ^ LATENCY_BIAS`. Costs decay while an endpoint is
 *   idle (that is how Finagle's peak EWMA probes), so a light endpoint, picked rarely, looks cheaper than the busy
 *   ones: dividing by the raw cost gave a weight-1 canary of 99 : 1 4.6 % of one caller's traffic at 1 s latency.
 *
 * ```
 * effective = weight / ((1 + excess) ^ ACTIVE_REQUEST_BIAS × max(1, cost / m) ^ LATENCY_BIAS)
 * ```
 *
 * An endpoint is chosen with probability effective ÷ Σ effective. With one caller nothing is in flight at a pick
 * and, at equal latency, the draw is exactly by weight; as callers are added the load term pulls back an
 * endpoint above its share (one slower or more loaded), and at its share it is by weight again. Returns
 * `undefined` when every candidate is excluded; if every effective weight is 0, picks uniformly among the eligible.
 *
 * O(n) per pick, plus an O(n) expected weighted-median selection when `cost` is given; no allocation once the
 * buffers have grown to the list's length.
 *
 * @param cost the latency cost per endpoint (peak-EWMA); without it, only in-flight attempts count (least-request)
 */
export function weightedLoadPick(
  endpoints: readonly EndpointState[],
  request: PickRequest,
  rng: Rng,
  scratch: WeightedScratch,
  cost?: (state: EndpointState, now: number) => number,
): EndpointState | undefined {
  const n = endpoints.length;
  if (scratch.effective.length < n) scratch.effective = new Float64Array(n);
  if (cost !== undefined && scratch.cost.length < n) {
    scratch.cost = new Float64Array(n);
    scratch.medianCost = new Float64Array(n);
    scratch.medianWeight = new Float64Array(n);
  }
  const { effective, cost: costs, medianCost, medianWeight } = scratch;
  const now = request.now;
  let totalWeight = 0;
  let inflight = 0;
  let eligible = 0;
  for (let i = 0; i < n; i++) {
    const s = endpoints[i] as EndpointState;
    if (isExcluded(s, request)) {
      effective[i] = -1;
      continue;
    }
    effective[i] = 0;
    totalWeight += s.weight;
    inflight += s.inflight;
    if (cost !== undefined) {
      const c = cost(s, now);
      costs[i] = c;
      medianCost[eligible] = c;
      medianWeight[eligible] = s.weight;
    }
    eligible++;
  }
  if (eligible === 0) return undefined;
  const median = cost !== undefined && totalWeight > 0 ? weightedMedian(medianCost, medianWeight, eligible, totalWeight) : 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    if ((effective[i] as number) < 0) continue;
    const s = endpoints[i] as EndpointState;
    const w = s.weight;
    const excess = totalWeight > 0 ? s.inflight - (inflight * w) / totalWeight : 0;
    let divisor = excess > 0 ? Math.pow(1 + excess, ACTIVE_REQUEST_BIAS) : 1;
    if (median > 0) {
      const c = costs[i] as number;
      if (c > median) divisor *= Math.pow(c / median, LATENCY_BIAS);
    }
    const e = w > 0 ? w / divisor : 0;
    effective[i] = e;
    total += e;
  }
  let r = rng() * (total > 0 ? total : eligible);
  let last = -1;
  for (let i = 0; i < n; i++) {
    const e = effective[i] as number;
    if (e < 0) continue;
    const share = total > 0 ? e : 1;
    if (!(share > 0)) continue;
    last = i;
    r -= share;
    if (r < 0) return endpoints[i];
  }
  return endpoints[last]; // rounding left r at ~0: the last candidate owns the end of the interval
}

/**
 * The weighted lower median of `costs[0, n)`: the smallest cost c such that the costs ≤ c weigh at least half of
 * `total` (their weights are `weights[0, n)`, summing to `total` > 0). Quickselect with a three-way partition and
 * a median-of-three pivot: O(n) expected. Permutes both arrays.
 */
export function weightedMedian(costs: Float64Array, weights: Float64Array, n: number, total: number): number {
  const half = total / 2;
  let lo = 0;
  let hi = n - 1;
  let below = 0; // weight of the costs known to lie under [lo, hi]
  while (lo < hi) {
    const a = costs[lo] as number;
    const b = costs[(lo + hi) >>> 1] as number;
    const c = costs[hi] as number;
    const pivot = a < b ? (b < c ? b : a < c ? c : a) : a < c ? a : b < c ? c : b;
    let lt = lo;
    let i = lo;
    let gt = hi;
    let less = 0;
    let equal = 0;
    while (i <= gt) {
      const v = costs[i] as number;
      if (v < pivot) {
        swap(costs, weights, lt, i);
        less += weights[lt] as number;
        lt++;
        i++;
      } else if (v > pivot) {
        swap(costs, weights, i, gt);
        gt--;
      } else {
        equal += weights[i] as number;
        i++;
      }
    }
    if (below + less >= half && lt > lo) hi = lt - 1;
    else if (below + less + equal >= half) return pivot;
    else {
      below += less + equal;
      lo = gt + 1;
    }
  }
  return costs[lo] as number;
}

function swap(costs: Float64Array, weights: Float64Array, i: number, j: number): void {
  const c = costs[i] as number;
  costs[i] = costs[j] as number;
  costs[j] = c;
  const w = weights[i] as number;
  weights[i] = weights[j] as number;
  weights[j] = w;
}

/**
 * Least-request and peak-EWMA: {@link p2c} on a {@link LoadFn} while all weights are equal, as Envoy's
 * `LEAST_REQUEST` does (power of two choices), and {@link weightedLoadPick} when they differ (Envoy switches to
 * weighted scheduling there too). With two endpoints P2C compares both on every pick, so an idle light endpoint
 * would win whatever its weight (a weight-1 canary beside a weight-99 endpoint got 25 % of four callers' traffic).
 *
 * Cost per pick: O(1) while weights are equal (the usual case), O(n) while they differ, e.g. during a slow-start
 * ramp. It decides which at `update()` (O(n)); without an `update()` it decides per pick, in O(n).
 */
export class P2cBalancer implements Balancer {
  private maxWeight = 0;
  /** Whether the weights given to the last `update()` are all equal; undefined before the first. */
  private uniform: boolean | undefined;
  private readonly scratch = weightedScratch();

  /**
   * @param load what P2C compares while weights are equal
   * @param cost the latency cost the weighted path penalises above the median (peak-EWMA); none for least-request
   */
  constructor(
    readonly name: string,
    private readonly rng: Rng,
    private readonly load: LoadFn,
    private readonly cost?: (state: EndpointState, now: number) => number,
  ) {}

  update(endpoints: readonly EndpointState[]): void {
    this.maxWeight = maxWeightOf(endpoints);
    this.uniform = weightsEqual(endpoints);
  }

  pick(endpoints: readonly EndpointState[], request: PickRequest): EndpointState | undefined {
    if (!(this.uniform ?? weightsEqual(endpoints))) {
      return weightedLoadPick(endpoints, request, this.rng, this.scratch, this.cost);
    }
    // Without an update() the bound is unknown: computing it per pick stays correct, only O(n).
    return p2c(endpoints, request, this.rng, this.load, this.maxWeight || maxWeightOf(endpoints));
  }
}
