import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { consulRegistry, type ConsulRegistry, type ConsulRegistryOptions } from '../../src/discovery/consul.js';
import { ConsulError } from '../../src/discovery/consul-http.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { DiscoveryError, InvalidServiceNameError } from '../../src/errors.js';
import { refusedAddress } from '../helpers/backends.js';
import { startConsulDouble, waitUntil, type ConsulDouble } from '../helpers/consul-double.js';

const fixture = (name: string): unknown[] => JSON.parse(readFileSync(new URL(`../fixtures/consul/${name}`, import.meta.url), 'utf8'));
const TOKEN = '3f2c1a7e-9b4d-4e8a-b1c2-5d6e7f8a9b0c';

let consul: ConsulDouble;
const registries: ConsulRegistry[] = [];
const unsubscribes: (() => void)[] = [];

beforeEach(async () => {
  consul = await startConsulDouble();
});
afterEach(async () => {
  unsubscribes.splice(0).forEach((u) => u());
  registries.splice(0).forEach((r) => r.close());
  await consul.close();
});

function registry(options: ConsulRegistryOptions = {}): ConsulRegistry {
  const r = consulRegistry({ url: consul.url, env: {}, waitMs: 5_000, backoff: { initialMs: 50, maxMs: 200 }, ...options });
  registries.push(r);
  return r;
}
const resolve = (r: ConsulRegistry, service: string): Promise<readonly Endpoint[]> => r.resolve(service, { signal: new AbortController().signal });
const failure = async (p: Promise<unknown>): Promise<Error> => {
  const e = await p.then(() => undefined, (error: unknown) => error);
  if (!(e instanceof Error)) throw new Error('expected a rejection');
  return e;
};
/** Every message, stack and string field along an error's cause chain. */
function chainText(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    parts.push(e.message, e.stack ?? '', JSON.stringify(e, Object.getOwnPropertyNames(e)));
  }
  return parts.join('\n');
}
function watch(r: ConsulRegistry, service: string) {
  const lists: (readonly Endpoint[])[] = [];
  const errors: Error[] = [];
  unsubscribes.push(r.watch!(service, (l) => lists.push(l), (e) => errors.push(e)));
  return { lists, errors, ids: () => lists.at(-1)?.map((e) => e.id).sort() };
}

