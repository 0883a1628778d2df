import { describe, expect, it } from 'vitest';
import { BulkheadFullError, createMesh, staticRegistry, TimeoutError } from '../../src/index.js';

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('bulkhead', () => {
  it('past maxConcurrent, calls are rejected at once with BulkheadFullError and `rejected`', async () => {
    const mesh = createMesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }), defaults: { maxConcurrent: 2 } });
    let rejected = 0;
    mesh.on('rejected', (e) => {
      expect(e.reason).toBe('bulkhead');
      rejected++;
    });
    const gate = deferred();
    let inflight = 0;
    let peak = 0;
    const fn = async (): Promise<string> => {
      peak = Math.max(peak, ++inflight);
      await gate.promise;
      inflight--;
      return 'ok';
    };
    const calls = Array.from({ length: 20 }, () => mesh.call('api', fn).then(() => 'ok', (e: unknown) => e));
    await new Promise((r) => setImmediate(r));
    gate.resolve();
    const results = await Promise.all(calls);
    expect(results.filter((r) => r === 'ok')).toHaveLength(2);
    expect(results.filter((r) => r instanceof BulkheadFullError)).toHaveLength(18);
    expect(rejected).toBe(18);
    expect(peak).toBe(2);
    expect(mesh.snapshot().services.api?.activeCalls).toBe(0);
    await mesh.close();
  });

  it('with maxQueued, excess calls wait in order for a slot; beyond the queue they are rejected', async () => {
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      defaults: { maxConcurrent: 1, maxQueued: 2 },
    });
    const order: number[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const call = (i: number) =>
      mesh.call('api', async () => {
        order.push(i);
        await gates[i]?.promise;
        return i;
      });
    const results = [call(0), call(1), call(2), call(3).catch((e: unknown) => e)];
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([0]);
    expect(await results[3]).toBeInstanceOf(BulkheadFullError);
    gates[0]?.resolve();
    gates[1]?.resolve();
    gates[2]?.resolve();
    expect(await Promise.all(results.slice(0, 3))).toEqual([0, 1, 2]);
    expect(order).toEqual([0, 1, 2]);
    expect(mesh.snapshot().services.api?.activeCalls).toBe(0);
    await mesh.close();
  });

  it('a queued call gives up at its deadline with TimeoutError and frees its place', async () => {
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      defaults: { maxConcurrent: 1, maxQueued: 1, timeout: { totalMs: 30 } },
    });
    const gate = deferred();
    const first = mesh.call('api', () => gate.promise, { timeout: { totalMs: 5_000 } });
    const queued = mesh.call('api', () => 'never');
    await expect(queued).rejects.toBeInstanceOf(TimeoutError);
    gate.resolve();
    await first;
    await expect(mesh.call('api', () => 'free')).resolves.toBe('free');
    await mesh.close();
  });
});
