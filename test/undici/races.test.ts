// The undici path under races and edge cases found in review: a caller that aborts while its response is being
// handed over, a success the call still fails, informational heads, a closed dispatcher with calls retrying, a
// caller waiting in the bulkhead, the caller's pause over a held body, clients for removed endpoints, and a
// retired service's fetch dispatcher. Real node:http backends on 127.0.0.1.
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { endpointClients, staticRegistry, type Mesh } from '../../src/index.js';
import { meshDispatcher } from '../../src/undici.js';
import { until } from '../helpers/process-guard.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();
const retryOnly = { retry: { minDelayMs: 1, maxDelayMs: 5 }, breaker: false, outlier: false } as const;
/** A short real wait, to show that nothing more happens (bounded; the conditions are polled where they can be). */
const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `size`-byte chunks every `everyMs` until the client goes away; `closed` says when it has. */
function endless(res: import('node:http').ServerResponse, size: number, everyMs: number, seen: { closed: boolean }): void {
  const timer = setInterval(() => res.write('x'.repeat(size)), everyMs);
  res.on('close', () => {
    clearInterval(timer);
    seen.closed = true;
  });
}

type Log = string[];
/** A legacy-API handler that records its callbacks; `onHeaders` may call its abort. */
function recorder(log: Log, abortInHeaders?: Error): Record<string, unknown> {
  let abort: ((e?: unknown) => void) | undefined;
  return {
    onConnect: (a: (e?: unknown) => void) => {
      abort = a;
    },
    onHeaders: () => {
      log.push('headers');
      if (abortInHeaders) abort?.(abortInHeaders);
      return true;
    },
    onData: () => {
      log.push('data');
      return true;
    },
    onComplete: () => log.push('complete'),
    onError: () => log.push('error'),
  };
}

/** A caller that aborts inside onHeaders hears onError and nothing else, and the backend sees the connection end. */
async function expectAbortInHeadersToEnd(m: Mesh, upstream: { closed: boolean }): Promise<void> {
  await m.warmup(['users']);
  const log: Log = [];
  meshDispatcher(m).dispatch({ origin: 'http://users', path: '/', method: 'GET' }, recorder(log, new Error('enough')) as never);
  await until(() => log.includes('error'), 2_000, 'onError');
  await until(() => upstream.closed, 2_000, 'the backend to see the connection end');
  await settle(50);
  expect(log).toEqual(['headers', 'error']);
}

