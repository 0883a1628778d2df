import { describe, expect, it } from 'vitest';
import {
  effectiveWeights,
  isDecidedlyUnavailable,
  orderSrv,
  priorityGroups,
  ZERO_WEIGHT_SHARE,
  type SrvRecord,
} from '../../src/discovery/srv.js';
import { seededRng } from '../../src/util/random.js';

const rec = (name: string, weight: number, priority = 10, port = 8080): SrvRecord => ({ name, port, priority, weight });

const N = 100_000;

/** Share of N orderings that put each target first. */
function firstShares(records: readonly SrvRecord[], seed: number, n = N): Map<string, number> {
  const random = seededRng(seed);
  const counts = new Map<string, number>(records.map((r) => [r.name, 0]));
  for (let i = 0; i < n; i++) {
    const first = orderSrv(records, random)[0]!.name;
    counts.set(first, counts.get(first)! + 1);
  }
  return new Map([...counts].map(([k, v]) => [k, v / n]));
}

/** Pearson's chi-square statistic of observed counts against expected probabilities. */
function chiSquare(observed: readonly number[], expected: readonly number[], n: number): number {
  return observed.reduce((sum, o, i) => sum + (o - n * expected[i]!) ** 2 / (n * expected[i]!), 0);
}

describe('RFC 2782 ordering (orderSrv)', () => {
  it('within a priority, a target comes first in proportion to its weight', () => {
    const shares = firstShares([rec('a', 60), rec('b', 30), rec('c', 10)], 42);
    expect(shares.get('a')).toBeCloseTo(0.6, 2);
    expect(shares.get('b')).toBeCloseTo(0.3, 2);
    expect(shares.get('c')).toBeCloseTo(0.1, 2);
  });

  it('has the erratum fixed: weights {1, 1} are 50/50, not 2/3 : 1/3 as the RFC text’s inclusive draw gives', () => {
    const shares = firstShares([rec('a', 1), rec('b', 1)], 7);
    expect(Math.abs(shares.get('a')! - 0.5)).toBeLessThan(0.006); // 0.006 ≈ 4 standard errors at N = 100 000
  });

  it('gives a weight-0 target a very small share, not RFC 2782’s accidental full share ({0, 1, 1})', () => {
    const shares = firstShares([rec('zero', 0), rec('a', 1), rec('b', 1)], 11);
    const expected = (2 * ZERO_WEIGHT_SHARE) / (2 + 2 * ZERO_WEIGHT_SHARE); // ≈ 0.1 %
    expect(shares.get('zero')!).toBeGreaterThan(0); // a very small chance, still a chance
    expect(shares.get('zero')!).toBeLessThan(3 * expected);
    expect(shares.get('a')).toBeCloseTo(0.5, 2);
  });

  it('treats all-zero weights as equal', () => {
    const shares = firstShares([rec('a', 0), rec('b', 0), rec('c', 0)], 3);
    for (const share of shares.values()) expect(share).toBeCloseTo(1 / 3, 2);
  });

  it('orders the whole group as successive weighted draws (chi-square over the 6 orders of {3, 2, 1})', () => {
    const records = [rec('a', 3), rec('b', 2), rec('c', 1)];
    // P(x, y, z) = w_x / 6 × w_y / (6 − w_x)
    const expected: Record<string, number> = {
      abc: (3 / 6) * (2 / 3), acb: (3 / 6) * (1 / 3), bac: (2 / 6) * (3 / 4),
      bca: (2 / 6) * (1 / 4), cab: (1 / 6) * (3 / 5), cba: (1 / 6) * (2 / 5),
    };
    const counts = new Map(Object.keys(expected).map((k) => [k, 0]));
    const random = seededRng(2782);
    for (let i = 0; i < N; i++) {
      const order = orderSrv(records, random).map((r) => r.name).join('');
      counts.set(order, counts.get(order)! + 1);
    }
    const keys = Object.keys(expected);
    const chi2 = chiSquare(keys.map((k) => counts.get(k)!), keys.map((k) => expected[k]!), N);
    expect(chi2).toBeLessThan(20.52); // df = 5, p = 0.001
  });

  it('puts the lowest priority first, whatever the weights', () => {
    const random = seededRng(1);
    const records = [rec('backup', 65535, 20), rec('main-1', 1, 10), rec('main-2', 0, 10), rec('last', 5, 30)];
    for (let i = 0; i < 1_000; i++) {
      const order = orderSrv(records, random);
      expect(order.map((r) => r.priority)).toEqual([10, 10, 20, 30]);
    }
  });

  it('replays exactly with the same seed, and leaves its input alone', () => {
    const records = Object.freeze([rec('a', 5), rec('b', 5), rec('c', 5), rec('d', 5, 20)]);
    const once = orderSrv(records, seededRng(99)).map((r) => r.name);
    expect(orderSrv(records, seededRng(99)).map((r) => r.name)).toEqual(once);
    expect(records.map((r) => r.name)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('copes with a draw of 0 and with one record', () => {
    expect(orderSrv([rec('a', 1), rec('b', 0)], () => 0).map((r) => r.name)).toHaveLength(2);
    expect(orderSrv([rec('only', 0)], Math.random)).toEqual([rec('only', 0)]);
    expect(orderSrv([], Math.random)).toEqual([]);
  });
});

describe('SRV weights and groups', () => {
  it('weight 0 stands for 1/1000 of its priority’s total, whatever the scale', () => {
    expect(effectiveWeights([rec('a', 60), rec('b', 30), rec('c', 0)])).toEqual([60, 30, 90 * ZERO_WEIGHT_SHARE]);
    const scaled = effectiveWeights([rec('a', 6000), rec('b', 3000), rec('c', 0)]);
    expect(scaled[2]! / (scaled[0]! + scaled[1]!)).toBeCloseTo(ZERO_WEIGHT_SHARE, 12);
    expect(effectiveWeights([rec('a', 0), rec('b', 0)])).toEqual([1, 1]);
  });

  it('a lone "." target is decidedly not available; a "." among others is not', () => {
    expect(isDecidedlyUnavailable([rec('', 0, 0, 0)])).toBe(true);
    expect(isDecidedlyUnavailable([rec('.', 0, 0, 0)])).toBe(true);
    expect(isDecidedlyUnavailable([rec('', 0, 0, 0), rec('a', 1)])).toBe(false);
    expect(isDecidedlyUnavailable([])).toBe(false);
  });

  it('groups by priority, lowest first, keeping the order inside a group', () => {
    const groups = priorityGroups([rec('x', 1, 20), rec('a', 1, 10), rec('y', 1, 20), rec('b', 1, 10)]);
    expect(groups.map((g) => g.map((r) => r.name))).toEqual([['a', 'b'], ['x', 'y']]);
  });
});
