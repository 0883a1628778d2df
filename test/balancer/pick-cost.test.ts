import { describe, expect, it } from 'vitest';
import type { Balancer, PickRequest } from '../../src/balancer/balancer.js';
import { createBalancer, type BalancerName } from '../../src/balancer/create.js';
import type { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { seededRng } from '../../src/util/random.js';
import { makeStates } from '../contracts/balancer.contract.js';

const KEYS = Array.from({ length: 1_024 }, (_, i) => `user-${i}`);

/** Fastest of `rounds` loops, in ns per pick (the fastest round is the steadiest figure on a busy machine). */
function nsPerPick(b: Balancer, set: readonly EndpointState[], picks: number, rounds = 5): number {
  const request = { attempt: 1, tried: [] as readonly EndpointState[], now: 0, panic: false, hashKey: undefined as string | undefined };
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < picks; i++) {
      request.now = i;
      request.hashKey = KEYS[i & 1_023];
      sink += b.pick(set, request as PickRequest)?.inflight ?? 0;
    }
    best = Math.min(best, ((performance.now() - t0) * 1e6) / picks);
  }
  return sink >= 0 ? best : NaN;
}

function ratio(name: BalancerName, picks: number): number {
  const small = makeStates(Array.from({ length: 100 }, () => 1));
  const large = makeStates(Array.from({ length: 10_000 }, () => 1));
  const a = createBalancer(name, { rng: seededRng(1) });
  const b = createBalancer(name, { rng: seededRng(1) });
  a.update?.(small);
  b.update?.(large);
  nsPerPick(a, small, picks, 1); // warm up
  nsPerPick(b, large, picks, 1);
  return nsPerPick(b, large, picks) / nsPerPick(a, small, picks);
}

// bench/pick.ts measures the costs; this only checks their growth from 100 to 10,000 endpoints, with a bound (5×)
// loose enough for a busy two-core machine and far below what an O(n) pick shows (100×).
describe('pick cost does not grow with the number of endpoints', () => {
  it.each(['least-request', 'peak-ewma', 'ring-hash', 'maglev'] as const)('%s: 10,000 endpoints cost < 5× 100', (name) => {
    expect(ratio(name, 20_000)).toBeLessThan(5);
  });

  it('the method sees an O(n) pick (round-robin grows > 20×)', () => {
    expect(ratio('round-robin', 300)).toBeGreaterThan(20);
  });
});
