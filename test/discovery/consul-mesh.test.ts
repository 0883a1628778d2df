import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { consulRegistry, type ConsulRegistryOptions } from '../../src/discovery/consul.js';
import { createMesh, DiscoveryError, type Mesh, type MeshEvents, type MeshOptions } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { startConsulDouble, waitUntil, type ConsulDouble } from '../helpers/consul-double.js';

const TOKEN = 'b1946ac9-2492-4e5f-8a3c-0d2f3c4b5a69';
let consul: ConsulDouble;
let backends: Backend[];
const meshes: Mesh[] = [];

beforeEach(async () => {
  consul = await startConsulDouble({ token: TOKEN });
  backends = await Promise.all([
    startBackend((_req, res) => res.end('a')),
    startBackend((_req, res) => res.writeHead(503).end('b unavailable')),
    startBackend((_req, res) => void setTimeout(() => res.end('c'), 60)),
  ]);
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(backends.map((b) => b.close()));
  await consul.close();
});

function registry(options: ConsulRegistryOptions = {}) {
  return consulRegistry({ url: consul.url, token: TOKEN, env: {}, waitMs: 2_000, backoff: { initialMs: 50, maxMs: 200 }, ...options });
}
function mesh(options: Partial<MeshOptions> = {}): Mesh {
  const m = createMesh({ registry: registry(), defaults: { balancer: 'round-robin', retry: false, outlier: false }, ...options });
  meshes.push(m);
  return m;
}
const instances = (...which: number[]) => which.map((i) => ({ id: 'abc'[i]!, port: backends[i]!.port }));
const seen = (i: number): number => backends[i]!.seen.length;
async function calls(m: Mesh, n: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < n; i++) bodies.push(await (await m.fetch('http://api/')).text());
  return bodies;
}

