import { BlockList } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DiscoveryCache } from '../../src/discovery/cache.js';
import { consulRegistry } from '../../src/discovery/consul.js';
import { registerService } from '../../src/discovery/consul-register.js';
import type { Registry } from '../../src/discovery/registry.js';
import { authority, toEndpoint, type Endpoint } from '../../src/endpoint/endpoint.js';
import { DiscoveryError } from '../../src/errors.js';
import { eps, flush, ids, manualClock, memoryRegistry, recorder } from '../discovery/fakes.js';

/** Where fetch would connect for this endpoint: the WHATWG URL parser's reading of the attempt URL. */
function dialled(host: string, port: number): URL {
  return new URL(`http://${authority(host, port)}/x`);
}

/** Whether the URL names exactly `host`: same IPv6 address, same IPv4 text, or the same name (DNS is case-blind). */
function namesHost(url: URL, host: string): boolean {
  if (host.includes(':')) {
    if (!url.hostname.startsWith('[') || !url.hostname.endsWith(']')) return false;
    const list = new BlockList();
    list.addAddress(host, 'ipv6');
    return list.check(url.hostname.slice(1, -1), 'ipv6');
  }
  return url.hostname === host.toLowerCase();
}

/** The property: an endpoint that toEndpoint accepts is dialled at its own host and port, with nothing else. */
function dialledAsDescribed(e: Endpoint): boolean {
  let url: URL;
  try {
    url = dialled(e.host, e.port);
  } catch {
    return false; // accepted but not even a URL: fetch would fail with "Invalid URL"
  }
  return namesHost(url, e.host) && Number(url.port || '80') === e.port && url.pathname === '/x' && url.username === '' && url.password === '';
}

function accepted(host: string, port: number): Endpoint | undefined {
  try {
    return toEndpoint({ host, port }, 'test');
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
    return undefined;
  }
}

/** Hosts a URL parser reads as another host or port, or that are no host at all. */
const HOSTILE: readonly (readonly [string, number])[] = [
  ['127.0.0.1\\', 9], // read as 127.0.0.1 on port 80: '\' starts the path in http URLs
  ['::1]:8080\\', 9], // read as [::1]:8080
  ['127.0.0.1/evil', 9],
  ['127.0.0.1?x', 9],
  ['127.0.0.1#x', 9],
  ['user@127.0.0.1', 9],
  ['127.0.0.1 ', 9],
  ['127.0.0.1\t', 9], // the URL parser drops tabs
  ['a\nb', 9],
  ['a\u0000b', 9],
  ['127.1', 9], // read as 127.0.0.1
  ['0x7f000001', 9], // read as 127.0.0.1
  ['010.0.0.1', 9], // octal: read as 8.0.0.1
  ['1.2.3.4.5', 9],
  ['a%2eb', 9],
  ['[127.0.0.1]', 9],
  ['fe80::1%eth0', 9],
  ['a:b', 9],
  ['10.0.0.1:80', 9],
  ['a..b', 9],
  ['.a', 9],
  ['-a.internal', 9],
  ['bücher.de', 9], // the parser would dial xn--bcher-kva.de
  ['xn--a', 9],
  [`${'a'.repeat(64)}.internal`, 9],
  [`${'a.'.repeat(127)}ab`, 9], // 255 characters
];