describe('consulRegistry: mapping the health API (fixtures)', () => {
  it('users-mixed: passing only by default; Service.Address; Weights.Passing; id Service.ID@Node.Node; tags, meta, zone', async () => {
    consul.setEntries('users', fixture('health-service-users-mixed.synthesized.json'));
    expect(await resolve(registry(), 'users')).toEqual([
      { id: 'users-1@node-a', host: '127.0.1.21', port: 8080, weight: 10, zone: 'dc1', tags: ['v2', 'http'], meta: { version: '2.1.0' } },
    ]);
    expect(consul.requests.at(-1)!.query.get('passing')).toBe('true');
  });

  it('passingOnly: false keeps warning instances at Weights.Warning, falls back to Node.Address, and still drops critical', async () => {
    consul.setEntries('users', fixture('health-service-users-mixed.synthesized.json'));
    const list = await resolve(registry({ passingOnly: false }), 'users');
    expect(list.map((e) => [e.id, e.host, e.port, e.weight])).toEqual([
      ['users-1@node-a', '127.0.1.21', 8080, 10],
      ['users-2@node-b', '127.0.1.12', 8080, 1], // Service.Address '' -> Node.Address; warning -> Weights.Warning
    ]);
    expect(list[1]!.meta).toEqual({}); // Meta null
    expect(consul.requests.at(-1)!.query.has('passing')).toBe(false);
  });

  it('the backend capture: empty Service.Address and Meta null', async () => {
    consul.setEntries('backend', fixture('health-service-backend.ui-mock-capture.json'));
    expect((await resolve(registry(), 'backend')).map((e) => [e.id, e.host, e.port, e.weight, e.zone])).toEqual([
      ['backend@node', '127.17.0.2', 7000, 1, 'dc1'],
      ['backend-v2@node', '127.17.0.2', 7001, 1, 'dc1'],
    ]);
  });

  it('the sidecar capture: an instance with any critical check is left out, passing or not', async () => {
    consul.setEntries('backend-sidecar-proxy', fixture('health-service-sidecar-critical.ui-mock-capture.json'));
    expect(await resolve(registry(), 'backend-sidecar-proxy')).toEqual([]);
    expect(await resolve(registry({ passingOnly: false }), 'backend-sidecar-proxy')).toEqual([]);
  });

  it('the docs sample', async () => {
    consul.setEntries('redis', fixture('health-service.docs-sample.json'));
    expect(await resolve(registry(), 'redis')).toEqual([
      { id: 'redis@foobar', host: '127.1.10.12', port: 8000, weight: 10, zone: 'dc1', tags: ['primary'], meta: { redis_version: '4.0' } },
    ]);
  });

  it('the passing filter counts node checks: a failing serfHealth drops every instance on that node', async () => {
    consul.setInstances('users', [{ port: 8081, node: 'n1' }, { port: 8082, node: 'n2' }]);
    consul.setNodeStatus('n1', 'critical');
    expect((await resolve(registry(), 'users')).map((e) => e.port)).toEqual([8082]);
    expect((await resolve(registry({ passingOnly: false }), 'users')).map((e) => e.port)).toEqual([8082]);
    consul.setNodeStatus('n1', 'warning');
    expect((await resolve(registry(), 'users')).map((e) => e.port)).toEqual([8082]);
    expect((await resolve(registry({ passingOnly: false }), 'users')).map((e) => [e.port, e.weight])).toEqual([[8081, 1], [8082, 1]]);
  });

  it('weights follow the worst check; Weights.Warning 0 means no traffic while warning', async () => {
    consul.setInstances('users', [
      { port: 8081, weights: { Passing: 5, Warning: 2 } },
      { port: 8082, weights: { Passing: 5, Warning: 2 }, status: 'warning' },
      { port: 8083, weights: { Passing: 5, Warning: 0 }, status: 'warning' },
    ]);
    expect((await resolve(registry({ passingOnly: false }), 'users')).map((e) => [e.port, e.weight])).toEqual([[8081, 5], [8082, 2]]);
  });

  it('zoneMetaKey: the zone from Service.Meta, else Node.Meta, else Node.Datacenter', async () => {
    consul.setInstances('users', [
      { port: 8081, meta: { az: 'eu-1a' }, nodeMeta: { az: 'eu-1c' } },
      { port: 8082, nodeMeta: { az: 'eu-1b' } },
      { port: 8083 },
    ]);
    expect((await resolve(registry({ zoneMetaKey: 'az' }), 'users')).map((e) => e.zone)).toEqual(['eu-1a', 'eu-1b', 'dc1']);
    expect((await resolve(registry(), 'users')).map((e) => e.zone)).toEqual(['dc1', 'dc1', 'dc1']);
  });

  it('instances that cannot be dialled (port 0, no address) are left out', async () => {
    consul.setInstances('users', [{ port: 0 }, { port: 8082, address: '', nodeAddress: '' }, { port: 8083 }]);
    expect((await resolve(registry(), 'users')).map((e) => e.port)).toEqual([8083]);
  });
});

