import { describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/balancer/balancer.js';
import { balancerNames, createBalancer, isBalancerName } from '../../src/balancer/create.js';
import { LeastRequestBalancer } from '../../src/balancer/least-request.js';
import { p2c, weightedMedian } from '../../src/balancer/p2c.js';
import { PeakEwmaBalancer, peakEwmaLoad } from '../../src/balancer/peak-ewma.js';
import { RandomBalancer } from '../../src/balancer/random.js';
import { RoundRobinBalancer } from '../../src/balancer/round-robin.js';
import type { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { seededRng, type Rng } from '../../src/util/random.js';
import { balancerContract, closedLoop, countPicks, makeStates, request } from '../contracts/balancer.contract.js';

balancerContract('round-robin', (rng) => new RoundRobinBalancer(rng));
balancerContract('random', (rng) => new RandomBalancer(rng));
balancerContract('least-request', (rng) => new LeastRequestBalancer(rng));
balancerContract('peak-ewma', (rng) => new PeakEwmaBalancer(rng));

const zero: Rng = () => 0;

const name = (s: EndpointState | undefined): string => s?.id ?? '-';

/** States named a, b, c, ... with the given weights. */
function named(weights: Record<string, number>): EndpointState[] {
  const names = Object.keys(weights);
  const states = makeStates(Object.values(weights));
  return states.map((s, i) => {
    s.update({ ...s.endpoint, id: names[i] as string });
    return s;
  });
}

describe('RoundRobinBalancer', () => {
  it('gives nginx smooth sequence a a b a c a a for weights 5, 1, 1, with period 7', () => {
    const set = named({ a: 5, b: 1, c: 1 });
    const b = new RoundRobinBalancer(zero);
    b.update(set);
    const seq = Array.from({ length: 21 }, () => b.pick(set, request())?.id).join(' ');
    expect(seq).toBe('a a b a c a a a a b a c a a a a b a c a a');
  });

  it('starts at different offsets for different seeds', () => {
    const cases: Record<string, number>[] = [{ a: 1, b: 1, c: 1, d: 1, e: 1 }, { a: 5, b: 1, c: 1 }];
    for (const weights of cases) {
      const firsts = new Set<string>();
      const sequences = new Set<string>();
      for (let seed = 1; seed <= 40; seed++) {
        const set = named(weights);
        const b = new RoundRobinBalancer(seededRng(seed));
        b.update(set);
        const seq = Array.from({ length: 7 }, () => b.pick(set, request())?.id ?? '-');
        firsts.add(seq[0] as string);
        sequences.add(seq.join(''));
      }
      expect(firsts.size).toBeGreaterThanOrEqual(3);
      expect(sequences.size).toBeGreaterThanOrEqual(5);
    }
  });

  it('lets a retry skip tried endpoints without skewing later first attempts', () => {
    const set = named({ a: 5, b: 1, c: 1 });
    const [a] = set as [EndpointState];
    const b = new RoundRobinBalancer(zero);
    b.update(set);
    expect(name(b.pick(set, request()))).toBe('a');
    // The retry goes to the untried endpoint next in the smooth order.
    expect(name(b.pick(set, request([a])))).toBe('b');
    // First attempts keep their shares: 5 : 1 : 1 over whole periods.
    const counts = countPicks(b, set, 7_000);
    expect(set.map((s) => counts.get(s))).toEqual([5_000, 1_000, 1_000]);
  });

  it('keeps its place for endpoints that stay across update()', () => {
    const set = named({ a: 5, b: 1, c: 1 });
    const b = new RoundRobinBalancer(zero);
    b.update(set);
    const first = [0, 1, 2].map(() => name(b.pick(set, request())));
    b.update([...set]);
    const rest = [0, 1, 2, 3].map(() => name(b.pick([...set], request())));
    expect([...first, ...rest].join(' ')).toBe('a a b a c a a');
  });
});

describe('LeastRequestBalancer', () => {
  it('prefers the endpoint with fewer requests in flight', () => {
    const set = makeStates([1, 1]);
    const [idle, busy] = set as [EndpointState, EndpointState];
    busy.inflight = 10;
    const b = new LeastRequestBalancer(seededRng(7));
    b.update(set);
    const counts = countPicks(b, set, 10_000);
    expect(counts.get(idle)).toBe(10_000);
  });

  it('defect 10: with unequal weights, draws by weight ÷ (1 + in-flight above the weighted share)', () => {
    const set = makeStates([1, 4]);
    const [light, heavy] = set as [EndpointState, EndpointState];
    light.inflight = 1; // its share of the 3 in flight is 3 × 1/5 = 0.6: 0.4 above
    heavy.inflight = 2; // its share is 2.4: under it, so not penalised
    const b = new LeastRequestBalancer(seededRng(7));
    b.update(set);
    // Envoy's weight ÷ (active + 1) would give 0.5 : 1.33; P2C gave the heavy one every pick.
    const expected = 4 / (4 + 1 / 1.4);
    expect(Math.abs((countPicks(b, set, 20_000).get(heavy) ?? 0) / 20_000 - expected)).toBeLessThan(0.01);
  });

  it('defect 10: with unequal weights, still avoids an endpoint with a backlog', () => {
    const set = makeStates([2, 1, 1]);
    const backlogged = set[2] as EndpointState;
    backlogged.inflight = 20; // its share of 20 is 5: 15 above, weight 1 ÷ 16
    const b = new LeastRequestBalancer(seededRng(7));
    b.update(set);
    expect((countPicks(b, set, 20_000).get(backlogged) ?? 0) / 20_000).toBeLessThan(0.03);
  });

  it('defect 10: uses P2C (two draws) while weights are equal and the weighted draw (one) otherwise, from update()', () => {
    const set = makeStates([1, 1, 1]);
    let calls = 0;
    const base = seededRng(3);
    const b = new LeastRequestBalancer(() => {
      calls++;
      return base();
    });
    const callsPerPick = (): number => {
      calls = 0;
      for (let i = 0; i < 100; i++) b.pick(set, request());
      return calls / 100;
    };
    b.update(set);
    expect(callsPerPick()).toBe(2);
    (set[0] as EndpointState).weight = 2; // as slow start does, then it calls update()
    b.update(set);
    expect(callsPerPick()).toBe(1);
    (set[0] as EndpointState).weight = 1;
    b.update(set);
    expect(callsPerPick()).toBe(2);
  });

  it('defect 10: weights scaled by 10 give the same picks', () => {
    const run = (weights: number[]): string => {
      const set = makeStates(weights);
      const b = new LeastRequestBalancer(seededRng(5));
      b.update(set);
      return closedLoopIds(b, set, 16, 2_000);
    };
    expect(run([990, 10, 30])).toBe(run([99, 1, 3]));
  });
});

/** The ids picked in a closed loop of `callers` with equal 30 ms latencies, as one string. */
function closedLoopIds(b: Balancer, set: readonly EndpointState[], callers: number, picks: number): string {
  const ids: string[] = [];
  const recording: Balancer = {
    name: b.name,
    pick: (endpoints, req) => {
      const s = b.pick(endpoints, req);
      ids.push(s?.id ?? '-');
      return s;
    },
  };
  closedLoop(recording, set, { callers, picks });
  return ids.join(' ');
}

describe('weightedMedian', () => {
  it('is the smallest value whose cumulative weight reaches half the total, ties included', () => {
    const rng = seededRng(12);
    for (let t = 0; t < 500; t++) {
      const n = 1 + Math.floor(rng() * 40);
      const costs = Float64Array.from({ length: n }, () => Math.floor(rng() * 10)); // many ties
      const weights = Float64Array.from({ length: n }, () => 0.1 + rng() * 5);
      const total = weights.reduce((a, b) => a + b, 0);
      const order = [...costs.keys()].sort((i, j) => (costs[i] as number) - (costs[j] as number));
      let acc = 0;
      let expected = NaN;
      for (const i of order) {
        acc += weights[i] as number;
        if (acc >= total / 2) {
          expected = costs[i] as number;
          break;
        }
      }
      expect(weightedMedian(costs, weights, n, total)).toBe(expected);
    }
  });
});

/**
 * A closed loop of `concurrency` callers over a fake clock: each takes a pick, holds it for the endpoint's
 * latency, then records the RTT, as the call step does. Returns the share of picks per endpoint.
 */
function simulate(
  balancer: Balancer,
  set: readonly EndpointState[],
  latencyMs: (s: EndpointState) => number,
  options: { concurrency: number; picks: number },
): Map<EndpointState, number> {
  const counts = new Map<EndpointState, number>(set.map((s) => [s, 0]));
  const running: { state: EndpointState; start: number; end: number }[] = [];
  let now = 0;
  const start = (): void => {
    const state = balancer.pick(set, request([], now));
    if (state === undefined) throw new Error('no endpoint');
    counts.set(state, (counts.get(state) ?? 0) + 1);
    state.begin();
    running.push({ state, start: now, end: now + latencyMs(state) });
  };
  for (let i = 0; i < options.concurrency; i++) start();
  for (let i = options.concurrency; i < options.picks; i++) {
    let next = 0;
    for (let j = 1; j < running.length; j++) if ((running[j]?.end ?? 0) < (running[next]?.end ?? 0)) next = j;
    const done = running.splice(next, 1)[0];
    if (done === undefined) throw new Error('nothing running');
    now = done.end;
    done.state.end(now - done.start, true, now);
    start();
  }
  return counts;
}

describe('PeakEwmaBalancer', () => {
  it('prefers the lower-latency endpoint', () => {
    const set = makeStates([1, 1]);
    const [fast, slow] = set as [EndpointState, EndpointState];
    fast.latency.observe(10, 60_000); // 6 τ after the 30 ms default: ≈ 10 ms
    slow.latency.observe(100, 60_000); // above the cost: taken at once
    const b = new PeakEwmaBalancer(seededRng(3));
    b.update(set);
    expect(countPicks(b, set, 1_000, request([], 60_000)).get(fast)).toBe(1_000);
  });

  it('sends under 5% to an endpoint 10x slower, in steady state', () => {
    const set = makeStates([1, 1, 1]);
    const slow = set[2] as EndpointState;
    const b = new PeakEwmaBalancer(seededRng(11));
    b.update(set);
    const latency = (s: EndpointState): number => (s === slow ? 100 : 10);
    simulate(b, set, latency, { concurrency: 4, picks: 2_000 }); // warm up from the 30 ms default
    const counts = simulate(b, set, latency, { concurrency: 4, picks: 50_000 });
    expect((counts.get(slow) ?? 0) / 50_000).toBeLessThan(0.05);
  });

  it('splits by weight between equally fast endpoints under load', () => {
    const set = makeStates([1, 3]);
    const b = new PeakEwmaBalancer(seededRng(5));
    b.update(set);
    const counts = simulate(b, set, () => 20, { concurrency: 8, picks: 40_000 });
    expect(Math.abs((counts.get(set[1] as EndpointState) ?? 0) / 40_000 - 0.75)).toBeLessThan(0.05);
  });

  it('takes a latency peak at once and forgives it with tau 10 s', () => {
    const set = makeStates([1, 1]);
    const [spiky, steady] = set as [EndpointState, EndpointState];
    const b = new PeakEwmaBalancer(seededRng(9));
    b.update(set);
    // Both settle near 30 ms; then one answer of 300 ms.
    spiky.latency.reset(30, 0);
    steady.latency.reset(30, 0);
    spiky.latency.observe(300, 1_000);
    expect(peakEwmaLoad(spiky, 1_000)).toBe(300);
    expect(b.pick(set, request([], 1_000))).toBe(steady);
    // The spike decays as 300·e^(−t/10 s) and falls below a steady 30 ms at t ≈ 23 s; the steady endpoint
    // is re-measured at 30 ms just before each pick.
    expect(peakEwmaLoad(spiky, 11_000)).toBeCloseTo(300 * Math.exp(-1), 6);
    steady.latency.reset(30, 21_000);
    expect(b.pick(set, request([], 21_000))).toBe(steady); // 300·e^-2 ≈ 40.6 > 30
    steady.latency.reset(30, 26_000);
    expect(b.pick(set, request([], 26_000))).toBe(spiky); // 300·e^-2.5 ≈ 24.6 < 30
  });

  it('defect 10: with unequal weights, still sends under 1% to an endpoint 10x slower', () => {
    for (const callers of [4, 16]) {
      const set = makeStates([2, 1, 1, 1]);
      const slow = set[3] as EndpointState;
      const b = new PeakEwmaBalancer(seededRng(11));
      b.update(set);
      const latency = (s: EndpointState): number => (s === slow ? 300 : 30);
      simulate(b, set, latency, { concurrency: callers, picks: 2_000 }); // warm up from the 30 ms default
      const counts = simulate(b, set, latency, { concurrency: callers, picks: 20_000 });
      expect((counts.get(slow) ?? 0) / 20_000).toBeLessThan(0.01);
    }
  });

  it('defect 10: with unequal weights, does not pour traffic into the heaviest endpoint when it fails fast', () => {
    const set = makeStates([2, 1, 1]);
    const failing = set[0] as EndpointState;
    const b = new PeakEwmaBalancer(seededRng(13));
    b.update(set);
    const counts = new Map<EndpointState, number>();
    const running: { state: EndpointState; start: number; end: number }[] = [];
    const start = (now: number): void => {
      const state = b.pick(set, request([], now)) as EndpointState;
      counts.set(state, (counts.get(state) ?? 0) + 1);
      state.begin();
      running.push({ state, start: now, end: now + (state === failing ? 1 : 10) });
    };
    for (let i = 0; i < 8; i++) start(i);
    for (let i = 8; i < 20_000; i++) {
      running.sort((x, y) => x.end - y.end);
      const done = running.shift() as { state: EndpointState; start: number; end: number };
      done.state.end(done.end - done.start, done.state !== failing, done.end);
      start(done.end);
    }
    expect((counts.get(failing) ?? 0) / 20_000).toBeLessThan(0.05);
  });

  it('counts in-flight requests: cost is rtt × (inflight ÷ weight + 1)', () => {
    const [s] = makeStates([2]) as [EndpointState];
    s.latency.reset(40, 0);
    s.inflight = 3;
    expect(peakEwmaLoad(s, 0)).toBe(40 * (3 / 2 + 1));
  });
});

describe('p2c', () => {
  it('draws two distinct candidates with two rng calls when weights are equal', () => {
    const set = makeStates(Array.from({ length: 100 }, () => 1));
    let calls = 0;
    const base = seededRng(1);
    const rng: Rng = () => {
      calls++;
      return base();
    };
    const seen: EndpointState[] = [];
    for (let i = 0; i < 1_000; i++) {
      calls = 0;
      seen.length = 0;
      p2c(set, request(), rng, (s) => {
        seen.push(s);
        return 0;
      }, 1);
      expect(calls).toBe(2);
      expect(seen).toHaveLength(2);
      expect(seen[0]).not.toBe(seen[1]);
    }
  });

  it('finds the few untried candidates among many tried ones', () => {
    const set = makeStates(Array.from({ length: 200 }, () => 1));
    const keep = [set[17], set[150]] as EndpointState[];
    const tried = set.filter((s) => !keep.includes(s));
    const rng = seededRng(2);
    const counts = new Map<EndpointState | undefined, number>();
    for (let i = 0; i < 2_000; i++) {
      const s = p2c(set, request(tried), rng, () => 0);
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    expect(new Set(counts.keys())).toEqual(new Set(keep));
    expect(Math.abs((counts.get(keep[0]) ?? 0) / 2_000 - 0.5)).toBeLessThan(0.05);
    expect(p2c(set, request(set), rng, () => 0)).toBeUndefined();
  });
});

describe('createBalancer', () => {
  const deps = { rng: seededRng(1) };

  it('makes each built-in balancer by name', () => {
    expect(balancerNames).toEqual(['round-robin', 'random', 'least-request', 'peak-ewma', 'ring-hash', 'maglev']);
    for (const name of balancerNames) {
      const b = createBalancer(name, deps);
      expect(b.name).toBe(name);
      expect(createBalancer(name, deps)).not.toBe(b);
    }
  });

  it('returns a Balancer object as it is', () => {
    const custom: Balancer = { name: 'first', pick: (endpoints) => endpoints[0] };
    expect(createBalancer(custom, deps)).toBe(custom);
  });

  it('throws a TypeError naming the option for anything else', () => {
    expect(() => createBalancer('fastest' as never, deps, 'services.users.balancer')).toThrow(
      /^services\.users\.balancer must be one of 'round-robin', 'random', 'least-request', 'peak-ewma'/,
    );
    expect(() => createBalancer('toString' as never, deps)).toThrow(TypeError);
    expect(() => createBalancer({ name: 'x' } as never, deps)).toThrow(/^balancer must be/);
    expect(() => createBalancer(null as never, deps)).toThrow(TypeError);
    expect(isBalancerName('random')).toBe(true);
    expect(isBalancerName('constructor')).toBe(false);
  });
});
