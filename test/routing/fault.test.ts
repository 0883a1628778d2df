import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createMesh,
  FaultInjectedError,
  seededRng,
  staticRegistry,
  TimeoutError,
  type Mesh,
  type MeshOptions,
  type RouteSpec,
} from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { parseExposition, value } from '../observe/exposition.js';

const meshes: Mesh[] = [];
const servers: Backend[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  vi.useRealTimers();
});

function mesh(options: Partial<MeshOptions> & { routes: MeshOptions['routes'] }): Mesh {
  const m = createMesh({
    registry: staticRegistry({ api: ['127.0.0.1:1001', '127.0.0.1:1002'] }),
    defaults: { breaker: false, outlier: false },
    random: seededRng(11),
    ...options,
  });
  meshes.push(m);
  return m;
}

/** A real backend that counts every request and every connection it gets. */
async function countingBackend(): Promise<{ b: Backend; connections: () => number }> {
  const b = await startBackend((_req, res) => res.end('from backend'));
  servers.push(b);
  let connections = 0;
  b.server.on('connection', () => connections++);
  return { b, connections: () => connections };
}

const ABORT_ALL: RouteSpec = { name: 'chaos', match: [{ headers: { 'x-chaos': 'on' } }], fault: { abort: { status: 503, percent: 100 } } };

describe('abort faults (real backend)', () => {
  it('mesh.fetch answers a synthetic Response of the status, reaches no backend, and is never retried', async () => {
    const { b, connections } = await countingBackend();
    const m = mesh({
      registry: staticRegistry({ api: [b.address] }),
      defaults: { breaker: false, outlier: false, retry: { retries: 3, minDelayMs: 1, maxDelayMs: 1 } },
      routes: { api: [ABORT_ALL] },
    });
    const attempts: string[] = [];
    m.on('request', (e) => attempts.push(`request ${e.attempt}`));
    m.on('retry', (e) => attempts.push(`retry ${e.attempt}`));
    for (let i = 0; i < 5; i++) {
      const res = await m.fetch('http://api/x', { headers: { 'x-chaos': 'on' } });
      expect(res.status).toBe(503);
      expect(res.headers.get('x-proxyless-fault')).toBe('chaos');
      expect(await res.text()).toBe('fault filter abort');
    }
    expect(b.seen).toHaveLength(0);
    expect(connections()).toBe(0);
    expect(attempts).toEqual([]);
    // The same mesh reaches the backend when the fault route does not match: the zero above is the fault's.
    const ok = await m.fetch('http://api/x');
    expect(await ok.text()).toBe('from backend');
    expect(b.seen).toHaveLength(1);
    const families = parseExposition(m.metrics());
    expect(value(families, 'proxyless_requests_total', { service: 'api', outcome: 'fault' })).toBe(5);
    expect(value(families, 'proxyless_requests_total', { service: 'api', outcome: 'success' })).toBe(1);
  });

  it('mesh.call rejects with FaultInjectedError (EFAULT), runs no attempt and never retries, idempotent or not', async () => {
    const { b } = await countingBackend();
    const m = mesh({
      registry: staticRegistry({ api: [b.address] }),
      defaults: { breaker: false, outlier: false, retry: { retries: 3, minDelayMs: 1, maxDelayMs: 1 } },
      routes: { api: [{ name: 'chaos', fault: { abort: { status: 500, percent: 100 } } }] },
    });
    let ran = 0;
    const fn = async (ep: { host: string; port: number }, ctx: { signal: AbortSignal }) => {
      ran++;
      const res = await fetch(`http://${ep.host}:${ep.port}/`, { signal: ctx.signal });
      return res.text();
    };
    for (const idempotent of [false, true]) {
      const err = await m.call('api', fn, { idempotent }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FaultInjectedError);
      expect((err as FaultInjectedError).code).toBe('EFAULT');
      expect((err as FaultInjectedError).status).toBe(500);
      expect((err as FaultInjectedError).route).toBe('chaos');
      expect((err as FaultInjectedError).service).toBe('api');
    }
    expect(ran).toBe(0);
    expect(b.seen).toHaveLength(0);
    expect(m.snapshot().services.api!.endpoints.reduce((n, e) => n + e.requests, 0)).toBe(0);
    // Without the fault, the same call reaches the backend: the zeros above are the fault's.
    m.configure({ defaults: { breaker: false, outlier: false }, routes: { api: [{ name: 'chaos' }] } });
    expect(await m.call('api', fn)).toBe('from backend');
    expect(ran).toBe(1);
    expect(b.seen).toHaveLength(1);
  });
});

