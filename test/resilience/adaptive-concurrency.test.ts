import { describe, expect, it } from 'vitest';
import { BulkheadFullError, createMesh, staticRegistry, type Mesh, type Policy } from '../../src/index.js';
import { seededRng } from '../../src/util/random.js';
import { parseExposition, value } from '../observe/exposition.js';

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const quiet: Policy = { breaker: false, outlier: false, retry: false };

/** `n` calls at once that wait on `gate`; resolves with what each settled with. */
function burst(mesh: Mesh, n: number, gate: Promise<void>): Promise<unknown[]> {
  return Promise.all(Array.from({ length: n }, () => mesh.call('api', () => gate.then(() => 'ok')).catch((e: unknown) => e)));
}

describe('adaptiveConcurrency', () => {
  it('over the limit, calls are rejected at once with BulkheadFullError (source adaptiveConcurrency) and reported', async () => {
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      services: { api: { ...quiet, adaptiveConcurrency: { initial: 6, min: 4, max: 10 } } },
    });
    const reasons: string[] = [];
    mesh.on('rejected', (e) => reasons.push(e.reason));
    const gate = deferred();
    const settled = burst(mesh, 10, gate.promise);
    await new Promise((r) => setImmediate(r));
    // It starts by measuring the no-load RTT, at `min` concurrency (Envoy's gradient controller).
    const snap = mesh.snapshot().services.api!;
    expect(snap.adaptiveConcurrency).toEqual({ limit: 4, minRttMs: 0, rttMs: 0, probing: true });
    expect(snap.activeCalls).toBe(4);
    const f = parseExposition(mesh.metrics());
    expect(value(f, 'proxyless_concurrency_limit', { service: 'api' })).toBe(4);
    gate.resolve();
    const results = await settled;
    const rejected = results.filter((r): r is BulkheadFullError => r instanceof BulkheadFullError);
    expect(results.filter((r) => r === 'ok')).toHaveLength(4);
    expect(rejected).toHaveLength(6);
    expect(rejected[0]!.source).toBe('adaptiveConcurrency');
    expect(rejected[0]!.limit).toBe(4);
    expect(rejected[0]!.code).toBe('EBULKHEAD');
    expect(reasons).toEqual(Array(6).fill('adaptive-concurrency'));
    const after = parseExposition(mesh.metrics());
    expect(value(after, 'proxyless_bulkhead_rejections_total', { service: 'api' })).toBe(6);
    expect(value(after, 'proxyless_requests_total', { service: 'api', outcome: 'rejected' })).toBe(6);
    await mesh.close();
  });

  it('a `rejected` listener that throws changes nothing: the call still gets its error or its fallback', async () => {
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      services: { api: { ...quiet, adaptiveConcurrency: { initial: 1, min: 1, max: 1 } } },
    });
    const reported: unknown[] = [];
    mesh.on('rejected', () => {
      throw new Error('listener bug');
    });
    mesh.on('listener-error', (e) => reported.push(e.error));
    const gate = deferred();
    const first = mesh.call('api', () => gate.promise.then(() => 'ok'));
    await expect(mesh.call('api', async () => 'x')).rejects.toBeInstanceOf(BulkheadFullError);
    expect(await mesh.call('api', async () => 'x', { fallback: () => 'fell back' })).toBe('fell back');
    gate.resolve();
    expect(await first).toBe('ok');
    expect(reported).toHaveLength(2);
    expect(mesh.snapshot().services.api!.activeCalls).toBe(0);
    await mesh.close();
  });

  it('with maxConcurrent too, the lower of the two binds, and the error names which', async () => {
    for (const [maxConcurrent, source, limit] of [[2, 'maxConcurrent', 2], [10, 'adaptiveConcurrency', 4]] as const) {
      const mesh = createMesh({
        registry: staticRegistry({ api: ['127.0.0.1:1'] }),
        services: { api: { ...quiet, maxConcurrent, adaptiveConcurrency: { initial: 4, min: 4 } } },
      });
      const gate = deferred();
      const settled = burst(mesh, 8, gate.promise);
      await new Promise((r) => setImmediate(r));
      gate.resolve();
      const rejected = (await settled).filter((r): r is BulkheadFullError => r instanceof BulkheadFullError);
      expect(rejected).toHaveLength(8 - limit);
      expect(rejected.every((e) => e.source === source && e.limit === limit)).toBe(true);
      await mesh.close();
    }
  });

  it('measures a call that waited in the bulkhead queue from when it left it: a local wait is not backend latency', async () => {
    const clock = { t: 0 };
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      clock: { now: () => clock.t },
      random: seededRng(1),
      services: { api: { ...quiet, maxConcurrent: 1, maxQueued: 10, adaptiveConcurrency: { initial: 4, min: 4, max: 10 } } },
    });
    const work = async (): Promise<string> => {
      await new Promise((r) => setImmediate(r));
      clock.t += 20; // the backend takes 20 ms
      return 'ok';
    };
    // Two at a time through one slot: the second waits 20 ms in the queue, then takes 20 ms.
    for (let i = 0; i < 25; i++) expect(await Promise.all([mesh.call('api', work), mesh.call('api', work)])).toEqual(['ok', 'ok']);
    const limit = mesh.snapshot().services.api!.adaptiveConcurrency!;
    expect(limit.probing).toBe(false);
    expect(limit.minRttMs).toBe(20); // not the median of 20s and 40s
    await mesh.close();
  });

  it('learns the no-load RTT from call durations (injected clock), and keeps it across configurations', async () => {
    const clock = { t: 0 };
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      clock: { now: () => clock.t },
      random: seededRng(1),
      services: { api: { ...quiet, adaptiveConcurrency: { initial: 8, min: 2, max: 50 } } },
    });
    const work = async (): Promise<string> => {
      clock.t += 20;
      return 'ok';
    };
    for (let i = 0; i < 50; i++) await mesh.call('api', work);
    expect(mesh.snapshot().services.api!.adaptiveConcurrency).toEqual({ limit: 8, minRttMs: 20, rttMs: 0, probing: false });
    mesh.configure({ services: { api: { ...quiet, adaptiveConcurrency: { initial: 2, min: 2, max: 6 } } } });
    // Same limiter: its measure stays, its limit is clamped to the new max.
    expect(mesh.snapshot().services.api!.adaptiveConcurrency).toEqual({ limit: 6, minRttMs: 20, rttMs: 0, probing: false });
    mesh.configure({ services: { api: { ...quiet, adaptiveConcurrency: false } } });
    expect(mesh.snapshot().services.api!.adaptiveConcurrency).toBeNull();
    const gate = deferred();
    const settled = burst(mesh, 20, gate.promise);
    await new Promise((r) => setImmediate(r));
    gate.resolve();
    expect((await settled).every((r) => r === 'ok')).toBe(true);
    // No limit in force any more: the gauge says so (+Inf), as for any service without one.
    expect(value(parseExposition(mesh.metrics()), 'proxyless_concurrency_limit', { service: 'api' })).toBe(Infinity);
    // Spelled as the text format 0.0.4 spells it (the parser above would also take JavaScript's `Infinity`).
    expect(mesh.metrics()).toContain('\nproxyless_concurrency_limit{service="api"} +Inf\n');
    await mesh.close();
  });
});
