import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dnsRegistry, type DnsRegistryOptions } from '../../src/discovery/dns.js';
import type { Registry } from '../../src/discovery/registry.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { DiscoveryError, NoEndpointsError } from '../../src/errors.js';
import { startDnsServer, type DnsTestServer } from '../helpers/dns-server.js';

// Real time, with short TTLs: c-ares runs its own timers in libuv, out of reach of fake timers.

let dns: DnsTestServer;
let registries: Registry[];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dns = await startDnsServer();
});
afterAll(async () => {
  await dns.close();
});
beforeEach(() => {
  dns.clear();
  registries = [];
});
afterEach(async () => {
  for (const r of registries) await r.close?.();
});

const registry = (options: DnsRegistryOptions = {}): Registry => {
  const r = dnsRegistry({ servers: [dns.address], mode: 'a', port: 80, minTtlMs: 10, ...options });
  registries.push(r);
  return r;
};
const signal = (): AbortSignal => new AbortController().signal;

/** Records what a watch hears, with when. */
function watcher() {
  const start = performance.now();
  const updates: { at: number; ids: string[] }[] = [];
  const errors: { at: number; error: Error }[] = [];
  return {
    updates,
    errors,
    onUpdate: (list: readonly Endpoint[]) => updates.push({ at: performance.now() - start, ids: list.map((e) => e.id).sort() }),
    onError: (error: Error) => errors.push({ at: performance.now() - start, error }),
  };
}

async function until(check: () => boolean, ms = 3_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('timed out waiting');
    await sleep(5);
  }
}

describe('dnsRegistry watch: refresh on the records’ TTL', () => {
  it('looks again when the TTL (1 s) runs out, and pushes the change then, not before', async () => {
    dns.a('users', ['127.0.0.1'], 1);
    const r = registry();
    await r.resolve('users', { signal: signal() });
    const w = watcher();
    const stop = r.watch!('users', w.onUpdate, w.onError);
    dns.a('users', ['127.0.0.2'], 1);
    await until(() => w.updates.length > 0);
    stop();
    expect(w.updates[0]!.ids).toEqual(['127.0.0.2:80']);
    expect(w.updates[0]!.at).toBeGreaterThan(850); // the answer resolve() got was good for 1 s
    expect(w.updates[0]!.at).toBeLessThan(1_800);
    expect(dns.count('users', 'A')).toBe(2); // resolve(), then one look at the TTL
  });

  it('pushes nothing while the list stays the same, however often it looks', async () => {
    dns.a('users', ['127.0.0.1'], 0); // TTL 0: clamped up to minTtlMs
    const r = registry({ minTtlMs: 50 });
    await r.resolve('users', { signal: signal() });
    const w = watcher();
    const stop = r.watch!('users', w.onUpdate, w.onError);
    await sleep(400);
    const looks = dns.count('users', 'A') - 1;
    expect(looks).toBeGreaterThanOrEqual(3);
    expect(looks).toBeLessThanOrEqual(9); // not faster than minTtlMs
    expect(w.updates).toEqual([]);
    dns.a('users', ['127.0.0.1', '127.0.0.2'], 0);
    await until(() => w.updates.length === 1);
    expect(w.updates[0]!.ids).toEqual(['127.0.0.1:80', '127.0.0.2:80']);
    stop();
    expect(w.errors).toEqual([]);
  });

  it('clamps a long TTL to maxTtlMs', async () => {
    dns.a('users', ['127.0.0.1'], 3_600);
    const r = registry({ maxTtlMs: 150 });
    await r.resolve('users', { signal: signal() });
    const w = watcher();
    const stop = r.watch!('users', w.onUpdate, w.onError);
    dns.a('users', ['127.0.0.3'], 3_600);
    await until(() => w.updates.length > 0, 1_000);
    stop();
    expect(w.updates[0]!.at).toBeLessThan(600);
  });

  it('SRV: follows the targets’ TTL', async () => {
    dns.srv('_http._tcp.users', [{ target: 'x.test', port: 81, priority: 0, weight: 1 }], 3_600);
    dns.a('x.test', ['127.0.0.1'], 1);
    const r = registry({ mode: 'srv', port: undefined });
    await r.resolve('users', { signal: signal() });
    const w = watcher();
    const stop = r.watch!('users', w.onUpdate, w.onError);
    dns.srv('_http._tcp.users', [{ target: 'x.test', port: 82, priority: 0, weight: 1 }], 3_600);
    await until(() => w.updates.length > 0);
    stop();
    expect(w.updates[0]!.ids).toEqual(['127.0.0.1:82']);
    expect(w.updates[0]!.at).toBeGreaterThan(850);
  });

  it('a watch with no resolve() before it looks at once, and pushes what it finds', async () => {
    dns.a('users', ['127.0.0.1'], 60);
    const w = watcher();
    const stop = registry().watch!('users', w.onUpdate, w.onError);
    await until(() => w.updates.length === 1, 1_000);
    stop();
    expect(w.updates[0]!.ids).toEqual(['127.0.0.1:80']);
  });
});

