// etcdRegistry's list+watch loop against the real binary: compaction while a watch is cut off, hostile keys,
// a hung (SIGSTOPped) etcd, several endpoints, progress notifications, and etcd's auth. Skipped when etcd is
// missing, unless REQUIRE_ETCD=1.
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { FetchLike } from '../../src/discovery/consul-config.js';
import { etcdRegistry, registerEtcd, type EtcdInvalidKey, type EtcdRegistry, type EtcdRegistryOptions } from '../../src/discovery/etcd/index.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { DiscoveryError } from '../../src/errors.js';
import { refusedAddress } from '../helpers/backends.js';
import { waitUntil } from '../helpers/consul-double.js';
import { startEtcd, startEtcdProxy, type EtcdProxy, type EtcdServer } from '../helpers/etcd-server.js';
import { describeWithEtcd } from '../helpers/etcd-suite.js';


const addresses = (list: readonly Endpoint[]): string[] => list.map((e) => `${e.id}=${e.host}:${e.port}`).sort();
const never = new AbortController().signal;

describeWithEtcd('etcdRegistry against a real etcd', () => {
  let etcd: EtcdServer;
  let prefix: string;
  let n = 0;
  const cleanup: (() => unknown)[] = [];

  beforeAll(async () => {
    // Progress notifications every 300 ms (etcd's default is 10 min), to see the loop move its revision on them.
    etcd = await startEtcd({ args: ['--experimental-watch-progress-notify-interval=300ms'] });
  });
  afterAll(async () => {
    await etcd?.close();
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
    if (!etcd.running) await etcd.start();
    etcd.resume();
  });
  const fresh = (): string => (prefix = `/watch-${process.pid}-${++n}/`);

  /** A registry whose requests are counted by path. */
  function registry(options: EtcdRegistryOptions = {}): { registry: EtcdRegistry; requests: string[] } {
    const requests: string[] = [];
    const counting: FetchLike = (input, init) => {
      requests.push(new URL(String(input)).pathname);
      return fetch(input, init);
    };
    const r = etcdRegistry({ endpoints: [etcd.url], prefix, backoff: { initialMs: 20, maxMs: 100 }, fetch: counting, ...options });
    cleanup.push(() => r.close());
    return { registry: r, requests };
  }
  function watch(r: EtcdRegistry, service = 'users') {
    const updates: (readonly Endpoint[])[] = [];
    const errors: Error[] = [];
    const stop = r.watch(service, (l) => updates.push(l), (e) => errors.push(e));
    cleanup.push(stop);
    return { updates, errors, stop };
  }

  it('compaction while the watch is cut off: it relists, delivers only the difference, never an empty list', async () => {
    fresh();
    const proxy: EtcdProxy = await startEtcdProxy(etcd.url);
    cleanup.push(() => proxy.close());
    await etcd.setService(prefix, 'users', [{ id: 'a', host: '127.0.0.1', port: 8081 }, { id: 'b', host: '127.0.0.1', port: 8082 }]);
    const { registry: r, requests } = registry({ endpoints: [proxy.url] });
    const w = watch(r);
    await waitUntil(() => expect(w.updates.map(addresses).at(-1)).toEqual(['a=127.0.0.1:8081', 'b=127.0.0.1:8082']));
    await waitUntil(() => expect(r.watchState('users')?.kind).toBe('watching'));

    proxy.fail();
    await waitUntil(() => expect(w.errors.length).toBeGreaterThan(0));
    // Meanwhile: b goes, c comes, a is rewritten and back as it was; then history is compacted away.
    await etcd.setService(prefix, 'users', [{ id: 'a', host: '127.0.0.1', port: 9999 }, { id: 'c', host: '127.0.0.1', port: 8083 }]);
    await etcd.setService(prefix, 'users', [{ id: 'a', host: '127.0.0.1', port: 8081 }, { id: 'c', host: '127.0.0.1', port: 8083 }]);
    await etcd.compact();
    const ranges = requests.filter((p) => p === '/v3/kv/range').length;
    proxy.recover();

    await waitUntil(() => expect(w.updates.map(addresses).at(-1)).toEqual(['a=127.0.0.1:8081', 'c=127.0.0.1:8083']), 3_000);
    expect(requests.filter((p) => p === '/v3/kv/range').length).toBe(ranges + 1); // one relist
    expect(w.updates.every((l) => l.length > 0)).toBe(true);
    // Only the net change was delivered: never the intermediate a:9999.
    expect(w.updates.flatMap(addresses)).not.toContain('a=127.0.0.1:9999');
    // And it watches on from the relist.
    await etcd.put(`${prefix}users/d`, { host: '127.0.0.1', port: 8084 });
    await waitUntil(() => expect(w.updates.map(addresses).at(-1)).toContain('d=127.0.0.1:8084'));
  });

  it('a dropped stream resumes from its revision: changes made meanwhile arrive, without a relist', async () => {
    fresh();
    const proxy = await startEtcdProxy(etcd.url);
    cleanup.push(() => proxy.close());
    await etcd.setService(prefix, 'users', ['127.0.0.1:8081']);
    const { registry: r, requests } = registry({ endpoints: [proxy.url] });
    const w = watch(r);
    await waitUntil(() => expect(r.watchState('users')?.kind).toBe('watching'));
    proxy.fail();
    await waitUntil(() => expect(w.errors.length).toBeGreaterThan(0));
    expect(w.errors[0]).toBeInstanceOf(DiscoveryError);
    await etcd.setService(prefix, 'users', ['127.0.0.1:8082']);
    proxy.recover();
    await waitUntil(() => expect(w.updates.map(addresses).at(-1)).toEqual(['127.0.0.1:8082=127.0.0.1:8082']), 3_000);
    expect(requests.filter((p) => p === '/v3/kv/range')).toHaveLength(1);
    expect(w.updates.every((l) => l.length > 0)).toBe(true);
  });

  it('hostile keys are left out, each reported once; the good ones keep serving', async () => {
    fresh();
    const base = `${prefix}users/`;
    await etcd.put(`${base}good`, { host: '127.0.0.1', port: 8081, weight: 2, zone: 'z1', tags: ['v1'], meta: { version: '1' } });
    await etcd.put(`${base}not-json`, '{host: 127');
    await etcd.put(`${base}array`, '[1,2]');
    await etcd.put(`${base}short-ip`, { host: '127.1', port: 8082 });
    await etcd.put(`${base}backslash`, { host: '127.0.0.1\\', port: 8082 });
    await etcd.put(`${base}port-0`, { host: '127.0.0.1', port: 0 });
    await etcd.put(`${base}port-70000`, { host: '127.0.0.1', port: 70000 });
    await etcd.put(`${base}port-string`, { host: '127.0.0.1', port: '8082' });
    await etcd.put(`${base}weight-neg`, { host: '127.0.0.1', port: 8082, weight: -1 });
    await etcd.put(`${base}tags-bad`, { host: '127.0.0.1', port: 8082, tags: [1] });
    await etcd.put(`${base}meta-bad`, { host: '127.0.0.1', port: 8082, meta: { a: 1 } });
    await etcd.put(`${base}ctl\x01id`, { host: '127.0.0.1', port: 8082 });
    await etcd.put(`${base}huge`, { host: '127.0.0.1', port: 8082, meta: { pad: 'x'.repeat(70_000) } });
    await etcd.put(`${base}drained`, { host: '127.0.0.1', port: 8083, weight: 0 });
    await etcd.put(`${base}`, { host: '127.0.0.1', port: 8082 }); // no id at all
    // A key that is not UTF-8, written with raw bytes.
    await etcd.call('/v3/kv/put', { key: Buffer.concat([Buffer.from(base), Buffer.from([0xc3, 0x28])]).toString('base64'), value: Buffer.from('{"host":"127.0.0.1","port":8082}').toString('base64') });
    const invalid: EtcdInvalidKey[] = [];
    const { registry: r } = registry({ onInvalidKey: (i) => invalid.push(i) });
    const expected = ['good=127.0.0.1:8081'];
    expect(addresses(await r.resolve('users', { signal: never }))).toEqual(expected);
    const w = watch(r);
    await waitUntil(() => expect(w.updates.map(addresses).at(-1)).toEqual(expected));
    const good = w.updates.at(-1)![0]!;
    expect(good).toMatchObject({ weight: 2, zone: 'z1', tags: ['v1'], meta: { version: '1' } });
    // resolve() and the loop read the same keys: each is reported once.
    const keys = invalid.map((i) => i.key.slice(base.length));
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toHaveLength(14);
    expect(invalid.find((i) => i.key.endsWith('short-ip'))?.problem).toMatch(/host/);
    expect(invalid.find((i) => i.key.endsWith('port-70000'))?.problem).toMatch(/port/);
    expect(invalid.every((i) => i.service === 'users')).toBe(true);

    // A good key rewritten with garbage is gone (its old value is no longer what it says); fixed, it is back.
    await etcd.put(`${base}good`, 'garbage');
    await waitUntil(() => expect(w.updates.at(-1)).toEqual([]));
    await etcd.put(`${base}good`, { host: '127.0.0.1', port: 8085 });
    await waitUntil(() => expect(w.updates.map(addresses).at(-1)).toEqual(['good=127.0.0.1:8085']));
    expect(w.errors).toEqual([]);
  });

  it('a hung etcd (SIGSTOP): the silent stream is dropped after idleTimeoutMs and the failure reported; after SIGCONT changes flow', async () => {
    fresh();
    await etcd.setService(prefix, 'users', ['127.0.0.1:8081']);
    const { registry: r } = registry({ idleTimeoutMs: 200, timeoutMs: 300 });
    const w = watch(r);
    await waitUntil(() => expect(r.watchState('users')?.kind).toBe('watching'));
    etcd.pause();
    try {
      await waitUntil(() => expect(w.errors.length).toBeGreaterThan(0), 3_000);
      expect(w.errors[0]!.message).toMatch(/no answer within 300 ms/);
      await expect(r.resolve('users', { signal: never })).rejects.toBeInstanceOf(DiscoveryError);
    } finally {
      etcd.resume();
    }
    await etcd.setService(prefix, 'users', ['127.0.0.1:8082']);
    await waitUntil(() => expect(w.updates.map(addresses).at(-1)).toEqual(['127.0.0.1:8082=127.0.0.1:8082']), 3_000);
    expect(w.updates.every((l) => l.length > 0)).toBe(true);
  });

  it('progress notifications move the resume revision; a quiet healthy stream is not reported as failing', async () => {
    fresh();
    await etcd.setService(prefix, 'users', ['127.0.0.1:8081']);
    // Counts the progress notifications (no events, not created) the watch streams carry.
    let progress = 0;
    const watches: string[] = [];
    const teeing: FetchLike = async (input, init) => {
      const response = await fetch(input, init);
      if (new URL(String(input)).pathname !== '/v3/watch' || !response.body) return response;
      watches.push(String(input));
      const decoder = new TextDecoder();
      const counted = response.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, out) {
            for (const l of decoder.decode(chunk, { stream: true }).split('\n')) {
              if (l.trim() === '') continue;
              const result = (JSON.parse(l) as { result?: { created?: boolean; events?: unknown[] } }).result;
              if (result && !result.created && !result.events) progress++;
            }
            out.enqueue(chunk);
          },
        }),
      );
      return new Response(counted, { status: response.status, headers: response.headers });
    };
    const { registry: r } = registry({ idleTimeoutMs: 700, fetch: teeing });
    const w = watch(r);
    await waitUntil(() => expect(r.watchState('users')?.kind).toBe('watching'));
    const start = (r.watchState('users') as { revision: bigint }).revision;
    // Other keys of the store change: this watch has no events, but its progress notifications carry the revision.
    await etcd.put(`/elsewhere-${n}/x`, 'y');
    await etcd.put(`/elsewhere-${n}/x`, 'z');
    const now = await etcd.revision();
    await waitUntil(() => expect((r.watchState('users') as { revision: bigint }).revision).toBe(now), 3_000);
    expect(now).toBeGreaterThan(start);
    // More progress lines than fit in twice the idle timeout (one per 300 ms), all on the one stream: they kept it alive.
    await waitUntil(() => expect(progress).toBeGreaterThanOrEqual(6), 5_000);
    expect(w.errors).toEqual([]);
    expect(watches).toHaveLength(1);
  });

  it('several endpoints: a refused one hands the request to the next, which is then kept', async () => {
    fresh();
    await etcd.setService(prefix, 'users', ['127.0.0.1:8081']);
    const dead = `http://${await refusedAddress()}`;
    const { registry: r, requests } = registry({ endpoints: [dead, etcd.url] });
    expect(addresses(await r.resolve('users', { signal: never }))).toEqual(['127.0.0.1:8081=127.0.0.1:8081']);
    expect(addresses(await r.resolve('users', { signal: never }))).toEqual(['127.0.0.1:8081=127.0.0.1:8081']);
    expect(requests).toEqual(['/v3/kv/range', '/v3/kv/range', '/v3/kv/range']); // the dead one tried once only
    const w = watch(r);
    await waitUntil(() => expect(w.updates).toHaveLength(1));
    expect(w.errors).toEqual([]);
  });

  it('a registration whose lease etcd lost is put again under a new lease', async () => {
    fresh();
    const notes: Error[] = [];
    const reg = await registerEtcd({ etcd: { endpoints: [etcd.url], prefix }, service: { name: 'users', address: '127.0.0.1', port: 8081 }, ttlMs: 3_000, keepAliveMs: 100, onError: (e) => notes.push(e) });
    cleanup.push(() => reg.close());
    const first = reg.leaseId;
    expect(reg.ttlSeconds).toBe(3);
    await etcd.call('/v3/lease/revoke', { ID: first }); // the key goes with it
    await waitUntil(() => expect(reg.leaseId).not.toBe(first), 2_000);
    await waitUntil(async () => expect([...(await etcd.get(prefix)).keys()]).toEqual([`${prefix}users/127.0.0.1:8081`]), 2_000);
    expect(notes.at(-1)?.message).toMatch(/registered again/);
    await reg.close();
    expect((await etcd.get(prefix)).size).toBe(0);
    await reg.close(); // twice is fine
  });

  it('a ttlMs under etcd minimum is raised by etcd; the TTL granted is what the keepalive follows', async () => {
    fresh();
    const reg = await registerEtcd({ etcd: { endpoints: [etcd.url], prefix }, service: { name: 'users', address: '127.0.0.1', port: 8081 }, ttlMs: 1_000 });
    cleanup.push(() => reg.close());
    // etcd's minimum lease TTL is ceil(1.5 × election timeout) = 2 s with the default 1 s election timeout.
    expect(reg.ttlSeconds).toBe(2);
    const ttl = await etcd.call('/v3/lease/timetolive', { ID: reg.leaseId });
    expect(Number(ttl.grantedTTL)).toBe(2);
  });
});

