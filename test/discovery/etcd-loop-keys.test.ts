// etcdRegistry against the fake gateway: hostile keys, watchers, resolve, close, failover and auth.
import { describe, expect, it, vi } from 'vitest';
import type { FetchLike } from '../../src/discovery/consul-config.js';
import type { EtcdInvalidKey } from '../../src/discovery/etcd/index.js';
import { DiscoveryError } from '../../src/errors.js';
import { E1, E2, ep, fake, flush, ids, json, make, useFakeEtcd, watch } from '../helpers/etcd-fake.js';

useFakeEtcd();

describe('etcdRegistry: hostile keys', () => {
  it('leaves out each bad key, reports it once per value, and keeps the good ones', async () => {
    fake.put({
      '/services/users/good': ep(8081),
      '/services/users/json': '{',
      '/services/users/host': { host: '127.1', port: 80 },
      '/services/users/port': { host: '127.0.0.1', port: 70000 },
      '/services/users/zero': { host: '127.0.0.1', port: 0 },
      '/services/users/drained': ep(8089, { weight: 0 }),
      '/services/users/proto': { host: '127.0.0.1', port: 8088, meta: JSON.parse('{"__proto__": "x"}') as Record<string, string> },
    });
    const invalid: EtcdInvalidKey[] = [];
    const r = make({ onInvalidKey: (i) => invalid.push(i) });
    const w = watch(r);
    await flush();
    await r.resolve('users', { signal: new AbortController().signal });
    expect(w.updates.map(ids)).toEqual([['good:8081', 'proto:8088']]);
    const proto = w.updates[0]!.find((e) => e.id === 'proto')!;
    expect(Object.getPrototypeOf(proto.meta)).toBe(Object.prototype);
    expect(Object.hasOwn(proto.meta, '__proto__')).toBe(true);
    expect(invalid.map((i) => i.key).sort()).toEqual(['/services/users/host', '/services/users/json', '/services/users/port', '/services/users/zero']);
    // The same bad value again is not reported again; a new bad value is.
    fake.put({ '/services/users/json': '{' });
    await flush();
    expect(invalid).toHaveLength(5);
    expect(w.updates).toHaveLength(1);
  });

  it('a handler that throws, and the default process warning', async () => {
    fake.put({ '/services/users/bad': 'x', '/services/users/good': ep(8081) });
    const warned: string[] = [];
    const onWarning = (w: Error): void => void warned.push(w.message);
    process.on('warning', onWarning);
    try {
      const w1 = watch(make({ onInvalidKey: () => { throw new Error('boom'); } }));
      const w2 = watch(make());
      await flush();
      await vi.advanceTimersByTimeAsync(0);
      await new Promise<void>((resolve) => process.nextTick(resolve));
      expect(w1.updates.map(ids)).toEqual([['good:8081']]);
      expect(w2.updates.map(ids)).toEqual([['good:8081']]);
      expect(w1.errors).toEqual([]);
      expect(warned.filter((m) => m.includes('/services/users/bad'))).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('etcdRegistry: watchers, resolve and close', () => {
  it('one loop per service for every watcher; a late watcher hears the current list; the last to leave stops it', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make();
    const one = watch(r);
    await flush();
    const two = watch(r);
    await flush();
    expect(two.updates.map(ids)).toEqual([['a:8081']]);
    expect(fake.count('/v3/watch')).toBe(1);
    one.stop();
    fake.put({ '/services/users/b': ep(8082) });
    await flush();
    expect(two.updates.map(ids).at(-1)).toEqual(['a:8081', 'b:8082']);
    expect(one.updates).toHaveLength(1);
    two.stop();
    await flush();
    expect(fake.open).toHaveLength(0);
    expect(r.watchState('users')).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a throwing onUpdate hears its own error; the other watcher and the loop go on', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make();
    const errors: Error[] = [];
    r.watch('users', () => { throw new Error('mine'); }, (e) => { errors.push(e); throw new Error('and again'); });
    const other = watch(r);
    await flush();
    fake.put({ '/services/users/b': ep(8082) });
    await flush();
    expect(errors.map((e) => e.message)).toEqual(['mine', 'mine']);
    expect(other.updates).toHaveLength(2);
  });

  it('resolve() reads the range (or the running loop’s current list), and rejects with a DiscoveryError quoting etcd', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make();
    const signal = new AbortController().signal;
    expect(ids(await r.resolve('users', { signal }))).toEqual(['a:8081']);
    expect(await r.resolve('nobody', { signal })).toEqual([]);
    const w = watch(r);
    await flush();
    const before = fake.count('/v3/kv/range');
    expect(ids(await r.resolve('users', { signal }))).toEqual(['a:8081']);
    expect(fake.count('/v3/kv/range')).toBe(before);
    w.stop();
    fake.overrides.set('/v3/kv/range', [() => json(503, { error: 'etcdserver: no leader', message: 'etcdserver: no leader', code: 14 })]);
    const e = (await r.resolve('users', { signal }).catch((x: unknown) => x)) as Error;
    expect(e).toBeInstanceOf(DiscoveryError);
    expect(e.message).toMatch(/503 .*no leader/);
    fake.overrides.set('/v3/kv/range', [() => new Response('<html>', { status: 200 })]);
    await expect(r.resolve('users', { signal })).rejects.toThrow(/not JSON/);
    fake.overrides.set('/v3/kv/range', [() => json(200, { kvs: 'nope' })]);
    await expect(r.resolve('users', { signal })).rejects.toThrow(/kvs is not an array/);
    await expect(r.resolve('../x', { signal })).rejects.toMatchObject({ code: 'EBADSERVICE' });
    expect(() => r.watch('a b', () => {}, () => {})).toThrow(/invalid service name/);
  });

  it('a caller abort rejects resolve() with its reason, untouched', async () => {
    fake.overrides.set('/v3/kv/range', [() => { throw new TypeError('unreached'); }]);
    const r = make();
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(r.resolve('users', { signal: controller.signal })).rejects.toBe(reason);
  });

  it('a request that gets no answer within timeoutMs fails over; the member that answered is kept', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const hung: FetchLike = (input, init) =>
      new URL(String(input)).origin === E1
        ? new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error)))
        : fake.fetch(input, init);
    const r = make({ endpoints: [E1, E2], fetch: hung, timeoutMs: 300 });
    const pending = r.resolve('users', { signal: new AbortController().signal });
    await vi.advanceTimersByTimeAsync(300);
    expect(ids(await pending)).toEqual(['a:8081']);
    expect(ids(await r.resolve('users', { signal: new AbortController().signal }))).toEqual(['a:8081']); // E2 first now
    expect(fake.requests.map((q) => q.origin)).toEqual([E2, E2]);
  });

  it('every member down: one error naming each', async () => {
    fake.down.add(E1).add(E2);
    const r = make({ endpoints: [E1, E2] });
    const e = (await r.resolve('users', { signal: new AbortController().signal }).catch((x: unknown) => x)) as Error;
    expect(e.message).toContain(`${E1}: fetch failed: connect ECONNREFUSED`);
    expect(e.message).toContain(`${E2}: fetch failed: connect ECONNREFUSED`);
  });

  it('close() stops loops nobody watches and leaves no timer; an open watch is left to its owner', async () => {
    const r = make();
    const w = watch(r);
    fake.down.add(E1);
    await flush();
    expect(vi.getTimerCount()).toBeGreaterThan(0); // a backoff timer
    r.close();
    expect(r.watchState('users')?.kind).toBe('backing-off');
    w.stop();
    await flush();
    expect(vi.getTimerCount()).toBe(0);
    const idle = make();
    watch(idle).stop();
    idle.close();
    await flush();
    expect(vi.getTimerCount()).toBe(0);
    expect(fake.open).toHaveLength(0);
  });
});

