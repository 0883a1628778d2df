import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitOpenError, createMesh, staticRegistry, type Mesh, type MeshOptions } from '../../src/index.js';

// Fake timers drive opossum's reset timer and our clock; no real sleeps.
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const clock = { now: () => Date.now() };
const fail = async (): Promise<never> => {
  throw new Error('boom');
};

function mesh(endpoints: string[], policy: MeshOptions['defaults']): Mesh {
  return createMesh({ registry: staticRegistry({ api: endpoints }), defaults: { retry: false, ...policy }, clock });
}

async function settle<T>(p: Promise<T>): Promise<T | unknown> {
  return p.catch((e: unknown) => e);
}

describe('circuit breakers', () => {
  const breaker = { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 1_000, rollingWindowMs: 10_000 };

  it('opens after enough failures; the picker then skips the endpoint', async () => {
    const m = mesh(['127.0.0.1:1', '127.0.0.1:2'], { breaker, outlier: false, balancer: 'round-robin' });
    const events: string[] = [];
    m.on('breaker-open', (e) => events.push(`open ${e.endpoint.port}`));
    for (let i = 0; i < 10; i++) {
      await settle(m.call('api', (ep) => (ep.port === 1 ? fail() : 'ok')));
    }
    expect(events).toEqual(['open 1']);
    const ports: number[] = [];
    for (let i = 0; i < 20; i++) await m.call('api', (ep) => ports.push(ep.port));
    expect(new Set(ports)).toEqual(new Set([2]));
    expect(m.snapshot().services.api?.endpoints.map((e) => e.breaker)).toEqual(['open', 'closed']);
    await m.close();
  });

  it('when every breaker is open, calls fail fast with CircuitOpenError without running', async () => {
    const m = mesh(['127.0.0.1:1', '127.0.0.1:2'], { breaker, outlier: false });
    for (let i = 0; i < 20; i++) await settle(m.call('api', fail));
    const fn = vi.fn(fail);
    const err = await settle(m.call('api', fn));
    expect(err).toBeInstanceOf(CircuitOpenError);
    expect(fn).not.toHaveBeenCalled();
    await m.close();
  });

  it('half-open lets exactly one probe in flight; its success closes the breaker', async () => {
    const m = mesh(['127.0.0.1:1'], { breaker, outlier: false });
    const events: string[] = [];
    m.on('breaker-half-open', () => events.push('half-open'));
    m.on('breaker-close', () => events.push('close'));
    for (let i = 0; i < 6; i++) await settle(m.call('api', fail));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(events).toEqual(['half-open']);

    let release!: (v: string) => void;
    const probe = m.call('api', () => new Promise<string>((r) => (release = r)));
    const second = await settle(m.call('api', () => 'second'));
    expect(second).toBeInstanceOf(CircuitOpenError); // the one probe is taken
    release('probe');
    await expect(probe).resolves.toBe('probe');
    expect(events).toEqual(['half-open', 'close']);
    await expect(m.call('api', () => 'after')).resolves.toBe('after');
    await m.close();
  });

  it('a failed probe opens the breaker again', async () => {
    const m = mesh(['127.0.0.1:1'], { breaker, outlier: false });
    const opens: number[] = [];
    m.on('breaker-open', () => opens.push(Date.now()));
    for (let i = 0; i < 6; i++) await settle(m.call('api', fail));
    await vi.advanceTimersByTimeAsync(1_000);
    await settle(m.call('api', fail));
    expect(opens).toHaveLength(2);
    await expect(m.call('api', () => 1)).rejects.toBeInstanceOf(CircuitOpenError);
    await m.close();
  });

  it('the caller abort of an attempt does not count as a failure', async () => {
    const m = mesh(['127.0.0.1:1'], { breaker: { ...breaker, volumeThreshold: 1 }, outlier: false });
    for (let i = 0; i < 5; i++) {
      const c = new AbortController();
      const p = m.call('api', () => new Promise(() => {}), { signal: c.signal });
      await vi.advanceTimersByTimeAsync(0);
      c.abort('bye');
      await expect(p).rejects.toBe('bye');
    }
    expect(m.snapshot().services.api?.endpoints[0]?.breaker).toBe('closed');
    await m.close();
  });
});

describe('outlier ejection (Envoy semantics)', () => {
  const outlier = { consecutiveFailures: 3, baseEjectionMs: 1_000, maxEjectionMs: 2_500, maxEjectionPercent: 10 };

  it('ejects after consecutive failures, restores after baseEjectionMs x times ejected, capped', async () => {
    const m = mesh(['127.0.0.1:1', '127.0.0.1:2'], { breaker: false, outlier, balancer: 'round-robin' });
    const log: string[] = [];
    m.on('ejected', (e) => log.push(`ejected ${e.endpoint.port} for ${e.durationMs}`));
    m.on('restored', (e) => log.push(`restored ${e.endpoint.port}`));
    const call = (): Promise<unknown> => settle(m.call('api', (ep) => (ep.port === 1 ? fail() : 'ok')));
    for (let i = 0; i < 6; i++) await call();
    expect(log).toEqual(['ejected 1 for 1000']);
    for (let i = 0; i < 5; i++) await m.call('api', (ep) => expect(ep.port).toBe(2));

    vi.advanceTimersByTime(1_000);
    for (let i = 0; i < 6; i++) await call(); // restored on the next call, then fails 3 more times
    vi.advanceTimersByTime(2_000);
    for (let i = 0; i < 6; i++) await call();
    vi.advanceTimersByTime(2_500);
    for (let i = 0; i < 6; i++) await call();
    expect(log).toEqual([
      'ejected 1 for 1000',
      'restored 1',
      'ejected 1 for 2000',
      'restored 1',
      'ejected 1 for 2500', // 3 x 1000, capped at maxEjectionMs
      'restored 1',
      'ejected 1 for 2500',
    ]);
    await m.close();
  });

  it('ejects at most maxEjectionPercent of endpoints, but always one', async () => {
    const endpoints = Array.from({ length: 10 }, (_, i) => `127.0.0.1:${i + 1}`);
    const m = mesh(endpoints, { breaker: false, outlier, panicThresholdPercent: 0 });
    const ejected: number[] = [];
    m.on('ejected', (e) => ejected.push(e.endpoint.port));
    for (let i = 0; i < 200; i++) await settle(m.call('api', fail));
    expect(ejected).toHaveLength(1); // 10 % of 10
    await m.close();
  });

  it('below the panic threshold, ejected endpoints are balanced over again and panic is emitted', async () => {
    const m = mesh(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], {
      breaker: false,
      outlier: { ...outlier, maxEjectionPercent: 100 },
      panicThresholdPercent: 50,
      balancer: 'round-robin', // candidates, not latency, are the point here
    });
    const panics: number[] = [];
    m.on('panic', (e) => panics.push(e.healthy));
    for (let i = 0; i < 30; i++) await settle(m.call('api', (ep) => (ep.port === 3 ? 'ok' : fail())));
    expect(panics).toEqual([1]); // 1 of 3 healthy < 50 %
    expect(m.snapshot().services.api?.panic).toBe(true);
    const ports = new Set<number>();
    for (let i = 0; i < 60; i++) await settle(m.call('api', (ep) => (ports.add(ep.port), fail())));
    expect(ports).toEqual(new Set([1, 2, 3]));
    await m.close();
  });
});
