/**
 * Envoy's interval rules (success rate, failure percentage) through a real mesh and through ServiceHealth
 * itself, on fake timers and an injected clock: no sleeps. Breakers and retries are off so that only
 * ejection decides who gets the calls; round robin gives every endpoint the same volume.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolvePolicy } from '../../src/defaults.js';
import { MeshEmitter } from '../../src/observe/emitter.js';
import { BreakerClock } from '../../src/resilience/breaker.js';
import { ServiceHealth } from '../../src/service-health.js';
import { createMesh, seededRng, staticRegistry, type Endpoint, type Mesh, type OutlierPolicy } from '../../src/index.js';
import { makeStates } from '../contracts/balancer.contract.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const clock = { now: () => Date.now() };
const PORTS = Array.from({ length: 10 }, (_, i) => i + 1);

/**
 * Fails its calls in a fixed pattern (`pattern[n % length]` true = fail), per endpoint: a 30 % pattern
 * `[F, S, S, F, S, S, F, S, S, S]` fails 3 of 10 and never twice in a row, so consecutive ejection never fires.
 */
const THIRTY: readonly boolean[] = [true, false, false, true, false, false, true, false, false, false];
const SIXTY: readonly boolean[] = [true, true, true, false, false];
const FORTY: readonly boolean[] = [true, true, false, false, false];

interface Rig {
  readonly mesh: Mesh;
  readonly counts: Map<number, number>;
  readonly ejections: { port: number; reason: string }[];
  /** `n` sequential calls; returns the share each port got. */
  calls(n: number): Promise<Map<number, number>>;
}

function rig(outlier: OutlierPolicy, failing: ReadonlyMap<number, readonly boolean[]>): Rig {
  const mesh = createMesh({
    registry: staticRegistry({ api: PORTS.map((p) => `127.0.0.1:${p}`) }),
    clock,
    random: seededRng(7),
    defaults: { balancer: 'round-robin', breaker: false, retry: false, outlier },
  });
  const counts = new Map<number, number>();
  const ejections: Rig['ejections'] = [];
  mesh.on('ejected', (e) => ejections.push({ port: e.endpoint.port, reason: e.reason }));
  const fn = (ep: Endpoint): string => {
    const n = counts.get(ep.port) ?? 0;
    counts.set(ep.port, n + 1);
    const pattern = failing.get(ep.port);
    if (pattern !== undefined && pattern[n % pattern.length]) throw new Error('intermittent');
    return 'ok';
  };
  return {
    mesh,
    counts,
    ejections,
    async calls(n) {
      const seen = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        await mesh.call('api', (ep) => {
          seen.set(ep.port, (seen.get(ep.port) ?? 0) + 1);
          return fn(ep);
        }).catch(() => undefined);
      }
      return new Map([...seen].map(([port, c]) => [port, c / n]));
    },
  };
}

describe('success-rate ejection (Envoy, every outlier.intervalMs)', () => {
  it('ejects a 30 % intermittent endpoint among 10 within 2 intervals; consecutive-only never does', async () => {
    const bad = new Map([[5, THIRTY]]);
    const statistical = rig({ intervalMs: 10_000 }, bad);
    const consecutive = rig({ intervalMs: 10_000, successRate: false }, bad);
    const shares: { statistical: number; consecutive: number }[] = [];
    for (let interval = 0; interval < 4; interval++) {
      // 1,500 calls: 150 per endpoint, over the default requestVolume of 100.
      const s = await statistical.calls(1_500);
      const c = await consecutive.calls(1_500);
      shares.push({ statistical: s.get(5) ?? 0, consecutive: c.get(5) ?? 0 });
      await vi.advanceTimersByTimeAsync(10_000);
    }
    // First interval: judged at its end; from the second on, it has no share.
    expect(statistical.ejections).toEqual([{ port: 5, reason: 'success-rate' }]);
    expect(shares[0]!.statistical).toBeCloseTo(0.1, 2);
    expect(shares.slice(1).map((s) => s.statistical)).toEqual([0, 0, 0]);
    // Never 5 failures in a row: consecutive-only ejection never sees it.
    expect(consecutive.ejections).toEqual([]);
    for (const s of shares) expect(s.consecutive).toBeCloseTo(0.1, 2);
    await statistical.mesh.close();
    await consecutive.mesh.close();
  });

  it('does nothing below minHosts endpoints with requestVolume attempts, nor at enforcingPercent 0', async () => {
    const bad = new Map([[5, THIRTY]]);
    const lowVolume = rig({ intervalMs: 1_000 }, bad); // 50 per endpoint per interval < 100
    const unenforced = rig({ intervalMs: 1_000, successRate: { enforcingPercent: 0 } }, bad);
    for (let interval = 0; interval < 3; interval++) {
      await lowVolume.calls(500);
      await unenforced.calls(1_500);
      await vi.advanceTimersByTimeAsync(1_000);
    }
    expect(lowVolume.ejections).toEqual([]);
    expect(unenforced.ejections).toEqual([]);
    await lowVolume.mesh.close();
    await unenforced.mesh.close();
  });
});

