import { describe, expect, it } from 'vitest';
import { CallFailedError, staticRegistry } from '../../src/index.js';
import { refusedAddress } from '../helpers/backends.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();

const quietRetry = { minDelayMs: 1, maxDelayMs: 5 };
// Breakers and ejection are not what the idempotency checks measure: off there, so they measure only what they mean to.
const retryOnly = { retry: quietRetry, breaker: false, outlier: false } as const;

describe('retries against real node:http backends', () => {
  it('with 1 of 3 endpoints refusing connections, 500 GETs all succeed', async () => {
    const [a, b] = [await backend(), await backend()];
    const refused = await refusedAddress();
    const m = mesh({ registry: staticRegistry({ api: [a.address, refused, b.address] }), defaults: { retry: quietRetry } });
    let retries = 0;
    m.on('retry', () => retries++);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 500; i++) {
      const res = await m.fetch(`http://api/item/${i}`);
      await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
    expect(statuses.get(200)).toBe(500);
    expect(a.seen.length + b.seen.length).toBe(500);
    expect(retries).toBeGreaterThan(0); // the refusing endpoint was tried, and the retry saved the call
  });

  it('a POST whose connection was refused is retried and seen exactly once by a live server', async () => {
    const live = await backend();
    const refused = await refusedAddress();
    const m = mesh({
      registry: staticRegistry({ api: [refused, live.address] }),
      defaults: { balancer: 'round-robin', ...retryOnly },
      random: () => 0, // round robin starts at the refusing endpoint
    });
    const res = await m.fetch('http://api/orders', { method: 'POST', body: '{"n":1}' });
    expect(res.status).toBe(200);
    expect(live.seen).toEqual([{ method: 'POST', url: '/orders', body: '{"n":1}' }]);
  });

  it('a POST answered with 503 is not retried unless idempotent: true', async () => {
    const a = await backend((_req, res) => res.writeHead(503).end('busy'));
    const b = await backend((_req, res) => res.writeHead(503).end('busy'));
    const m = mesh({ registry: staticRegistry({ api: [a.address, b.address] }), defaults: retryOnly });

    const res = await m.fetch('http://api/orders', { method: 'POST', body: 'x' });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('busy');
    expect(a.seen.length + b.seen.length).toBe(1);

    const again = await m.fetch('http://api/orders', { method: 'POST', body: 'x', idempotent: true });
    expect(again.status).toBe(503);
    expect(a.seen.length + b.seen.length).toBe(1 + 3); // first try + 2 retries
    // A retry goes to the endpoint not tried yet: both saw the idempotent POST.
    expect(a.seen.length).toBeGreaterThanOrEqual(1);
    expect(b.seen.length).toBeGreaterThanOrEqual(1);
  });

  it('a GET answered with 503 is retried, and the last Response is returned (fetch semantics)', async () => {
    let n = 0;
    const a = await backend((_req, res) => res.writeHead(503, { 'x-n': String(++n) }).end());
    const m = mesh({ registry: staticRegistry({ api: [a.address] }), defaults: retryOnly });
    const res = await m.fetch('http://api/x');
    expect(res.status).toBe(503);
    expect(res.headers.get('x-n')).toBe('3');
    expect(a.seen.length).toBe(3);
  });

  it('a stream body is never replayed, even when the connection was refused', async () => {
    const live = await backend();
    const refused = await refusedAddress();
    const m = mesh({
      registry: staticRegistry({ api: [refused, live.address] }),
      defaults: { balancer: 'round-robin', ...retryOnly },
      random: () => 0,
    });
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('chunk'));
        c.close();
      },
    });
    const err = await m
      .fetch('http://api/upload', { method: 'PUT', body, duplex: 'half' } as RequestInit)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallFailedError);
    expect((err as CallFailedError).attempts).toHaveLength(1);
    expect(live.seen).toHaveLength(0);
  });

  it("a caller's abort during the backoff rejects at once, and no further attempt reaches a server", async () => {
    const a = await backend((_req, res) => res.writeHead(503).end());
    const m = mesh({
      registry: staticRegistry({ api: [a.address] }),
      defaults: { retry: { retries: 5, minDelayMs: 2_000, maxDelayMs: 2_000, jitter: false } },
    });
    const controller = new AbortController();
    let retried!: () => void;
    const retryScheduled = new Promise<void>((r) => (retried = r));
    m.on('retry', () => retried());
    const call = m.fetch('http://api/x', { signal: controller.signal });
    await retryScheduled; // the first attempt failed and the 2 s backoff sleep has begun
    const reason = new Error('caller gave up');
    const t0 = performance.now();
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
    expect(performance.now() - t0).toBeLessThan(1_000); // 2 s backoff not waited for (bound is 10x loose)
    await new Promise((r) => setTimeout(r, 50));
    expect(a.seen).toHaveLength(1);
  });

  it('a caller abort during an attempt rejects with the reason and aborts the attempt signal', async () => {
    const a = await backend(() => {
      /* never answers */
    });
    const m = mesh({ registry: staticRegistry({ api: [a.address] }) });
    const controller = new AbortController();
    let seenSignal: AbortSignal | undefined;
    let started!: () => void;
    const attemptStarted = new Promise<void>((r) => (started = r));
    const call = m.call(
      'api',
      (_ep, ctx) => {
        seenSignal = ctx.signal;
        started();
        return new Promise(() => {});
      },
      { signal: controller.signal },
    );
    await attemptStarted;
    controller.abort('stop');
    await expect(call).rejects.toBe('stop');
    expect(seenSignal?.aborted).toBe(true);
  });
});
