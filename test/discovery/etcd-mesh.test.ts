// The acceptance of issue 12 for etcd, against the real binary (Debian etcd-server 3.4): registerEtcd and
// etcdRegistry with a mesh and node:http backends on 127.0.0.1. Skipped when etcd is missing, unless
// REQUIRE_ETCD=1 (CI), which fails instead.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { etcdRegistry, registerEtcd, type EtcdRegistration, type EtcdRegistryOptions } from '../../src/discovery/etcd/index.js';
import { createMesh, DiscoveryError, type Mesh, type MeshEvents } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { waitUntil } from '../helpers/consul-double.js';
import { spawnRegistrant, startEtcd, startEtcdProxy, type EtcdServer, type Registrant } from '../helpers/etcd-server.js';
import { describeWithEtcd } from '../helpers/etcd-suite.js';


describeWithEtcd('etcd discovery through the mesh (a real etcd)', () => {
  let etcd: EtcdServer;
  let prefix: string;
  let n = 0;
  const cleanup: (() => unknown)[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.close();
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  /** A backend that answers with its name, closed after the test. */
  async function backend(name: string): Promise<Backend> {
    const b = await startBackend((_req, res) => res.end(name));
    cleanup.push(() => b.close());
    return b;
  }
  async function register(b: Backend, id: string, ttlMs = 5_000): Promise<EtcdRegistration> {
    const r = await registerEtcd({ etcd: { endpoints: [etcd.url], prefix }, service: { name: 'users', id, address: '127.0.0.1', port: b.port }, ttlMs });
    cleanup.push(() => r.close().catch(() => {}));
    return r;
  }
  function mesh(options: EtcdRegistryOptions = {}): Mesh {
    prefix ??= '/never/';
    const registry = etcdRegistry({ endpoints: [etcd.url], prefix, backoff: { initialMs: 50, maxMs: 200 }, ...options });
    const m = createMesh({ registry, defaults: { balancer: 'round-robin', retry: false, outlier: false, breaker: false } });
    cleanup.push(() => m.close());
    return m;
  }
  async function call(m: Mesh): Promise<string> {
    const res = await m.fetch('http://users/');
    expect(res.status).toBe(200);
    return res.text();
  }
  async function calls(m: Mesh, count: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(await call(m));
    return out;
  }
  const ids = (m: Mesh): string[] => (m.snapshot().services.users?.endpoints ?? []).map((e) => e.id).sort();

  // A fresh prefix per test: the tests share one etcd, and nothing one writes may show in another.
  const fresh = (): void => void (prefix = `/mesh-${process.pid}-${++n}/`);

  it('calls reach every registered backend; after close(), none reach the closed one within 2 s', async () => {
    fresh();
    const [a, b, c] = await Promise.all([backend('a'), backend('b'), backend('c')]);
    const regs = [await register(a, 'a'), await register(b, 'b'), await register(c, 'c')];
    expect(regs.map((r) => r.key)).toEqual([`${prefix}users/a`, `${prefix}users/b`, `${prefix}users/c`]);
    const m = mesh();
    expect(new Set(await calls(m, 9))).toEqual(new Set(['a', 'b', 'c']));
    expect(ids(m)).toEqual(['a', 'b', 'c']);

    const closed = performance.now();
    await regs[1]!.close();
    // The watch pushes the delete: b leaves the mesh's list, then gets nothing more.
    await waitUntil(() => expect(ids(m)).toEqual(['a', 'c']), 2_000);
    const gone = performance.now() - closed;
    const before = b.seen.length;
    expect(new Set(await calls(m, 20))).toEqual(new Set(['a', 'c']));
    expect(b.seen.length).toBe(before);
    expect(gone).toBeLessThan(2_000);
    expect((await etcd.get(`${prefix}users/`)).has(`${prefix}users/b`)).toBe(false); // revoked at once, not left to expire
  });

  it('a registrant SIGKILLed without close() gets no calls once its TTL plus 1 s has passed', async () => {
    fresh();
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    await register(a, 'a');
    const ttlMs = 2_000;
    const child: Registrant = await spawnRegistrant({ url: etcd.url, prefix, service: { name: 'users', id: 'b', address: '127.0.0.1', port: b.port }, ttlMs });
    cleanup.push(() => child.kill());
    const m = mesh();
    await waitUntil(async () => expect(new Set(await calls(m, 4))).toEqual(new Set(['a', 'b'])), 3_000);

    await child.kill();
    const killed = performance.now();
    const limit = killed + ttlMs + 1_000;
    // Calls run until the mesh drops b (its lease ran out, etcd deleted the key, the watch said so); b may get
    // some until then. Bounded: the drop must come before the TTL plus 1 s (and a margin to notice it).
    while (ids(m).includes('b') && performance.now() < limit + 500) {
      await call(m);
      await new Promise((r) => setTimeout(r, 5));
    }
    const dropped = performance.now();
    expect(ids(m)).toEqual(['a']);
    expect(dropped, 'b was still in the list after its TTL plus 1 s').toBeLessThan(limit);
    const before = b.seen.length;
    await calls(m, 20);
    expect(b.seen.length, 'b was called after the mesh dropped it').toBe(before);
    expect((await etcd.get(`${prefix}users/`)).size).toBe(1);
  });

  it('while etcd is down calls keep succeeding and discovery-error fires; once it is back, changes are seen again', async () => {
    fresh();
    const [a, b, c] = await Promise.all([backend('a'), backend('b'), backend('c')]);
    const keepaliveErrors: Error[] = [];
    const regA = await registerEtcd({ etcd: { endpoints: [etcd.url], prefix }, service: { name: 'users', id: 'a', address: '127.0.0.1', port: a.port }, ttlMs: 30_000, onError: (e) => keepaliveErrors.push(e) });
    cleanup.push(() => regA.close().catch(() => {}));
    await register(b, 'b', 30_000);
    const m = mesh();
    const errors: MeshEvents['discovery-error'][] = [];
    m.on('discovery-error', (e) => errors.push(e));
    expect(new Set(await calls(m, 4))).toEqual(new Set(['a', 'b']));

    await etcd.stop('SIGKILL');
    try {
      await waitUntil(() => expect(errors.length).toBeGreaterThan(0), 3_000);
      expect(errors[0]).toMatchObject({ service: 'users', stale: true });
      expect(errors[0]!.error).toBeInstanceOf(DiscoveryError);
      expect(errors[0]!.error.message).toMatch(/etcd/);
      // The last good list serves: every call succeeds while etcd is gone.
      expect(new Set(await calls(m, 20))).toEqual(new Set(['a', 'b']));
    } finally {
      await etcd.start();
    }
    // The loop resumes from its revision; the registrations kept their leases (etcd keeps them across restarts).
    await register(c, 'c');
    await waitUntil(() => expect(ids(m)).toEqual(['a', 'b', 'c']), 5_000);
    expect(new Set(await calls(m, 9))).toEqual(new Set(['a', 'b', 'c']));
    await regA.close();
    await waitUntil(() => expect(ids(m)).toEqual(['b', 'c']), 2_000);
  }, 30_000);

  it('mesh.close() aborts the watch streams at once: no watch connection is left open', async () => {
    fresh();
    const proxy = await startEtcdProxy(etcd.url);
    cleanup.push(() => proxy.close());
    const [a] = await Promise.all([backend('a')]);
    await register(a, 'a');
    const registry = etcdRegistry({ endpoints: [proxy.url], prefix });
    const m = createMesh({ registry, defaults: { retry: false } });
    await call(m);
    await waitUntil(() => expect(registry.watchState('users')?.kind).toBe('watching'));
    expect(proxy.watchConnections).toBe(1);
    await m.close();
    expect(registry.watchState('users')).toBeUndefined();
    // This etcd sends progress notifications only every 10 minutes: nothing but the abort closes the stream.
    // (Node 20's built-in fetch, undici 6, then opens a spare idle connection that it drops after its 4 s
    // keep-alive timeout: unref'd, and not counted here.)
    await waitUntil(() => expect(proxy.watchConnections).toBe(0), 500);
  });

  it('meshes sharing one registry share its watch loop; closing one leaves the other following changes', async () => {
    fresh();
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    await register(a, 'a');
    const shared = etcdRegistry({ endpoints: [etcd.url], prefix });
    const defaults = { balancer: 'round-robin', retry: false, outlier: false } as const;
    const one = createMesh({ registry: shared, defaults });
    const two = createMesh({ registry: shared, defaults });
    cleanup.push(() => two.close());
    await call(one);
    await call(two);
    await waitUntil(() => expect(shared.watchState('users')?.kind).toBe('watching'));
    await one.close();
    await register(b, 'b');
    await waitUntil(async () => expect(new Set(await calls(two, 4))).toEqual(new Set(['a', 'b'])), 2_000);
    await two.close();
    expect(shared.watchState('users')).toBeUndefined();
  });
});