describe('the undici path: races and edge cases', () => {
  it('an abort inside onHeaders gives onError and nothing else, and ends the upstream', async () => {
    const upstream = { closed: false };
    const b = await backend((_req, res) => {
      res.writeHead(200);
      res.write('a');
      endless(res, 1024, 5, upstream);
    });
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    await expectAbortInHeadersToEnd(m, upstream);
  });

  it('the same on the retry path: an abort in onHeaders of the retried 200 ends it, and the caller hears onError only', async () => {
    let n = 0;
    const upstream = { closed: false };
    const b = await backend((_req, res) => {
      if (++n === 1) return void res.writeHead(503).end('no');
      res.writeHead(200);
      endless(res, 16_384, 2, upstream);
    });
    const m = mesh({ registry: staticRegistry({ users: [b.address] }), defaults: { ...retryOnly, timeout: { attemptMs: 1_000, totalMs: 5_000 } } });
    await expectAbortInHeadersToEnd(m, upstream);
  });

  it('body.destroy() right after request() ends the upstream (hedge policy: a longer promise chain)', async () => {
    const upstream = { closed: false };
    const b = await backend((_req, res) => {
      res.writeHead(200);
      endless(res, 1024, 5, upstream);
    });
    const m = mesh({
      registry: staticRegistry({ users: [b.address] }),
      defaults: { hedge: { delayMs: 5_000, maxAttempts: 2 }, timeout: { attemptMs: 1_000, totalMs: 10_000 } },
    });
    await m.warmup(['users']);
    const { body } = await request('http://users/s', { dispatcher: meshDispatcher(m) });
    body.on('error', () => {});
    body.destroy();
    await until(() => upstream.closed, 3_000, 'the backend to see the connection end');
  });

  it('a 103 Early Hints head decides nothing: the 503 after it is retried', async () => {
    const bad = await backend((_req, res) => {
      res.writeEarlyHints({ link: '</a.css>; rel=preload' });
      setTimeout(() => res.writeHead(503).end('no'), 20);
    });
    const good = await backend((_req, res) => res.end('fine'));
    const m = mesh({ registry: staticRegistry({ users: [bad.address, good.address] }), defaults: { balancer: 'round-robin', ...retryOnly }, random: () => 0 });
    const { statusCode, body } = await request('http://users/x', { dispatcher: meshDispatcher(m) });
    expect([statusCode, await body.text()]).toEqual([200, 'fine']);
    expect(bad.seen).toHaveLength(1);
  });

  it('destroy() on the dispatcher: a call waiting to retry sends nothing more and leaves no pool', async () => {
    const b = await backend((_req, res) => res.writeHead(503).end('no'));
    const m = mesh({
      registry: staticRegistry({ users: [b.address] }),
      defaults: { retry: { retries: 2, minDelayMs: 200, maxDelayMs: 200, jitter: false, budget: false }, breaker: false, outlier: false },
    });
    const d = meshDispatcher(m);
    const pending = request('http://users/x', { dispatcher: d }).catch((e: unknown) => e);
    await until(() => b.seen.length === 1, 2_000, 'the first attempt');
    await d.destroy();
    await pending;
    expect(b.seen).toHaveLength(1);
    expect(d.poolCount).toBe(0);
  });

  it('an abort while waiting in the bulkhead queue rejects at once', async () => {
    const b = await backend((_req, res) => setTimeout(() => res.end('ok'), 1_000).unref());
    const m = mesh({ registry: staticRegistry({ users: [b.address] }), defaults: { maxConcurrent: 1, maxQueued: 5, retry: false } });
    await m.warmup(['users']);
    const d = meshDispatcher(m);
    const first = request('http://users/a', { dispatcher: d }).then((r) => r.body.text());
    await until(() => b.seen.length === 1, 2_000, 'the first request');
    const controller = new AbortController();
    const second = request('http://users/b', { dispatcher: d, signal: controller.signal }).catch((e: unknown) => e);
    await settle(20);
    const at = performance.now();
    controller.abort(new Error('no longer needed'));
    expect(String(((await second) as Error).message)).toMatch(/no longer needed/);
    expect(performance.now() - at).toBeLessThan(300);
    expect(await first).toBe('ok');
    expect(b.seen).toHaveLength(1);
  });

  it("a held response honours the caller's pause when it is handed over", async () => {
    const big = Buffer.alloc(200 * 1024, 'x');
    const b = await backend((_req, res) => res.writeHead(503, { 'content-length': String(big.length) }).end(big));
    const m = mesh({ registry: staticRegistry({ users: [b.address] }), defaults: { retry: false, breaker: false, outlier: false } });
    let data = 0;
    let resume: (() => void) | undefined;
    let completed = false;
    meshDispatcher(m).dispatch({ origin: 'http://users', path: '/', method: 'GET' }, {
      onConnect: () => {},
      onHeaders: (_s: number, _h: unknown, r: () => void) => {
        resume = r;
        return false; // pause at once
      },
      onData: () => {
        data++;
        return true;
      },
      onComplete: () => {
        completed = true;
      },
      onError: () => {},
    } as never);
    await until(() => resume !== undefined, 2_000, 'the head');
    await settle(100);
    expect(data).toBe(0);
    resume!();
    await until(() => completed, 2_000, 'the body after resume');
    expect(data).toBeGreaterThan(0);
  });

  it("retiring an idle service lets a body still streaming through its fetch dispatcher finish", async () => {
    const b = await backend((_req, res) => {
      res.writeHead(200);
      res.write('first,');
      setTimeout(() => res.end('last'), 200);
    });
    const m = mesh({
      registry: staticRegistry({ a: [b.address], b: [b.address] }),
      discovery: { maxServices: 1 },
      services: { a: { host: 'service' } },
    });
    const res = await m.fetch('http://a/slow');
    const text = res.text();
    await (await m.fetch('http://b/other')).text(); // retires 'a', whose call is over but whose body streams
    expect(await text).toBe('first,last');
  });

  it('endpointClients makes no client for an endpoint discovery has removed', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:1001', '127.0.0.1:1002'] });
    const m = mesh({ registry });
    await m.warmup(['users']);
    const made: string[] = [];
    const clients = endpointClients(m, 'users', (ep) => (made.push(ep.id), { id: ep.id }), () => {});
    const gone = m.snapshot().services.users!.endpoints.find((e) => e.id === '127.0.0.1:1002')!;
    registry.set('users', ['127.0.0.1:1001']);
    await until(() => m.snapshot().services.users!.endpoints.length === 1, 2_000, 'the update');
    expect(() => clients.get({ ...gone, weight: 1 } as never)).toThrow(/removed by discovery/);
    expect(made).toEqual([]);
    expect(clients.size).toBe(0);
  });
});
