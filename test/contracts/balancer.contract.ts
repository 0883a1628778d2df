import { describe, expect, it } from 'vitest';
import type { Balancer, PickRequest } from '../../src/balancer/balancer.js';
import { toEndpoint } from '../../src/endpoint/endpoint.js';
import { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { DEFAULT_OUTLIER } from '../../src/defaults.js';
import { OutlierDetector } from '../../src/resilience/outlier.js';
import { seededRng, type Rng } from '../../src/util/random.js';

/** Builds one fresh endpoint state per weight, with ids `e0`, `e1`, ... */
export function makeStates(weights: readonly number[], prefix = 'e'): EndpointState[] {
  return weights.map(
    (weight, i) =>
      new EndpointState(
        toEndpoint({ id: `${prefix}${i}`, host: `10.0.${(i + 1) >> 8}.${(i + 1) & 255}`, port: 8080, weight }, 'test'),
        { decayMs: 10_000, defaultRttMs: 30 },
        0,
      ),
  );
}

/** A pick request for a first attempt, or a retry that excludes `tried`. */
export function request(tried: readonly EndpointState[] = [], now = 0): PickRequest {
  return { attempt: tried.length + 1, tried, now, panic: false };
}

/** How often each state was picked over `n` picks; fails the test on `undefined`. */
export function countPicks(
  balancer: Balancer,
  set: readonly EndpointState[],
  n: number,
  req: PickRequest = request(),
): Map<EndpointState, number> {
  const counts = new Map<EndpointState, number>(set.map((s) => [s, 0]));
  for (let i = 0; i < n; i++) {
    const s = balancer.pick(set, req);
    if (s === undefined) throw new Error(`pick ${i} returned undefined`);
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return counts;
}

function expectSharesWithin(
  counts: Map<EndpointState, number>,
  set: readonly EndpointState[],
  tolerance: number | ((expected: number) => number),
): void {
  const n = [...counts.values()].reduce((a, b) => a + b, 0);
  const total = set.reduce((a, s) => a + s.weight, 0);
  for (const s of set) {
    const expected = s.weight / total;
    const bound = typeof tolerance === 'number' ? tolerance : tolerance(expected);
    expect.soft(Math.abs((counts.get(s) ?? 0) / n - expected), `share of ${s.id}`).toBeLessThan(bound);
  }
}

/**
 * A closed loop of `callers` over a fake clock (no timers): each caller takes a pick, holds the endpoint for
 * `latencyMs(state)` (30 ms, the default RTT, for every endpoint unless given), ends the attempt as the call step
 * does (`state.end(rtt, true, now)`) and picks again at once. Callers start spread over one latency, so that they
 * do not complete in lockstep. The first `warmup` picks are not counted. Returns the picks per state.
 */
export function closedLoop(
  balancer: Balancer,
  set: readonly EndpointState[],
  options: { callers: number; picks: number; warmup?: number; latencyMs?: (state: EndpointState) => number },
): Map<EndpointState, number> {
  const latency = options.latencyMs ?? ((): number => 30);
  const warmup = options.warmup ?? 0;
  const counts = new Map<EndpointState, number>(set.map((s) => [s, 0]));
  const running: { state: EndpointState; start: number; end: number }[] = [];
  let picks = 0;
  const start = (now: number): void => {
    const state = balancer.pick(set, request([], now));
    if (state === undefined) throw new Error(`pick ${picks} returned undefined`);
    if (picks++ >= warmup) counts.set(state, (counts.get(state) ?? 0) + 1);
    state.begin();
    running.push({ state, start: now, end: now + latency(state) });
  };
  for (let i = 0; i < options.callers; i++) start((i * 30) / options.callers);
  while (picks < warmup + options.picks) {
    let next = 0;
    for (let j = 1; j < running.length; j++) if ((running[j] as { end: number }).end < (running[next] as { end: number }).end) next = j;
    const done = running.splice(next, 1)[0] as { state: EndpointState; start: number; end: number };
    done.state.end(done.end - done.start, true, done.end);
    start(done.end);
  }
  return counts;
}

/** Ejects `state` (a real outlier detector, ejected at time 0), so that it is unusable outside panic. */
export function eject(state: EndpointState): void {
  state.outlier = new OutlierDetector(DEFAULT_OUTLIER, 0);
  state.outlier.eject(0);
}

/** Tuning of the contract for one implementation. */
export interface ContractOptions {
  /**
   * Largest allowed gap between an endpoint's share of picks and its share of the weight. Default 0.02, which
   * 100k picks meet with room to spare (σ of a share ≤ 0.0016). A hash ring's own granularity adds a fixed error
   * (σ ≈ √(p(1−p)/ring size)), so ring hash at its default size is run with a wider bound as well.
   */
  readonly shareTolerance?: number;
}

/**
 * The cases every balancer must pass (after Finagle's `P2CSuite`): empty set, exclusion of tried endpoints,
 * weights, and updates. `make` gets a seeded rng, so a failure replays exactly.
 */
export function balancerContract(name: string, make: (rng: Rng) => Balancer, options: ContractOptions = {}): void {
  const tolerance = options.shareTolerance ?? 0.02;
  const expectShares = (counts: Map<EndpointState, number>, set: readonly EndpointState[]): void =>
    expectSharesWithin(counts, set, tolerance);
  describe(`${name} (balancer contract)`, () => {
    const fresh = (seed = 42): Balancer => make(seededRng(seed));

    it('returns undefined for an empty set', () => {
      const b = fresh();
      expect(b.pick([], request())).toBeUndefined();
      b.update?.([]);
      expect(b.pick([], request())).toBeUndefined();
    });

    it('returns the only endpoint of a single-endpoint set', () => {
      const b = fresh();
      const set = makeStates([3]);
      b.update?.(set);
      for (let i = 0; i < 100; i++) expect(b.pick(set, request())).toBe(set[0]);
    });

    it('returns undefined when every endpoint was tried', () => {
      const b = fresh();
      for (const weights of [[1], [1, 1], [1, 2, 5], Array.from({ length: 50 }, () => 1)]) {
        const set = makeStates(weights);
        b.update?.(set);
        for (let i = 0; i < 20; i++) expect(b.pick(set, request(set))).toBeUndefined();
      }
    });

    it('never returns a tried endpoint while others exist', () => {
      const b = fresh();
      const set = makeStates([1, 2, 5, 1, 3]);
      b.update?.(set);
      const tried = [set[2] as EndpointState, set[4] as EndpointState];
      const counts = countPicks(b, set, 10_000, request(tried));
      for (const t of tried) expect(counts.get(t)).toBe(0);
      for (const s of set) if (!tried.includes(s)) expect(counts.get(s)).toBeGreaterThan(0);
      // The last untried one is found even when all others were tried.
      const allButOne = set.slice(1);
      for (let i = 0; i < 100; i++) expect(b.pick(set, request(allButOne))).toBe(set[0]);
    });

    it('honours weights (1, 2, 5) under equal load', () => {
      const b = fresh();
      const set = makeStates([1, 2, 5]);
      b.update?.(set);
      expectShares(countPicks(b, set, 100_000), set);
    });

    it('is stable across an update() that keeps the same endpoints', () => {
      const b = fresh();
      const set = makeStates([1, 2, 5]);
      b.update?.(set);
      countPicks(b, set, 1_000);
      const same = [...set]; // a new array, the same states: what the endpoint set hands over
      b.update?.(same);
      const counts = countPicks(b, same, 100_000);
      for (const s of set) expect(counts.get(s)).toBeGreaterThan(0);
      expectShares(counts, set);
    });

    it('follows an update() that changes the set', () => {
      const b = fresh();
      const set = makeStates([1, 1, 1]);
      b.update?.(set);
      countPicks(b, set, 1_000);
      const added = makeStates([1], 'new')[0] as EndpointState;
      const removed = set[1] as EndpointState;
      const next = [set[0] as EndpointState, set[2] as EndpointState, added];
      b.update?.(next);
      const counts = countPicks(b, next, 30_000);
      expect(counts.get(removed)).toBeUndefined();
      for (const s of next) expect(counts.get(s)).toBeGreaterThan(0);
      expectShares(counts, next);
    });

    it('picks only from the candidates it is given', () => {
      // The picker may pass a subset of the last update() (ejected or breaker-open endpoints left out).
      const b = fresh();
      const set = makeStates([1, 2, 5, 1]);
      b.update?.(set);
      const subset = [set[0] as EndpointState, set[3] as EndpointState];
      const counts = countPicks(b, subset, 10_000);
      expect([...counts.keys()].every((s) => subset.includes(s))).toBe(true);
      expectShares(counts, subset);
    });

    it('spreads distinct hash keys by weight (1, 2, 5) over 100k picks', () => {
      const b = fresh();
      const set = makeStates([1, 2, 5]);
      b.update?.(set);
      const counts = new Map<EndpointState, number>(set.map((s) => [s, 0]));
      for (let i = 0; i < 100_000; i++) {
        const s = b.pick(set, { ...request(), hashKey: `key-${i}` });
        if (s === undefined) throw new Error('undefined pick');
        counts.set(s, (counts.get(s) ?? 0) + 1);
      }
      expectShares(counts, set);
    });

    // Equal latencies, so shares must follow the weights at any concurrency. With two endpoints P2C compares both
    // on every pick, and an idle light endpoint used to win whatever its weight (25 % for a weight-1 canary beside
    // weight 99 at 4 callers). The bound is 3 points, and a quarter of the expected share for small shares
    // (at least 1 point): 5.8 % for a 3.2 % endpoint is a miss. Wider if the contract is given a wider tolerance.
    const closedLoopBound = (expected: number): number => Math.max(tolerance, Math.min(0.03, Math.max(0.01, expected / 4)));
    for (const weights of [[99, 1], [10, 10, 10, 1], [3, 1], [1, 1, 1]]) {
      it.each([1, 4, 16, 64])(`defect 10: ${name} shares follow weights ${weights.join(':')} at %i callers`, (callers) => {
        const b = fresh(callers);
        const set = makeStates(weights);
        b.update?.(set);
        const counts = closedLoop(b, set, { callers, picks: 20_000, warmup: 1_000 });
        expectSharesWithin(counts, set, closedLoopBound);
      });
    }

    // One caller and 1 s answers: light endpoints sit idle for long, and a peak-EWMA cost decays while idle.
    for (const weights of [[99, 1], [10, 10, 10, 1]]) {
      it(`defect 10: ${name} shares follow weights ${weights.join(':')} for one caller at 1 s latency`, () => {
        const b = fresh();
        const set = makeStates(weights);
        b.update?.(set);
        const counts = closedLoop(b, set, { callers: 1, picks: 5_000, warmup: 500, latencyMs: () => 1_000 });
        expectSharesWithin(counts, set, closedLoopBound);
      });
    }

    it('passes over ejected endpoints, and returns undefined when all are ejected, unless in panic', () => {
      const b = fresh();
      const set = makeStates([1, 2, 5, 1, 3]);
      b.update?.(set);
      const ejected = [set[1], set[2], set[4]] as EndpointState[];
      for (const s of ejected) eject(s);
      const counts = countPicks(b, set, 10_000);
      for (const s of ejected) expect(counts.get(s)).toBe(0);
      for (const s of set) if (!ejected.includes(s)) expect(counts.get(s)).toBeGreaterThan(0);
      for (const s of set) eject(s);
      for (let i = 0; i < 20; i++) expect(b.pick(set, request())).toBeUndefined();
      // In panic, ejected endpoints are candidates again.
      const panic = countPicks(b, set, 10_000, { ...request(), panic: true });
      for (const s of set) expect(panic.get(s)).toBeGreaterThan(0);
    });
  });
}
