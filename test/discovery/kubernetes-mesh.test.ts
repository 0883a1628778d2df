// The acceptance of issue 12 for Kubernetes: a mesh on kubernetesRegistry, against the API double, calling real
// node:http backends on 127.0.0.1, while slices change, watches break and the API server fails.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { kubernetesRegistry, type KubernetesRegistry } from '../../src/discovery/kubernetes/registry.js';
import type { KubernetesRegistryOptions } from '../../src/discovery/kubernetes/options.js';
import { createMesh, DiscoveryError, type Mesh, type MeshEvents } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { startKubeDouble, waitFor, type EndpointSpec, type KubeDouble } from '../helpers/kube-double.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.mesh-token-1';
let api: KubeDouble;
let backends: Backend[];
const meshes: Mesh[] = [];
let dir: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'proxyless-k8s-mesh-'));
  api = await startKubeDouble({ token: TOKEN });
  backends = await Promise.all(['a', 'b', 'c'].map((name) => startBackend((_req, res) => res.end(name))));
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  await Promise.all(backends.map((b) => b.close()));
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Short backoffs keep these tests fast; the default timing is tested on the loop (kubernetes-loop-acceptance.test.ts). */
function registry(options: KubernetesRegistryOptions = {}): KubernetesRegistry {
  return kubernetesRegistry({ apiUrl: api.url, token: TOKEN, env: {}, namespace: 'default', backoff: { initialMs: 50, maxMs: 500 }, ...options });
}
function mesh(r: KubernetesRegistry = registry()): Mesh {
  const m = createMesh({ registry: r, defaults: { balancer: 'round-robin', retry: false, outlier: false } });
  meshes.push(m);
  return m;
}
/** Endpoint specs of backends by index, with conditions. */
const pods = (which: number[], conditions: Partial<EndpointSpec> = {}): EndpointSpec[] =>
  which.map((i) => ({ ip: '127.0.0.1', port: backends[i]!.port, ...conditions }));
async function calls(m: Mesh, n: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < n; i++) bodies.push(await (await m.fetch('http://users/')).text());
  return bodies;
}
/** Calls in a loop, `parallel` at a time, until stopped: counts successes and failures. */
function load(m: Mesh, parallel = 4) {
  const stats = { ok: 0, failed: 0, errors: [] as unknown[] };
  let running = true;
  const worker = async (): Promise<void> => {
    while (running) {
      try {
        await (await m.fetch('http://users/')).text();
        stats.ok++;
      } catch (error) {
        stats.failed++;
        stats.errors.push(error);
      }
    }
  };
  const workers = Array.from({ length: parallel }, worker);
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(workers);
      return stats;
    },
  };
}
function record(m: Mesh) {
  const updates: MeshEvents['discovery-update'][] = [];
  const errors: MeshEvents['discovery-error'][] = [];
  m.on('discovery-update', (u) => updates.push(u));
  m.on('discovery-error', (e) => errors.push(e));
  return { updates, errors };
}

