// Deadline propagation against real node:http backends on 127.0.0.1: with the `deadline` policy on, every attempt
// carries the time left (shrinking from attempt to attempt) on mesh.fetch, the undici dispatcher and the
// interceptor, and mesh.call's context carries it as grpcTimeout; a per-call `deadline` (from inboundDeadline)
// bounds the call; a spent one touches no backend. Real time, bounded waits.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { inboundDeadline, staticRegistry, TimeoutError } from '../../src/index.js';
import { meshDispatcher, meshInterceptor } from '../../src/undici.js';
import type { Backend } from '../helpers/backends.js';
import { testScope } from '../helpers/scope.js';
import { waitUntil } from '../helpers/wait-until.js';

const { backend, mesh } = testScope();
const HEADER = 'x-request-deadline-ms';
/** Retries with a visible backoff (>= 30 ms each), 3 attempts; breakers and ejection out of the way. */
const retrying = { retry: { retries: 2, minDelayMs: 30, maxDelayMs: 60 }, breaker: false, outlier: false, timeout: { totalMs: 2_000 } } as const;

/** Three 503 backends that record the deadline header of every request they get, in arrival order. */
async function failing(): Promise<{ seen: (string | undefined)[]; rawCounts: number[]; addresses: string[] }> {
  const seen: (string | undefined)[] = [];
  const rawCounts: number[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    seen.push(req.headers[HEADER] as string | undefined);
    rawCounts.push(req.rawHeaders.filter((_, i) => i % 2 === 0 && req.rawHeaders[i]!.toLowerCase() === HEADER).length);
    res.writeHead(503).end('unavailable');
  };
  const backends: Backend[] = [await backend(handler), await backend(handler), await backend(handler)];
  return { seen, rawCounts, addresses: backends.map((b) => b.address) };
}

function expectShrinking(seen: readonly (string | undefined)[], totalMs: number): void {
  expect(seen).toHaveLength(3);
  const values = seen.map(Number);
  for (const [i, text] of seen.entries()) {
    expect(text).toMatch(/^\d+$/);
    expect(values[i]).toBeLessThanOrEqual(totalMs);
    if (i > 0) expect(values[i]!).toBeLessThanOrEqual(values[i - 1]! - 25); // a backoff of >= 30 ms between
  }
  expect(values[0]).toBeGreaterThan(totalMs - 200);
}

describe('the deadline header, attempt by attempt', () => {
  it('mesh.fetch: each retry carries less time than the one before', async () => {
    const { seen, rawCounts, addresses } = await failing();
    const m = mesh({ registry: staticRegistry({ api: addresses }), defaults: { ...retrying, deadline: {} } });
    const res = await m.fetch('http://api/', { headers: { 'X-Request-Deadline-Ms': '999999', 'x-other': 'kept' } });
    expect(res.status).toBe(503);
    await res.text();
    expectShrinking(seen, 2_000);
    expect(rawCounts).toEqual([1, 1, 1]); // the caller's header was replaced, not repeated
  });

  it('mesh.fetch with a Request input: the same, and its other headers kept', async () => {
    let other: string | undefined;
    const b = await backend((req, res) => {
      other = req.headers['x-other'] as string;
      res.end(String(req.headers[HEADER]));
    });
    const m = mesh({ registry: staticRegistry({ api: [b.address] }), defaults: { deadline: { header: 'X-Request-Deadline-Ms' } } });
    const res = await m.fetch(new Request('http://api/', { headers: { 'x-other': 'kept', [HEADER]: '1' } }));
    const sent = Number(await res.text());
    expect(sent).toBeGreaterThan(29_000); // the default totalMs (30 s), not the caller's 1
    expect(other).toBe('kept');
  });

  it('the undici dispatcher: each retry carries less time than the one before', async () => {
    const { seen, rawCounts, addresses } = await failing();
    const m = mesh({ registry: staticRegistry({ api: addresses }), defaults: { ...retrying, deadline: {} } });
    const { statusCode, body } = await request('http://api/', { dispatcher: meshDispatcher(m), headers: { [HEADER]: '999999' } });
    expect(statusCode).toBe(503);
    await body.text();
    expectShrinking(seen, 2_000);
    expect(rawCounts).toEqual([1, 1, 1]);
  });

  it('the interceptor: the same', async () => {
    const { seen, addresses } = await failing();
    const m = mesh({ registry: staticRegistry({ api: addresses }), defaults: { ...retrying, deadline: {} } });
    const agent = new Agent();
    try {
      const { statusCode, body } = await request('http://api/', { dispatcher: agent.compose(meshInterceptor(m)) });
      expect(statusCode).toBe(503);
      await body.text();
      expectShrinking(seen, 2_000);
    } finally {
      await agent.close();
    }
  });

  it('with the policy off (the default) no header is sent, and a caller-set one goes through untouched', async () => {
    const seen: (string | undefined)[] = [];
    const b = await backend((req, res) => {
      seen.push(req.headers[HEADER] as string | undefined);
      res.end('ok');
    });
    const m = mesh({ registry: staticRegistry({ api: [b.address] }) });
    await (await m.fetch('http://api/')).text();
    await (await request('http://api/', { dispatcher: meshDispatcher(m) })).body.text();
    await (await m.fetch('http://api/', { headers: { [HEADER]: '7' } })).text();
    expect(seen).toEqual([undefined, undefined, '7']);
  });

  it("mesh.call: ctx.grpcTimeout shrinks from attempt to attempt with the policy on, and is undefined off", async () => {
    const on = mesh({ registry: staticRegistry({ api: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'] }), defaults: { ...retrying, deadline: {} } });
    const values: (string | undefined)[] = [];
    await expect(
      on.call('api', (_ep, ctx) => {
        values.push(ctx.grpcTimeout);
        throw new Error('try again');
      }, { idempotent: true }),
    ).rejects.toThrow();
    expect(values).toHaveLength(3);
    const ms = values.map((v) => {
      expect(v).toMatch(/^\d{1,8}m$/);
      return Number(v!.slice(0, -1));
    });
    expect(ms[0]).toBeLessThanOrEqual(2_000);
    expect(ms[1]!).toBeLessThan(ms[0]!);
    expect(ms[2]!).toBeLessThan(ms[1]!);

    const off = mesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }) });
    expect(await off.call('api', (_ep, ctx) => ctx.grpcTimeout)).toBeUndefined();
  });
});

