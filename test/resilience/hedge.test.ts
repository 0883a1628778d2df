import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMesh, staticRegistry, type Mesh, type MeshOptions } from '../../src/index.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const clock = { now: () => Date.now() };

function mesh(policy: MeshOptions['defaults'], n = 3): Mesh {
  const endpoints = Array.from({ length: n }, (_, i) => `127.0.0.1:${i + 1}`);
  return createMesh({
    registry: staticRegistry({ api: endpoints }),
    defaults: { breaker: false, outlier: false, balancer: 'round-robin', ...policy },
    clock,
    random: () => 0,
  });
}

/** A function whose latency depends on the endpoint, recording every start and every abort. */
function backend(latencyByPort: Record<number, number>) {
  const started: number[] = [];
  const aborted: number[] = [];
  const fn = (ep: { port: number }, ctx: { signal: AbortSignal }) =>
    new Promise<number>((resolve) => {
      started.push(ep.port);
      const t = setTimeout(() => resolve(ep.port), latencyByPort[ep.port] ?? 10);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(t);
        aborted.push(ep.port);
      });
    });
  return { fn, started, aborted };
}

describe('hedging', () => {
  it('a hedge goes to another endpoint after delayMs; the first success wins and the loser is aborted', async () => {
    const m = mesh({ hedge: { delayMs: 50 } });
    const hedges: number[] = [];
    m.on('hedge', (e) => hedges.push(e.endpoint.port));
    const b = backend({ 1: 1_000, 2: 10 });
    const call = m.call('api', b.fn, { idempotent: true });
    await vi.advanceTimersByTimeAsync(60);
    await expect(call).resolves.toBe(2);
    expect(b.started).toEqual([1, 2]);
    expect(hedges).toEqual([2]);
    expect(b.aborted).toEqual([1]);
    await m.close();
  });

  it('no hedge when the first attempt answers before the delay', async () => {
    const m = mesh({ hedge: { delayMs: 50 } });
    const b = backend({ 1: 10 });
    const call = m.call('api', b.fn, { idempotent: true });
    await vi.advanceTimersByTimeAsync(100);
    await expect(call).resolves.toBe(1);
    expect(b.started).toEqual([1]);
    await m.close();
  });

  it('non-idempotent calls are never hedged', async () => {
    const m = mesh({ hedge: { delayMs: 5 } });
    const b = backend({ 1: 100 });
    const call = m.call('api', b.fn);
    await vi.advanceTimersByTimeAsync(200);
    await expect(call).resolves.toBe(1);
    expect(b.started).toEqual([1]);
    await m.close();
  });

  it('maxAttempts bounds the hedges, each on an endpoint not yet tried', async () => {
    const m = mesh({ hedge: { delayMs: 10, maxAttempts: 3 } }, 5);
    const b = backend({ 1: 1_000, 2: 1_000, 3: 1_000, 4: 1_000, 5: 1_000 });
    const call = m.call('api', b.fn, { idempotent: true });
    await vi.advanceTimersByTimeAsync(1_100);
    await call;
    expect(b.started).toHaveLength(3);
    expect(new Set(b.started).size).toBe(3);
    await m.close();
  });

  it('hedges spend the retry budget; without budget, no hedge and budget-exhausted', async () => {
    const m = mesh({ hedge: { delayMs: 10 }, retry: { budget: { ratio: 0, minPerSecond: 0.1, ttlMs: 10_000 } } });
    let exhausted = 0;
    m.on('budget-exhausted', () => exhausted++);
    const b = backend({ 1: 100, 2: 100, 3: 100 });
    const calls = [1, 2, 3].map(() => m.call('api', b.fn, { idempotent: true }));
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all(calls);
    expect(b.started).toHaveLength(4); // 3 calls + the 1 hedge the reserve (0.1/s x 10 s) allows
    expect(exhausted).toBe(2);
    await m.close();
  });

  it("'p95' hedges after the service's recent p95 latency", async () => {
    const m = mesh({ hedge: { delayMs: 'p95' } }, 2);
    // 100 calls on endpoint 1 at 20 ms build the window; then endpoint 1 stalls.
    for (let i = 0; i < 100; i++) {
      const c = m.call('api', (_ep, ctx) => new Promise((r) => setTimeout(r, 20, ctx.attempt)), { idempotent: true });
      await vi.advanceTimersByTimeAsync(20);
      await c;
    }
    const hedgeDelays: number[] = [];
    m.on('hedge', (e) => hedgeDelays.push(e.delayMs));
    const b = backend({ 1: 5_000, 2: 5_000 });
    const call = m.call('api', b.fn, { idempotent: true });
    await vi.advanceTimersByTimeAsync(5_000);
    await call;
    expect(hedgeDelays).toEqual([20]);
    await m.close();
  });
});
