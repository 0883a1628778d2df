import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dnsRegistry, type DnsRegistryOptions } from '../../src/discovery/dns.js';
import { lookupService, PARTIAL_REFRESH_MS, type LookupConfig } from '../../src/discovery/dns-lookup.js';
import { orderSrv, ZERO_WEIGHT_SHARE } from '../../src/discovery/srv.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { DiscoveryError, InvalidServiceNameError, NoEndpointsError } from '../../src/errors.js';
import { seededRng } from '../../src/util/random.js';
import { startDnsServer, type DnsTestServer } from '../helpers/dns-server.js';

let dns: DnsTestServer;
const signal = (): AbortSignal => new AbortController().signal;

beforeAll(async () => {
  dns = await startDnsServer();
});
afterAll(async () => {
  await dns.close();
});
beforeEach(() => {
  dns.clear();
  dns.behave('answer');
});

const registry = (options: DnsRegistryOptions = {}) => dnsRegistry({ servers: [dns.address], ...options });
const resolve = (service: string, options: DnsRegistryOptions = {}): Promise<readonly Endpoint[]> =>
  registry(options).resolve(service, { signal: signal() });
/** `id weight target`, sorted: what the list holds, whatever its order. */
const summary = (list: readonly Endpoint[]): string[] => list.map((e) => `${e.id} ${e.weight} ${e.meta.target}`).sort();

const config = (overrides: Partial<LookupConfig> = {}): LookupConfig => ({
  servers: [dns.address],
  mode: 'srv',
  nameFor: undefined,
  port: undefined,
  minTtlMs: 1,
  maxTtlMs: 3_600_000,
  timeoutMs: 2_000,
  random: Math.random,
  ...overrides,
});

/** The records of test/fixtures/dns/dnsmasq.example.conf, on the test server. */
function usersZone(): void {
  dns.srv('_http._tcp.users', [
    { target: 'users-1.node.test', port: 8080, priority: 10, weight: 60 },
    { target: 'users-2.node.test', port: 8081, priority: 10, weight: 30 },
    { target: 'users-3.node.test', port: 9090, priority: 10, weight: 0 },
    { target: 'users-4.node.test', port: 9090, priority: 20, weight: 100 },
  ]);
  dns.a('users-1.node.test', ['127.0.0.1'], 30);
  dns.aaaa('users-1.node.test', ['::1'], 20);
  dns.a('users-2.node.test', ['127.0.0.2'], 30);
  dns.a('users-3.node.test', ['127.0.0.3'], 30);
  dns.a('users-4.node.test', ['127.0.0.4'], 5);
}