describe('consulRegistry: requests', () => {
  it('sends tag (repeatable), dc and filter, and Consul applies them', async () => {
    consul.setInstances('users', [
      { port: 8081, tags: ['v2', 'http'], meta: { version: '2' } },
      { port: 8082, tags: ['v2'], meta: { version: '2' } },
      { port: 8083, tags: ['v2', 'http'], meta: { version: '1' } },
    ]);
    const r = registry({ tag: ['v2', 'http'], dc: 'dc1', filter: 'Service.Meta.version == "2"' });
    expect((await resolve(r, 'users')).map((e) => e.port)).toEqual([8081]);
    const q = consul.requests.at(-1)!.query;
    expect(q.getAll('tag')).toEqual(['v2', 'http']);
    expect(q.get('dc')).toBe('dc1');
    expect(q.get('filter')).toBe('Service.Meta.version == "2"');
    expect((await resolve(registry({ tag: 'http' }), 'users')).map((e) => e.port)).toEqual([8081, 8083]);
  });

  it('validates the service name before any request, and encodes it in the path', async () => {
    const r = registry();
    for (const bad of ['users/../admin', 'a%2Fb', 'users\r\nX-Injected: 1', '', '..']) {
      expect(await failure(resolve(r, bad))).toBeInstanceOf(InvalidServiceNameError);
      expect(() => r.watch!(bad, () => {}, () => {})).toThrow(InvalidServiceNameError);
    }
    expect(consul.requests).toHaveLength(0);
    consul.setInstances('users.v2', [{ port: 8081 }]);
    expect(await resolve(r, 'users.v2')).toHaveLength(1);
    expect(consul.requests[0]!.path).toBe('/v1/health/service/users.v2');
  });

  it('an unknown service is an empty list', async () => {
    expect(await resolve(registry(), 'nobody')).toEqual([]);
  });

  it('keeps a path prefix of the URL (Consul behind a proxy)', async () => {
    const seen: string[] = [];
    const r = registry({
      url: 'http://127.0.0.1:1/consul/',
      fetch: async (input) => {
        seen.push(String(input));
        return new Response('[]', { headers: { 'X-Consul-Index': '5' } });
      },
    });
    await resolve(r, 'users');
    expect(seen).toEqual(['http://127.0.0.1:1/consul/v1/health/service/users?passing=true']);
  });
});