describe('delay faults (fake timers)', () => {
  const clock = { now: () => Date.now() };

  it('a delay fault adds its delay before any attempt', async () => {
    vi.useFakeTimers();
    const m = mesh({ clock, routes: { api: [{ name: 'slow', fault: { delay: { ms: 500, percent: 100 } } }] } });
    await m.warmup(['api']);
    const ran: number[] = [];
    const start = Date.now();
    let settled = false;
    const call = m.call('api', (ep) => (ran.push(Date.now() - start), ep.port)).finally(() => (settled = true));
    await vi.advanceTimersByTimeAsync(499);
    expect(settled).toBe(false);
    expect(ran).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toBe(true);
    expect([1001, 1002]).toContain(await call);
    expect(ran).toEqual([500]);
  });

  it('a delay longer than totalMs ends in the total TimeoutError, with nothing sent', async () => {
    vi.useFakeTimers();
    const m = mesh({
      clock,
      defaults: { breaker: false, outlier: false, timeout: { attemptMs: 100, totalMs: 300 } },
      routes: { api: [{ name: 'slow', fault: { delay: { ms: 1_000, percent: 100 } } }] },
    });
    await m.warmup(['api']);
    const fn = vi.fn((ep: { port: number }) => ep.port);
    let err: unknown;
    const call = m.call('api', fn).catch((e: unknown) => (err = e));
    await vi.advanceTimersByTimeAsync(299);
    expect(err).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await call;
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).scope).toBe('total');
    expect((err as TimeoutError).timeoutMs).toBe(300);
    await vi.advanceTimersByTimeAsync(1_000); // past the delay: still nothing sent
    expect(fn).not.toHaveBeenCalled();
    expect(m.snapshot().services.api!.endpoints.map((e) => e.requests)).toEqual([0, 0]);
  });
});

describe('fault rates and counters', () => {
  it('at 20 %, over 2,000 calls, the abort rate lands within a 99.9 % binomial bound', async () => {
    const m = mesh({ routes: { api: [{ name: 'chaos', fault: { abort: { status: 503, percent: 20 } } }] } });
    await m.warmup(['api']);
    const n = 2_000;
    const p = 0.2;
    const half = 3.29 * Math.sqrt(n * p * (1 - p)); // ≈ 58.9
    let aborted = 0;
    let ok = 0;
    for (let i = 0; i < n; i++) {
      try {
        await m.call('api', (ep) => ep.port);
        ok++;
      } catch (error) {
        if (error instanceof FaultInjectedError) aborted++;
        else throw error;
      }
    }
    expect(aborted + ok).toBe(n);
    expect(aborted).toBeGreaterThanOrEqual(n * p - half);
    expect(aborted).toBeLessThanOrEqual(n * p + half);
  });

  it('faults are counted apart: proxyless_route_faults_total by kind, outcome="fault", and the snapshot', async () => {
    vi.useFakeTimers();
    const clock = { now: () => Date.now() };
    const m = mesh({
      clock,
      defaults: { breaker: false, outlier: false, retry: false },
      routes: { api: [{ name: 'chaos', fault: { delay: { ms: 10, percent: 40 }, abort: { status: 502, percent: 30 } } }] },
    });
    await m.warmup(['api']);
    let delayed = 0;
    let aborted = 0;
    let ok = 0;
    for (let i = 0; i < 300; i++) {
      const start = Date.now();
      let end = -1;
      let failed: unknown;
      const call = m.call('api', (ep) => ep.port).then(
        () => ((end = Date.now()), ok++),
        (e: unknown) => ((end = Date.now()), (failed = e)),
      );
      await vi.advanceTimersByTimeAsync(10);
      await call;
      if (end - start >= 10) delayed++;
      if (failed !== undefined) {
        expect(failed).toBeInstanceOf(FaultInjectedError);
        aborted++;
      }
    }
    expect(delayed).toBeGreaterThan(0);
    expect(aborted).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
    const families = parseExposition(m.metrics());
    expect(value(families, 'proxyless_route_faults_total', { service: 'api', route: 'chaos', kind: 'delay' })).toBe(delayed);
    expect(value(families, 'proxyless_route_faults_total', { service: 'api', route: 'chaos', kind: 'abort' })).toBe(aborted);
    expect(value(families, 'proxyless_requests_total', { service: 'api', outcome: 'fault' })).toBe(aborted);
    expect(value(families, 'proxyless_requests_total', { service: 'api', outcome: 'failure' })).toBe(0);
    expect(value(families, 'proxyless_requests_total', { service: 'api', outcome: 'success' })).toBe(ok);
    expect(value(families, 'proxyless_route_requests_total', { service: 'api', route: 'chaos', backend: '*', outcome: 'fault' })).toBe(aborted);
    const route = m.snapshot().services.api!.routes.find((r) => r.name === 'chaos')!;
    expect(route.faults).toEqual({ delay: delayed, abort: aborted });
    // An aborted call reaches no endpoint: attempts are only the calls that went through.
    const requests = m.snapshot().services.api!.endpoints.reduce((s, e) => s + e.requests, 0);
    expect(requests).toBe(ok);
  });
});