describe('dnsRegistry, SRV mode', () => {
  it('maps the lowest priority with an address to endpoints; SRV weight → endpoint weight, split among addresses', async () => {
    usersZone();
    const list = await resolve('users');
    expect(summary(list)).toEqual([
      '127.0.0.1:8080 30 users-1.node.test',
      '127.0.0.2:8081 30 users-2.node.test',
      `127.0.0.3:9090 ${90 * ZERO_WEIGHT_SHARE} users-3.node.test`,
      '[::1]:8080 30 users-1.node.test',
    ]);
    expect(Object.isFrozen(list)).toBe(true);
    expect(list.every((e) => Object.isFrozen(e) && e.tags.length === 0)).toBe(true);
  });

  it('falls over to the next priority when no target of the lower one has an address', async () => {
    usersZone();
    for (const t of ['users-1.node.test', 'users-2.node.test', 'users-3.node.test']) dns.remove(t);
    expect(summary(await resolve('users'))).toEqual(['127.0.0.4:9090 100 users-4.node.test']);
    // ... also when the lower targets fail rather than being absent
    usersZone();
    for (const t of ['users-1.node.test', 'users-2.node.test', 'users-3.node.test']) dns.behave('SERVFAIL', t);
    expect(summary(await resolve('users'))).toEqual(['127.0.0.4:9090 100 users-4.node.test']);
  });

  it('leaves out a target without an address while others of its priority have one', async () => {
    usersZone();
    dns.remove('users-2.node.test');
    expect(summary(await resolve('users')).map((s) => s.split(' ')[0])).toEqual(['127.0.0.1:8080', '127.0.0.3:9090', '[::1]:8080']);
  });

  it('adds up the weights of records that lead to the same address and port', async () => {
    dns.srv('_http._tcp.api', [
      { target: 'x.test', port: 80, priority: 1, weight: 2 },
      { target: 'y.test', port: 80, priority: 1, weight: 3 },
      { target: 'y.test', port: 81, priority: 1, weight: 1 },
    ]);
    dns.a('x.test', ['127.0.0.1']);
    dns.a('y.test', ['127.0.0.1']);
    expect(summary(await resolve('api'))).toEqual(['127.0.0.1:80 5 x.test', '127.0.0.1:81 1 y.test']);
  });

  it('gives equal weights when every weight of the priority is 0', async () => {
    dns.srv('_http._tcp.api', [
      { target: 'x.test', port: 80, priority: 1, weight: 0 },
      { target: 'y.test', port: 80, priority: 1, weight: 0 },
    ]);
    dns.a('x.test', ['127.0.0.1']);
    dns.a('y.test', ['127.0.0.2']);
    expect(summary(await resolve('api'))).toEqual(['127.0.0.1:80 1 x.test', '127.0.0.2:80 1 y.test']);
  });

  it('lists endpoints in RFC 2782 order, as orderSrv draws it from the same seed', async () => {
    const records = [
      { name: 'a.test', port: 81, priority: 10, weight: 50 },
      { name: 'b.test', port: 82, priority: 10, weight: 30 },
      { name: 'c.test', port: 83, priority: 10, weight: 20 },
    ];
    dns.srv('_http._tcp.api', records.map(({ name, ...r }) => ({ ...r, target: name })));
    for (const r of records) dns.a(r.name, ['127.0.0.1']);
    const reg = registry({ random: seededRng(5) });
    const expected = seededRng(5);
    const firsts = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const list = await reg.resolve('api', { signal: signal() });
      // c-ares may return the SRV records in any order: draw from the order the server sent them in.
      expect(list.map((e) => e.meta.target)).toEqual(orderSrv(records, expected).map((r) => r.name));
      firsts.set(list[0]!.meta.target!, (firsts.get(list[0]!.meta.target!) ?? 0) + 1);
    }
    // and the first place goes by weight (loose: 200 draws)
    expect(firsts.get('a.test')! / 200).toBeGreaterThan(0.38);
    expect(firsts.get('c.test')! / 200).toBeLessThan(0.3);
  });

  it('a lone "." target means decidedly not available: NoEndpointsError', async () => {
    dns.srv('_http._tcp.users', [{ target: '.', port: 0, priority: 0, weight: 0 }]);
    const error = await resolve('users').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoEndpointsError);
    expect((error as Error).message).toContain('_http._tcp.users');
    expect((error as Error).message).toContain('decidedly not available');
  });

  it('ignores a "." record next to real ones', async () => {
    dns.srv('_http._tcp.users', [
      { target: '.', port: 0, priority: 0, weight: 0 },
      { target: 'x.test', port: 80, priority: 5, weight: 1 },
    ]);
    dns.a('x.test', ['127.0.0.1']);
    expect(summary(await resolve('users'))).toEqual(['127.0.0.1:80 1 x.test']);
  });

  it('queries the name nameFor gives for SRV', async () => {
    dns.srv('_grpc._tcp.users.prod.test', [{ target: 'x.test', port: 50051, priority: 0, weight: 1 }]);
    dns.a('x.test', ['127.0.0.1']);
    const list = await resolve('users', { nameFor: (s, type) => (type === 'srv' ? `_grpc._tcp.${s}.prod.test` : 'unused.test') });
    expect(summary(list)).toEqual(['127.0.0.1:50051 1 x.test']);
  });
});

