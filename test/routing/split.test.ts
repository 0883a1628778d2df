import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, seededRng, staticRegistry, type Mesh, type MeshOptions, type RouteSpec } from '../../src/index.js';
import { parseExposition, value } from '../observe/exposition.js';

// No network: mesh.call's fn answers with the chosen endpoint's port, so where a call went is its result.
const V1 = [1001, 1002];
const V2 = [2001];
const OTHER = 3001;
const ENDPOINTS = [
  { host: '127.0.0.1', port: 1001, tags: ['v1'], meta: { version: '1' } },
  { host: '127.0.0.1', port: 1002, tags: ['v1'], meta: { version: '1' } },
  { host: '127.0.0.1', port: 2001, tags: ['v2'], meta: { version: '2' } },
];
const SUBSETS = {
  api: {
    v1: { tags: ['v1'] },
    v2: { meta: { version: '2' } },
    none: { tags: ['nobody-has-this'] },
  },
};

const open: Mesh[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()));
});

function mesh(routes: readonly RouteSpec[], extra: Partial<MeshOptions> = {}, seed = 7): Mesh {
  const m = createMesh({
    registry: staticRegistry({ api: ENDPOINTS, other: [`127.0.0.1:${OTHER}`] }),
    defaults: { retry: false, breaker: false, outlier: false },
    routes: { api: routes },
    subsets: SUBSETS,
    random: seededRng(seed),
    ...extra,
  });
  open.push(m);
  return m;
}

const port = (ep: { port: number }): number => ep.port;
const subsetOf = (p: number): string => (V1.includes(p) ? 'v1' : V2.includes(p) ? 'v2' : p === OTHER ? 'other' : `?${p}`);

async function tally(m: Mesh, n: number, route?: { path?: string; method?: string; headers?: Record<string, string> }): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const p = await m.call('api', port, route === undefined ? undefined : { route });
    const s = subsetOf(p);
    counts[s] = (counts[s] ?? 0) + 1;
  }
  return counts;
}

describe('weighted splits', () => {
  it('a 90/10 split over 2,000 calls lands inside a 99.9 % binomial interval', async () => {
    const m = mesh([{ name: 'canary', backends: [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }] }]);
    await m.warmup(['api']);
    const n = 2_000;
    const p = 0.1;
    const half = 3.29 * Math.sqrt(n * p * (1 - p)); // ≈ 44.1
    const counts = await tally(m, n);
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(n);
    expect(counts.v2).toBeGreaterThanOrEqual(n * p - half);
    expect(counts.v2).toBeLessThanOrEqual(n * p + half);
  });

  it('a weight of 0 gets nothing', async () => {
    const m = mesh([{ name: 'all-v1', backends: [{ subset: 'v1', weight: 1 }, { subset: 'v2', weight: 0 }] }]);
    await m.warmup(['api']);
    const counts = await tally(m, 500);
    expect(counts).toEqual({ v1: 500 });
  });

  it('a request no route matches goes to the whole service', async () => {
    const m = mesh([{ name: 'only-v2-path', match: [{ path: { prefix: '/v2' } }], backends: [{ subset: 'v2' }] }]);
    await m.warmup(['api']);
    const counts = await tally(m, 300, { path: '/other' });
    expect(counts.v2).toBeGreaterThan(0);
    expect(counts.v1).toBeGreaterThan(0);
    const seen: (string | undefined)[] = [];
    await m.call('api', (ep, ctx) => seen.push(ctx.route, ctx.backend === undefined ? 'none' : 'some'));
    expect(seen).toEqual([undefined, 'none']);
    expect(await tally(m, 50, { path: '/v2/x' })).toEqual({ v2: 50 });
  });
});