describe('dnsRegistry watch: failures', () => {
  it('reports failures through onError, backs off, and pushes only a changed list on recovery', async () => {
    dns.a('users', ['127.0.0.1'], 0);
    const r = registry({ minTtlMs: 20, maxTtlMs: 60 });
    await r.resolve('users', { signal: signal() });
    const w = watcher();
    const stop = r.watch!('users', w.onUpdate, w.onError);
    dns.behave('SERVFAIL');
    await until(() => w.errors.length >= 3);
    expect(w.errors[0]!.error).toBeInstanceOf(DiscoveryError);
    expect(w.errors[0]!.error.message).toContain(`DNS A/AAAA query for users to ${dns.address}: `);
    dns.behave('answer');
    await sleep(200);
    expect(w.updates).toEqual([]); // same list as before the failures
    dns.a('users', ['127.0.0.5'], 0);
    await until(() => w.updates.length === 1);
    stop();
  });

  it('NXDOMAIN while watching is an error (the mesh keeps the last list), not an empty push', async () => {
    dns.a('users', ['127.0.0.1'], 0);
    const r = registry({ minTtlMs: 20, maxTtlMs: 40 });
    await r.resolve('users', { signal: signal() });
    const w = watcher();
    const stop = r.watch!('users', w.onUpdate, w.onError);
    dns.remove('users');
    await until(() => w.errors.length >= 1);
    stop();
    expect(w.errors[0]!.error).toBeInstanceOf(NoEndpointsError);
    expect(w.updates).toEqual([]);
  });

  it('a callback that throws does not end the watch; its error goes to onError', async () => {
    dns.a('users', ['127.0.0.1'], 0);
    const errors: Error[] = [];
    let pushes = 0;
    const stop = registry({ minTtlMs: 20 }).watch!(
      'users',
      () => {
        pushes++;
        throw new Error('listener broke');
      },
      (e) => errors.push(e),
    );
    await until(() => pushes === 1);
    dns.a('users', ['127.0.0.2'], 0);
    await until(() => pushes === 2);
    stop();
    expect(errors.map((e) => e.message)).toEqual(['listener broke', 'listener broke']);
  });
});

describe('dnsRegistry watch: stopping', () => {
  it('unsubscribe stops the looks; other watches of the service go on', async () => {
    dns.a('users', ['127.0.0.1'], 0);
    const r = registry({ minTtlMs: 20 });
    const a = watcher();
    const b = watcher();
    const stopA = r.watch!('users', a.onUpdate, a.onError);
    const stopB = r.watch!('users', b.onUpdate, b.onError);
    await until(() => a.updates.length === 1 && b.updates.length === 1);
    stopA();
    dns.a('users', ['127.0.0.2'], 0);
    await until(() => b.updates.length === 2);
    stopB();
    await sleep(50);
    const after = dns.count('users');
    await sleep(150);
    expect(dns.count('users')).toBe(after);
    expect(a.updates).toHaveLength(1);
  });

  it('unsubscribing during a look in flight cancels it: no callback afterwards', async () => {
    dns.a('users', ['127.0.0.1'], 0);
    dns.behave('drop');
    const w = watcher();
    const stop = registry({ timeoutMs: 5_000 }).watch!('users', w.onUpdate, w.onError);
    await until(() => dns.count('users') > 0);
    stop();
    dns.behave('answer');
    await sleep(100);
    expect(w.updates).toEqual([]);
    expect(w.errors).toEqual([]);
  });

  it('close() stops every watch, and a watch after close() does nothing', async () => {
    dns.a('users', ['127.0.0.1'], 0);
    dns.a('orders', ['127.0.0.1'], 0);
    const r = registry({ minTtlMs: 20 });
    const w = watcher();
    r.watch!('users', w.onUpdate, w.onError);
    r.watch!('orders', w.onUpdate, w.onError);
    await until(() => w.updates.length === 2);
    await r.close?.();
    await sleep(30); // a query sent just before close() may still be on its way to the server
    const after = dns.queries.length;
    r.watch!('users', w.onUpdate, w.onError)();
    await sleep(150);
    expect(dns.queries.length).toBe(after);
    expect(w.errors).toEqual([]);
  });
});
