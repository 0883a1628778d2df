// Routes on the undici path (meshDispatcher), against real node:http backends on 127.0.0.1: a split and a match
// send to the right subset; a cold routed service waits for discovery before its backend is chosen, as
// mesh.call and mesh.fetch do (so a priority failover or an empty subset's share is right from the first
// request), and the caller's abort during that wait ends the dispatch, nothing sent; `host: 'service'` on a
// `{ service }` backend names that service; an abort fault fails the request and reaches no backend.
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { FaultInjectedError, seededRng, staticRegistry, type EndpointInput, type Registry } from '../../src/index.js';
import { meshDispatcher } from '../../src/undici.js';
import type { Backend } from '../helpers/backends.js';
import { until } from '../helpers/process-guard.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();
const quiet = { retry: false, breaker: false, outlier: false } as const;
/** A short real wait, to show that nothing more happens. */
const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const tagged = (b: Backend, ...tags: string[]): EndpointInput => ({ host: '127.0.0.1', port: b.port, tags });
const SUBSETS = { v1: { tags: ['v1'] }, v2: { tags: ['v2'] }, none: { tags: ['nobody-has-this'] } };

/** A registry whose every answer waits until `open()`: the service stays cold until then. */
function gated(map: Readonly<Record<string, readonly EndpointInput[]>>): { registry: Registry; open(): void; asked(): number } {
  const inner = staticRegistry(map);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let asked = 0;
  return {
    registry: {
      async resolve(service, ctx) {
        asked++;
        await gate;
        return inner.resolve(service, ctx);
      },
    },
    open: () => open(),
    asked: () => asked,
  };
}

type Log = string[];
/** A legacy-API handler that records its callbacks; it aborts with `abortInConnect` inside onConnect when given. */
function recorder(log: Log, abortInConnect?: Error): { handler: Record<string, unknown>; abort(reason: unknown): void; errors: unknown[] } {
  let abort: ((e?: unknown) => void) | undefined;
  const errors: unknown[] = [];
  return {
    handler: {
      onConnect: (a: (e?: unknown) => void) => {
        log.push('connect');
        abort = a;
        if (abortInConnect) a(abortInConnect);
      },
      onHeaders: () => (log.push('headers'), true),
      onData: () => (log.push('data'), true),
      onComplete: () => log.push('complete'),
      onError: (e: unknown) => {
        log.push('error');
        errors.push(e);
      },
    },
    abort: (reason) => abort?.(reason),
    errors,
  };
}