describe('route matching', () => {
  it('a header match beats the split: the first route that matches wins', async () => {
    const routes: RouteSpec[] = [
      { name: 'beta-users', match: [{ headers: { 'X-Beta': 'yes' } }], backends: [{ subset: 'v2' }] },
      { name: 'split', backends: [{ subset: 'v1', weight: 99 }, { subset: 'v2', weight: 1 }] },
    ];
    const m = mesh(routes);
    await m.warmup(['api']);
    expect(await tally(m, 200, { headers: { 'x-beta': 'yes' } })).toEqual({ v2: 200 });
    const rest = await tally(m, 200, { headers: { 'x-beta': 'no' } });
    expect(rest.v1).toBeGreaterThan(180);

    // Order matters: with the split first, it takes everything, the header included.
    const reversed = mesh([routes[1]!, routes[0]!]);
    await reversed.warmup(['api']);
    const r = await tally(reversed, 200, { headers: { 'x-beta': 'yes' } });
    expect(r.v1).toBeGreaterThan(180);
  });

  it('a path prefix matches on segment boundaries; exact, regex, method, header regex and query match too', async () => {
    const m = mesh([
      { name: 'exact', match: [{ path: { exact: '/exact' } }], backends: [{ subset: 'v2' }] },
      { name: 'prefix', match: [{ path: { prefix: '/v1' } }], backends: [{ subset: 'v2' }] },
      { name: 'regex', match: [{ path: { regex: '^/items/[0-9]+$' } }], backends: [{ subset: 'v2' }] },
      { name: 'method', match: [{ method: 'delete' }], backends: [{ subset: 'v2' }] },
      { name: 'hdr-regex', match: [{ headers: { 'x-tenant': { regex: '^acme-' } } }], backends: [{ subset: 'v2' }] },
      { name: 'query', match: [{ path: { exact: '/p' }, query: { x: '1' } }], backends: [{ subset: 'v2' }] },
      { name: 'rest', backends: [{ subset: 'v1' }] },
    ]);
    await m.warmup(['api']);
    const routeOf = (route: { path?: string; method?: string; headers?: Record<string, string> }) =>
      m.call('api', (_ep, ctx) => ctx.route, { route });
    const cases: [{ path?: string; method?: string; headers?: Record<string, string> }, string][] = [
      [{ path: '/exact' }, 'exact'],
      [{ path: '/exact/more' }, 'rest'],
      [{ path: '/v1' }, 'prefix'],
      [{ path: '/v1/x' }, 'prefix'],
      [{ path: '/v10' }, 'rest'],
      [{ path: '/v1x/y' }, 'rest'],
      [{ path: '/items/42' }, 'regex'],
      [{ path: '/items/42/sub' }, 'rest'],
      [{ path: '/any', method: 'DELETE' }, 'method'],
      [{ path: '/any', method: 'Delete' }, 'method'],
      [{ path: '/any', method: 'GET' }, 'rest'],
      [{ headers: { 'X-Tenant': 'acme-eu' } }, 'hdr-regex'],
      [{ headers: { 'x-tenant': 'not-acme-eu' } }, 'rest'],
      [{ path: '/p?x=1' }, 'query'],
      [{ path: '/p?y=2&x=1' }, 'query'],
      [{ path: '/p?x=2' }, 'rest'],
      [{ path: '/p' }, 'rest'],
      [{}, 'rest'],
    ];
    const got: string[] = [];
    for (const [route] of cases) got.push(String(await routeOf(route)));
    expect(got).toEqual(cases.map(([, name]) => name));
  });
});

describe('sticky splits', () => {
  it('with stickyHeader, every key stays on one backend across calls', async () => {
    const m = mesh([{ name: 'sticky', stickyHeader: 'X-User', backends: [{ subset: 'v1', weight: 50 }, { subset: 'v2', weight: 50 }] }]);
    await m.warmup(['api']);
    const byKey = new Map<string, Set<string>>();
    for (let u = 0; u < 200; u++) {
      for (let k = 0; k < 5; k++) {
        const p = await m.call('api', port, { route: { headers: { 'x-user': `user-${u}` } } });
        const set = byKey.get(`user-${u}`) ?? new Set();
        set.add(subsetOf(p));
        byKey.set(`user-${u}`, set);
      }
    }
    expect([...byKey.values()].filter((s) => s.size !== 1)).toEqual([]);
    const onV2 = [...byKey.values()].filter((s) => s.has('v2')).length;
    // Both backends get keys (a 50/50 split of 200 keys: far from either end).
    expect(onV2).toBeGreaterThan(50);
    expect(onV2).toBeLessThan(150);
  });

  it('without a stickyHeader value, the call hashKey keeps a key on one backend', async () => {
    const m = mesh([{ name: 'sticky', stickyHeader: 'x-user', backends: [{ subset: 'v1', weight: 50 }, { subset: 'v2', weight: 50 }] }]);
    await m.warmup(['api']);
    const byKey = new Map<string, Set<string>>();
    for (let u = 0; u < 200; u++) {
      for (let k = 0; k < 5; k++) {
        const p = await m.call('api', port, { hashKey: `key-${u}` });
        const set = byKey.get(`key-${u}`) ?? new Set();
        set.add(subsetOf(p));
        byKey.set(`key-${u}`, set);
      }
    }
    expect([...byKey.values()].filter((s) => s.size !== 1)).toEqual([]);
    const onV2 = [...byKey.values()].filter((s) => s.has('v2')).length;
    expect(onV2).toBeGreaterThan(50);
    expect(onV2).toBeLessThan(150);
  });
});

