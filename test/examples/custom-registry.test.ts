import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eurekaRegistry } from '../../examples/custom-registry.js';
import { createMesh, DiscoveryError, NoEndpointsError, toEndpoint, type EndpointInput, type Mesh, type MeshEvents } from '../../src/index.js';
import * as vitest from 'vitest';
import { registryContract } from 'proxyless/testing';
import { startBackend, type Backend } from '../helpers/backends.js';
import { runScript } from '../helpers/run-script.js';

/** One instance as Eureka's REST API (v2, JSON) lists it, with the fields a real server sends. */
function instance(app: string, host: string, port: number, status = 'UP', metadata: Record<string, string> = { '@class': 'java.util.Collections$EmptyMap' }) {
  return {
    instanceId: `${host}:${app.toLowerCase()}:${port}`, hostName: host, app, ipAddr: host, status, overriddenStatus: 'UNKNOWN',
    port: { $: port, '@enabled': 'true' }, securePort: { $: 443, '@enabled': 'false' }, countryId: 1,
    dataCenterInfo: { '@class': 'com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo', name: 'MyOwn' },
    leaseInfo: { renewalIntervalInSecs: 30, durationInSecs: 90, registrationTimestamp: 1700000000000, lastRenewalTimestamp: 1700000030000, evictionTimestamp: 0, serviceUpTimestamp: 1700000000000 },
    metadata, homePageUrl: `http://${host}:${port}/`, statusPageUrl: `http://${host}:${port}/actuator/info`,
    healthCheckUrl: `http://${host}:${port}/actuator/health`, vipAddress: app.toLowerCase(), secureVipAddress: app.toLowerCase(),
    isCoordinatingDiscoveryServer: 'false', lastUpdatedTimestamp: '1700000000000', lastDirtyTimestamp: '1700000000000', actionType: 'ADDED',
  };
}

/** A small Eureka-shaped server: GET /eureka/apps/{APP} from a map the test edits; 404 for an unknown app. */
async function startEureka() {
  const apps = new Map<string, unknown[] | unknown>();
  const seen: { url: string; accept: string | undefined }[] = [];
  let failing = false;
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', accept: req.headers.accept });
    if (failing) return void res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"Internal Server Error"}');
    const app = /^\/eureka\/apps\/([^/]+)$/.exec(req.url ?? '')?.[1];
    const instances = app === undefined ? undefined : apps.get(decodeURIComponent(app));
    if (instances === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ application: { name: app, instance: instances } }));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    apps,
    seen,
    fail: (on: boolean) => void (failing = on),
    close: () => new Promise<void>((done) => (server.closeAllConnections(), server.close(() => done()))),
  };
}

describe('examples/custom-registry.ts: a Eureka adapter', () => {
  let eureka: Awaited<ReturnType<typeof startEureka>>;
  let backends: Backend[];
  let mesh: Mesh | undefined;

  beforeEach(async () => {
    eureka = await startEureka();
    backends = await Promise.all(['a', 'b', 'c'].map((name) => startBackend((_req, res) => res.end(name))));
  });
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
    await Promise.all(backends.map((b) => b.close()));
    await eureka.close();
  });

  it('through a mesh: only UP instances get calls; weight and zone come from the metadata', async () => {
    eureka.apps.set('USERS', [
      instance('USERS', '127.0.0.1', backends[0]!.port),
      instance('USERS', '127.0.0.1', backends[1]!.port, 'DOWN'),
      instance('USERS', '127.0.0.1', backends[2]!.port, 'UP', { weight: '3', zone: 'eu-1a', version: '7' }),
    ]);
    mesh = createMesh({ registry: eurekaRegistry({ url: eureka.url }), defaults: { balancer: 'round-robin', retry: false } });
    const answers = new Set<string>();
    for (let i = 0; i < 8; i++) answers.add(await (await mesh.fetch('http://users/')).text());
    expect(answers).toEqual(new Set(['a', 'c']));
    const endpoints = mesh.snapshot().services.users!.endpoints;
    expect(endpoints.map((e) => [e.id, e.weight, e.zone])).toEqual([
      [`127.0.0.1:users:${backends[0]!.port}`, 1, null],
      [`127.0.0.1:users:${backends[2]!.port}`, 3, 'eu-1a'],
    ]);
    expect(eureka.seen[0]).toEqual({ url: '/eureka/apps/USERS', accept: 'application/json' });
  });

  it('a single instance sent as an object, not an array, is read too; "@class" keys are dropped from meta', async () => {
    eureka.apps.set('USERS', instance('USERS', '127.0.0.1', backends[0]!.port));
    const list = await eurekaRegistry({ url: eureka.url }).resolve('users', { signal: new AbortController().signal });
    expect(list.map((e) => [e.port, e.meta])).toEqual([[backends[0]!.port, {}]]);
  });

  it('an unknown application is no endpoints; a failing Eureka is a DiscoveryError, then stale-on-error', async () => {
    mesh = createMesh({ registry: eurekaRegistry({ url: eureka.url }), discovery: { refreshMs: 50 }, defaults: { retry: false } });
    expect(await mesh.fetch('http://nobody/').catch((e: unknown) => e)).toBeInstanceOf(NoEndpointsError);

    eureka.fail(true);
    const first = await mesh.fetch('http://users/').catch((e: unknown) => e);
    expect(first).toBeInstanceOf(DiscoveryError);
    expect((first as Error).message).toContain('Eureka answered 500 for USERS');

    eureka.fail(false);
    eureka.apps.set('ORDERS', [instance('ORDERS', '127.0.0.1', backends[0]!.port)]);
    expect(await (await mesh.fetch('http://orders/')).text()).toBe('a');
    const errors: MeshEvents['discovery-error'][] = [];
    mesh.on('discovery-error', (e) => errors.push(e));
    eureka.fail(true);
    for (let i = 0; i < 40 && errors.length === 0; i++) {
      expect(await (await mesh.fetch('http://orders/')).text()).toBe('a'); // the last good list keeps serving
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(errors[0]).toMatchObject({ service: 'orders', stale: true });
  });

  it('runs on its own (npx tsx examples/custom-registry.ts) and exits', async () => {
    const { code, out } = await runScript('examples/custom-registry.ts');
    expect(out).toMatch(/^hello from users on port \d+\n$/);
    expect(code).toBe(0);
  });
});

// The adapter passes the same contract as the built-in registries (resolve only: the cache polls it).
let eureka: Awaited<ReturnType<typeof startEureka>>;
registryContract('eurekaRegistry (examples/custom-registry.ts)', () => eurekaRegistry({ url: eureka.url }), {
  setup: async () => void (eureka = await startEureka()),
  set(service, endpoints) {
    const list = endpoints.map((input, i) => toEndpoint(input, `set[${i}]`));
    eureka.apps.set(service.toUpperCase(), list.map((e) => instance(service.toUpperCase(), e.host, e.port, 'UP', e.weight === 1 ? {} : { weight: String(e.weight) })));
  },
  fail: () => eureka.fail(true),
  recover: () => eureka.fail(false),
  teardown: () => eureka.close(),
  test: vitest,
});