describe('routes through meshDispatcher', () => {
  it('a match and a weighted split send each request to the right subset', async () => {
    const [a1, a2, b1] = [await backend((_q, r) => r.end('v1')), await backend((_q, r) => r.end('v1')), await backend((_q, r) => r.end('v2'))];
    const m = mesh({
      registry: staticRegistry({ users: [tagged(a1, 'v1'), tagged(a2, 'v1'), tagged(b1, 'v2')] }),
      defaults: quiet,
      subsets: { users: SUBSETS },
      routes: {
        users: [
          { name: 'beta', match: [{ headers: { 'x-beta': 'yes' } }, { path: { prefix: '/v2' } }], backends: [{ subset: 'v2' }] },
          { name: 'split', backends: [{ subset: 'v1', weight: 80 }, { subset: 'v2', weight: 20 }] },
        ],
      },
      random: seededRng(7),
    });
    await m.warmup(['users']);
    const dispatcher = meshDispatcher(m);
    const get = async (path: string, headers?: Record<string, string>): Promise<string> => {
      const { statusCode, body } = await request(`http://users${path}`, { dispatcher, headers });
      expect(statusCode).toBe(200);
      return body.text();
    };
    for (let i = 0; i < 20; i++) expect(await get(`/x?i=${i}`, { 'X-Beta': 'yes' })).toBe('v2');
    for (let i = 0; i < 20; i++) expect(await get(`/v2/items?i=${i}`)).toBe('v2');
    await get('/v20'); // not the prefix /v2 (segment boundaries): the split takes it
    const n = 400;
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const s = await get(`/other?i=${i}`);
      counts[s] = (counts[s] ?? 0) + 1;
    }
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(n);
    const half = 3.29 * Math.sqrt(n * 0.2 * 0.8); // a 99.9 % binomial interval around 80
    expect(counts.v2).toBeGreaterThanOrEqual(n * 0.2 - half);
    expect(counts.v2).toBeLessThanOrEqual(n * 0.2 + half);
    expect(a1.seen.length).toBeGreaterThan(0);
    expect(a2.seen.length).toBeGreaterThan(0);
    const calls = (route: string) => m.snapshot().services.users!.routes.find((r) => r.name === route)!.backends.reduce((sum, b) => sum + b.calls, 0);
    expect([calls('beta'), calls('split')]).toEqual([40, n + 1]);
  });

  it("a priority failover route's very first request (cold) goes to priority 1 when priority 0's subset is empty", async () => {
    const b = await backend((_q, r) => r.end('v2'));
    const m = mesh({
      registry: staticRegistry({ users: [tagged(b, 'v2')] }),
      defaults: quiet,
      subsets: { users: SUBSETS },
      routes: { users: [{ name: 'failover', backends: [{ subset: 'v1' }, { subset: 'v2', priority: 1 }] }] },
    });
    const { statusCode, body } = await request('http://users/first', { dispatcher: meshDispatcher(m) }); // no warmup
    expect(statusCode).toBe(200);
    expect(await body.text()).toBe('v2');
    expect(b.seen.map((s) => s.url)).toEqual(['/first']);
  });

  it('the first requests of a cold split pass an empty subset share on, even sent all at once', async () => {
    const b = await backend((_q, r) => r.end('v2'));
    const m = mesh({
      registry: staticRegistry({ users: [tagged(b, 'v2')] }),
      defaults: quiet,
      subsets: { users: SUBSETS },
      routes: { users: [{ name: 'half-empty', backends: [{ subset: 'none', weight: 50 }, { subset: 'v2', weight: 50 }] }] },
      random: seededRng(3),
    });
    const dispatcher = meshDispatcher(m);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => request(`http://users/r${i}`, { dispatcher }).then(async (r) => `${r.statusCode} ${await r.body.text()}`, (e: unknown) => String(e))),
    );
    expect(results).toEqual(Array.from({ length: 20 }, () => '200 v2'));
    expect(b.seen).toHaveLength(20);
  });

  it("host: 'service' on a { service } backend sends that service's name as Host; the target's own policy decides", async () => {
    const hosts: string[] = [];
    const b = await backend((req, res) => {
      hosts.push(String(req.headers.host));
      res.end('ok');
    });
    const m = mesh({
      registry: staticRegistry({ users: [b.address], billing: [b.address], audit: [b.address] }),
      defaults: quiet,
      services: { billing: { host: 'service' }, users: { host: 'service' } },
      routes: {
        users: [
          { name: 'to-billing', match: [{ path: { prefix: '/billing' } }], backends: [{ service: 'billing' }] },
          { name: 'to-audit', match: [{ path: { prefix: '/audit' } }], backends: [{ service: 'audit' }] },
        ],
      },
    });
    await m.warmup(['users', 'billing', 'audit']);
    const dispatcher = meshDispatcher(m);
    for (const path of ['/billing/x', '/audit/x', '/other']) await (await request(`http://users${path}`, { dispatcher })).body.dump();
    // billing's policy says 'service': its name; audit's is the default: the endpoint; no route: users' own policy
    expect(hosts).toEqual(['billing', b.address, 'users']);
  });

  it('an abort fault fails the request with FaultInjectedError (EFAULT) and reaches no backend', async () => {
    const b = await backend();
    const m = mesh({
      registry: staticRegistry({ users: [b.address] }),
      defaults: quiet,
      routes: { users: [{ name: 'chaos', fault: { abort: { status: 503, percent: 100 } } }] },
    });
    const dispatcher = meshDispatcher(m);
    for (let i = 0; i < 3; i++) {
      // The first is cold (it waits for discovery), the others are not.
      const error = await request('http://users/x', { dispatcher }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(FaultInjectedError);
      expect(error).toMatchObject({ code: 'EFAULT', status: 503, route: 'chaos', service: 'users' });
    }
    expect(b.seen).toEqual([]);
  });
});

