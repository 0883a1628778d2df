import { describe, expect, it } from 'vitest';
import { resolvePolicy } from '../../src/defaults.js';
import { createMesh, seededRng, staticRegistry, type Endpoint, type MeshOptions } from '../../src/index.js';
import { headerValue } from '../../src/transport/fetch.js';

const registry = staticRegistry({ api: ['127.0.0.1:9'] });

// Each row: options that must be refused, and the option path the TypeError must name.
const invalid: [string, unknown, string][] = [
  ['hashHeader not a header name', { defaults: { hashHeader: 'x user' } }, 'defaults.hashHeader'],
  ['hashHeader not a string', { defaults: { hashHeader: 1 } }, 'defaults.hashHeader'],
  ['ringHash not an object', { defaults: { ringHash: 3 } }, 'defaults.ringHash must be an object'],
  ['ringHash unknown key', { defaults: { ringHash: { minSize: 3 } } }, 'defaults.ringHash.minSize is not a known option'],
  ['ringHash min 0', { defaults: { ringHash: { minRingSize: 0 } } }, 'defaults.ringHash.minRingSize'],
  ['ringHash max over 8M', { defaults: { ringHash: { maxRingSize: 9_000_000 } } }, 'defaults.ringHash.minRingSize and maxRingSize'],
  ['ringHash min > max', { services: { api: { ringHash: { minRingSize: 4096, maxRingSize: 1024 } } } }, 'services.api.ringHash.maxRingSize'],
  ['ringHash balance factor < 100', { defaults: { ringHash: { hashBalanceFactor: 50 } } }, 'defaults.ringHash.hashBalanceFactor'],
  ['maglev table not prime', { defaults: { maglev: { tableSize: 65_536 } } }, 'defaults.maglev.tableSize must be a prime'],
  ['maglev table too large', { defaults: { maglev: { tableSize: 5_000_101 } } }, 'defaults.maglev.tableSize'],
  ['maglev balance factor fractional', { defaults: { maglev: { hashBalanceFactor: 150.5 } } }, 'defaults.maglev.hashBalanceFactor'],
  ['slowStart without window', { defaults: { slowStart: {} } }, 'defaults.slowStart.windowMs is required'],
  ['slowStart window 0', { defaults: { slowStart: { windowMs: 0 } } }, 'defaults.slowStart.windowMs'],
  ['slowStart aggression 0', { defaults: { slowStart: { windowMs: 1_000, aggression: 0 } } }, 'defaults.slowStart.aggression'],
  ['slowStart min over 100', { defaults: { slowStart: { windowMs: 1_000, minWeightPercent: 120 } } }, 'defaults.slowStart.minWeightPercent'],
  ['slowStart true', { defaults: { slowStart: true } }, 'defaults.slowStart must be an object'],
  ['locality factor below 1', { defaults: { locality: { overprovisioningFactor: 0.5 } } }, 'defaults.locality.overprovisioningFactor'],
  ['locality unknown key', { defaults: { locality: { factor: 2 } } }, 'defaults.locality.factor is not a known option'],
];