describe('a mesh on kubernetesRegistry', () => {
  it('a new slice gets traffic within 1 s', async () => {
    api.setEndpoints('users', pods([0]));
    const m = mesh();
    expect(await calls(m, 2)).toEqual(['a', 'a']);
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    const running = load(m, 2);
    const before = backends[1]!.seen.length;
    const changed = performance.now();
    // A new EndpointSlice (ADDED) with a new pod; the first slice stays as it is.
    api.putSlice('default', {
      metadata: { name: 'users-new', labels: { 'kubernetes.io/service-name': 'users' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', name: 'users-b', uid: 'b1b1b1b1-0000-4000-8000-000000000001' } }],
      ports: [{ name: 'http', protocol: 'TCP', port: backends[1]!.port }],
    });
    await waitFor(() => expect(backends[1]!.seen.length).toBeGreaterThan(before), 1_000);
    const followedMs = performance.now() - changed;
    const stats = await running.stop();
    expect(followedMs).toBeLessThan(1_000);
    expect(stats.failed).toBe(0);
  });

  it('a terminating endpoint gets no new calls while others are ready', async () => {
    api.setEndpoints('users', pods([0, 1]));
    const m = mesh();
    const { updates } = record(m);
    expect(new Set(await calls(m, 4))).toEqual(new Set(['a', 'b']));
    // The pod behind b is deleted: ready false, serving while it drains, terminating (the controller's view).
    api.setEndpoints('users', [...pods([0]), ...pods([1], { ready: false, serving: true, terminating: true })]);
    await waitFor(() => expect(updates.at(-1)?.removed.map((e) => e.port)).toEqual([backends[1]!.port]));
    const seenB = backends[1]!.seen.length;
    expect(new Set(await calls(m, 20))).toEqual(new Set(['a']));
    expect(backends[1]!.seen.length).toBe(seenB);
  });

  it('all terminating: they are used, and no call fails with NoEndpointsError', async () => {
    api.setEndpoints('users', pods([0, 1]));
    const m = mesh();
    const { updates } = record(m);
    await calls(m, 2);
    api.setEndpoints('users', pods([0, 1], { ready: false, serving: true, terminating: true }));
    // (Each backend has its own port, so its own slice: the two slices change one after the other.)
    await waitFor(() => expect(updates.at(-1)?.endpoints.map((e) => e.meta.terminating)).toEqual(['true', 'true']));
    expect(updates.some((u) => u.endpoints.length === 0)).toBe(false);
    expect(new Set(await calls(m, 10))).toEqual(new Set(['a', 'b']));
    // Once they stop serving too, nothing is left: then, and only then, there is no endpoint.
    api.setEndpoints('users', pods([0, 1], { ready: false, serving: false, terminating: true }));
    await waitFor(() => expect(updates.at(-1)?.endpoints).toHaveLength(0));
    await expect(m.fetch('http://users/')).rejects.toMatchObject({ code: 'ENOENDPOINTS' });
  });

  it('a 410 relist with calls running: 0 failed calls, and no empty discovery-update', async () => {
    api.setEndpoints('users', pods([0, 1]));
    const m = mesh();
    const { updates } = record(m);
    await calls(m, 2);
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    const running = load(m);
    const lists = () => api.requests.filter((q) => !q.watch && q.status === 200).length;
    const listed = lists();
    api.expire(); // ERROR 410 on the open watch
    await waitFor(() => expect(lists()).toBe(listed + 1));
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    api.expire({ http: true }); // the watch dropped, its resourceVersion answered with HTTP 410
    await waitFor(() => expect(lists()).toBe(listed + 2), 3_000);
    // A change lost while the history was compacted is found by the relist.
    api.expire({ http: true });
    api.setEndpoints('users', pods([0, 1, 2]));
    await waitFor(() => expect(backends[2]!.seen.length).toBeGreaterThan(0), 3_000);
    const stats = await running.stop();
    expect(stats.failed, String(stats.errors[0])).toBe(0);
    expect(stats.ok).toBeGreaterThan(20);
    expect(updates.filter((u) => u.endpoints.length === 0)).toEqual([]);
  });

  it('a dropped watch is recovered within 5 s', async () => {
    api.setEndpoints('users', pods([0]));
    const m = mesh();
    await calls(m, 1);
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    const dropped = performance.now();
    expect(api.dropWatches()).toBe(1);
    api.setEndpoints('users', pods([2]));
    await waitFor(async () => expect(await calls(m, 2)).toEqual(['c', 'c']), 5_000);
    expect(performance.now() - dropped).toBeLessThan(5_000);
  });

  it('an API server outage serves the last good list, with discovery-error; then changes flow again', async () => {
    api.setEndpoints('users', pods([0, 1]));
    const m = mesh();
    const { errors } = record(m);
    await calls(m, 2);
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    await api.goDown(); // connections refused from now on
    await waitFor(() => expect(errors.length).toBeGreaterThan(0), 3_000);
    expect(errors[0]).toMatchObject({ service: 'users', stale: true });
    expect(errors[0]!.error).toBeInstanceOf(DiscoveryError);
    expect(errors[0]!.error.message).toMatch(/ECONNREFUSED/);
    expect(new Set(await calls(m, 6))).toEqual(new Set(['a', 'b']));
    await api.comeBack();
    api.setEndpoints('users', pods([2]));
    await waitFor(async () => expect(await calls(m, 2)).toEqual(['c', 'c']), 5_000);
  });

  it('a rotated token keeps it working: the file rewritten, the API server accepting only the new one', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, TOKEN);
    api.setEndpoints('users', pods([0]));
    const m = mesh(registry({ token: undefined, tokenFile }));
    const { errors } = record(m);
    await calls(m, 1);
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    const rotated = 'eyJhbGciOiJSUzI1NiJ9.mesh-token-2';
    writeFileSync(tokenFile, rotated);
    api.rotateToken(rotated);
    api.dropWatches();
    api.setEndpoints('users', pods([1]));
    await waitFor(async () => expect(await calls(m, 2)).toEqual(['b', 'b']), 5_000);
    expect(api.requests.at(-1)).toMatchObject({ status: 200, token: rotated });
    expect(errors).toEqual([]);
  });

  it('the token shows in no event, error or snapshot, even when the API server echoes it', async () => {
    api.setEndpoints('users', pods([0]));
    const m = mesh();
    const events: unknown[] = [];
    m.on('discovery-error', (e) => events.push(e));
    m.on('discovery-update', (e) => events.push(e));
    await calls(m, 1);
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    api.respondWith(500, `Internal error occurred: token ${TOKEN} is not valid`);
    api.dropWatches();
    await waitFor(() => expect(events.length).toBeGreaterThan(1), 3_000);
    const text = [
      ...events.map((e) => JSON.stringify(e, (_k, v: unknown) => (v instanceof Error ? { message: v.message, stack: v.stack, cause: v.cause } : v))),
      JSON.stringify(m.snapshot()),
    ].join('\n');
    expect(text).toContain('[redacted]');
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(TOKEN.slice(-12));
  });

  it('a port no slice carries fails calls with a DiscoveryError listing the ports, not with "no endpoints"', async () => {
    api.setEndpoints('users', pods([0]));
    const m = mesh(registry({ port: 'grpc' }));
    const { errors } = record(m);
    const error = await m.fetch('http://users/').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as DiscoveryError).code).toBe('EDISCOVERY');
    expect((error as Error).message).toMatch(/carry no TCP port named 'grpc'; the ports they carry: http \(\d+\)/);
    expect(errors.map((e) => e.service)).toContain('users');
  });

  it('meshes sharing one registry share its watch; closing one leaves the other following', async () => {
    api.setEndpoints('users', pods([0]));
    const shared = registry();
    const one = createMesh({ registry: shared, defaults: { balancer: 'round-robin', retry: false, outlier: false } });
    const two = mesh(shared);
    await calls(one, 1);
    await calls(two, 1);
    await waitFor(() => expect(api.openWatches()).toHaveLength(1));
    await one.close();
    api.setEndpoints('users', pods([1]));
    await waitFor(async () => expect(await calls(two, 2)).toEqual(['b', 'b']));
    await two.close();
    await waitFor(() => expect([api.openWatches().length, api.connections()]).toEqual([0, 0]));
  });
});
