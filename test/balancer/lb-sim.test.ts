import { describe, expect, it } from 'vitest';
import { simulate } from '../../bench/lb-sim/sim.js';

// bench/lb-sim.ts in one seed: the library's own balancers against Buoyant's "Beyond Round Robin" setup
// (11 backends, N(167 ms, 5 ms), 1000 req/s for 60 s, backend 11 ten times slower from 15 s to 45 s).
describe('lb-sim (Buoyant "Beyond Round Robin" in virtual time)', () => {
  const rr = simulate('round-robin', 1);
  const lr = simulate('least-request', 1);
  const pe = simulate('peak-ewma', 1);

  it('reproduces the published shape: RR p99 ≈ 1.7 s; least-loaded p99 ≈ 0.2 s, p99.9 ≈ 1.7 s; peak EWMA ≈ 0.2 s at both', () => {
    expect(rr.p99).toBeGreaterThan(1_500);
    expect(rr.p99).toBeLessThan(1_900);
    expect(lr.p99).toBeLessThan(250);
    expect(lr.p999).toBeGreaterThan(1_500);
    expect(pe.p99).toBeLessThan(250);
    expect(pe.p999).toBeLessThan(250);
    expect(pe.slowShare).toBeLessThan(lr.slowShare);
    expect(lr.slowShare).toBeLessThan(rr.slowShare);
  });

  it('meets the goal: p99(peak-ewma) ÷ p99(round-robin) and p99.9(peak-ewma) ÷ p99.9(least-request) ≤ 0.12', () => {
    expect(pe.p99 / rr.p99).toBeLessThanOrEqual(0.12);
    expect(pe.p999 / lr.p999).toBeLessThanOrEqual(0.12);
  });
});
