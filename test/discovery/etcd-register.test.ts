// registerEtcd with a fake lease API (the answers etcd 3.4's gateway gives, as recorded against the binary) and
// fake timers: grant, put, keepalive every TTL/3, a lost lease granted again, retries, and close().
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FetchLike } from '../../src/discovery/consul-config.js';
import { EtcdError, registerEtcd, type RegisterEtcdOptions } from '../../src/discovery/etcd/index.js';

const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
const json = (status: number, body: unknown): Response => new Response(JSON.stringify(body), { status });
const header = { cluster_id: '1', member_id: '2', revision: '5', raft_term: '2' };
const NOT_FOUND = { error: 'etcdserver: requested lease not found', message: 'etcdserver: requested lease not found', code: 5 };

/** The lease part of etcd's gateway: leases by ID (int64 strings past 2^53, as etcd's are), keys with their lease. */
class FakeLeases {
  next = 7587883417208046000n;
  readonly leases = new Map<string, number>();
  readonly keys = new Map<string, { value: string; lease: string }>();
  readonly calls: { path: string; body: Record<string, unknown> }[] = [];
  down = false;
  failPut = false;

  readonly fetch: FetchLike = async (input, init) => {
    const path = new URL(String(input)).pathname;
    const body = JSON.parse(String(init?.body)) as Record<string, string>;
    this.calls.push({ path, body });
    if (this.down) throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:2379') });
    switch (path) {
      case '/v3/lease/grant': {
        const ttl = Math.max(2, Number(body.TTL)); // etcd's minimum TTL with the default election timeout
        const id = (this.next++).toString();
        this.leases.set(id, ttl);
        return json(200, { header, ID: id, TTL: String(ttl) });
      }
      case '/v3/kv/put':
        if (this.failPut) return json(400, { error: 'etcdserver: request is too large', message: 'etcdserver: request is too large', code: 3 });
        if (body.lease && !this.leases.has(body.lease)) return json(404, NOT_FOUND);
        this.keys.set(unb64(body.key!), { value: unb64(body.value!), lease: body.lease! });
        return json(200, { header });
      case '/v3/lease/keepalive': {
        const ttl = this.leases.get(body.ID!);
        // An unknown lease: 200 with no TTL (proto3 leaves the 0 out), as etcd 3.4 answers.
        return new Response(`${JSON.stringify({ result: { header, ID: body.ID, ...(ttl ? { TTL: String(ttl) } : {}) } })}\n`, { status: 200 });
      }
      case '/v3/lease/revoke':
        if (!this.leases.delete(body.ID!)) return json(404, NOT_FOUND);
        for (const [k, v] of this.keys) if (v.lease === body.ID) this.keys.delete(k);
        return json(200, { header });
      default:
        return json(404, { error: 'Not Found', code: 5 });
    }
  };

  /** The lease expires (etcd lost it, or it ran out while we could not reach etcd): its keys go with it. */
  expire(id: string): void {
    this.leases.delete(id);
    for (const [k, v] of this.keys) if (v.lease === id) this.keys.delete(k);
  }
  paths(): string[] {
    return this.calls.map((c) => c.path);
  }
}

let fake: FakeLeases;
const closers: (() => Promise<void>)[] = [];
beforeEach(() => {
  vi.useFakeTimers();
  fake = new FakeLeases();
});
afterEach(async () => {
  for (const c of closers.splice(0)) await c().catch(() => {});
  vi.useRealTimers();
});
const base = (extra: Partial<RegisterEtcdOptions> = {}): RegisterEtcdOptions => ({
  etcd: { fetch: fake.fetch, prefix: '/svc/' },
  service: { name: 'users', address: '127.0.0.1', port: 8081 },
  ...extra,
});
async function register(extra: Partial<RegisterEtcdOptions> = {}) {
  const r = await registerEtcd(base(extra));
  closers.push(() => r.close());
  return r;
}

