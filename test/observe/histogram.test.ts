import { describe, expect, it } from 'vitest';
import { DURATION_BOUNDS_MS, Histogram } from '../../src/observe/histogram.js';

describe('Histogram', () => {
  it('puts a value in the first bucket whose upper bound is >= it (le is inclusive), past 10 s in +Inf', () => {
    const h = new Histogram();
    for (const ms of [0, 1, 1.0001, 2.5, 9.99, 10_000, 10_000.5, Infinity]) h.observe(ms);
    const at = (le: number) => h.counts[DURATION_BOUNDS_MS.indexOf(le)];
    expect(at(1)).toBe(2); // 0 and 1
    expect(at(2.5)).toBe(2); // 1.0001 and 2.5
    expect(at(10)).toBe(1);
    expect(at(10_000)).toBe(1);
    expect(h.counts[DURATION_BOUNDS_MS.length]).toBe(2); // 10 000.5 and Infinity
    expect(h.sumMs).toBe(Infinity);
  });

  it('has 13 bounds from 1 ms to 10 s, increasing', () => {
    expect(DURATION_BOUNDS_MS[0]).toBe(1);
    expect(DURATION_BOUNDS_MS.at(-1)).toBe(10_000);
    expect(DURATION_BOUNDS_MS).toHaveLength(13);
    for (let i = 1; i < DURATION_BOUNDS_MS.length; i++) expect(DURATION_BOUNDS_MS[i]!).toBeGreaterThan(DURATION_BOUNDS_MS[i - 1]!);
  });
});