describe('backends without endpoints, priorities, other services', () => {
  it('a backend with no usable endpoint passes its share on', async () => {
    const m = mesh([{ name: 'half-empty', backends: [{ subset: 'v2', weight: 50 }, { subset: 'none', weight: 50 }] }]);
    await m.warmup(['api']);
    expect(await tally(m, 300)).toEqual({ v2: 300 });
  });

  it('a priority-1 backend gets traffic only when priority 0 has none', async () => {
    const registry = staticRegistry({ api: ENDPOINTS });
    const m = mesh([{ name: 'failover', backends: [{ subset: 'v1' }, { subset: 'v2', priority: 1 }] }], { registry });
    await m.warmup(['api']);
    expect(await tally(m, 200)).toEqual({ v1: 200 });
    // Every v1 endpoint leaves: priority 1 takes over.
    registry.set('api', ENDPOINTS.filter((e) => e.tags.includes('v2')));
    expect(await tally(m, 100)).toEqual({ v2: 100 });
    // v1 is back: priority 0 again.
    registry.set('api', ENDPOINTS);
    expect(await tally(m, 100)).toEqual({ v1: 100 });
  });

  it('a priority whose every backend has no endpoint passes to the next', async () => {
    const m = mesh([{ name: 'failover', backends: [{ subset: 'none' }, { subset: 'v2', priority: 1 }, { subset: 'v1', priority: 2 }] }]);
    await m.warmup(['api']);
    expect(await tally(m, 100)).toEqual({ v2: 100 });
  });

  it('the very first call (discovery not answered yet) of a failover route whose priority 0 has no endpoint goes to priority 1', async () => {
    const m = mesh([{ name: 'failover', backends: [{ subset: 'none' }, { subset: 'v2', priority: 1 }] }]);
    // No warmup: this call is what resolves `api`.
    expect(await m.call('api', port)).toBe(2001);
  });

  it('a backend { service } sends to that service, with its own endpoint list', async () => {
    const m = mesh([{ name: 'to-other', match: [{ path: { prefix: '/o' } }], backends: [{ service: 'other' }] }]);
    const seen: { port: number; service: string; route: string | undefined; backend: unknown }[] = [];
    for (let i = 0; i < 20; i++) {
      await m.call('api', (ep, ctx) => seen.push({ port: ep.port, service: ctx.service, route: ctx.route, backend: ctx.backend }), {
        route: { path: '/o/1' },
      });
    }
    expect(seen).toHaveLength(20);
    for (const s of seen) expect(s).toEqual({ port: OTHER, service: 'other', route: 'to-other', backend: { service: 'other' } });
    const snap = m.snapshot();
    const route = snap.services.api!.routes.find((r) => r.name === 'to-other');
    expect(route?.backends.find((b) => b.backend === 'service:other')?.calls).toBe(20);
  });
});

describe('what a routed call shows', () => {
  it('ctx.route and ctx.backend, route and backend on request and success events, the route label and the snapshot', async () => {
    const m = mesh([
      { name: 'beta', match: [{ headers: { 'x-beta': '1' } }], backends: [{ subset: 'v2' }] },
      { name: 'main', backends: [{ subset: 'v1' }] },
    ]);
    const requests: unknown[] = [];
    const successes: unknown[] = [];
    m.on('request', (e) => requests.push({ route: e.route, backend: e.backend, port: e.endpoint.port }));
    m.on('success', (e) => successes.push({ route: e.route, backend: e.backend, port: e.endpoint.port }));
    const ctxs: unknown[] = [];
    const fn = (ep: { port: number }, ctx: { route?: string | undefined; backend?: unknown }) => {
      ctxs.push({ route: ctx.route, backend: ctx.backend, port: ep.port });
      return ep.port;
    };
    for (let i = 0; i < 3; i++) await m.call('api', fn, { route: { headers: { 'x-beta': '1' } } });
    for (let i = 0; i < 5; i++) await m.call('api', fn);
    const beta = { route: 'beta', backend: { subset: 'v2' }, port: 2001 };
    expect(ctxs.slice(0, 3)).toEqual([beta, beta, beta]);
    for (const c of ctxs.slice(3)) expect(c).toMatchObject({ route: 'main', backend: { subset: 'v1' } });
    expect(requests).toEqual(ctxs);
    expect(successes).toEqual(ctxs);

    const families = parseExposition(m.metrics());
    expect(value(families, 'proxyless_route_requests_total', { service: 'api', route: 'beta', backend: 'v2', outcome: 'success' })).toBe(3);
    expect(value(families, 'proxyless_route_requests_total', { service: 'api', route: 'main', backend: 'v1', outcome: 'success' })).toBe(5);

    const routes = m.snapshot().services.api!.routes;
    const b = routes.find((r) => r.name === 'beta')!;
    const main = routes.find((r) => r.name === 'main')!;
    expect(b.backends).toEqual([expect.objectContaining({ backend: 'v2', weight: 1, calls: 3 })]);
    expect(b.backends[0]!.outcomes.success).toBe(3);
    expect(main.backends).toEqual([expect.objectContaining({ backend: 'v1', weight: 1, calls: 5 })]);
  });
});
