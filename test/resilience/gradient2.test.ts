import { describe, expect, it } from 'vitest';
import { DEFAULT_GRADIENT2_TIMING, Gradient2Limit } from '../../src/resilience/gradient2.js';
import { seededRng } from '../../src/util/random.js';
import { simulate } from './overload-sim.js';
import { PlainGradient2 } from './plain-gradient2.js';

const policy = { initial: 8, min: 4, max: 200, smoothing: 0.2 };

/** Feeds `n` samples of `rtt` ms, `gapMs` apart from `t`, each admitted with `inflight` in flight; returns the time after. */
function feed(limit: Gradient2Limit, t: number, n: number, rtt: number, inflight: number, gapMs = 1): number {
  for (let i = 0; i < n; i++, t += gapMs) {
    limit.admitted(inflight);
    limit.sample(t, rtt, t + rtt);
  }
  return t;
}

describe('Gradient2Limit (Gradient2 with Envoy min RTT sampling)', () => {
  it('starts by measuring the min RTT at `min` concurrency, takes the median, then restores the limit', () => {
    const limit = new Gradient2Limit(policy, seededRng(1), 0);
    expect(limit.probing).toBe(true);
    expect(limit.limit).toBe(4);
    // 49 samples of 20 ms and one slow outlier: the median ignores it.
    let t = feed(limit, 0, 49, 20, 4);
    expect(limit.probing).toBe(true);
    limit.sample(t, 500, t + 500);
    t += 500;
    expect(limit.probing).toBe(false);
    expect(limit.minRttMs).toBe(20);
    expect(limit.limit).toBe(8);
  });

  it('ignores samples of calls admitted before the measure began (they may have queued)', () => {
    const limit = new Gradient2Limit(policy, seededRng(1), 1_000);
    for (let i = 0; i < 100; i++) limit.sample(999, 20, 1_020 + i);
    expect(limit.probing).toBe(true);
    expect(limit.minRttMs).toBe(0);
  });

  it('grows while the RTT stays near the minimum, and shrinks when it doubles', () => {
    const limit = new Gradient2Limit(policy, seededRng(1), 0);
    let t = feed(limit, 0, 50, 20, 4);
    for (let w = 0; w < 40; w++) t = feed(limit, t, 20, 21, limit.limit, 10);
    const grown = limit.limit;
    expect(grown).toBeGreaterThan(20);
    for (let w = 0; w < 40; w++) t = feed(limit, t, 20, 80, limit.limit, 10);
    expect(limit.limit).toBeLessThan(grown / 2);
    expect(limit.lastRttMs).toBe(80);
  });

  it('does not move the limit while the application uses less than half of it (app-limited)', () => {
    const limit = new Gradient2Limit({ ...policy, initial: 40 }, seededRng(1), 0);
    let t = feed(limit, 0, 50, 20, 4);
    for (let w = 0; w < 20; w++) t = feed(limit, t, 20, 20, 5, 10);
    expect(limit.limit).toBe(40);
    for (let w = 0; w < 20; w++) t = feed(limit, t, 20, 200, 5, 10);
    expect(limit.limit).toBe(40);
  });

  it('measures the min RTT again after the interval plus up to 15 % jitter', () => {
    const limit = new Gradient2Limit(policy, seededRng(7), 0);
    let t = feed(limit, 0, 50, 20, 4);
    const probeEnd = t + 19; // the last sample ended at t - 1 + 20
    const interval = DEFAULT_GRADIENT2_TIMING.probeIntervalMs;
    while (!limit.probing && t < probeEnd + interval * 1.2) t = feed(limit, t, 1, 20, limit.limit, 5);
    expect(limit.probing).toBe(true);
    expect(t + 20).toBeGreaterThanOrEqual(probeEnd + interval);
    expect(t).toBeLessThanOrEqual(probeEnd + interval * 1.15 + 25);
    expect(limit.limit).toBe(4);
    // The backend got slower without queueing: the new measure finds it.
    t = feed(limit, t + 20, 50, 35, 4);
    expect(limit.minRttMs).toBe(35);
  });

  it('measures again at once when the limit sat at `min` five updates in a row (Envoy)', () => {
    // A minimum above what 4 + limit ÷ 2 reaches, so that a gradient of 0.5 sets it there.
    const limit = new Gradient2Limit({ ...policy, initial: 10, min: 10 }, seededRng(1), 0);
    let t = feed(limit, 0, 50, 20, 10);
    // The backend's no-load latency tripled: every window shrinks to the minimum.
    let windows = 0;
    for (; windows < 20 && !limit.probing; windows++) t = feed(limit, t, 20, 60, 10, 10);
    expect(windows).toBeLessThanOrEqual(8);
    expect(limit.probing).toBe(true);
    feed(limit, t + 100, 50, 60, 10);
    expect(limit.minRttMs).toBe(60);
  });

  it('keeps its limit and measure across reconfiguration, clamped to the new bounds', () => {
    const limit = new Gradient2Limit(policy, seededRng(1), 0);
    let t = feed(limit, 0, 50, 20, 4);
    for (let w = 0; w < 40; w++) t = feed(limit, t, 20, 21, limit.limit, 10);
    expect(limit.limit).toBeGreaterThan(16);
    limit.reconfigure({ initial: 8, min: 2, max: 16, smoothing: 0.5 });
    expect(limit.limit).toBe(16);
    expect(limit.minRttMs).toBe(20);
  });

  it('a timeout shorter than a call without queueing takes (a deadline given almost spent) is not a fast sample', () => {
    const limit = new Gradient2Limit({ ...policy, initial: 40 }, seededRng(1), 0);
    let t = feed(limit, 0, 50, 20, 4);
    expect(limit.limit).toBe(40);
    // The backend slowed to 60 ms; meanwhile most calls arrive with 2 ms left of their caller's deadline.
    for (let w = 0; w < 10; w++, t += 10) {
      t = feed(limit, t, 10, 60, limit.limit, 10);
      for (let i = 0; i < 30; i++) limit.timedOut(t, 2, t + 2);
    }
    expect(limit.lastRttMs).toBe(60);
    expect(limit.limit).toBeLessThan(40);
    // A timeout past the no-load RTT is evidence of queueing, and counts.
    limit.timedOut(t, 1_000, t + 1_000);
    t = feed(limit, t + 1_000, 9, 60, limit.limit, 10);
    expect(limit.lastRttMs).toBeCloseTo((9 * 60 + 1_000) / 10);
  });

  it('stays a finite number with 0 ms samples (a clock that did not move) and ignores a clock that went back', () => {
    const limit = new Gradient2Limit(policy, seededRng(1), 0);
    let t = feed(limit, 0, 50, 0, 4);
    expect(limit.probing).toBe(false);
    expect(limit.minRttMs).toBe(0);
    // Full windows of 0 ms calls: 0 ÷ 0 must not make the limit NaN (a NaN limit would admit every call).
    for (let w = 0; w < 5; w++) t = feed(limit, t, 20, 0, limit.limit, 10);
    expect(Number.isFinite(limit.limit)).toBe(true);
    expect(limit.limit).toBeGreaterThan(8); // no queueing seen: it grows
    const before = limit.limit;
    for (let i = 0; i < 30; i++, t += 10) limit.sample(t, -5, t - 5);
    limit.sample(t, NaN, t);
    expect(limit.lastRttMs).toBe(0); // not a window of -5 ms
    for (let w = 0; w < 3; w++) t = feed(limit, t, 20, 0, limit.limit, 10);
    expect(Number.isFinite(limit.limit)).toBe(true);
    expect(limit.limit).toBeGreaterThanOrEqual(before);
  });

  it('against a backend that queues (8 slots × 20 ms) at 2× capacity, holds goodput and latency where plain Gradient2 drifts', () => {
    const ours = new Gradient2Limit(policy, seededRng(3), 0);
    const plain = new PlainGradient2(8, 4, 200);
    let t = 0;
    const steps: [rate: number, ms: number][] = [[200, 5_000], [400, 5_000], [600, 5_000], [800, 90_000]];
    let a;
    let b;
    for (const [rate, ms] of steps) {
      a = simulate(ours, { rate, durationMs: ms, startMs: t });
      b = simulate(plain, { rate, durationMs: ms, startMs: t });
      t += ms;
    }
    // Ours: goodput at least 90 % of the 400/s capacity, p99 within 3 × the unloaded 20 ms, the limit bounded.
    expect(a!.goodput).toBeGreaterThanOrEqual(360);
    expect(a!.p99).toBeLessThanOrEqual(60);
    expect(a!.maxLimit).toBeLessThanOrEqual(24);
    // Plain Gradient2: its long-term RTT follows the queue up, so its limit and latency keep climbing.
    expect(b!.lastLimit).toBeGreaterThan(40);
    expect(b!.p99).toBeGreaterThan(100);
  });
});