describe('etcdRegistry: auth', () => {
  it('authenticates once, sends the token in Authorization, and authenticates again on "invalid auth token"', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    let tokens = 0;
    fake.overrides.set('/v3/auth/authenticate', [
      () => json(200, { header: {}, token: `tok${++tokens}.1` }),
      () => json(200, { header: {}, token: `tok${++tokens}.2` }),
    ]);
    const r = make({ username: 'root', password: 'sekrit' });
    const signal = new AbortController().signal;
    await r.resolve('users', { signal });
    await r.resolve('users', { signal });
    fake.overrides.set('/v3/kv/range', [() => json(401, { error: 'etcdserver: invalid auth token', message: 'etcdserver: invalid auth token', code: 16 })]);
    expect(ids(await r.resolve('users', { signal }))).toEqual(['a:8081']);
    const auth = fake.requests.filter((q) => q.path === '/v3/auth/authenticate');
    expect(auth.map((q) => q.body)).toEqual([{ name: 'root', password: 'sekrit' }, { name: 'root', password: 'sekrit' }]);
    const ranges = fake.requests.filter((q) => q.path === '/v3/kv/range').map((q) => q.headers.get('authorization'));
    expect(ranges).toEqual(['tok1.1', 'tok1.1', 'tok1.1', 'tok2.2']);
  });
});