describe('the ejected event', () => {
  it("names its rule: 'consecutive' for failures in a row, with the same durations for every rule", async () => {
    const r = rig({ intervalMs: 1_000, baseEjectionMs: 5_000 }, new Map([[7, [true]], [5, THIRTY]]));
    const durations: number[] = [];
    r.mesh.on('ejected', (e) => durations.push(e.durationMs));
    await r.calls(1_500);
    await vi.advanceTimersByTimeAsync(1_000);
    // maxEjectionPercent 10 % of 10: the dead one goes first (consecutive), the intermittent one waits for room.
    expect(r.ejections).toEqual([{ port: 7, reason: 'consecutive' }]);
    await vi.advanceTimersByTimeAsync(4_000);
    await r.calls(1_500); // 7 is back, and out again after 5 failures in a row: for twice as long
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.ejections).toEqual([{ port: 7, reason: 'consecutive' }, { port: 7, reason: 'consecutive' }]);
    expect(durations).toEqual([5_000, 10_000]);
    // With the cap lifted, the interval's rule takes the intermittent one too, for its first ejection's length.
    r.mesh.configure({ defaults: { balancer: 'round-robin', breaker: false, retry: false, outlier: { intervalMs: 1_000, baseEjectionMs: 5_000, maxEjectionPercent: 20 } } });
    await r.calls(1_500);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.ejections[2]).toEqual({ port: 5, reason: 'success-rate' });
    expect(durations[2]).toBe(5_000);
    await r.mesh.close();
  });
});

describe('failure-percentage ejection', () => {
  const failurePercent = { threshold: 50, minHosts: 5, requestVolume: 50 };

  it('ejects at or above its threshold, not below', async () => {
    const r = rig({ intervalMs: 1_000, successRate: false, maxEjectionPercent: 50, failurePercent }, new Map([[2, SIXTY], [3, FORTY]]));
    await r.calls(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.ejections).toEqual([{ port: 2, reason: 'failure-percent' }]);
    const after = await r.calls(900);
    expect(after.get(2)).toBeUndefined();
    expect(after.get(3)).toBeCloseTo(1 / 9, 2);
    await r.mesh.close();
  });

  it('a threshold above every endpoint ejects nobody', async () => {
    const r = rig({ intervalMs: 1_000, successRate: false, failurePercent: { ...failurePercent, threshold: 61 } }, new Map([[2, SIXTY]]));
    await r.calls(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.ejections).toEqual([]);
    await r.mesh.close();
  });

  it.each([
    [10, 1],
    [20, 2],
    [30, 3],
  ])('maxEjectionPercent %i caps the interval rules too: %i of 3 bad endpoints ejected', async (maxEjectionPercent, ejected) => {
    const bad = new Map([[2, SIXTY], [5, SIXTY], [8, SIXTY]]);
    const r = rig({ intervalMs: 1_000, successRate: false, maxEjectionPercent, failurePercent }, bad);
    await r.calls(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.ejections).toHaveLength(ejected);
    for (const e of r.ejections) expect([2, 5, 8]).toContain(e.port);
    await r.mesh.close();
  });
});

describe('the interval timer', () => {
  function health(outlier: OutlierPolicy | false, endpoints = 10) {
    const states = makeStates(Array.from({ length: endpoints }, () => 1));
    const h = new ServiceHealth(
      'api',
      resolvePolicy({ breaker: false, outlier }),
      { clock, events: new MeshEmitter(), breakerClock: new BreakerClock(), random: seededRng(1) },
      () => states,
    );
    for (const s of states) h.attach(s, clock.now());
    return { h, states };
  }

  it('is armed by an attempt, only one at a time, and not re-armed while the service is idle', async () => {
    const { h, states } = health({ intervalMs: 1_000 });
    expect(vi.getTimerCount()).toBe(0); // nothing due before any traffic
    for (let i = 0; i < 100; i++) h.record(states[i % 10]!, true, clock.now());
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(vi.getTimerCount()).toBe(0); // the interval ran; no traffic since, no timer
    await vi.advanceTimersByTimeAsync(60_000);
    expect(vi.getTimerCount()).toBe(0);
    h.record(states[0]!, false, clock.now());
    expect(vi.getTimerCount()).toBe(1);
    h.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is never armed when no statistical rule can apply', () => {
    const few = health({ intervalMs: 1_000 }, 4); // fewer than minHosts (5)
    const off = health({ intervalMs: 1_000, successRate: false });
    const disabled = health(false);
    for (const { h, states } of [few, off, disabled]) for (const s of states) h.record(s, false, clock.now());
    expect(vi.getTimerCount()).toBe(0);
  });

  it('counts start again every interval: volume does not add up across intervals', async () => {
    const { h, states } = health({ intervalMs: 1_000, consecutiveFailures: 1_000_000 });
    const ejected: string[] = [];
    // 60 attempts per endpoint per interval, the bad one at 0 %: never the 100 needed in one interval.
    for (let interval = 0; interval < 3; interval++) {
      for (let i = 0; i < 600; i++) h.record(states[i % 10]!, i % 10 !== 0, clock.now());
      await vi.advanceTimersByTimeAsync(1_000);
      for (const s of states) if (s.ejected) ejected.push(s.id);
    }
    expect(ejected).toEqual([]);
    // The same 180 attempts within one interval are judged.
    for (let i = 0; i < 1_800; i++) h.record(states[i % 10]!, i % 10 !== 0, clock.now());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(states[0]!.ejected).toBe(true);
    h.close();
  });

  it('a reconfigured interval takes effect from the next attempt', async () => {
    const { h, states } = health({ intervalMs: 10_000 });
    h.record(states[0]!, true, clock.now());
    h.reconfigure(resolvePolicy({ breaker: false, outlier: { intervalMs: 500 } }), clock.now());
    expect(vi.getTimerCount()).toBe(0);
    for (let i = 0; i < 1_500; i++) h.record(states[i % 10]!, i % 10 !== 0 || i % 20 === 0, clock.now());
    await vi.advanceTimersByTimeAsync(500);
    expect(states[0]!.ejected).toBe(true); // 50 % among nine at 100 %
    h.close();
  });
});