describeWithEtcd('etcdRegistry and registerEtcd with etcd auth enabled', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
    // The gateway's auth setup (Documentation/dev-guide/api_grpc_gateway.md, "Authentication").
    await etcd.call('/v3/auth/user/add', { name: 'root', password: 'root-pass' });
    await etcd.call('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await etcd.call('/v3/auth/enable', {});
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it('authenticates, sends the token, and never shows the password', async () => {
    const conn = { endpoints: [etcd.url], prefix: '/auth/', username: 'root', password: 'root-pass' };
    const reg = await registerEtcd({ etcd: conn, service: { name: 'users', address: '127.0.0.1', port: 8081 } });
    const r = etcdRegistry(conn);
    try {
      expect((await r.resolve('users', { signal: never })).map((e) => e.port)).toEqual([8081]);
      const updates: (readonly Endpoint[])[] = [];
      const stop = r.watch('users', (l) => updates.push(l), () => {});
      await waitUntil(() => expect(updates.at(-1)?.map((e) => e.port)).toEqual([8081]));
      await reg.close();
      await waitUntil(() => expect(updates.at(-1)).toEqual([]));
      stop();
    } finally {
      r.close();
      await reg.close();
    }
    // Without credentials etcd refuses; with a wrong password the error does not quote it.
    await expect(etcdRegistry({ endpoints: [etcd.url], prefix: '/auth/' }).resolve('users', { signal: never })).rejects.toThrow(/401|user name is empty|token/);
    const error = (await etcdRegistry({ ...conn, password: 'wrong-secret' }).resolve('users', { signal: never }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.message).toMatch(/authentication failed/);
    expect(JSON.stringify({ m: error.message, s: error.stack, c: String((error as { cause?: unknown }).cause) })).not.toContain('wrong-secret');
  });
});
