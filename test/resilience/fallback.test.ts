import { request } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import {
  AdmissionRejectedError,
  BulkheadFullError,
  CallFailedError,
  CircuitOpenError,
  FaultInjectedError,
  MeshClosedError,
  NoEndpointsError,
  staticRegistry,
  TimeoutError,
  type Fallback,
  type Policy,
} from '../../src/index.js';
import { meshDispatcher } from '../../src/undici.js';
import { parseExposition, value } from '../observe/exposition.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();
const quiet: Policy = { breaker: false, outlier: false, retry: false };
const down = async (): Promise<never> => {
  throw new Error('down');
};
const hang = (_ep: unknown, { signal }: { signal: AbortSignal }): Promise<never> =>
  new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));

/** A fallback that records what it was shown. */
function recorder<T>(answer: T): { fallback: Fallback<T>; seen: { error: unknown; ctx: unknown }[] } {
  const seen: { error: unknown; ctx: unknown }[] = [];
  return { seen, fallback: (error, ctx) => (seen.push({ error, ctx }), answer) };
}

describe('fallback', () => {
  it('answers a call whose retries are exhausted; the outcome stays a failure and the use is counted', async () => {
    const { fallback, seen } = recorder('cached');
    const m = mesh({
      registry: staticRegistry({ api: ['127.0.0.1:1', '127.0.0.1:2'] }),
      services: { api: { ...quiet, retry: { retries: 1, minDelayMs: 1, maxDelayMs: 2 }, fallback } },
    });
    await expect(m.call('api', down, { idempotent: true })).resolves.toBe('cached');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.error).toBeInstanceOf(CallFailedError);
    expect((seen[0]!.error as CallFailedError).attempts).toHaveLength(2);
    expect(seen[0]!.ctx).toEqual({ service: 'api', route: undefined });
    const f = parseExposition(m.metrics());
    expect(value(f, 'proxyless_requests_total', { service: 'api', outcome: 'failure' })).toBe(1);
    expect(value(f, 'proxyless_requests_total', { service: 'api', outcome: 'success' })).toBe(0);
    expect(value(f, 'proxyless_fallbacks_total', { service: 'api' })).toBe(1);
    expect(m.snapshot().services.api!.fallbacks).toBe(1);
  });

  it('answers NoEndpoints, CircuitOpen, BulkheadFull, AdmissionRejected and a timeout', async () => {
    const { fallback, seen } = recorder('fallback');
    const m = mesh({
      registry: staticRegistry({ none: [], api: ['127.0.0.1:1'], tight: ['127.0.0.1:1'], slow: ['127.0.0.1:1'] }),
      defaults: { ...quiet, fallback },
      services: {
        api: { breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 }, admission: { windowMs: 60_000 } },
        tight: { maxConcurrent: 1 },
        slow: { timeout: { totalMs: 20 } },
      },
    });
    expect(await m.call('none', down)).toBe('fallback');
    // Failures open the breaker and drive admission up: some calls are refused locally, then the breaker fails fast.
    for (let i = 0; i < 30; i++) expect(await m.call('api', down)).toBe('fallback');
    let release!: (value: string) => void;
    const gate = new Promise<string>((r) => (release = r));
    const first = m.call('tight', () => gate);
    expect(await m.call('tight', down)).toBe('fallback');
    release('first');
    expect(await first).toBe('first');
    expect(await m.call('slow', hang)).toBe('fallback');
    const kinds = new Set(seen.map((s) => (s.error as Error).constructor.name));
    for (const kind of [NoEndpointsError, CircuitOpenError, AdmissionRejectedError, BulkheadFullError, TimeoutError]) {
      expect(kinds).toContain(kind.name);
    }
  });

  it('answers in place of a failing final Response on mesh.fetch, whose body is cancelled', async () => {
    let cancelled = false;
    const fetchImpl = async (): Promise<Response> => {
      const body = new ReadableStream({ pull: (c) => c.enqueue(new TextEncoder().encode('x'.repeat(1024))), cancel: () => void (cancelled = true) });
      return new Response(body, { status: 503 });
    };
    const seen: unknown[] = [];
    const m = mesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      fetch: fetchImpl,
      services: { api: { ...quiet, fallback: (error) => (seen.push(error), new Response('[]', { status: 200 })) } },
    });
    const res = await m.fetch('http://api/list');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('[]');
    await vi.waitFor(() => expect(cancelled).toBe(true));
    expect(seen[0]).toBeInstanceOf(CallFailedError);
    expect(((seen[0] as CallFailedError).cause as { status: number }).status).toBe(503);
    const f = parseExposition(m.metrics());
    expect(value(f, 'proxyless_requests_total', { service: 'api', outcome: 'failure' })).toBe(1);
  });

  it('answers an injected fault (its synthetic Response or error), so chaos tests exercise the fallback', async () => {
    const seen: unknown[] = [];
    const m = mesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      fetch: async () => new Response('real'),
      routes: { api: [{ name: 'chaos', fault: { abort: { status: 503, percent: 100 } } }] },
      services: { api: { ...quiet, fallback: (error) => (seen.push(error), 'fell back') } },
    });
    expect(await m.call('api', async () => 'real')).toBe('fell back');
    expect(await m.fetch('http://api/')).toBe('fell back');
    expect(seen.every((e) => e instanceof FaultInjectedError)).toBe(true);
    expect(seen).toHaveLength(2);
  });

  it('the per-call fallback wins over the policy; an awaited promise is the result', async () => {
    const m = mesh({ registry: staticRegistry({ api: [] }), services: { api: { ...quiet, fallback: () => 'policy' } } });
    expect(await m.call('api', down)).toBe('policy');
    expect(await m.call('api', down, { fallback: async () => 'per call' })).toBe('per call');
  });

  it('a fallback that throws or rejects makes the call reject with that error, and nothing escapes', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const thrown = new Error('fallback threw');
      const m = mesh({ registry: staticRegistry({ api: [] }), services: { api: quiet } });
      await expect(m.call('api', down, { fallback: () => { throw thrown; } })).rejects.toBe(thrown);
      await expect(m.call('api', down, { fallback: () => Promise.reject(thrown) })).rejects.toBe(thrown);
      await new Promise((r) => setTimeout(r, 10));
      expect(unhandled).toEqual([]);
      expect(m.snapshot().services.api!.activeCalls).toBe(0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('runs once the bulkhead slot is free: a fallback may call the service again', async () => {
    const m = mesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }), services: { api: { ...quiet, maxConcurrent: 1 } } });
    const result = await m.call('api', down, { fallback: () => m.call('api', async () => 'second try') });
    expect(result).toBe('second try');
  });

  it('is not run for the caller’s own abort, nor for a closed mesh', async () => {
    const fallback = vi.fn(() => 'no');
    const m = mesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }), services: { api: { ...quiet, fallback } } });
    const controller = new AbortController();
    const aborted = m.call('api', hang, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('mine')), 5);
    await expect(aborted).rejects.toThrow('mine');
    const inFlight = m.call('api', hang);
    await new Promise((r) => setTimeout(r, 5));
    await m.close();
    await expect(inFlight).rejects.toBeInstanceOf(MeshClosedError);
    await expect(m.call('api', down)).rejects.toBeInstanceOf(MeshClosedError);
    expect(fallback).not.toHaveBeenCalled();
  });

  it('is not run when the caller’s abort or close() lands after the last attempt failed', async () => {
    // The stop comes from a `failure` listener: after the attempt's verdict, before the call decides its result.
    const fallback = vi.fn(() => 'no');
    const aborting = mesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }), services: { api: { ...quiet, fallback } } });
    const controller = new AbortController();
    aborting.on('failure', () => controller.abort(new Error('mine')));
    await expect(aborting.call('api', down, { signal: controller.signal })).rejects.toBeInstanceOf(CallFailedError);
    const closing = mesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }), services: { api: { ...quiet, fallback } } });
    closing.on('failure', () => void closing.close());
    await expect(closing.call('api', down)).rejects.toBeInstanceOf(CallFailedError);
    expect(fallback).not.toHaveBeenCalled();
  });

  it('a fallback still pending when the caller aborts: the call rejects with the abort reason', async () => {
    const m = mesh({ registry: staticRegistry({ api: [] }), services: { api: quiet } });
    const controller = new AbortController();
    // Given a signal, a fallback that settles still answers.
    expect(await m.call('api', down, { signal: controller.signal, fallback: async () => 'cached' })).toBe('cached');
    let started = false;
    const never = (): Promise<never> => ((started = true), new Promise<never>(() => {}));
    const pending = m.call('api', down, { signal: controller.signal, fallback: never });
    await vi.waitFor(() => expect(started).toBe(true));
    const reason = new Error('gave up');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });

  it('is skipped on the undici dispatcher path (a dispatch handler takes a response, not a value)', async () => {
    const fallback = vi.fn(() => 'no');
    const b = await backend((_req, res) => res.writeHead(503).end('unavailable'));
    const m = mesh({ registry: staticRegistry({ api: [b.address] }), services: { api: { ...quiet, fallback } } });
    const { statusCode, body } = await request('http://api/', { dispatcher: meshDispatcher(m) });
    expect(statusCode).toBe(503);
    expect(await body.text()).toBe('unavailable');
    expect(fallback).not.toHaveBeenCalled();
  });
});
