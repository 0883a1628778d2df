import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dnsRegistry, type DnsRegistryOptions } from '../../src/discovery/dns.js';
import { lookupService, PARTIAL_REFRESH_MS } from '../../src/discovery/dns-lookup.js';
import { DiscoveryError, NoEndpointsError } from '../../src/errors.js';
import { deadUdpAddress, startDnsServer, type Behaviour, type DnsTestServer } from '../helpers/dns-server.js';

let dns: DnsTestServer;
let dead: string;

beforeAll(async () => {
  dns = await startDnsServer();
  dead = await deadUdpAddress();
});
afterAll(async () => {
  await dns.close();
});
beforeEach(() => {
  dns.clear();
});

const failure = async (options: DnsRegistryOptions, service = 'users'): Promise<Error> => {
  const registry = dnsRegistry({ servers: [dns.address], ...options });
  const result = await registry.resolve(service, { signal: new AbortController().signal }).catch((e: unknown) => e);
  if (!(result instanceof Error)) throw new Error(`expected a rejection, got ${JSON.stringify(result)}`);
  return result;
};

/** Every way a DNS query ends without an answer, and what the registry makes of it. */
const rcodes: { behaviour: Behaviour; error: typeof NoEndpointsError | typeof DiscoveryError; text: string }[] = [
  { behaviour: 'NXDOMAIN', error: NoEndpointsError, text: 'no such name (NXDOMAIN)' },
  { behaviour: 'SERVFAIL', error: DiscoveryError, text: 'server failure (SERVFAIL)' },
  { behaviour: 'REFUSED', error: DiscoveryError, text: 'query refused (REFUSED)' },
  { behaviour: 'FORMERR', error: DiscoveryError, text: '(FORMERR)' },
  { behaviour: 'NOTIMP', error: DiscoveryError, text: '(NOTIMP)' },
];