describe('consulRegistry: errors', () => {
  it('a 403 (ACL) is a DiscoveryError quoting the status and Consul’s text; so is a 500', async () => {
    await consul.close();
    consul = await startConsulDouble({ token: TOKEN });
    const e = await failure(resolve(registry({ token: 'wrong-token' }), 'users'));
    expect(e).toBeInstanceOf(DiscoveryError);
    expect((e as DiscoveryError).code).toBe('EDISCOVERY');
    expect(e.message).toContain('403');
    expect(e.message).toContain('ACL not found');
    expect(e.cause).toBeInstanceOf(ConsulError);
    expect((e.cause as ConsulError).status).toBe(403);

    consul.respondWith(500, 'No cluster leader');
    const e500 = await failure(resolve(registry({ token: TOKEN }), 'users'));
    expect(e500.message).toMatch(/500 to GET \/v1\/health\/service\/users\?passing=true: No cluster leader/);
  });

  it('with ACLs on, the token travels only in X-Consul-Token; without one, reads come back filtered (empty)', async () => {
    await consul.close();
    consul = await startConsulDouble({ token: TOKEN });
    consul.setInstances('users', [{ port: 8081 }]);
    expect(await resolve(registry({ token: TOKEN }), 'users')).toHaveLength(1);
    expect(await resolve(registry(), 'users')).toEqual([]);
    expect(consul.requests.map((r) => r.token)).toEqual([TOKEN, undefined]);
    for (const r of consul.requests) expect(`${r.path}?${r.query}`).not.toContain(TOKEN);
  });

  it('malformed JSON and the wrong shape are DiscoveryErrors naming the problem', async () => {
    const r = registry();
    consul.respondWithGarbage();
    expect((await failure(resolve(r, 'users'))).message).toMatch(/not a list of health entries: Consul answered with invalid JSON \(\d+ bytes\)/);
    consul.respondWith(200, '{"not":"an array"}');
    expect((await failure(resolve(r, 'users'))).message).toMatch(/expected a JSON array/);
    consul.respondWith(200, '[{"Node":{"Node":"n","Address":"127.0.0.1"}}]');
    expect((await failure(resolve(r, 'users'))).message).toMatch(/\[0\] needs Node and Service objects/);
    consul.respondWith(200, '[{"Node":{"Node":"n","Address":"127.0.0.1"},"Service":{"ID":"x","Port":"80"},"Checks":[]}]');
    expect((await failure(resolve(r, 'users'))).message).toMatch(/\[0\]\.Service\.Port must be an integer/);
  });

  it('an unreachable agent and a hung one are DiscoveryErrors too', async () => {
    const refused = await failure(resolve(registry({ url: `http://${await refusedAddress()}` }), 'users'));
    expect(refused).toBeInstanceOf(DiscoveryError);
    expect(refused.message).toMatch(/could not be reached .*ECONNREFUSED/);
    consul.hang();
    const started = performance.now();
    const hung = await failure(resolve(registry({ timeoutMs: 150 }), 'users'));
    expect(hung.message).toMatch(/did not answer GET \/v1\/health\/service\/users\?passing=true within 150 ms/);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('a long error body is truncated', async () => {
    consul.respondWith(400, `Invalid filter: ${'x'.repeat(5_000)}`);
    const e = await failure(resolve(registry(), 'users'));
    expect(e.message.length).toBeLessThan(500);
    expect(e.message.endsWith('…')).toBe(true);
  });

  describe('token redaction', () => {
    it('an error body that echoes the token: not in the message, the body field or anywhere on the cause chain', async () => {
      consul.respondWith(403, (token) => `ACL not found: token ${token} (${encodeURIComponent(`${token} x`)}) is unknown`);
      const e = await failure(resolve(registry({ token: TOKEN }), 'users'));
      expect(consul.requests.at(-1)!.token).toBe(TOKEN); // the double did echo it
      expect(e.message).toContain('ACL not found: token [redacted]');
      expect(chainText(e)).not.toContain(TOKEN);
    });

    it('a garbage body that echoes the token', async () => {
      consul.respondWithGarbage(`{"echo": "${TOKEN}"`);
      const e = await failure(resolve(registry({ token: TOKEN }), 'users'));
      expect(e.message).toMatch(/invalid JSON/);
      expect(chainText(e)).not.toContain(TOKEN);
    });

    it('a custom fetch whose error (and its cause) quote the token', async () => {
      const r = registry({
        token: TOKEN,
        fetch: async (_input, init) => {
          const header = new Headers(init?.headers).get('x-consul-token');
          throw new TypeError(`request failed with headers x-consul-token=${header}`, { cause: new Error(`socket reset for ${header}`) });
        },
      });
      const e = await failure(resolve(r, 'users'));
      expect(e.message).toContain('x-consul-token=[redacted]');
      expect(chainText(e)).not.toContain(TOKEN);
    });

    it('watch errors are redacted too', async () => {
      consul.respondWith(500, (token) => `rpc error: token=${token}`);
      const w = watch(registry({ token: TOKEN }), 'users');
      await waitUntil(() => expect(w.errors.length).toBeGreaterThan(0));
      expect(w.errors[0]!.message).toContain('token=[redacted]');
      expect(chainText(w.errors[0])).not.toContain(TOKEN);
    });
  });
});

describe('consulRegistry: watch (blocking queries)', () => {
  it('a change reaches the watcher as soon as Consul answers, long before wait runs out', async () => {
    consul.setInstances('users', [{ port: 8081 }, { port: 8082 }]);
    const r = registry({ waitMs: 10_000 });
    const w = watch(r, 'users');
    await waitUntil(() => expect(w.ids()).toEqual(['users-1@node-1', 'users-2@node-1']));
    await waitUntil(() => expect(consul.held()).toBe(1));
    const changed = performance.now();
    consul.setCheckStatus('service:users-1', 'critical');
    await waitUntil(() => expect(w.ids()).toEqual(['users-2@node-1']));
    expect(performance.now() - changed).toBeLessThan(500);
    await waitUntil(() => expect(consul.held()).toBe(1));
    const q = consul.requests.at(-1)!.query;
    expect(q.get('wait')).toBe('10s');
    expect(Number(q.get('index'))).toBe(consul.indexOf('users'));
  });

  it('an answer with the same list (wait expired, or another check changed) is not pushed again', async () => {
    consul.setInstances('users', [{ port: 8081 }, { port: 8082 }]);
    const w = watch(registry({ waitMs: 100, minIntervalMs: 0 }), 'users');
    await waitUntil(() => expect(w.lists).toHaveLength(1));
    consul.setCheckStatus('service:users-1', 'passing', 'still fine'); // index moves, list does not
    await new Promise((r) => setTimeout(r, 350)); // a few wait expiries too
    expect(consul.requests.length).toBeGreaterThanOrEqual(4);
    expect(w.lists).toHaveLength(1);
  });

  it('resets the index when it goes backwards (snapshot restore) and still sees the next change at once', async () => {
    consul.setInstances('users', [{ port: 8081 }]);
    for (let i = 0; i < 30; i++) consul.setCheckStatus('service:users-1', 'passing', `beat ${i}`); // index well above 30
    const w = watch(registry({ waitMs: 10_000 }), 'users');
    await waitUntil(() => expect(consul.held()).toBe(1));
    const before = Number(consul.requests.at(-1)!.query.get('index'));
    expect(before).toBeGreaterThan(30);
    consul.setIndex(5);
    await waitUntil(() => expect(consul.held()).toBe(1));
    const sent = consul.requests.slice(-2).map((r) => r.query.get('index'));
    expect(sent).toEqual(['0', '5']); // restart at 0, then block on the new, lower index
    consul.setInstances('users', [{ port: 8082 }]); // index 6: a client still at ${before} would miss it
    await waitUntil(() => expect(w.lists.at(-1)?.map((e) => e.port)).toEqual([8082]), 1_000);
  });

  it('never sends index 0 back after an answer with index 0: uses 1 and blocks (no busy loop)', async () => {
    consul.setInstances('users', [{ port: 8081 }]);
    watch(registry({ waitMs: 300, minIntervalMs: 0 }), 'users');
    await waitUntil(() => expect(consul.held()).toBe(1));
    consul.setIndex(0);
    await waitUntil(() => expect(consul.requests.at(-1)!.query.get('index')).toBe('1'));
    const count = consul.requests.length;
    await new Promise((r) => setTimeout(r, 400));
    // index 1 against 0 blocks for wait (300 ms + jitter): one or two more requests, not hundreds
    expect(consul.requests.length - count).toBeLessThanOrEqual(2);
    expect(consul.requests.slice(count - 1).every((r) => r.query.get('index') === '1')).toBe(true);
  });

  it('backs off on errors (doubling, capped), reports each one, and recovers', async () => {
    consul.setInstances('users', [{ port: 8081 }]);
    const w = watch(registry({ waitMs: 5_000, minIntervalMs: 0, backoff: { initialMs: 60, maxMs: 240 } }), 'users');
    await waitUntil(() => expect(consul.held()).toBe(1));
    const from = consul.requests.length;
    consul.respondWith(500, 'No known Consul servers');
    await new Promise((r) => setTimeout(r, 1_000));
    const failed = consul.requests.slice(from);
    const gaps = failed.slice(1).map((r, i) => r.at - failed[i]!.at);
    // 60, 120, 240, 240 ... (±20 %): about 6 requests in a second, where a tight loop would make hundreds
    expect(failed.length).toBeGreaterThanOrEqual(4);
    expect(failed.length).toBeLessThanOrEqual(8);
    expect(gaps[0]).toBeGreaterThanOrEqual(45);
    expect(gaps[1]!).toBeGreaterThan(gaps[0]! * 1.3);
    expect(Math.max(...gaps)).toBeLessThan(240 * 1.2 + 60);
    expect(w.errors.length).toBeGreaterThanOrEqual(failed.length); // + the held query that failed first
    expect(w.errors.length).toBeLessThanOrEqual(failed.length + 1);
    expect(w.errors[0]!.message).toContain('500');
    expect(w.errors[0]!.message).toContain('No known Consul servers');

    consul.respondNormally();
    consul.setInstances('users', [{ port: 8089 }]);
    await waitUntil(() => expect(w.lists.at(-1)?.map((e) => e.port)).toEqual([8089]), 1_500);
  });

  it('garbage and 403s do not end a watch', async () => {
    consul.setInstances('users', [{ port: 8081 }]);
    const w = watch(registry(), 'users');
    await waitUntil(() => expect(consul.held()).toBe(1));
    consul.respondWithGarbage();
    await waitUntil(() => expect(w.errors.length).toBeGreaterThan(0));
    consul.respondWith(403, 'ACL not found');
    await waitUntil(() => expect(w.errors.some((e) => e.message.includes('403'))).toBe(true));
    consul.respondNormally();
    consul.setInstances('users', [{ port: 8082 }]);
    await waitUntil(() => expect(w.lists.at(-1)?.map((e) => e.port)).toEqual([8082]));
  });

  it('one blocking query per service, shared by every watcher of the registry', async () => {
    consul.setInstances('users', [{ port: 8081 }]);
    consul.setInstances('orders', [{ port: 9001 }]);
    const r = registry();
    const a = watch(r, 'users');
    const b = watch(r, 'users');
    const c = watch(r, 'users');
    const o = watch(r, 'orders');
    await waitUntil(() => expect(consul.held()).toBe(2));
    consul.setInstances('users', [{ port: 8082 }]);
    for (const x of [a, b, c]) await waitUntil(() => expect(x.lists.at(-1)?.map((e) => e.port)).toEqual([8082]));
    await waitUntil(() => expect(consul.held()).toBe(2));
    expect(o.lists.map((l) => l.map((e) => e.port))).toEqual([[9001]]);
    const users = consul.requests.filter((q) => q.path.endsWith('/users'));
    expect(users).toHaveLength(3); // index 0, then one blocking query per change: not one per watcher
  });

  it('the last unsubscribe aborts the held query; nothing is left running', async () => {
    consul.setInstances('users', [{ port: 8081 }]);
    const r = registry();
    const stopA = r.watch!('users', () => {}, () => {});
    const stopB = r.watch!('users', () => {}, () => {});
    await waitUntil(() => expect(consul.held()).toBe(1));
    stopA();
    expect(r.watchState('users')?.kind).toBe('querying');
    stopB();
    expect(r.watchState('users')).toBeUndefined();
    await waitUntil(() => expect(consul.held()).toBe(0));
    const count = consul.requests.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(consul.requests.length).toBe(count);
  });

  it('watch: false has no watch() (the mesh polls on its TTL)', () => {
    expect(registry({ watch: false }).watch).toBeUndefined();
  });
});

describe('consulRegistry: configuration and environment', () => {
  /** The URL and headers of the first request, with no network. */
  async function firstRequest(options: ConsulRegistryOptions): Promise<{ url: string; token: string | null }> {
    let seen: { url: string; token: string | null } | undefined;
    const r = consulRegistry({
      ...options,
      fetch: async (input, init) => {
        seen = { url: String(input), token: new Headers(init?.headers).get('x-consul-token') };
        return new Response('[]');
      },
    });
    await resolve(r as ConsulRegistry, 'users');
    return seen!;
  }

  it('CONSUL_HTTP_ADDR with or without a scheme; CONSUL_HTTP_SSL picks https when there is none', async () => {
    expect((await firstRequest({ env: {} })).url).toBe('http://127.0.0.1:8500/v1/health/service/users?passing=true');
    expect((await firstRequest({ env: { CONSUL_HTTP_ADDR: '127.0.0.1:8600' } })).url).toMatch(/^http:\/\/127\.0\.0\.1:8600\/v1\//);
    expect((await firstRequest({ env: { CONSUL_HTTP_ADDR: '127.0.0.1:8501', CONSUL_HTTP_SSL: 'true' } })).url).toMatch(/^https:\/\/127\.0\.0\.1:8501\//);
    expect((await firstRequest({ env: { CONSUL_HTTP_ADDR: 'https://127.0.0.1:8501', CONSUL_HTTP_SSL: 'false' } })).url).toMatch(/^https:/);
    expect((await firstRequest({ env: { CONSUL_HTTP_ADDR: 'http://127.0.0.1:8600' }, url: 'http://127.0.0.1:9' })).url).toMatch(/^http:\/\/127\.0\.0\.1:9\//);
  });

  it('refuses unusable addresses without echoing credentials', () => {
    expect(() => consulRegistry({ env: { CONSUL_HTTP_ADDR: 'unix:///var/run/consul.sock' } })).toThrow(/unix sockets/);
    expect(() => consulRegistry({ url: 'ftp://127.0.0.1' })).toThrow(/consulRegistry\.url must use http/);
    expect(() => consulRegistry({ url: 'http://admin:s3cret@127.0.0.1:8500' })).toThrow(/must not contain credentials/);
    try {
      consulRegistry({ env: { CONSUL_HTTP_ADDR: 'http://admin:s3cret@127.0.0.1:8500' } });
    } catch (error) {
      expect((error as Error).message).toMatch(/^CONSUL_HTTP_ADDR/);
      expect((error as Error).message).not.toContain('s3cret');
    }
    expect(() => consulRegistry({ env: { CONSUL_HTTP_SSL: 'yes' } })).toThrow(/CONSUL_HTTP_SSL must be true or false/);
  });

  it('the token: option, else CONSUL_HTTP_TOKEN_FILE, else CONSUL_HTTP_TOKEN; "" sends none', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/proxyless-consul-`);
    writeFileSync(`${dir}/token`, `  from-file-token\n`);
    writeFileSync(`${dir}/empty`, '\n');
    expect((await firstRequest({ env: { CONSUL_HTTP_TOKEN: 'env-token' } })).token).toBe('env-token');
    expect((await firstRequest({ env: { CONSUL_HTTP_TOKEN: 'env-token', CONSUL_HTTP_TOKEN_FILE: `${dir}/token` } })).token).toBe('from-file-token');
    expect((await firstRequest({ env: { CONSUL_HTTP_TOKEN: 'env-token', CONSUL_HTTP_TOKEN_FILE: `${dir}/empty` } })).token).toBe('env-token');
    expect((await firstRequest({ token: 'option-token', env: { CONSUL_HTTP_TOKEN: 'env-token' } })).token).toBe('option-token');
    expect((await firstRequest({ tokenFile: `${dir}/token`, env: {} })).token).toBe('from-file-token');
    expect((await firstRequest({ token: '', env: { CONSUL_HTTP_TOKEN: 'env-token' } })).token).toBeNull();
    expect(() => consulRegistry({ env: { CONSUL_HTTP_TOKEN_FILE: `${dir}/missing` } })).toThrow(/could not read the token file .*ENOENT/);
    const bad = 'abc\r\nX-Evil: 1';
    expect(() => consulRegistry({ token: bad })).toThrow(/printable ASCII/);
    try {
      consulRegistry({ token: bad });
    } catch (error) {
      expect((error as Error).message).not.toContain('abc');
    }
  });

  it('validates options once, naming them', () => {
    expect(() => consulRegistry({ waitMs: 700_000, fetch })).toThrow('consulRegistry.waitMs must be a number from 1 to 600000');
    // Node's fetch gives up on headers after 300 s, and a blocking query sends none until it returns
    expect(() => consulRegistry({ waitMs: 290_000 })).toThrow('consulRegistry.waitMs must be a number from 1 to 280000');
    expect(() => consulRegistry({ waitMs: 290_000, fetch })).not.toThrow();
    expect(() => consulRegistry({ tag: [''] })).toThrow('consulRegistry.tag[0] must be a non-empty string');
    expect(() => consulRegistry({ passingOnly: 'yes' as never })).toThrow('consulRegistry.passingOnly must be a boolean');
    expect(() => consulRegistry({ pasingOnly: true } as never)).toThrow(/consulRegistry\.pasingOnly is not a known option/);
    expect(() => consulRegistry({ fetch: 42 as never })).toThrow('consulRegistry.fetch must be a function');
    expect(() => consulRegistry({ backoff: { initialMs: 500, maxMs: 100 } })).toThrow(/backoff\.maxMs/);
  });
});

describe('the double speaks like the captures', () => {
  it('headers are Go-canonicalised, errors are plain text', async () => {
    consul.setInstances('users', [{ port: 8081 }]);
    const raw = await new Promise<{ status: number; names: string[]; body: string }>((done) => {
      http.get(`${consul.url}/v1/health/service/users`, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => done({ status: res.statusCode!, names: res.rawHeaders.filter((_, i) => i % 2 === 0), body }));
      });
    });
    const expected = readFileSync(new URL('../fixtures/consul/health-service.response-headers.synthesized.txt', import.meta.url), 'utf8')
      .split('\n').slice(1).filter(Boolean).map((l) => l.split(':')[0]!);
    for (const name of expected) expect(raw.names).toContain(name);
    const res = await fetch(`${consul.url}/v1/health/service/users?wait=10`);
    expect([res.status, res.headers.get('content-type'), await res.text()]).toEqual([400, 'text/plain; charset=utf-8', 'Invalid wait time']);
  });
});
