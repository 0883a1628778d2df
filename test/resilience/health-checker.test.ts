/**
 * Active health checks through a real mesh, on fake timers, with the probe itself replaced by a double that
 * answers after 1 ms of fake time with the verdict set for its endpoint (the real probe is tested against real
 * servers in test/transport/health-probe.test.ts and test/integration/health-check.test.ts).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ProbeTarget } from '../../src/transport/health-probe.js';
import { createMesh, seededRng, staticRegistry, type Mesh, type Policy } from '../../src/index.js';
import { INTERVAL_JITTER, NO_TRAFFIC_INTERVAL_MS } from '../../src/health-check.js';
import { MAX_TIMER_MS } from '../../src/validate-primitives.js';

const verdicts = new Map<number, boolean>();
const probes: { port: number; at: number; target: ProbeTarget }[] = [];
let inFlight = 0;

vi.mock('../../src/transport/health-probe.js', () => ({
  probe: (target: ProbeTarget, done: (passed: boolean) => void): (() => void) => {
    probes.push({ port: target.port, at: Date.now(), target });
    inFlight++;
    const timer = setTimeout(() => {
      inFlight--;
      done(verdicts.get(target.port) ?? true);
    }, 1);
    return () => {
      inFlight--;
      clearTimeout(timer);
    };
  },
}));

beforeEach(() => {
  vi.useFakeTimers();
  verdicts.clear();
  probes.length = 0;
  inFlight = 0;
});
afterEach(() => {
  vi.useRealTimers();
});

const clock = { now: () => Date.now() };
/**
 * Round robin: calls here take no time on a frozen clock, so peak-EWMA costs never move and P2C would settle
 * ties on float noise; this file is about who may be picked, not how.
 */
const BASE: Policy = { retry: false, breaker: false, balancer: 'round-robin' };
const healthCheck = { intervalMs: 1_000, timeoutMs: 100, unhealthyThreshold: 3, healthyThreshold: 2 };

function mesh(policy: Policy = {}, ports = [1, 2, 3]): { mesh: Mesh; registry: ReturnType<typeof staticRegistry>; log: string[] } {
  const registry = staticRegistry({ api: ports.map((p) => `127.0.0.1:${p}`) });
  const m = createMesh({ registry, clock, random: seededRng(5), defaults: { ...BASE, healthCheck, ...policy } });
  const log: string[] = [];
  m.on('ejected', (e) => log.push(`ejected ${e.endpoint.port} ${e.reason} ${e.durationMs}`));
  m.on('restored', (e) => log.push(`restored ${e.endpoint.port}`));
  return { mesh: m, registry, log };
}

async function portsOf(m: Mesh, n: number): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) await m.call('api', (ep) => seen.add(ep.port));
  return seen;
}