describe('a per-call deadline', () => {
  let front: http.Server | undefined;
  afterEach(async () => {
    front?.closeAllConnections();
    await new Promise((resolve) => (front ? front.close(resolve) : resolve(undefined)));
    front = undefined;
  });

  it('an inbound deadline of 50 ms against a 200 ms backend fails in under 150 ms with TimeoutError', async () => {
    const seen: (string | undefined)[] = [];
    const slow = await backend((req, res) => {
      seen.push(req.headers[HEADER] as string | undefined);
      setTimeout(() => res.end('late'), 200);
    });
    const m = mesh({ registry: staticRegistry({ slow: [slow.address] }), defaults: { deadline: {} } });
    const outcome: { error?: unknown; ms?: number } = {};
    // The hop in the middle: a node:http server that calls on with the deadline it was given.
    front = http.createServer((req, res) => {
      const started = performance.now();
      m.fetch('http://slow/', { deadline: inboundDeadline(req) }).then(
        (r) => r.text().then((t) => res.end(t)),
        (error: unknown) => {
          outcome.error = error;
          outcome.ms = performance.now() - started;
          res.writeHead(504).end();
        },
      );
    });
    await new Promise<void>((resolve) => front!.listen(0, '127.0.0.1', resolve));
    const port = (front.address() as AddressInfo).port;
    const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { [HEADER]: '50' } });
    expect(res.status).toBe(504);
    await res.text();
    expect(outcome.error).toBeInstanceOf(TimeoutError);
    expect((outcome.error as TimeoutError).scope).toBe('total');
    expect(outcome.ms).toBeLessThan(150);
    expect(Number(seen[0])).toBeLessThanOrEqual(50); // and it told the backend so
  });

  it('a deadline later than totalMs leaves totalMs in force; without the policy the bound holds but no header is sent', async () => {
    const seen: (string | undefined)[] = [];
    const slow = await backend((req, res) => {
      seen.push(req.headers[HEADER] as string | undefined);
      setTimeout(() => res.end('late'), 300);
    });
    const m = mesh({ registry: staticRegistry({ slow: [slow.address] }), defaults: { retry: false, timeout: { totalMs: 60 } } });
    const started = performance.now();
    await expect(m.fetch('http://slow/', { deadline: Date.now() + 10_000 })).rejects.toBeInstanceOf(TimeoutError);
    expect(performance.now() - started).toBeLessThan(250);
    const again = performance.now();
    await expect(m.call('slow', () => new Promise(() => {}), { deadline: Date.now() + 40 })).rejects.toBeInstanceOf(TimeoutError);
    expect(performance.now() - again).toBeLessThan(200);
    await waitUntil(() => expect(seen).toHaveLength(1));
    expect(seen).toEqual([undefined]);
  });

  it("bounds a routed service's first wait for discovery too", async () => {
    // A registry that answers only when told: a cold service with routes waits for it before choosing a backend.
    let answer: (() => void) | undefined;
    const b = await backend();
    const registry = {
      resolve: () => new Promise<{ host: string; port: number; id: string; weight: number }[]>((resolve) => {
        answer = () => resolve([{ host: '127.0.0.1', port: b.port, id: b.address, weight: 1 }]);
      }),
    };
    const m = mesh({ registry: registry as never, routes: { api: [{ name: 'all', backends: [{ service: 'api' }] }] } });
    const started = performance.now();
    await expect(m.fetch('http://api/', { deadline: Date.now() + 50 })).rejects.toBeInstanceOf(TimeoutError);
    await expect(m.call('api', () => 'never', { deadline: Date.now() + 20 })).rejects.toBeInstanceOf(TimeoutError);
    expect(performance.now() - started).toBeLessThan(400);
    answer?.();
    expect(b.seen).toHaveLength(0);
  });

  it('a spent deadline touches no backend: mesh.fetch, mesh.call, and an inbound 0', async () => {
    const b = await backend();
    const m = mesh({ registry: staticRegistry({ api: [b.address] }), defaults: { deadline: {} } });
    const requests: unknown[] = [];
    m.on('request', (e) => requests.push(e));
    const spent = m.fetch('http://api/', { deadline: Date.now() - 1 });
    await expect(spent).rejects.toBeInstanceOf(TimeoutError);
    await expect(spent).rejects.toMatchObject({ scope: 'total' });
    let ran = false;
    await expect(m.call('api', () => (ran = true), { deadline: Date.now() })).rejects.toBeInstanceOf(TimeoutError);
    await expect(m.fetch('http://api/', { deadline: inboundDeadline({ headers: { [HEADER]: '0' } }) })).rejects.toBeInstanceOf(TimeoutError);
    expect(ran).toBe(false);
    expect(requests).toHaveLength(0);
    expect(b.seen).toHaveLength(0);
    // The mesh still works for a call with time left.
    expect((await m.fetch('http://api/', { deadline: Date.now() + 1_000 })).status).toBe(200);
  });
});