describe('dnsRegistry, A/AAAA and auto modes', () => {
  it("'a': A and AAAA records of the service name on the configured port, weight 1 each", async () => {
    dns.a('users', ['127.0.0.1', '127.0.0.2']);
    dns.aaaa('users', ['::1']);
    expect(summary(await resolve('users', { mode: 'a', port: 8080 }))).toEqual([
      '127.0.0.1:8080 1 users',
      '127.0.0.2:8080 1 users',
      '[::1]:8080 1 users',
    ]);
  });

  it("'a': IPv4 only (AAAA is NODATA) is fine, and nameFor gives the name", async () => {
    dns.a('users.svc.test', ['127.0.0.9']);
    const list = await resolve('users', { mode: 'a', port: 80, nameFor: (s) => `${s}.svc.test` });
    expect(summary(list)).toEqual(['127.0.0.9:80 1 users.svc.test']);
  });

  it("'auto': SRV when there is one", async () => {
    dns.srv('_http._tcp.users', [{ target: 'x.test', port: 81, priority: 0, weight: 1 }]);
    dns.a('x.test', ['127.0.0.1']);
    dns.a('users', ['127.0.0.2']);
    expect(summary(await resolve('users', { mode: 'auto', port: 80 }))).toEqual(['127.0.0.1:81 1 x.test']);
  });

  it("'auto': A/AAAA when the SRV name is NXDOMAIN or has no SRV record (NODATA)", async () => {
    dns.a('users', ['127.0.0.2']);
    expect(summary(await resolve('users', { mode: 'auto', port: 80 }))).toEqual(['127.0.0.2:80 1 users']);
    dns.exists('_http._tcp.users');
    expect(summary(await resolve('users', { mode: 'auto', port: 80 }))).toEqual(['127.0.0.2:80 1 users']);
    expect(dns.count('_http._tcp.users', 'SRV')).toBe(2);
  });

  it("'auto': a failing SRV query is a failure, not a reason to fall back", async () => {
    dns.a('users', ['127.0.0.2']);
    dns.behave('SERVFAIL', '_http._tcp.users');
    await expect(resolve('users', { mode: 'auto', port: 80 })).rejects.toBeInstanceOf(DiscoveryError);
    expect(dns.count('users')).toBe(0);
  });

  it("'auto': when both are absent, the message tells both", async () => {
    const error = (await resolve('users', { mode: 'auto', port: 80 }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(NoEndpointsError);
    expect(error.message).toMatch(/DNS SRV query for _http\._tcp\.users to 127\.0\.0\.1:\d+: no such name \(NXDOMAIN\); then DNS A\/AAAA query for users/);
  });
});

describe('dnsRegistry names', () => {
  it('refuses a hostile service name before any query', async () => {
    for (const bad of ['a/b', 'a..b', 'a b', 'x\r\ny', '%2e']) {
      await expect(resolve(bad)).rejects.toBeInstanceOf(InvalidServiceNameError);
    }
    await expect(resolve('x'.repeat(64))).rejects.toBeInstanceOf(InvalidServiceNameError); // a label > 63
    expect(dns.queries).toEqual([]);
  });

  it('refuses what nameFor returns when it is not a DNS name, or when it throws', async () => {
    const error = await resolve('users', { nameFor: () => 'a..b' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as Error).message).toContain('nameFor');
    const thrown = await resolve('users', { nameFor: () => { throw new Error('boom'); } }).catch((e: unknown) => e);
    expect((thrown as Error).message).toContain('boom');
    expect(dns.queries).toEqual([]);
  });
});

describe('TTL of an answer', () => {
  const lookup = (overrides: Partial<LookupConfig> = {}, service = 'users') => lookupService(config(overrides), service, signal());

  it('SRV: the smallest TTL of the addresses used (Node gives no SRV TTL), in ms', async () => {
    usersZone();
    expect((await lookup()).ttlMs).toBe(20_000); // users-1's AAAA; users-4 (5 s) is at an unused priority
  });

  it('is clamped to [minTtlMs, maxTtlMs]', async () => {
    usersZone();
    expect((await lookup({ maxTtlMs: 7_000 })).ttlMs).toBe(7_000);
    dns.a('users-2.node.test', ['127.0.0.2'], 0);
    expect((await lookup({ minTtlMs: 1_500 })).ttlMs).toBe(1_500);
  });

  it('A/AAAA: read with { ttl: true }', async () => {
    dns.a('users', ['127.0.0.1'], 42);
    dns.aaaa('users', ['::1'], 43);
    expect((await lookup({ mode: 'a', port: 80 })).ttlMs).toBe(42_000);
  });

  it(`is at most ${PARTIAL_REFRESH_MS} ms when part of the answer failed for a passing reason`, async () => {
    usersZone();
    dns.behave('SERVFAIL', 'users-2.node.test');
    const answer = await lookup();
    expect(answer.endpoints).toHaveLength(3);
    expect(answer.ttlMs).toBe(PARTIAL_REFRESH_MS);
  });

  it('is short too after a failover caused by a failure that may pass, so that the lower priority is tried again soon', async () => {
    usersZone();
    for (const t of ['users-1.node.test', 'users-2.node.test', 'users-3.node.test']) dns.behave('SERVFAIL', t);
    dns.a('users-4.node.test', ['127.0.0.4'], 600);
    const answer = await lookup();
    expect(answer.endpoints.map((e) => e.id)).toEqual(['127.0.0.4:9090']);
    expect(answer.ttlMs).toBe(PARTIAL_REFRESH_MS);
    // absent (not failing) lower targets: the failover is as good as any answer, and keeps its TTL
    dns.clear();
    usersZone();
    for (const t of ['users-1.node.test', 'users-2.node.test', 'users-3.node.test']) dns.remove(t);
    dns.a('users-4.node.test', ['127.0.0.4'], 600);
    expect((await lookup()).ttlMs).toBe(600_000);
  });

  it('keys the set of endpoints, not their random order', async () => {
    usersZone();
    const a = await lookup({ random: seededRng(1) });
    const b = await lookup({ random: seededRng(2) });
    expect(a.key).toBe(b.key);
    dns.a('users-2.node.test', ['127.0.0.22'], 30);
    expect((await lookup()).key).not.toBe(a.key);
  });
});