describe('balancing options are validated at createMesh', () => {
  it.each(invalid)('%s', (_label, options, path) => {
    let error: unknown;
    try {
      createMesh({ registry, ...(options as object) } as MeshOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toContain(path);
  });

  it('accepts every option with its documented example, and fills the defaults', async () => {
    const mesh = createMesh({
      registry,
      zone: 'eu-west-1a',
      defaults: {
        balancer: 'ring-hash',
        hashHeader: 'X-User-Id',
        ringHash: { minRingSize: 1024, maxRingSize: 8_388_608, hashBalanceFactor: 150 },
        maglev: { tableSize: 65_537 },
        slowStart: { windowMs: 30_000, aggression: 2, minWeightPercent: 10 },
        locality: { overprovisioningFactor: 1.2 },
      },
      services: { api: { balancer: 'maglev', slowStart: false, locality: false } },
    });
    await mesh.close();
    const p = resolvePolicy({ hashHeader: 'X-User-Id', slowStart: { windowMs: 5_000 } });
    expect(p.hashHeader).toBe('x-user-id');
    expect(p.ringHash).toEqual({ minRingSize: 1024, maxRingSize: 8_388_608, hashBalanceFactor: 0 });
    expect(p.maglev).toEqual({ tableSize: 65_537, hashBalanceFactor: 0 });
    expect(p.slowStart).toEqual({ windowMs: 5_000, aggression: 1, minWeightPercent: 10 });
    expect(p.locality).toEqual({ overprovisioningFactor: 1.4 });
    expect(resolvePolicy().slowStart).toBe(false);
    expect(resolvePolicy({ slowStart: { windowMs: 5_000 } }, { slowStart: { windowMs: 9_000 } }).slowStart).toMatchObject({ windowMs: 9_000 });
  });
});

describe('hash keys through the mesh', () => {
  const endpoints = Array.from({ length: 8 }, (_, i) => `10.0.0.${i + 1}:80`);

  it.each(['ring-hash', 'maglev'] as const)('mesh.call with hashKey sticks to one endpoint per key (%s)', async (balancer) => {
    const mesh = createMesh({ registry: staticRegistry({ cache: endpoints }), random: seededRng(1), defaults: { balancer } });
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < 50; k++) {
        await mesh.call('cache', (ep: Endpoint) => {
          const key = `user-${k}`;
          if (!seen.has(key)) seen.set(key, new Set());
          seen.get(key)?.add(ep.id);
        }, { hashKey: `user-${k}` });
      }
    }
    for (const ids of seen.values()) expect(ids.size).toBe(1);
    expect(new Set([...seen.values()].flatMap((s) => [...s])).size).toBeGreaterThan(4);
    await mesh.close();
  });

  it('mesh.fetch takes the key from the policy hashHeader when the call has no hashKey', async () => {
    const hosts: string[] = [];
    const fakeFetch = async (input: string | URL | Request): Promise<Response> => {
      hosts.push(new URL(input instanceof Request ? input.url : String(input)).host);
      return new Response('ok');
    };
    const mesh = createMesh({
      registry: staticRegistry({ cache: endpoints }),
      fetch: fakeFetch as typeof fetch,
      random: seededRng(1),
      defaults: { balancer: 'maglev', hashHeader: 'X-User-Id' },
    });
    const hostFor = async (init: RequestInit & { hashKey?: string }, url = 'http://cache/x'): Promise<string> => {
      hosts.length = 0;
      await mesh.fetch(url, init);
      return hosts[0] as string;
    };
    const byHeader = await hostFor({ headers: { 'x-user-id': 'alice' } });
    for (let i = 0; i < 20; i++) {
      expect(await hostFor({ headers: { 'X-User-Id': 'alice' } })).toBe(byHeader);
      expect(await hostFor({ headers: new Headers({ 'x-user-id': 'alice' }) })).toBe(byHeader);
      expect(await hostFor({ headers: [['X-USER-ID', 'alice']] })).toBe(byHeader);
    }
    // A Request's own headers count too; an explicit hashKey wins over the header.
    hosts.length = 0;
    await mesh.fetch(new Request('http://cache/x', { headers: { 'x-user-id': 'alice' } }));
    expect(hosts[0]).toBe(byHeader);
    const byKey = await hostFor({ hashKey: 'alice' });
    expect(byKey).toBe(byHeader); // the same key, whichever way it came
    const others = new Set<string>();
    for (let i = 0; i < 40; i++) others.add(await hostFor({ headers: { 'x-user-id': `user-${i}` } }));
    expect(others.size).toBeGreaterThan(4);
    await mesh.close();
  });

  it('headerValue reads init headers before a Request’s own, in every HeadersInit form', () => {
    const request = new Request('http://svc/', { headers: { 'X-Key': 'from-request' } });
    expect(headerValue(request, undefined, 'x-key')).toBe('from-request');
    expect(headerValue(request, { headers: { 'x-key': 'from-init' } }, 'x-key')).toBe('from-init');
    expect(headerValue('http://svc/', { headers: [['X-Key', 'a'], ['x-key', 'b']] }, 'x-key')).toBe('a, b');
    expect(headerValue('http://svc/', {}, 'x-key')).toBeUndefined();
    expect(headerValue('http://svc/', { headers: { other: '1' } }, 'x-key')).toBeUndefined();
  });
});
