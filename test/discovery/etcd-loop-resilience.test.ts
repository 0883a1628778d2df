// etcdRegistry against the fake gateway (test/helpers/etcd-fake.ts), fake timers: how the loop and the gateway
// recover from an expired token, an etcd restored from older state, streams that end at once, 5xx proxies,
// a caller's abort during authentication, and a throwing `random`.
import { describe, expect, it, vi } from 'vitest';
import type { FetchLike } from '../../src/discovery/consul-config.js';
import { E1, E2, ep, fake, flush, ids, json, make, useFakeEtcd, watch } from '../helpers/etcd-fake.js';

useFakeEtcd();

const UNAUTH = { created: true, canceled: true, cancel_reason: 'rpc error: code = Unauthenticated desc = etcdserver: invalid auth token' };
const line = (result: unknown): Response => new Response(`${JSON.stringify({ result })}\n`, { status: 200 });
const tokens = (): void => {
  let n = 0;
  fake.overrides.set('/v3/auth/authenticate', Array.from({ length: 5 }, () => () => json(200, { header: {}, token: `tok${++n}` })));
};

describe('etcdRegistry: a watch canceled for an invalid token', () => {
  it('drops the token, authenticates again and re-watches at once: no error, no backoff', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    tokens();
    fake.overrides.set('/v3/watch', [() => line({ header: fake.header(), ...UNAUTH })]);
    const r = make({ username: 'root', password: 'pw' });
    const w = watch(r);
    await flush();
    expect(fake.count('/v3/auth/authenticate')).toBe(2);
    const watches = fake.requests.filter((q) => q.path === '/v3/watch').map((q) => q.headers.get('authorization'));
    expect(watches).toEqual(['tok1', 'tok2']);
    expect(w.errors).toEqual([]);
    expect(r.watchState('users')).toMatchObject({ kind: 'watching' });
    fake.put({ '/services/users/b': ep(8082) });
    await flush();
    expect(ids(w.updates.at(-1))).toEqual(['a:8081', 'b:8082']);
  });

  it('refused again with the new token: reported and backed off, not retried in a loop', async () => {
    tokens();
    fake.overrides.set('/v3/watch', Array.from({ length: 3 }, () => () => line({ header: fake.header(), ...UNAUTH })));
    const r = make({ username: 'root', password: 'pw' });
    const w = watch(r);
    await flush();
    expect(fake.count('/v3/watch')).toBe(2);
    expect(w.errors.map((e) => e.message)).toEqual([expect.stringMatching(/auth token is invalid, even after authenticating again/)]);
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 1 });
  });
});

describe('etcdRegistry: etcd restored from an older state', () => {
  it('a created header below the resume revision is reported once and relisted', async () => {
    fake.put({ '/services/users/a': ep(8081) }); // 2
    fake.put({ '/services/users/b': ep(8082) }); // 3
    const r = make();
    const w = watch(r);
    await flush();
    expect(r.watchState('users')).toEqual({ kind: 'watching', revision: 3n });
    // The restored etcd: revision 2, only a.
    fake.revision = 2n;
    fake.kvs.delete('/services/users/b');
    fake.log.splice(1);
    fake.open[0]!.finish();
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(w.errors.map((e) => e.message)).toEqual([expect.stringMatching(/ended the watch stream/), expect.stringMatching(/below 3.*restored from an older state/)]);
    expect(fake.count('/v3/kv/range')).toBe(2);
    expect(ids(w.updates.at(-1))).toEqual(['a:8081']);
    expect(r.watchState('users')).toEqual({ kind: 'watching', revision: 2n });
    fake.put({ '/services/users/c': ep(8083) });
    await flush();
    expect(ids(w.updates.at(-1))).toEqual(['a:8081', 'c:8083']);
    expect(w.errors).toHaveLength(2);
  });
});