describe('the host rule (toEndpoint, registries, DNS and Consul answers)', () => {
  it.each(HOSTILE)('defect 11: toEndpoint refuses host %j (port %i), which a URL parser reads differently', (host, port) => {
    expect(() => toEndpoint({ host, port }, 'staticRegistry: users[0]')).toThrow(/staticRegistry: users\[0\]\.host must be a host name or IP address/);
  });

  it("defect 11: the 'host:port' form goes through the same rule", () => {
    expect(() => toEndpoint('127.0.0.1\\:9', 'x')).toThrow(TypeError);
    expect(() => toEndpoint('127.1:9', 'x')).toThrow(TypeError);
    expect(toEndpoint('[::1]:9', 'x')).toMatchObject({ id: '[::1]:9', host: '::1', port: 9 });
  });

  it('defect 11: IP literals and host names are accepted and dialled exactly there', () => {
    const good = ['127.0.0.1', '10.0.0.255', '0.0.0.0', '::1', '::', '2001:db8::1', 'FE80::1', '::ffff:127.0.0.1', 'localhost',
      'users.internal', 'Users.Internal', 'users.internal.', 'my_service', '_http._tcp.users', 'xn--bcher-kva.de', 'a-b.c1', '1a.example',
      `${'a'.repeat(63)}.internal`];
    for (const host of good) {
      for (const port of [1, 80, 443, 8080, 65535]) {
        const e = accepted(host, port);
        expect(e, host).toBeDefined();
        expect(dialledAsDescribed(e!), `${host}:${port}`).toBe(true);
      }
    }
    expect(toEndpoint({ host: '[::1]', port: 80 }, 'x').host).toBe('::1');
  });

  it('defect 11: property: whatever host toEndpoint accepts, the attempt URL has exactly its host and port', () => {
    const pieces = ['a', 'Z', '0', '1', '9', '-', '_', '.', ':', '::', '[', ']', '\\', '/', '?', '#', '@', '%', '%2e', ' ', '\t', '\n', '\u0000',
      '\u007f', 'ü', 'xn--', '0x', '127', '255', '256', 'ffff', '.1'];
    const hostile = fc.oneof(
      fc.string({ unit: fc.constantFrom(...pieces), maxLength: 12 }),
      fc.string({ unit: 'binary', maxLength: 12 }),
      fc.ipV4Extended(),
      fc.ipV4(),
      fc.ipV6(),
      fc.domain(),
      fc.tuple(fc.ipV6(), fc.constantFrom(...pieces)).map(([ip, p]) => ip + p),
      fc.tuple(fc.ipV4(), fc.constantFrom(...pieces), fc.ipV4()).map(([a, p, b]) => a + p + b),
    );
    let kept = 0;
    fc.assert(
      fc.property(hostile, fc.integer({ min: 1, max: 65535 }), (host, port) => {
        const e = accepted(host, port);
        if (e === undefined) return true;
        kept++;
        return dialledAsDescribed(e);
      }),
      { seed: 11, numRuns: 5_000 },
    );
    expect(kept).toBeGreaterThan(1_000); // not vacuous: IPs and domains are kept
  });

  it('defect 11: plain IPv4 and IPv6 addresses are never refused', () => {
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => accepted(ip, 80) !== undefined), { seed: 11, numRuns: 2_000 });
  });

  it('defect 11: raw endpoints from a custom registry with /, ?, #, space or \\ in host fail discovery', async () => {
    for (const host of ['127.0.0.1/evil', '127.0.0.1?x', '127.0.0.1#x', '127.0.0.1 x', '127.0.0.1\\', '::1]:8080\\', '[::1]']) {
      const raw = { id: 'x', host, port: 9, weight: 1, tags: [], meta: {} };
      const registry: Registry = { resolve: async () => [raw as Endpoint] };
      const listener = recorder();
      const cache = new DiscoveryCache(registry, { refreshMs: 10_000, maxServices: 10, resolveTimeoutMs: 1_000, clock: manualClock() }, listener);
      const error = await cache.load('users').then(() => undefined, (e: unknown) => e);
      expect(error, host).toBeInstanceOf(DiscoveryError);
      expect((error as Error).message).toMatch(/invalid endpoint at \[0\]: host .* is not a host name or IP address/);
      cache.close();
    }
  });

  it('defect 11: a watch that pushes such an endpoint is refused, and the last good list keeps serving', async () => {
    const memory = memoryRegistry({ watch: true, initial: { users: ['127.0.0.1:8081'] } });
    const listener = recorder();
    const cache = new DiscoveryCache(memory.registry, { refreshMs: 10_000, maxServices: 10, resolveTimeoutMs: 1_000, clock: manualClock() }, listener);
    await cache.load('users');
    const bad = { id: 'x', host: '127.0.0.1\\', port: 9, weight: 1, tags: [], meta: {} } as Endpoint;
    memory.watches[0]!.onUpdate([...eps('127.0.0.1:8082'), bad]);
    await flush();
    expect(listener.errors.at(-1)?.error.message).toMatch(/watch\(\) returned an invalid endpoint at \[1\]: host/);
    expect(ids(await cache.load('users'))).toEqual(['127.0.0.1:8081']);
    cache.close();
  });

  it('defect 11: a Consul instance whose address a URL parser reads differently is left out', async () => {
    const entry = (id: string, address: string, port: number) => ({
      Node: { Node: 'n1', Address: '127.0.0.1', Datacenter: 'dc1' },
      Service: { ID: id, Service: 'users', Address: address, Port: port, Tags: [], Meta: {} },
      Checks: [{ Status: 'passing' }],
    });
    const body = JSON.stringify([entry('good', '127.0.0.1', 8081), entry('slash', '127.0.0.1\\', 9), entry('v6', '::1]:8080\\', 9), entry('short', '127.1', 9)]);
    const registry = consulRegistry({ env: {}, watch: false, fetch: async () => new Response(body, { status: 200, headers: { 'X-Consul-Index': '5' } }) });
    const list = await registry.resolve('users', { signal: new AbortController().signal });
    expect(ids(list)).toEqual(['good@n1']);
    registry.close();
  });

  it('defect 11: registerService refuses an address that discovery would refuse, before asking Consul', async () => {
    let asked = 0;
    const fetch = async (): Promise<Response> => (asked++, new Response(''));
    for (const address of ['127.0.0.1\\', '127.1', 'a b', '::1]:8080\\', '[::1]']) {
      const error = await registerService({ consul: { env: {}, fetch }, service: { name: 'users', address, port: 9 } }).then(() => undefined, (e: unknown) => e);
      expect(error, address).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/registerService\.service\.address must be a host name or IP address/);
    }
    expect(asked).toBe(0);
  });
});
