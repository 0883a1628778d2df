/**
 * What a configuration must never do, found in review: publish a TLS key, be half applied, change after it was
 * validated, let two sources overwrite each other, break a call in flight, crash createMesh, mirror a request that
 * was refused, or accept a regex that backtracks exponentially.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import type { ConfigSource, MeshConfigInput } from '../../src/config/types.js';
import { createMesh, MeshClosedError, staticRegistry, type Mesh } from '../../src/index.js';

const meshes: Mesh[] = [];
const servers: http.Server[] = [];
afterEach(async () => {
  for (const m of meshes.splice(0)) await m.close();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});
const track = (m: Mesh): Mesh => (meshes.push(m), m);

const tagged = () =>
  staticRegistry({
    a: [
      { host: '127.0.0.1', port: 1001, tags: ['v1'] },
      { host: '127.0.0.1', port: 1002, tags: ['v2'] },
    ],
    b: [{ host: '127.0.0.1', port: 2001 }],
  });
const subsets = { a: { v1: { tags: ['v1'] }, v2: { tags: ['v2'] } } };
const portOf = (m: Mesh, service = 'a') => m.call(service, (ep) => ep.port);

it('config(), the snapshot and the admin handler show a tls policy without its key, certificate or CA', async () => {
  const key = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';
  const mesh = track(createMesh({ registry: tagged(), services: { a: { tls: { key, cert: key, ca: Buffer.from(key) } } } }));
  const shown = JSON.stringify(mesh.config()) + JSON.stringify(mesh.snapshot());
  expect(shown).not.toContain('MIIEvQIBADAN');
  expect(mesh.config().services).toMatchObject({ a: { tls: { key: '[redacted]', cert: '[redacted]', ca: '[redacted]' } } });
});

it('a configure whose plans cannot all be built changes nothing: no service gets a new plan, the version stays', async () => {
  let armed = false;
  const picky = { name: 'picky', pick: (eps: readonly unknown[]) => eps[0] as never, update: () => { if (armed) throw new Error('update failed'); } };
  const mesh = track(createMesh({ registry: tagged(), services: { a: { balancer: picky } } }));
  await portOf(mesh, 'a');
  await portOf(mesh, 'b');
  const before = mesh.config();
  armed = true;
  expect(() => mesh.configure({ defaults: { timeout: { attemptMs: 123 } }, services: { a: { balancer: picky } } })).toThrow('update failed');
  armed = false;
  expect(mesh.config()).toEqual(before);
  // b kept its plan too: its attempts still get the default 10 s, not the 123 ms of the refused change.
  const started = Date.now();
  const deadline = await mesh.call('b', (_ep, ctx) => new Promise<number>((resolve) => {
    ctx.signal.addEventListener('abort', () => resolve(Date.now() - started));
    setTimeout(() => resolve(-1), 300);
  }));
  expect(deadline).toBe(-1);
});

it('changing the object given to configure afterwards changes nothing in force', async () => {
  const mesh = track(createMesh({ registry: tagged() }));
  const config = { subsets, routes: { a: [{ name: 'r', backends: [{ subset: 'v1' }] as { subset: string }[] }] } };
  mesh.configure(config);
  config.routes.a[0]!.backends[0]!.subset = 'v2';
  (config.routes.a[0] as { match?: unknown }).match = [{ path: { regex: '(' } }];
  for (let i = 0; i < 10; i++) expect(await portOf(mesh)).toBe(1001);
  expect(mesh.config().routes.a![0]!.backends).toEqual([{ subset: 'v1' }]);
});

it('two config sources of one name keep their own layers', async () => {
  const pushers: ((c: MeshConfigInput) => void)[] = [];
  const source = (): ConfigSource => ({ name: 'consul', watch: (onUpdate) => (pushers.push(onUpdate), () => {}) });
  const mesh = track(createMesh({ registry: tagged(), config: [source(), source()] }));
  await Promise.resolve(); // sources start in a microtask
  pushers[0]!({ services: { a: { retry: { retries: 5 } } } });
  pushers[1]!({ services: { b: { retry: { retries: 7 } } } });
  expect(mesh.config().services).toEqual({ a: { retry: { retries: 5 } }, b: { retry: { retries: 7 } } });
  // A source's route may name a subset the API defined.
  const api = track(createMesh({ registry: tagged(), subsets, config: [source()] }));
  await Promise.resolve();
  pushers[2]!({ routes: { a: [{ name: 'r', backends: [{ subset: 'v2' }] }] } });
  expect(await portOf(api)).toBe(1002);
});

it('a config source whose watch throws is a config-error; a malformed one is a TypeError naming it', async () => {
  const errors: string[] = [];
  const bad: ConfigSource = { name: 'bad', watch: () => { throw new Error('boom'); } };
  let started = false;
  const good: ConfigSource = { name: 'good', watch: () => ((started = true), () => {}) };
  const mesh = track(createMesh({ registry: tagged(), config: [bad, good] }));
  mesh.on('config-error', ({ source, error }) => errors.push(`${source}: ${error.message}`));
  await Promise.resolve();
  expect(errors).toEqual(['bad: boom']);
  expect(started).toBe(true);
  expect(await portOf(mesh)).toBeGreaterThan(0);
  expect(() => createMesh({ registry: tagged(), config: {} as ConfigSource })).toThrow(/^config must be a config source/);
  expect(() => createMesh({ registry: tagged(), config: [good, null as unknown as ConfigSource] })).toThrow(/^config\[1\] must be a config source/);
});

it('a request a fault aborted, or the bulkhead refused, is not mirrored', async () => {
  const calls: string[] = [];
  const fn = async (ep: { port: number }, ctx: { mirror?: boolean }) => (calls.push(`${ep.port}${ctx.mirror ? ' mirror' : ''}`), 1);
  const faulty = track(createMesh({ registry: tagged(), subsets, routes: { a: [{ name: 'r', fault: { abort: { status: 503, percent: 100 } }, mirror: { subset: 'v2' } }] } }));
  await expect(faulty.call('a', fn)).rejects.toMatchObject({ code: 'EFAULT' });
  const full = track(createMesh({ registry: tagged(), subsets, defaults: { maxConcurrent: 1 }, routes: { a: [{ name: 'r', backends: [{ subset: 'v1' }], mirror: { subset: 'v2' } }] } }));
  let release = (): void => {};
  const first = full.call('a', (ep, ctx) => (ctx.mirror ? fn(ep, ctx) : new Promise<number>((r) => (calls.push(`${ep.port}`), (release = () => r(1))))));
  await new Promise((r) => setTimeout(r, 20));
  await expect(full.call('a', fn)).rejects.toMatchObject({ code: 'EBULKHEAD' });
  release();
  await first;
  await new Promise((r) => setTimeout(r, 20));
  expect(calls.sort()).toEqual(['1001', '1002 mirror']);
});

it('a mesh.fetch in flight across a configure that changes host keeps working (its retry uses the old dispatcher)', async () => {
  let n = 0;
  const server = http.createServer((req, res) => {
    n++;
    res.statusCode = n === 1 ? 503 : 200;
    setTimeout(() => res.end(`host=${req.headers.host}`), n === 1 ? 100 : 0);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const retry = { retries: 2, minDelayMs: 1, maxDelayMs: 2 };
  const mesh = track(createMesh({ registry: staticRegistry({ a: [`127.0.0.1:${port}`] }), services: { a: { host: 'service', retry } } }));
  const pending = mesh.fetch('http://a/x');
  await new Promise((r) => setTimeout(r, 30));
  mesh.configure({ services: { a: { host: 'endpoint', retry } } });
  const res = await pending;
  expect(res.status).toBe(200);
  expect(await res.text()).toBe('host=a');
  expect(n).toBe(2);
});

it('nothing usable anywhere: the first backend with a weight takes the call, never a drained one', async () => {
  const mesh = track(
    createMesh({
      registry: tagged(),
      subsets: { a: { ...subsets.a, none: { tags: ['zzz'] } } },
      routes: { a: [{ name: 'r', backends: [{ subset: 'v1', weight: 0 }, { subset: 'none', weight: 1, priority: 1 }] }] },
    }),
  );
  await expect(portOf(mesh)).rejects.toMatchObject({ code: 'ENOENDPOINTS' });
});

it('configure after close() is refused; huge weights and exponential regexes are refused, naming the option', async () => {
  const mesh = createMesh({ registry: tagged() });
  await mesh.close();
  expect(() => mesh.configure({})).toThrow(MeshClosedError);
  const open = track(createMesh({ registry: tagged() }));
  const route = (r: object) => ({ subsets, routes: { a: [{ name: 'r', ...r }] } });
  expect(() => open.configure(route({ backends: [{ subset: 'v1', weight: 1e308 }] }))).toThrow(/routes\.a\[0\]\.backends\[0\]\.weight must be at most/);
  expect(() => open.configure(route({ match: [{ headers: { 'x-a': { regex: '^(a+)+$' } } }] }))).toThrow(/routes\.a\[0\]\.match\[0\]\.headers\.x-a\.regex: .*exponential/);
  expect(() => open.configure(route({ match: [{ path: { regex: '(a|aa)*' } }] }))).toThrow(/exponential/);
  expect(open.configure(route({ match: [{ path: { regex: '^/v[0-9]+(/.*)?$' } }] }))).toBe(2);
});

it('a service whose calls all go to another service is not retired as idle', async () => {
  const registry = staticRegistry({ a: ['127.0.0.1:1'], b: ['127.0.0.1:2'], c: ['127.0.0.1:3'] });
  const mesh = track(createMesh({ registry, discovery: { maxServices: 2 }, routes: { a: [{ name: 'r', backends: [{ service: 'b' }] }] } }));
  await mesh.call('c', (ep) => ep.port);
  for (let i = 0; i < 5; i++) expect(await mesh.call('a', (ep) => ep.port)).toBe(2);
  const routes = mesh.snapshot().services.a!.routes;
  expect(routes.map((r) => r.backends.map((b) => [b.backend, b.calls]))).toEqual([[['service:b', 5]]]);
});