describe('a cold routed service: the wait for discovery', () => {
  const routed = (registry: Registry) =>
    mesh({ registry, defaults: quiet, subsets: { users: SUBSETS }, routes: { users: [{ name: 'v2-only', backends: [{ subset: 'v2' }] }] } });

  it('the caller is handed its abort at once; the request goes out once discovery answers', async () => {
    const b = await backend((_q, r) => r.end('v2'));
    const g = gated({ users: [tagged(b, 'v2')] });
    const log: Log = [];
    const r = recorder(log);
    expect(meshDispatcher(routed(g.registry)).dispatch({ origin: 'http://users', path: '/x', method: 'GET' }, r.handler as never)).toBe(true);
    expect(log).toEqual(['connect']); // synchronously, before anything is sent
    await until(() => g.asked() > 0, 2_000, 'discovery to be asked');
    await settle(30);
    expect(b.seen).toEqual([]);
    g.open();
    await until(() => log.includes('complete'), 2_000, 'the response');
    expect(log.filter((e) => e !== 'data')).toEqual(['connect', 'headers', 'complete']);
    expect(b.seen.map((s) => s.url)).toEqual(['/x']);
  });

  it("an abort during the wait ends the dispatch with the caller's abort at once, and nothing is sent after discovery answers", async () => {
    const b = await backend();
    const g = gated({ users: [tagged(b, 'v2')] });
    const dispatcher = meshDispatcher(routed(g.registry));
    const controller = new AbortController();
    const pending = request('http://users/x', { dispatcher, signal: controller.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await until(() => g.asked() > 0, 2_000, 'discovery to be asked');
    const reason = new Error('caller gave up');
    const at = performance.now();
    controller.abort(reason);
    const error = await pending;
    expect(performance.now() - at).toBeLessThan(500);
    expect(error).toBe(reason);

    // The same with a raw handler: it hears onError(reason), and nothing else, ever.
    const log: Log = [];
    const r = recorder(log);
    dispatcher.dispatch({ origin: 'http://users', path: '/y', method: 'GET' }, r.handler as never);
    const mine = new Error('mine');
    r.abort(mine);
    await until(() => log.includes('error'), 500, 'onError'); // discovery has still not answered
    expect(log).toEqual(['connect', 'error']);
    expect(r.errors).toEqual([mine]);

    g.open();
    await nothingFollows(b);
    expect(log).toEqual(['connect', 'error']);
    expect(b.seen).toEqual([]);
  });

  it('an abort inside onConnect, and a modern handler aborting by its controller, end the same way', async () => {
    const b = await backend();
    const g = gated({ users: [tagged(b, 'v2')] });
    const dispatcher = meshDispatcher(routed(g.registry));
    const log: Log = [];
    const inConnect = new Error('no thanks');
    const r = recorder(log, inConnect);
    dispatcher.dispatch({ origin: 'http://users', path: '/a', method: 'GET' }, r.handler as never);
    await until(() => log.includes('error'), 500, 'onError');
    expect(log).toEqual(['connect', 'error']);
    expect(r.errors).toEqual([inConnect]);

    const modern: string[] = [];
    const heard: unknown[] = [];
    let controller: { abort(reason: unknown): void } | undefined;
    dispatcher.dispatch({ origin: 'http://users', path: '/b', method: 'GET' }, {
      onRequestStart: (c: { abort(reason: unknown): void }) => {
        modern.push('start');
        controller = c;
      },
      onResponseStart: () => modern.push('response'),
      onResponseData: () => modern.push('data'),
      onResponseEnd: () => modern.push('end'),
      onResponseError: (_c: unknown, e: unknown) => {
        modern.push('error');
        heard.push(e);
      },
    } as never);
    expect(modern).toEqual(['start']);
    const stop = new Error('stop');
    controller!.abort(stop);
    await until(() => modern.includes('error'), 500, 'onResponseError');
    expect(modern).toEqual(['start', 'error']);
    expect(heard).toEqual([stop]);

    g.open();
    await nothingFollows(b);
    expect(log).toEqual(['connect', 'error']);
    expect(modern).toEqual(['start', 'error']);
    expect(b.seen).toEqual([]);
  });
});

/** Lets discovery's answer and whatever would follow it run: a request sent after it would have arrived by then. */
async function nothingFollows(b: Backend): Promise<void> {
  await settle(100);
  expect(b.seen).toEqual([]);
}