describe('registerEtcd', () => {
  it('grants a lease of the TTL in whole seconds, puts the key under it, and reports what it did', async () => {
    const r = await register({ ttlMs: 4_500, service: { name: 'users', address: '127.0.0.1', port: 8081, weight: 2, zone: 'z1', tags: ['v1'], meta: { version: '1.2' } } });
    expect(fake.calls[0]).toEqual({ path: '/v3/lease/grant', body: { TTL: '5' } });
    expect(r).toMatchObject({ id: '127.0.0.1:8081', key: '/svc/users/127.0.0.1:8081', ttlSeconds: 5, leaseId: '7587883417208046000' });
    expect(fake.keys.get('/svc/users/127.0.0.1:8081')).toEqual({
      value: JSON.stringify({ host: '127.0.0.1', port: 8081, weight: 2, zone: 'z1', tags: ['v1'], meta: { version: '1.2' } }),
      lease: '7587883417208046000', // the ID exactly as etcd sent it: it is past 2^53
    });
  });

  it('defaults: 10 s TTL, the id host:port ([::1]:80 for IPv6), and keepalives every third of the granted TTL', async () => {
    const r = await register({ service: { name: 'users', address: '::1', port: 80 } });
    expect(r.key).toBe('/svc/users/[::1]:80');
    expect(fake.calls[0]!.body).toEqual({ TTL: '10' });
    await vi.advanceTimersByTimeAsync(3_333);
    expect(fake.paths().filter((p) => p === '/v3/lease/keepalive')).toHaveLength(1);
    expect(fake.calls.at(-1)!.body).toEqual({ ID: r.leaseId });
    await vi.advanceTimersByTimeAsync(3_334);
    expect(fake.paths().filter((p) => p === '/v3/lease/keepalive')).toHaveLength(2);
  });

  it('follows the TTL etcd granted when etcd raised it (ttlMs 1000 → etcd\'s minimum 2 s)', async () => {
    const r = await register({ ttlMs: 1_000 });
    expect(fake.calls[0]!.body).toEqual({ TTL: '1' });
    expect(r.ttlSeconds).toBe(2);
    await vi.advanceTimersByTimeAsync(667);
    expect(fake.paths()).toContain('/v3/lease/keepalive');
  });

  it('a keepalive that finds the lease gone grants a new one and puts the key again', async () => {
    const notes: Error[] = [];
    const r = await register({ ttlMs: 3_000, onError: (e) => notes.push(e) });
    const first = r.leaseId;
    fake.expire(first);
    expect(fake.keys.size).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.leaseId).not.toBe(first);
    expect(fake.keys.get(r.key)?.lease).toBe(r.leaseId);
    expect(notes.map((e) => e.message)).toEqual([expect.stringMatching(/lease .* was gone; registered again under lease/)]);
  });

  it('failed keepalives are retried soon (250 ms doubling, never past the regular interval) and reported; a throwing onError is harmless', async () => {
    const notes: Error[] = [];
    const r = await register({
      ttlMs: 9_000,
      onError: (e) => {
        notes.push(e);
        throw new Error('handler bug');
      },
    });
    fake.down = true;
    await vi.advanceTimersByTimeAsync(3_000); // the regular beat fails
    expect(notes).toHaveLength(1);
    expect(notes[0]).toBeInstanceOf(EtcdError);
    expect(notes[0]!.message).toMatch(/ECONNREFUSED/);
    await vi.advanceTimersByTimeAsync(250);
    expect(notes).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(500);
    expect(notes).toHaveLength(3);
    fake.down = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(notes).toHaveLength(3);
    expect(fake.keys.get(r.key)?.lease).toBe(r.leaseId);
  });

  it('close() revokes the lease (the key goes at once), clears the timer, and is idempotent', async () => {
    const r = await registerEtcd(base());
    expect(vi.getTimerCount()).toBe(1);
    const id = r.leaseId;
    const closing = [r.close(), r.close()];
    expect(closing[0]).toBe(closing[1]);
    await Promise.all(closing);
    expect(fake.leases.has(id)).toBe(false);
    expect(fake.keys.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(fake.paths().filter((p) => p === '/v3/lease/revoke')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fake.paths().filter((p) => p === '/v3/lease/keepalive')).toHaveLength(0);
  });

  it('close() of a lease etcd no longer has resolves (it is gone, which was asked); a close etcd cannot hear rejects', async () => {
    const r = await registerEtcd(base());
    fake.expire(r.leaseId);
    await expect(r.close()).resolves.toBeUndefined();
    const s = await registerEtcd(base());
    fake.down = true;
    await expect(s.close()).rejects.toThrow(/could not be reached/);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close() during a re-registration waits for it, then revokes the new lease: the key is gone when close() resolves', async () => {
    let slow = false;
    const inner = fake.fetch;
    const delayed = (ms: number, signal: AbortSignal | null | undefined, answer: () => Promise<Response>): Promise<Response> =>
      new Promise((resolve, reject) => {
        signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        setTimeout(() => void answer().then(resolve, reject), ms);
      });
    // The put is applied at once but answered 100 ms later; the revoke of the new lease takes 50 ms.
    const slowFetch: FetchLike = async (input, init) => {
      const path = new URL(String(input)).pathname;
      if (slow && path === '/v3/kv/put') {
        const answer = await inner(input, init);
        return delayed(100, init?.signal, async () => answer);
      }
      if (slow && path === '/v3/lease/revoke') return delayed(50, undefined, () => inner(input, init));
      return inner(input, init);
    };
    const r2 = await register({ ttlMs: 3_000, etcd: { fetch: slowFetch, prefix: '/svc/' }, service: { name: 'users', id: 'two', address: '127.0.0.1', port: 8082 } });
    slow = true;
    fake.expire(r2.leaseId);
    await vi.advanceTimersByTimeAsync(1_000); // the keepalive finds the lease gone: grant, then the slow put
    expect(fake.keys.has('/svc/users/two')).toBe(true);
    let keyAtClose: boolean | undefined;
    const closing = r2.close().then(() => void (keyAtClose = fake.keys.has('/svc/users/two')));
    await vi.advanceTimersByTimeAsync(500);
    await closing;
    expect(keyAtClose).toBe(false);
    expect(fake.leases.size).toBe(0);
  });

  it('close() rejects when the revoke of the lease in hand fails', async () => {
    const r = await register();
    fake.down = true;
    await expect(r.close()).rejects.toBeInstanceOf(EtcdError);
    fake.down = false;
  });

  it('a put that fails revokes its new lease and rejects with etcd\'s message', async () => {
    fake.failPut = true;
    const e = (await registerEtcd(base()).catch((x: unknown) => x)) as EtcdError;
    expect(e).toBeInstanceOf(EtcdError);
    expect(e.message).toMatch(/400 .*request is too large/);
    expect(e.grpcCode).toBe(3);
    expect(fake.leases.size).toBe(0);
    expect(fake.paths()).toEqual(['/v3/lease/grant', '/v3/kv/put', '/v3/lease/revoke']);
  });

  it('etcd unreachable at start: rejects, leaving no timer', async () => {
    fake.down = true;
    await expect(registerEtcd(base())).rejects.toThrow(/etcd could not be reached for POST \/v3\/lease\/grant/);
    expect(vi.getTimerCount()).toBe(0);
  });
});