describe.each([
  { mode: 'srv' as const, name: '_http._tcp.users', type: 'SRV', options: {} },
  { mode: 'a' as const, name: 'users', type: 'A/AAAA', options: { mode: 'a' as const, port: 80 } },
])('dnsRegistry errors, $mode mode: each names the DNS name and the server', ({ name, type, options }) => {
  it.each(rcodes)('$behaviour → $error.name', async ({ behaviour, error: expected, text }) => {
    dns.behave(behaviour);
    const error = await failure(options);
    expect(error).toBeInstanceOf(expected);
    expect(error.message).toContain(`DNS ${type} query for ${name} to ${dns.address}`);
    expect(error.message).toContain(text);
    expect((error as DiscoveryError).service).toBe('users');
  });

  it('NODATA → NoEndpointsError', async () => {
    dns.exists(name);
    if (type === 'SRV') dns.a(name, ['127.0.0.1']); // the name has records, just no SRV
    const error = await failure(options);
    expect(error).toBeInstanceOf(NoEndpointsError);
    expect(error.message).toContain(`DNS ${type} query for ${name} to ${dns.address}`);
    expect(error.message).toContain('(NODATA)');
  });

  it('a server that never answers → DiscoveryError at our deadline', async () => {
    dns.behave('drop');
    const started = performance.now();
    const error = await failure({ ...options, timeoutMs: 300 });
    const took = performance.now() - started;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toMatch(new RegExp(`DNS ${type} query for ${name} to ${dns.address}: no answer .*\\(timeout\\)`));
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(1_500);
  });

  it('connection refused (nothing listens on the port) → DiscoveryError', async () => {
    const registry = dnsRegistry({ ...options, servers: [dead] });
    const error = (await registry.resolve('users', { signal: new AbortController().signal }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toContain(`DNS ${type} query for ${name} to ${dead}`);
    expect(error.message).toMatch(/connection refused|timeout/); // ICMP port unreachable on Linux: refused at once
  });
});

describe('dnsRegistry errors on SRV targets', () => {
  const twoTargets = (): void => {
    dns.srv('_http._tcp.users', [
      { target: 'a.test', port: 80, priority: 1, weight: 1 },
      { target: 'b.test', port: 80, priority: 1, weight: 1 },
    ]);
  };

  it('every target absent → NoEndpointsError listing each target', async () => {
    twoTargets();
    dns.exists('b.test');
    const error = await failure({});
    expect(error).toBeInstanceOf(NoEndpointsError);
    expect(error.message).toContain(`DNS SRV query for _http._tcp.users to ${dns.address}: none of its 2 targets has an address`);
    expect(error.message).toContain('a.test: no such name (NXDOMAIN)');
    expect(error.message).toContain('b.test: no A or AAAA record (NODATA)');
  });

  it('a target failing for a passing reason makes it a DiscoveryError (served stale by the mesh)', async () => {
    twoTargets();
    dns.behave('SERVFAIL', 'a.test');
    const error = await failure({});
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toContain('a.test: server failure (SERVFAIL)');
    expect(error.message).toContain('b.test: no such name (NXDOMAIN)');
  });

  it('a target that never answers is left out at the deadline; the others are served, with a short TTL', async () => {
    twoTargets();
    dns.a('a.test', ['127.0.0.1'], 600);
    dns.behave('drop', 'b.test');
    const started = performance.now();
    const answer = await lookupService(
      { servers: [dns.address], mode: 'srv', nameFor: undefined, port: undefined, minTtlMs: 1, maxTtlMs: 3_600_000, timeoutMs: 300, random: Math.random },
      'users',
      new AbortController().signal,
    );
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(answer.endpoints.map((e) => e.id)).toEqual(['127.0.0.1:80']);
    expect(answer.ttlMs).toBe(PARTIAL_REFRESH_MS);
  });

  it('the deadline covers SRV and targets together', async () => {
    twoTargets();
    dns.behave('drop', 'a.test');
    dns.behave('drop', 'b.test');
    const started = performance.now();
    const error = await failure({ timeoutMs: 300 });
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toContain('a.test: no answer within 300 ms (timeout)');
  });
});

describe('dnsRegistry servers, abort and close', () => {
  it('names every server when all of them fail', async () => {
    const other = await deadUdpAddress();
    const registry = dnsRegistry({ servers: [dead, other] });
    const error = (await registry.resolve('users', { signal: new AbortController().signal }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toContain(`to ${dead}, ${other}:`);
  });

  it('asks the next server when the first refuses the connection', async () => {
    dns.a('users', ['127.0.0.1']);
    const registry = dnsRegistry({ servers: [dead, dns.address], mode: 'a', port: 80 });
    expect((await registry.resolve('users', { signal: new AbortController().signal })).map((e) => e.id)).toEqual(['127.0.0.1:80']);
  });

  it('honours the caller’s abort: rejects with its reason, at once', async () => {
    dns.behave('drop');
    const registry = dnsRegistry({ servers: [dns.address], timeoutMs: 10_000 });
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    const started = performance.now();
    const pending = registry.resolve('users', { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1_000);
    // already aborted: no query at all
    const before = dns.queries.length;
    await expect(registry.resolve('users', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(dns.queries.length).toBe(before);
  });

  it('close() cancels lookups in flight, and later ones reject', async () => {
    dns.behave('drop');
    const registry = dnsRegistry({ servers: [dns.address], timeoutMs: 10_000 });
    const pending = registry.resolve('users', { signal: new AbortController().signal });
    await new Promise((r) => setTimeout(r, 20));
    await registry.close?.();
    const error = (await pending.catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toContain('closed');
    await expect(registry.resolve('users', { signal: new AbortController().signal })).rejects.toThrow(/closed/);
  });
});

describe('dnsRegistry options are checked at construction, naming the option', () => {
  it.each([
    [{ mode: 'a' }, /port must be an integer from 1 to 65535 \(required when mode is 'a'\)/],
    [{ mode: 'auto' }, /port must be .*required when mode is 'auto'/],
    [{ mode: 'a', port: 0 }, /port must be/],
    [{ port: 1.5 }, /port must be/],
    [{ mode: 'mx' }, /mode must be 'srv', 'a' or 'auto'/],
    [{ servers: [] }, /servers must be a non-empty array/],
    [{ servers: 'x' }, /servers must be a non-empty array/],
    [{ servers: ['localhost:53'] }, /servers\[0\] must be an IP address/],
    [{ servers: ['127.0.0.1:53', 7] }, /servers\[1\] must be an IP address/],
    [{ minTtlMs: 0 }, /minTtlMs must be a number of milliseconds/],
    [{ maxTtlMs: Infinity }, /maxTtlMs must be/],
    [{ minTtlMs: 10_000, maxTtlMs: 5_000 }, /maxTtlMs must be >= minTtlMs/],
    [{ timeoutMs: -1 }, /timeoutMs must be/],
    [{ nameFor: 'x' }, /nameFor must be a function/],
    [{ random: 1 }, /random must be a function/],
    [{ ttl: 5 }, /unknown option "ttl"/],
  ])('%j', (options, message) => {
    expect(() => dnsRegistry(options as DnsRegistryOptions)).toThrow(TypeError);
    expect(() => dnsRegistry(options as DnsRegistryOptions)).toThrow(message);
  });

  it('accepts IPv6 servers with a port, and no options at all', () => {
    expect(() => dnsRegistry({ servers: ['[::1]:5353', '127.0.0.1'] })).not.toThrow();
    expect(() => dnsRegistry()).not.toThrow();
    expect(() => dnsRegistry({ minTtlMs: 600_000 })).not.toThrow(); // maxTtlMs follows a large minTtlMs
  });
});
