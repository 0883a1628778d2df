import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dnsRegistry, type DnsRegistryOptions } from '../../src/discovery/dns.js';
import { createMesh, NoEndpointsError, seededRng, type Mesh, type MeshEvents } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';
import { startDnsServer, type DnsTestServer } from '../helpers/dns-server.js';

let dns: DnsTestServer;
let backends: Backend[];
const meshes: Mesh[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dns = await startDnsServer();
  backends = await Promise.all([1, 2].map((n) => startBackend((_req, res) => res.end(`backend-${n}`))));
});
afterAll(async () => {
  await dns.close();
  await Promise.all(backends.map((b) => b.close()));
});
beforeEach(() => dns.clear());
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

function mesh(options: DnsRegistryOptions = {}): Mesh {
  const m = createMesh({
    registry: dnsRegistry({ servers: [dns.address], minTtlMs: 10, ...options }),
    random: seededRng(3),
    defaults: { balancer: 'round-robin', retry: false },
  });
  meshes.push(m);
  return m;
}

/** `_http._tcp.users` → backends with these SRV weights (0 leaves one out), TTL 1 s. */
function publish(weights: readonly number[], ttl = 1): void {
  const records = weights.flatMap((weight, i) => (weight === 0 ? [] : [{ target: `b${i}.test`, port: backends[i]!.port, priority: 10, weight }]));
  dns.srv('_http._tcp.users', records, ttl);
  for (let i = 0; i < weights.length; i++) dns.a(`b${i}.test`, ['127.0.0.1'], ttl);
}

async function bodies(m: Mesh, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const body = await (await m.fetch('http://users/')).text();
    seen.set(body, (seen.get(body) ?? 0) + 1);
  }
  return seen;
}

describe('dnsRegistry behind a mesh', () => {
  it('SRV weights reach the balancer (3 : 1 under smooth weighted round robin)', async () => {
    publish([3, 1], 60);
    const m = mesh();
    expect(await bodies(m, 40)).toEqual(new Map([['backend-1', 30], ['backend-2', 10]]));
  });

  it('a record change reaches the calls when its TTL runs out', async () => {
    publish([1, 1], 1);
    const m = mesh();
    expect((await bodies(m, 4)).size).toBe(2);
    const changed = performance.now();
    publish([0, 1], 1);
    let took = Infinity;
    while (performance.now() - changed < 3_000) {
      const seen = await bodies(m, 2);
      if (seen.size === 1 && seen.has('backend-2')) {
        took = performance.now() - changed;
        break;
      }
      await sleep(20);
    }
    expect(took).toBeLessThan(1_600); // TTL 1 s + a margin
  });

  it('keeps serving the last list while DNS fails, and says so with discovery-error (stale)', async () => {
    publish([1, 1], 0);
    const m = mesh({ maxTtlMs: 30 });
    const errors: MeshEvents['discovery-error'][] = [];
    m.on('discovery-error', (e) => errors.push(e));
    expect((await bodies(m, 2)).size).toBe(2);
    dns.behave('SERVFAIL');
    await sleep(150);
    expect((await bodies(m, 4)).size).toBe(2);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]!.stale).toBe(true);
    // (SERVFAIL may start between the SRV query and its targets' queries: both name the SRV query)
    expect(errors[0]!.error.message).toContain(`DNS SRV query for _http._tcp.users to ${dns.address}: `);
    expect(errors[0]!.error.message).toContain('server failure (SERVFAIL)');
  });

  it('NXDOMAIN with nothing cached fails the call as no endpoints', async () => {
    const m = mesh();
    const error = await m.fetch('http://nobody/').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NoEndpointsError);
    expect((error as Error).message).toContain(`DNS SRV query for _http._tcp.nobody to ${dns.address}: no such name (NXDOMAIN)`);
  });

  it('mesh.close() stops the watch: no more queries', async () => {
    publish([1, 1], 0);
    const m = mesh({ maxTtlMs: 20 });
    await bodies(m, 2);
    await sleep(100);
    expect(dns.count('_http._tcp.users')).toBeGreaterThan(2);
    await m.close();
    await sleep(30); // a query sent just before close() may still be on its way to the server
    const after = dns.queries.length;
    await sleep(150);
    expect(dns.queries.length).toBe(after);
  });
});