describe('etcdRegistry: backoff over streams that end at once', () => {
  it('created, then the end, over and over: the backoff doubles (1 s, 2 s, 4 s)', async () => {
    fake.overrides.set('/v3/watch', Array.from({ length: 4 }, () => () => line({ header: fake.header(), created: true })));
    const r = make();
    const w = watch(r);
    await flush();
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(fake.count('/v3/watch')).toBe(2);
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 2 });
    await vi.advanceTimersByTimeAsync(1_999);
    expect(fake.count('/v3/watch')).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    await flush();
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 3 });
    expect(w.errors).toHaveLength(3);
  });

  it('a stream that lived 10 s, or delivered an event, starts the backoff over', async () => {
    fake.overrides.set('/v3/watch', Array.from({ length: 2 }, () => () => line({ header: fake.header(), created: true })));
    const r = make({ idleTimeoutMs: 60_000 });
    watch(r);
    await flush();
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 2 });
    await vi.advanceTimersByTimeAsync(2_000);
    await flush();
    expect(r.watchState('users')).toMatchObject({ kind: 'watching' });
    await vi.advanceTimersByTimeAsync(10_000);
    fake.open[0]!.finish();
    await flush();
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 1 });
  });
});

describe('etcd gateway failover and auth sharing', () => {
  for (const [status, body] of [
    [502, '<html>502 Bad Gateway</html>'],
    [504, 'upstream timed out'],
    [500, JSON.stringify({ error: 'internal', message: 'internal', code: 13 })],
    [599, 'whatever'],
  ] as const) {
    it(`a member behind a proxy answering ${status} hands the request to the next, which is then kept`, async () => {
      fake.put({ '/services/users/a': ep(8081) });
      let toE1 = 0;
      const proxied: FetchLike = async (input, init) => {
        if (new URL(String(input)).origin !== E1) return fake.fetch(input, init);
        toE1++;
        return new Response(body, { status });
      };
      const r = make({ endpoints: [E1, E2], fetch: proxied });
      expect(ids(await r.resolve('users', { signal: new AbortController().signal }))).toEqual(['a:8081']);
      expect(ids(await r.resolve('users', { signal: new AbortController().signal }))).toEqual(['a:8081']);
      expect(toE1).toBe(1);
      expect(fake.requests.map((q) => q.origin)).toEqual([E2, E2]);
    });
  }

  it("one caller's abort during authentication fails that caller only", async () => {
    fake.put({ '/services/users/a': ep(8081) });
    let release!: () => void;
    const slowAuth: FetchLike = (input, init) => {
      if (new URL(String(input)).pathname !== '/v3/auth/authenticate') return fake.fetch(input, init);
      return new Promise((resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error), { once: true });
        release = () => resolve(json(200, { header: {}, token: 'tok' }));
      });
    };
    const r = make({ username: 'root', password: 'pw', fetch: slowAuth });
    const first = new AbortController();
    const a = r.resolve('users', { signal: first.signal });
    const b = r.resolve('users', { signal: new AbortController().signal });
    await flush();
    const reason = new Error('first caller gave up');
    first.abort(reason);
    await expect(a).rejects.toBe(reason);
    release();
    expect(ids(await b)).toEqual(['a:8081']);
  });
});

describe('etcdRegistry: a throwing random, and the leader header', () => {
  it('a random that throws backs off at the middle of the jitter and the loop goes on', async () => {
    const r = make({
      random: () => {
        throw new Error('broken random');
      },
    });
    const w = watch(r);
    await flush();
    fake.open[0]!.finish();
    await flush();
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 1 });
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(fake.count('/v3/watch')).toBe(2);
    expect(w.errors).toHaveLength(1);
  });

  it('every watch asks for a leader (Grpc-Metadata-Hasleader: true, clientv3 WithRequireLeader)', async () => {
    watch(make());
    await flush();
    expect(fake.requests.filter((q) => q.path === '/v3/watch').map((q) => q.headers.get('grpc-metadata-hasleader'))).toEqual(['true']);
  });
});