describe('Consul discovery through the mesh', () => {
  it('keeps the EWMA, counters and breaker state of the endpoints that stay; a new one starts fresh', async () => {
    consul.setInstances('api', instances(0, 1, 2));
    const m = mesh({ defaults: { balancer: 'round-robin', retry: false, outlier: false, breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 } } });
    const updates: MeshEvents['discovery-update'][] = [];
    m.on('discovery-update', (u) => updates.push(u));
    await calls(m, 9);
    const before = Object.fromEntries(m.snapshot().services.api!.endpoints.map((e) => [e.id, e]));
    expect(Object.keys(before).sort()).toEqual(['a@node-1', 'b@node-1', 'c@node-1']);
    expect(before['b@node-1']!.breaker).toBe('open');
    expect(before['c@node-1']!.ewmaMs).toBeGreaterThan(50); // 60 ms answers; the unmeasured default is 30

    consul.setCheckStatus('service:a', 'critical');
    await waitUntil(() => expect(updates.at(-1)?.removed.map((e) => e.id)).toEqual(['a@node-1']));
    const after = Object.fromEntries(m.snapshot().services.api!.endpoints.map((e) => [e.id, e]));
    expect(Object.keys(after).sort()).toEqual(['b@node-1', 'c@node-1']);
    expect(after['b@node-1']).toMatchObject({ breaker: 'open', requests: before['b@node-1']!.requests, failures: before['b@node-1']!.failures });
    expect(after['c@node-1']!.requests).toBe(before['c@node-1']!.requests);
    expect(after['c@node-1']!.ewmaMs).toBeGreaterThan(before['c@node-1']!.ewmaMs * 0.8); // decayed a little, not reset

    // b's breaker is still open, a is gone: only c answers now
    expect(new Set(await calls(m, 4))).toEqual(new Set(['c']));

    // a comes back: a fresh endpoint, the others untouched
    consul.setCheckStatus('service:a', 'passing');
    await waitUntil(() => expect(updates.at(-1)?.added.map((e) => e.id)).toEqual(['a@node-1']));
    const back = Object.fromEntries(m.snapshot().services.api!.endpoints.map((e) => [e.id, e]));
    expect(back['a@node-1']).toMatchObject({ requests: 0, breaker: 'closed' });
    expect(back['b@node-1']!.breaker).toBe('open');
    expect(back['c@node-1']!.requests).toBe(before['c@node-1']!.requests + 4);
  });

  it('an instance that turns critical stops getting traffic within 100 ms, without waiting for wait', async () => {
    consul.setInstances('api', instances(0, 2));
    const m = mesh({ defaults: { balancer: 'round-robin', retry: false, outlier: false, breaker: false } });
    await calls(m, 2);
    await waitUntil(() => expect(consul.held()).toBe(1));
    const changed = performance.now();
    consul.setCheckStatus('service:c', 'critical');
    let stopped: number | undefined;
    for (let i = 0; i < 200 && stopped === undefined; i++) {
      const count = seen(2);
      await Promise.all([m.fetch('http://api/'), m.fetch('http://api/'), m.fetch('http://api/')]);
      if (seen(2) === count && m.snapshot().services.api!.endpoints.length === 1) stopped = performance.now() - changed;
    }
    expect(stopped).toBeDefined();
    expect(stopped!).toBeLessThan(100 + 60); // + one in-flight answer of c (60 ms) at most
  });

  it('stale-on-error: while Consul fails, calls keep working and discovery-error says stale; then changes flow again', async () => {
    consul.setInstances('api', instances(0, 2));
    const m = mesh();
    const errors: MeshEvents['discovery-error'][] = [];
    m.on('discovery-error', (e) => errors.push(e));
    expect(new Set(await calls(m, 4))).toEqual(new Set(['a', 'c']));

    consul.respondWith(500, 'No cluster leader');
    await waitUntil(() => expect(errors.length).toBeGreaterThan(0));
    expect(errors[0]).toMatchObject({ service: 'api', stale: true });
    expect(errors[0]!.error).toBeInstanceOf(DiscoveryError);
    expect(errors[0]!.error.message).toContain('500');
    expect(errors[0]!.error.message).toContain('No cluster leader');
    expect(new Set(await calls(m, 4))).toEqual(new Set(['a', 'c']));

    consul.respondNormally();
    consul.setInstances('api', instances(0));
    await waitUntil(async () => expect(new Set(await calls(m, 3))).toEqual(new Set(['a'])));
  });

  it('the first call while Consul fails rejects with DiscoveryError (nothing cached)', async () => {
    consul.respondWith(403, 'ACL not found');
    const m = mesh();
    const errors: MeshEvents['discovery-error'][] = [];
    m.on('discovery-error', (e) => errors.push(e));
    const e = await m.fetch('http://api/').catch((error: unknown) => error);
    expect(e).toBeInstanceOf(DiscoveryError);
    expect((e as Error).message).toMatch(/403 .*ACL not found/);
    expect(errors.map((x) => x.stale)).toEqual([false]);
  });

  it('the token appears in no event, error or snapshot, even when Consul echoes it', async () => {
    consul.setInstances('api', instances(0));
    const m = mesh();
    const events: unknown[] = [];
    m.on('discovery-error', (e) => events.push(e));
    m.on('discovery-update', (e) => events.push(e));
    await calls(m, 1);
    consul.respondWith(500, (token) => `rpc error making call: token ${token} rejected`);
    await waitUntil(() => expect(events.length).toBeGreaterThan(1));
    const text = [
      ...events.map((e) => JSON.stringify(e, (_k, v: unknown) => (v instanceof Error ? { message: v.message, stack: v.stack, cause: v.cause } : v))),
      JSON.stringify(m.snapshot()),
    ].join('\n');
    expect(text).toContain('[redacted]');
    expect(text).not.toContain(TOKEN);
  });

  it('meshes sharing one registry share its blocking query; closing one leaves the other watching', async () => {
    consul.setInstances('api', instances(0, 2));
    const shared = registry();
    const defaults = { balancer: 'round-robin', retry: false, outlier: false } as const;
    const one = createMesh({ registry: shared, defaults });
    const two = createMesh({ registry: shared, defaults });
    meshes.push(two);
    await calls(one, 2);
    await calls(two, 2);
    await waitUntil(() => expect(consul.held()).toBe(1));
    await one.close();
    consul.setInstances('api', instances(2));
    await waitUntil(async () => expect(new Set(await calls(two, 3))).toEqual(new Set(['c'])));
    await two.close();
    await waitUntil(() => expect(consul.held()).toBe(0));
    expect(shared.watchState('api')).toBeUndefined();
  });
});
