import { describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/balancer/balancer.js';
import { MaglevBalancer } from '../../src/balancer/maglev.js';
import { RingHashBalancer } from '../../src/balancer/ring-hash.js';
import type { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { seededRng } from '../../src/util/random.js';
import { makeStates, request } from '../contracts/balancer.contract.js';

const KEYS = Array.from({ length: 10_000 }, (_, i) => `key-${i}`);

function mapping(b: Balancer, set: readonly EndpointState[]): (EndpointState | undefined)[] {
  b.update?.(set);
  return KEYS.map((hashKey) => b.pick(set, { ...request(), hashKey }));
}

/** Largest ÷ mean of the shares of the key space (exact: ring arcs or table slots, not sampled keys). */
function maxOverMean(shares: Iterable<number>, n: number): number {
  const values = [...shares];
  const total = values.reduce((a, b) => a + b, 0);
  return Math.max(...values) / (total / n);
}

describe('consistency: 10 endpoints, 10,000 keys', () => {
  const set = makeStates(Array.from({ length: 10 }, () => 1));
  const gone = set[4] as EndpointState;
  const rest = set.filter((s) => s !== gone);

  it('ring hash: removing one endpoint moves only the keys that were on it; adding it back restores the mapping', () => {
    const b = new RingHashBalancer(seededRng(1));
    const before = mapping(b, set);
    const after = mapping(b, rest);
    let moved = 0;
    before.forEach((was, i) => {
      if (was === gone) expect(after[i]).not.toBe(gone);
      else expect(after[i]).toBe(was);
      if (after[i] !== was) moved++;
    });
    const onIt = before.filter((s) => s === gone).length;
    expect(moved).toBe(onIt);
    expect(mapping(b, set)).toEqual(before);
    console.info(`ring-hash: removing 1 of 10 moved ${moved} of 10,000 keys (${(moved / 100).toFixed(2)} %), all of them its own`);
  });

  it('maglev: removing one endpoint moves at most 1/10 + 2 % of keys; adding it back restores the mapping', () => {
    const b = new MaglevBalancer(seededRng(1));
    const before = mapping(b, set);
    const after = mapping(b, rest);
    let moved = 0;
    let movedOthers = 0;
    before.forEach((was, i) => {
      expect(after[i]).not.toBe(gone);
      if (after[i] !== was) {
        moved++;
        if (was !== gone) movedOthers++;
      }
    });
    expect(moved / KEYS.length).toBeLessThanOrEqual(0.1 + 0.02);
    expect(mapping(b, set)).toEqual(before);
    console.info(
      `maglev: removing 1 of 10 moved ${moved} of 10,000 keys (${(moved / 100).toFixed(2)} %), ${movedOthers} of them from endpoints that stayed`,
    );
  });
});

describe('balance: 1,000 endpoints', () => {
  const set = makeStates(Array.from({ length: 1_000 }, () => 1));

  it('maglev (M = 65537): max/mean load ≤ 1.05; ring hash reported beside it', () => {
    const maglev = new MaglevBalancer(seededRng(1));
    maglev.update(set);
    const m = maxOverMean(maglev.slots().values(), set.length);
    expect(m).toBeLessThanOrEqual(1.05);
    const rows = [`maglev M=65537: max/mean ${m.toFixed(3)}`];
    for (const minRingSize of [1024, 65_536, 1_048_576]) {
      const ring = new RingHashBalancer(seededRng(1), { minRingSize });
      ring.update(set);
      const r = maxOverMean(ring.shares().values(), set.length);
      rows.push(`ring-hash minRingSize=${minRingSize} (${ring.size} points): max/mean ${r.toFixed(3)}`);
      if (minRingSize === 1024) expect(r).toBeGreaterThan(m); // what Maglev is for
    }
    console.info(rows.join('\n'));
  });
});
