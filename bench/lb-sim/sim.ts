/**
 * The simulation behind bench/lb-sim.ts (and test/balancer/lb-sim.test.ts): virtual-time load balancing after
 * Buoyant's "Beyond Round Robin: Load Balancing for Latency" (2016). It drives the library's own balancers
 * (`createBalancer` + `EndpointState`, what a service uses) through a simulated clock: every pick gets the virtual
 * `now`, and every completion records its RTT with `state.end()` at its virtual end time, as the call step does.
 *
 * Setup (the article's): 11 backends with pure-delay latency N(167 ms, 5 ms) (no queueing: latency does not depend
 * on load), an open loop of 1000 requests/s (Poisson arrivals) for 60 s, and backend 11 ten times slower from 15 s
 * to 45 s (a request sent to it in that window takes 10× its draw). Measured per run: p50, p99, p99.9, the share
 * of requests over 1 s, and the share of requests backend 11 got while slow.
 *
 * Deterministic: arrivals, latencies and the balancers' own draws come from seeded generators (mulberry32), and
 * every balancer sees the same arrival times and the same latency draws per request.
 */
import type { Balancer, PickRequest } from '../../src/balancer/balancer.js';
import { createBalancer, type BalancerName } from '../../src/balancer/create.js';
import { DEFAULT_RTT_MS, EWMA_DECAY_MS } from '../../src/defaults.js';
import { toEndpoint } from '../../src/endpoint/endpoint.js';
import { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { seededRng, type Rng } from '../../src/util/random.js';
import { percentile } from '../lib.js';

export const BACKENDS = 11;
export const RATE_PER_S = 1_000;
export const DURATION_MS = 60_000;
export const MEAN_MS = 167;
export const SD_MS = 5;
export const SLOW = BACKENDS - 1; // backend 11
export const SLOW_FROM_MS = 15_000;
export const SLOW_UNTIL_MS = 45_000;
export const SLOW_FACTOR = 10;

export const BALANCERS: readonly BalancerName[] = ['round-robin', 'least-request', 'peak-ewma'];

/** Published anchors (Buoyant, "Beyond Round Robin", 2016), in ms. */
export const ANCHORS: Record<string, { p99?: number; p999?: number }> = {
  'round-robin': { p99: 1_710 },
  'least-request': { p99: 200, p999: 1_720 },
  'peak-ewma': { p99: 200, p999: 200 },
};

export interface Result {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly over1s: number;
  readonly slowShare: number;
  readonly requests: number;
}

/** Standard normal by Box–Muller, from a seeded uniform source. */
function gaussian(rng: Rng): number {
  let u = 0;
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** A binary min-heap of completions keyed by end time. */
class Completions {
  private readonly ends: number[] = [];
  private readonly items: { state: EndpointState; start: number }[] = [];

  get size(): number {
    return this.ends.length;
  }

  peek(): number {
    return this.ends[0] as number;
  }

  push(end: number, item: { state: EndpointState; start: number }): void {
    const ends = this.ends;
    const items = this.items;
    let i = ends.length;
    ends.push(end);
    items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((ends[p] as number) <= end) break;
      ends[i] = ends[p] as number;
      items[i] = items[p] as { state: EndpointState; start: number };
      i = p;
    }
    ends[i] = end;
    items[i] = item;
  }

  pop(): { end: number; state: EndpointState; start: number } {
    const ends = this.ends;
    const items = this.items;
    const top = { end: ends[0] as number, ...(items[0] as { state: EndpointState; start: number }) };
    const lastEnd = ends.pop() as number;
    const lastItem = items.pop() as { state: EndpointState; start: number };
    const n = ends.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && (ends[r] as number) < (ends[l] as number) ? r : l;
        if ((ends[c] as number) >= lastEnd) break;
        ends[i] = ends[c] as number;
        items[i] = items[c] as { state: EndpointState; start: number };
        i = c;
      }
      ends[i] = lastEnd;
      items[i] = lastItem;
    }
    return top;
  }
}

/** One simulated minute of `name` with arrivals and latencies from `seed`. */
export function simulate(name: BalancerName, seed: number): Result {
  const states = Array.from(
    { length: BACKENDS },
    (_, i) =>
      new EndpointState(
        toEndpoint({ host: `10.0.0.${i + 1}`, port: 8080 }, 'sim'),
        { decayMs: EWMA_DECAY_MS, defaultRttMs: DEFAULT_RTT_MS },
        0,
      ),
  );
  const balancer: Balancer = createBalancer(name, { rng: seededRng(seed * 7919 + 13) });
  balancer.update?.(states);
  const arrivals = seededRng(seed);
  const delays = seededRng(seed * 31 + 7);
  const inflight = new Completions();
  const latencies = new Float64Array(Math.ceil((DURATION_MS / 1_000) * RATE_PER_S * 1.2));
  let n = 0;
  let slowWindow = 0;
  let slowPicked = 0;
  let now = 0;
  const tried: readonly EndpointState[] = [];
  for (;;) {
    now += (-Math.log(1 - arrivals()) * 1_000) / RATE_PER_S; // Poisson arrivals
    if (now >= DURATION_MS) break;
    while (inflight.size > 0 && inflight.peek() <= now) {
      const done = inflight.pop();
      done.state.end(done.end - done.start, true, done.end);
    }
    const request: PickRequest = { attempt: 1, tried, now, panic: false };
    const state = balancer.pick(states, request);
    if (state === undefined) throw new Error(`${name} picked nothing at ${now} ms`);
    const index = states.indexOf(state);
    const slow = index === SLOW && now >= SLOW_FROM_MS && now < SLOW_UNTIL_MS;
    const base = Math.max(1, MEAN_MS + SD_MS * gaussian(delays));
    const latency = slow ? base * SLOW_FACTOR : base;
    if (now >= SLOW_FROM_MS && now < SLOW_UNTIL_MS) {
      slowWindow++;
      if (index === SLOW) slowPicked++;
    }
    state.begin();
    inflight.push(now + latency, { state, start: now });
    if (n === latencies.length) throw new Error('latency buffer too small');
    latencies[n++] = latency;
  }
  const sorted = latencies.subarray(0, n).sort();
  let over = 0;
  for (let i = 0; i < n; i++) if ((sorted[i] as number) > 1_000) over++;
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    over1s: over / n,
    slowShare: slowPicked / slowWindow,
    requests: n,
  };
}
