import { afterEach, describe, expect, it } from 'vitest';
import {
  createMesh,
  DiscoveryError,
  NoEndpointsError,
  seededRng,
  staticRegistry,
  type Mesh,
  type MeshEvents,
  type MeshOptions,
  type Registry,
} from '../../src/index.js';
import { flush, manualClock, memoryRegistry, type ManualClock } from './fakes.js';

const port = (ep: { port: number }): number => ep.port;

const meshes: Mesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

function mesh(registry: Registry, extra: Partial<MeshOptions> = {}): { mesh: Mesh; clock: ManualClock } {
  const clock = manualClock();
  const m = createMesh({
    registry,
    clock,
    random: seededRng(7),
    defaults: { balancer: 'round-robin', retry: false },
    ...extra,
  });
  meshes.push(m);
  return { mesh: m, clock };
}

/** Ports answered by `n` calls. */
async function ports(m: Mesh, service: string, n: number): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) seen.add(await m.call(service, port));
  return seen;
}

function endpointIds(list: readonly { id: string }[]): string[] {
  return list.map((e) => e.id).sort();
}

describe('discovery through the mesh', () => {
  it('registry.set() changes the endpoints of the next call, without waiting for a TTL', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081', '127.0.0.1:8082'] });
    const { mesh: m } = mesh(registry);
    expect(await ports(m, 'users', 4)).toEqual(new Set([8081, 8082]));
    registry.set('users', ['127.0.0.1:9000']);
    expect(await ports(m, 'users', 4)).toEqual(new Set([9000]));
    registry.set('users', ['127.0.0.1:9001', '127.0.0.1:9002']);
    expect(await ports(m, 'users', 4)).toEqual(new Set([9001, 9002]));
  });

  it('emits discovery-update with the list, added and removed', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081', '127.0.0.1:8082'] });
    const { mesh: m } = mesh(registry);
    const updates: MeshEvents['discovery-update'][] = [];
    m.on('discovery-update', (e) => updates.push(e));

    await m.call('users', port);
    expect(updates).toHaveLength(1);
    expect(updates[0]!.service).toBe('users');
    expect(endpointIds(updates[0]!.endpoints)).toEqual(['127.0.0.1:8081', '127.0.0.1:8082']);
    expect(endpointIds(updates[0]!.added)).toEqual(['127.0.0.1:8081', '127.0.0.1:8082']);
    expect(updates[0]!.removed).toEqual([]);

    registry.set('users', ['127.0.0.1:8082', '127.0.0.1:8083']);
    expect(updates).toHaveLength(2);
    expect(endpointIds(updates[1]!.endpoints)).toEqual(['127.0.0.1:8082', '127.0.0.1:8083']);
    expect(endpointIds(updates[1]!.added)).toEqual(['127.0.0.1:8083']);
    expect(endpointIds(updates[1]!.removed)).toEqual(['127.0.0.1:8081']);
  });

  it('an endpoint that stays keeps its snapshot counters across an update', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081', '127.0.0.1:8082'] });
    const { mesh: m } = mesh(registry);
    for (let i = 0; i < 6; i++) await m.call('users', port);
    const before = m.snapshot().services.users!.endpoints.find((e) => e.id === '127.0.0.1:8081')!;
    expect(before.requests).toBeGreaterThan(0);

    registry.set('users', ['127.0.0.1:8081', '127.0.0.1:8083']);
    const after = m.snapshot().services.users!.endpoints;
    expect(after.map((e) => e.id)).toEqual(['127.0.0.1:8081', '127.0.0.1:8083']);
    expect(after[0]!.requests).toBe(before.requests);
    expect(after[0]!.successes).toBe(before.successes);
    expect(after[0]!.ewmaMs).toBe(before.ewmaMs);
    expect(after[1]!.requests).toBe(0);
  });

  it('a registry that starts failing after the first success: calls keep succeeding on the stale list, and discovery-error says stale: true', async () => {
    const mem = memoryRegistry({ watch: false, initial: { users: ['127.0.0.1:8081', '127.0.0.1:8082'] } });
    const { mesh: m, clock } = mesh(mem.registry, { discovery: { refreshMs: 1_000 } });
    const errors: MeshEvents['discovery-error'][] = [];
    m.on('discovery-error', (e) => errors.push(e));

    expect(await ports(m, 'users', 2)).toEqual(new Set([8081, 8082]));
    mem.fail(new Error('registry is down'));
    clock.advance(1_001);

    // The stale list serves at once; the refresh fails in the background.
    expect(await ports(m, 'users', 4)).toEqual(new Set([8081, 8082]));
    await flush();
    expect(mem.resolveCount('users')).toBe(2);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.service).toBe('users');
    expect(errors[0]!.stale).toBe(true);
    expect(errors[0]!.error).toBeInstanceOf(DiscoveryError);
    expect(errors[0]!.error.message).toMatch(/registry is down/);

    // Still failing much later: still serving, still reporting (once per retry, not per call).
    clock.advance(60_000);
    expect(await ports(m, 'users', 10)).toEqual(new Set([8081, 8082]));
    await flush();
    expect(errors.length).toBe(2);
    expect(errors.every((e) => e.stale)).toBe(true);

    // Recovery: the next refresh brings the new list.
    mem.recover();
    mem.set('users', ['127.0.0.1:9000']);
    clock.advance(60_000);
    await m.call('users', port);
    await flush();
    expect(await ports(m, 'users', 3)).toEqual(new Set([9000]));
  });

  it('a watching registry whose watch fails keeps serving, and discovery-error says stale: true', async () => {
    const mem = memoryRegistry({ watch: true, initial: { users: ['127.0.0.1:8081'] } });
    const { mesh: m } = mesh(mem.registry);
    const errors: MeshEvents['discovery-error'][] = [];
    m.on('discovery-error', (e) => errors.push(e));
    await m.call('users', port);
    mem.fail(new Error('watch stream broke'));
    expect(errors.map((e) => [e.service, e.stale])).toEqual([['users', true]]);
    expect(await m.call('users', port)).toBe(8081);
  });

  it('a registry that fails from the start gives DiscoveryError (EDISCOVERY) and discovery-error with stale: false', async () => {
    const registry: Registry = {
      resolve: async () => {
        throw new Error('connection refused');
      },
    };
    const { mesh: m } = mesh(registry);
    const errors: MeshEvents['discovery-error'][] = [];
    m.on('discovery-error', (e) => errors.push(e));
    const error = await m.call('users', port).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as DiscoveryError).code).toBe('EDISCOVERY');
    expect((error as DiscoveryError).service).toBe('users');
    expect((error as Error).message).toMatch(/connection refused/);
    expect(errors.map((e) => [e.service, e.stale])).toEqual([['users', false]]);
  });

  it('an unknown service in staticRegistry gives NoEndpointsError (ENOENDPOINTS)', async () => {
    const { mesh: m } = mesh(staticRegistry({ users: ['127.0.0.1:8081'] }));
    const error = await m.call('orders', port).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoEndpointsError);
    expect((error as NoEndpointsError).code).toBe('ENOENDPOINTS');
  });

  it('an unknown service that later appears in staticRegistry is served at once', async () => {
    const registry = staticRegistry({});
    const { mesh: m } = mesh(registry);
    await expect(m.call('orders', port)).rejects.toBeInstanceOf(NoEndpointsError);
    registry.set('orders', ['127.0.0.1:7000']);
    expect(await m.call('orders', port)).toBe(7000);
  });

  it('concurrent first calls share one resolve()', async () => {
    const mem = memoryRegistry({ watch: false, initial: { users: ['127.0.0.1:8081'] } });
    const { mesh: m } = mesh(mem.registry);
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => m.call('users', port)));
    expect(results).toEqual([8081, 8081, 8081, 8081, 8081]);
    expect(mem.resolveCount('users')).toBe(1);
  });

  it('without watch, a new list arrives after refreshMs (stale served meanwhile)', async () => {
    const mem = memoryRegistry({ watch: false, initial: { users: ['127.0.0.1:8081'] } });
    const { mesh: m, clock } = mesh(mem.registry, { discovery: { refreshMs: 1_000 } });
    expect(await m.call('users', port)).toBe(8081);
    mem.set('users', ['127.0.0.1:9000']);
    clock.advance(999);
    expect(await m.call('users', port)).toBe(8081);
    expect(mem.resolveCount()).toBe(1);
    clock.advance(2);
    expect(await m.call('users', port)).toBe(8081); // stale, while the refresh runs
    await flush();
    expect(await m.call('users', port)).toBe(9000);
    expect(mem.resolveCount()).toBe(2);
  });

  it('mesh.close() stops the watches', async () => {
    const mem = memoryRegistry({ watch: true, initial: { users: ['127.0.0.1:8081'], orders: ['127.0.0.1:7000'] } });
    const { mesh: m } = mesh(mem.registry);
    await m.call('users', port);
    await m.call('orders', port);
    expect(mem.watches).toHaveLength(2);
    await m.close();
    expect(mem.watches).toHaveLength(0);
    for (const w of mem.allWatches) expect(w.unsubscribe).toHaveBeenCalledTimes(1);
  });

  it('a weight change through set() reaches the balancer', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081', '127.0.0.1:8082'] });
    const { mesh: m } = mesh(registry);
    await m.call('users', port);
    registry.set('users', [{ host: '127.0.0.1', port: 8081, weight: 3 }, '127.0.0.1:8082']);
    const counts = new Map<number, number>();
    for (let i = 0; i < 40; i++) {
      const p = await m.call('users', port);
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    expect(counts.get(8081)).toBe(30);
    expect(counts.get(8082)).toBe(10);
    expect(m.snapshot().services.users!.endpoints.map((e) => e.weight)).toEqual([3, 1]);
  });
});
