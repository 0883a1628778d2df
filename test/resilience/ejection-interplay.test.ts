/**
 * Outlier detection and active health checks on the same endpoints, through ServiceHealth itself on fake timers:
 * the two hold an endpoint out independently (Envoy's FAILED_OUTLIER_CHECK and FAILED_ACTIVE_HC), so `restored`
 * (and the revive that comes with it) must wait until neither does; and nothing arms a timer once closed.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolvePolicy } from '../../src/defaults.js';
import { MeshEmitter } from '../../src/observe/emitter.js';
import { BreakerClock } from '../../src/resilience/breaker.js';
import { ServiceHealth } from '../../src/service-health.js';
import { seededRng, type OutlierPolicy } from '../../src/index.js';
import { makeStates } from '../contracts/balancer.contract.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const clock = { now: () => Date.now() };

function rig(outlier: OutlierPolicy | false = { baseEjectionMs: 1_000, maxEjectionPercent: 50 }) {
  const states = makeStates(Array.from({ length: 10 }, () => 1));
  const events = new MeshEmitter();
  const log: string[] = [];
  events.on('ejected', (e) => log.push(`ejected ${e.endpoint.id} ${e.reason}`));
  events.on('restored', (e) => log.push(`restored ${e.endpoint.id}`));
  const revived: string[] = [];
  const h = new ServiceHealth(
    'api',
    resolvePolicy({ breaker: false, outlier }),
    { clock, events, breakerClock: new BreakerClock(), random: seededRng(1) },
    () => states,
    (s) => revived.push(s.id),
  );
  for (const s of states) h.attach(s, clock.now());
  /** Five failures in a row on `i`: consecutive ejection. */
  const fail5 = (i: number): void => {
    for (let k = 0; k < 5; k++) h.record(states[i]!, false, clock.now());
  };
  return { h, states, events, log, revived, fail5 };
}

describe('an endpoint out by outlier detection and by health checks', () => {
  it('outlier first: its ejection ending is not a restore while the health checks still fail', async () => {
    const { h, states, log, revived, fail5 } = rig();
    const e0 = states[0]!;
    fail5(0);
    h.healthCheckFailed(e0, 2_000); // the probes see it too
    expect(log).toEqual(['ejected e0 consecutive', 'ejected e0 health-check']);
    await vi.advanceTimersByTimeAsync(1_000);
    h.restoreDue(clock.now()); // the outlier ejection is over
    expect(e0.ejected).toBe(true);
    expect(e0.usable(false)).toBe(false);
    expect(log).toHaveLength(2); // no `restored`: it is not back
    expect(revived).toEqual([]);
    h.healthCheckPassed(e0, clock.now());
    expect(log[2]).toBe('restored e0');
    expect(log).toHaveLength(3);
    expect(revived).toEqual(['e0']); // revived once, when it really came back
    expect(e0.usable(false)).toBe(true);
    h.close();
  });

  it('health check first: passing probes are not a restore while the outlier ejection lasts', async () => {
    const { h, states, log, revived, fail5 } = rig();
    const e0 = states[0]!;
    h.healthCheckFailed(e0, 2_000);
    fail5(0); // in panic, or on attempts already in flight: the detector ejects it too
    h.healthCheckPassed(e0, clock.now());
    expect(e0.ejected).toBe(true);
    expect(log).toEqual(['ejected e0 health-check', 'ejected e0 consecutive']);
    expect(revived).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    h.restoreDue(clock.now());
    expect(log).toEqual(['ejected e0 health-check', 'ejected e0 consecutive', 'restored e0']);
    expect(revived).toEqual(['e0']);
    expect(e0.ejected).toBe(false);
    h.close();
  });

  it('turning outlier detection off brings back what it ejected, announced and revived (unless a health check holds it)', () => {
    const { h, states, log, revived, fail5 } = rig();
    fail5(0);
    fail5(1);
    h.healthCheckFailed(states[1]!, 2_000);
    log.length = 0;
    h.reconfigure(resolvePolicy({ breaker: false, outlier: false }), clock.now());
    expect(states[0]!.ejected).toBe(false);
    expect(log).toEqual(['restored e0']);
    expect(revived).toEqual(['e0']);
    expect(states[1]!.ejected).toBe(true); // its health checks still fail
    h.healthCheckPassed(states[1]!, clock.now());
    expect(log).toEqual(['restored e0', 'restored e1']);
    h.close();
  });
});

describe('after close', () => {
  it('an attempt that settles later arms no interval timer, and ejects nothing', () => {
    const { h, states, log, fail5 } = rig({ intervalMs: 1_000 });
    h.close();
    h.record(states[0]!, true, clock.now());
    expect(vi.getTimerCount()).toBe(0);
    fail5(1);
    expect(log).toEqual([]);
    // A configuration pushed to a closed service does not arm it again either.
    h.reconfigure(resolvePolicy({ breaker: false, outlier: { intervalMs: 500 } }), clock.now());
    h.record(states[0]!, true, clock.now());
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a listener that closes mid-sweep stops the rest of the sweep', async () => {
    const { h, states, events, log } = rig({ intervalMs: 1_000, maxEjectionPercent: 50, consecutiveFailures: 1_000 });
    events.on('ejected', () => h.close());
    // e0 and e1 fail every attempt, the eight others never: both are success-rate outliers.
    for (let i = 0; i < 1_500; i++) h.record(states[i % 10]!, i % 10 > 1, clock.now());
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log).toHaveLength(1);
    expect(states.filter((s) => s.ejected)).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