describe('active health checks (Envoy semantics)', () => {
  it('unhealthyThreshold failures in a row eject; healthyThreshold passes in a row restore', async () => {
    const { mesh: m, log } = mesh();
    await portsOf(m, 1); // the service is in use
    verdicts.set(2, false);
    // The first probe comes within one interval, then one every interval (+ up to 10 %): 3 failures by 3.3 s.
    await vi.advanceTimersByTimeAsync(3_300);
    expect(log).toEqual(['ejected 2 health-check 2000']);
    expect(await portsOf(m, 30)).toEqual(new Set([1, 3]));
    verdicts.set(2, true);
    await vi.advanceTimersByTimeAsync(1_150);
    expect(log).toHaveLength(1); // one pass is not enough
    await vi.advanceTimersByTimeAsync(1_150);
    expect(log).toEqual(['ejected 2 health-check 2000', 'restored 2']);
    expect(await portsOf(m, 30)).toEqual(new Set([1, 2, 3]));
    await m.close();
  });

  it('a pass in between starts the failure count again', async () => {
    const { mesh: m, log } = mesh();
    await portsOf(m, 1);
    verdicts.set(2, false);
    await vi.advanceTimersByTimeAsync(2_200); // two failures at most
    verdicts.set(2, true);
    await vi.advanceTimersByTimeAsync(1_100);
    verdicts.set(2, false);
    await vi.advanceTimersByTimeAsync(2_100);
    expect(log).toEqual([]);
    await m.close();
  });

  it('jitters: the first probe at a random point of the first interval, then every interval plus up to 10 %', async () => {
    const { mesh: m } = mesh({}, [1, 2, 3, 4, 5, 6, 7, 8]);
    await portsOf(m, 1);
    const start = Date.now();
    await vi.advanceTimersByTimeAsync(10_000);
    const firsts = new Set<number>();
    for (let port = 1; port <= 8; port++) {
      const times = probes.filter((p) => p.port === port).map((p) => p.at);
      expect(times[0]! - start).toBeLessThan(1_000);
      firsts.add(times[0]!);
      for (let i = 1; i < times.length; i++) {
        const gap = times[i]! - times[i - 1]!;
        expect(gap).toBeGreaterThanOrEqual(1_000 + 1); // the interval starts when the 1 ms probe settled
        expect(gap).toBeLessThanOrEqual(1_000 * (1 + INTERVAL_JITTER) + 1);
      }
    }
    expect(firsts.size).toBeGreaterThan(4); // not in step
    await m.close();
  });

  it('probes a service with no traffic at the no-traffic interval (60 s), and at intervalMs once it has calls', async () => {
    const { mesh: m } = mesh();
    await m.warmup(['api']); // a list, but no call yet
    await vi.advanceTimersByTimeAsync(3 * NO_TRAFFIC_INTERVAL_MS);
    const idle = probes.filter((p) => p.port === 1).length;
    expect(idle).toBeGreaterThanOrEqual(2);
    expect(idle).toBeLessThanOrEqual(3);
    await portsOf(m, 1);
    probes.length = 0;
    // The probe scheduled while idle comes first (within 66 s), then one a second while calls go on.
    for (let s = 0; s < 80; s++) {
      await portsOf(m, 1);
      await vi.advanceTimersByTimeAsync(1_000);
    }
    expect(probes.filter((p) => p.port === 1).length).toBeGreaterThanOrEqual(12);
    // No call for 60 s: back to the slow interval.
    await vi.advanceTimersByTimeAsync(70_000);
    probes.length = 0;
    await vi.advanceTimersByTimeAsync(120_000);
    expect(probes.filter((p) => p.port === 1).length).toBeLessThanOrEqual(2);
    await m.close();
  });

  it('is not capped by maxEjectionPercent (Envoy does not cap active checks); the panic threshold still guards', async () => {
    const { mesh: m, log } = mesh({ panicThresholdPercent: 0, outlier: { maxEjectionPercent: 10 } });
    await portsOf(m, 1);
    verdicts.set(1, false);
    verdicts.set(2, false);
    await vi.advanceTimersByTimeAsync(3_300);
    expect(log.sort()).toEqual(['ejected 1 health-check 2000', 'ejected 2 health-check 2000']);
    expect(await portsOf(m, 20)).toEqual(new Set([3]));
    await m.close();

    const { mesh: guarded } = mesh(); // default panic threshold 50 %: 1 healthy of 3 is panic
    await portsOf(guarded, 1);
    verdicts.set(1, false);
    verdicts.set(2, false);
    await vi.advanceTimersByTimeAsync(3_300);
    expect(guarded.snapshot().services.api?.panic).toBe(true);
    expect(await portsOf(guarded, 60)).toEqual(new Set([1, 2, 3]));
    await guarded.close();
  });

  it('probes with the tls policy and host: service; stops probing removed endpoints', async () => {
    const { mesh: m, registry } = mesh({ tls: { servername: 'api.internal', ca: 'PEM' }, host: 'service' });
    await portsOf(m, 1);
    await vi.advanceTimersByTimeAsync(1_100);
    const target = probes[0]!.target;
    expect(target.path).toBe('/healthz');
    expect(target.timeoutMs).toBe(100);
    expect(target.hostHeader).toBe('api');
    expect(target.tls).toMatchObject({ servername: 'api.internal', ca: 'PEM', rejectUnauthorized: true });
    registry.set('api', ['127.0.0.1:1']);
    probes.length = 0;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(new Set(probes.map((p) => p.port))).toEqual(new Set([1]));
    await m.close();
  });

  it('configure starts, retunes and stops it; turning it off brings back what it ejected', async () => {
    const { mesh: m, log } = mesh({ healthCheck: false });
    await portsOf(m, 1);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(probes).toEqual([]);
    m.configure({ defaults: { ...BASE, healthCheck } });
    verdicts.set(2, false);
    await vi.advanceTimersByTimeAsync(3_300);
    expect(log).toEqual(['ejected 2 health-check 2000']);
    // Retuned: probes every 200 ms from now on.
    m.configure({ defaults: { ...BASE, healthCheck: { ...healthCheck, intervalMs: 200 } } });
    probes.length = 0;
    await vi.advanceTimersByTimeAsync(2_000);
    const perEndpoint = probes.filter((p) => p.port === 1).length;
    expect(perEndpoint).toBeGreaterThanOrEqual(8);
    expect(perEndpoint).toBeLessThanOrEqual(11);
    m.configure({ defaults: { ...BASE, healthCheck: false } });
    expect(log).toEqual(['ejected 2 health-check 2000', 'restored 2']);
    expect(inFlight).toBe(0);
    probes.length = 0;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(probes).toEqual([]);
    expect(await portsOf(m, 30)).toEqual(new Set([1, 2, 3]));
    await m.close();
  });

  it('close stops every probe: no timer left, the probe in flight cancelled', async () => {
    const { mesh: m } = mesh({}, [1, 2, 3, 4, 5]);
    await portsOf(m, 1);
    await vi.advanceTimersByTimeAsync(999); // every first probe is due by now: some may be in flight
    await m.close();
    expect(inFlight).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    const count = probes.length;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(probes.length).toBe(count);
  });

  it('a listener that closes the mesh on `ejected` leaves no probe timer behind', async () => {
    const { mesh: m } = mesh();
    let closing: Promise<void> | undefined;
    m.on('ejected', () => void (closing = m.close()));
    await portsOf(m, 1);
    verdicts.set(2, false);
    await vi.advanceTimersByTimeAsync(3_300);
    expect(closing).toBeDefined();
    await closing;
    // The session's next probe was armed before its verdict reached the listener, so close() cleared it.
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops probing the endpoints of a service that discovery.maxServices retired", async () => {
    const registry = staticRegistry({ api: ['127.0.0.1:1', '127.0.0.1:2'], other: ['127.0.0.1:3'] });
    const m = createMesh({ registry, clock, random: seededRng(5), discovery: { maxServices: 1 }, defaults: { ...BASE, healthCheck } });
    await m.call('api', () => 'in use');
    await vi.advanceTimersByTimeAsync(2_000);
    expect(new Set(probes.map((p) => p.port))).toEqual(new Set([1, 2]));
    await m.call('other', () => 'in use'); // the table is full: api, idle, is retired
    expect(m.snapshot().services.api).toBeUndefined();
    await vi.advanceTimersByTimeAsync(10); // the probe in flight, if any, was cancelled
    probes.length = 0;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(new Set(probes.map((p) => p.port))).toEqual(new Set([3]));
    await m.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("an interval at setTimeout's limit, plus its jitter, never overflows into a probe a millisecond", async () => {
    const { mesh: m } = mesh({ healthCheck: { ...healthCheck, intervalMs: MAX_TIMER_MS } }, [1]);
    await portsOf(m, 1);
    while (probes.length === 0) await vi.advanceTimersToNextTimerAsync(); // the first probe, days away
    await vi.advanceTimersByTimeAsync(10_000);
    expect(probes).toHaveLength(1);
    await m.close();
  });
});
