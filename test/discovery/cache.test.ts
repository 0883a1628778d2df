import { afterEach, describe, expect, it, vi } from 'vitest';
import { DiscoveryCache, type DiscoveryCacheOptions } from '../../src/discovery/cache.js';
import type { Registry } from '../../src/discovery/registry.js';
import { DiscoveryError, MeshClosedError } from '../../src/errors.js';
import { systemClock } from '../../src/util/clock.js';
import {
  eps,
  flush,
  ids,
  manualClock,
  memoryRegistry,
  recorder,
  scriptedRegistry,
  type ManualClock,
} from './fakes.js';

const REFRESH_MS = 10_000;
const A = eps('10.0.0.1:80', '10.0.0.2:80');
const B = eps('10.0.0.3:80');

function setup(registry: Registry, options: Partial<DiscoveryCacheOptions> = {}) {
  const clock: ManualClock = manualClock();
  const listener = recorder();
  const cache = new DiscoveryCache(
    registry,
    { refreshMs: REFRESH_MS, maxServices: 100, resolveTimeoutMs: 5_000, clock, ...options },
    listener,
  );
  return { cache, clock, listener };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DiscoveryCache: resolve, TTL, single flight', () => {
  it('concurrent loads of one service share one resolve() (single-flight)', async () => {
    const registry = scriptedRegistry();
    const { cache, listener } = setup(registry);
    const loads = [cache.load('users'), cache.load('users'), cache.load('users')];
    await flush();
    expect(registry.resolve).toHaveBeenCalledTimes(1);
    expect(registry.resolve.mock.calls[0]?.[0]).toBe('users');
    registry.last().resolve(A);
    const lists = await Promise.all(loads);
    for (const list of lists) expect(list).toBe(A);
    expect(listener.updates).toEqual([{ service: 'users', endpoints: A }]);
  });

  it('loads of different services resolve separately', async () => {
    const registry = scriptedRegistry();
    const { cache } = setup(registry);
    const users = cache.load('users');
    const orders = cache.load('orders');
    await flush();
    expect(registry.calls.map((c) => c.service)).toEqual(['users', 'orders']);
    registry.calls[0]!.result.resolve(A);
    registry.calls[1]!.result.resolve(B);
    expect(await users).toBe(A);
    expect(await orders).toBe(B);
  });

  it('serves a fresh list without calling resolve()', async () => {
    const registry = scriptedRegistry();
    const { cache, clock } = setup(registry);
    const first = cache.load('users');
    await flush();
    registry.last().resolve(A);
    await first;
    clock.advance(REFRESH_MS - 1);
    expect(cache.isStale('users')).toBe(false);
    expect(await cache.load('users')).toBe(A);
    expect(registry.resolve).toHaveBeenCalledTimes(1);
  });

  it('after refreshMs, serves the stale list at once and refreshes once in the background', async () => {
    const registry = scriptedRegistry();
    const { cache, clock, listener } = setup(registry);
    const first = cache.load('users');
    await flush();
    registry.last().resolve(A);
    await first;

    clock.advance(REFRESH_MS + 1);
    expect(cache.isStale('users')).toBe(true);
    // The refresh is still pending, yet both loads answer at once with the stale list.
    expect(await cache.load('users')).toBe(A);
    expect(await cache.load('users')).toBe(A);
    expect(registry.resolve).toHaveBeenCalledTimes(2);

    registry.last().resolve(B);
    await flush();
    expect(cache.isStale('users')).toBe(false);
    expect(await cache.load('users')).toBe(B);
    expect(registry.resolve).toHaveBeenCalledTimes(2);
    expect(listener.updates.map((u) => u.endpoints)).toEqual([A, B]);
  });

  it('a failed refresh keeps serving the last good list and reports the error with stale=true', async () => {
    const registry = scriptedRegistry();
    const { cache, clock, listener } = setup(registry);
    const first = cache.load('users');
    await flush();
    registry.last().resolve(A);
    await first;

    clock.advance(REFRESH_MS + 1);
    expect(await cache.load('users')).toBe(A);
    const cause = new Error('registry is down');
    registry.last().reject(cause);
    await flush();

    expect(listener.errors).toHaveLength(1);
    const { service, error, stale } = listener.errors[0]!;
    expect(service).toBe('users');
    expect(stale).toBe(true);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect(error.code).toBe('EDISCOVERY');
    expect(error.cause).toBe(cause);
    expect(await cache.load('users')).toBe(A);
    expect(listener.updates).toHaveLength(1);
  });

  it('after a failed refresh, retries with a backoff rather than on every load, and recovers', async () => {
    const registry = scriptedRegistry();
    const { cache, clock, listener } = setup(registry);
    const first = cache.load('users');
    await flush();
    registry.last().resolve(A);
    await first;

    clock.advance(REFRESH_MS + 1);
    await cache.load('users');
    registry.last().reject(new Error('down'));
    await flush();
    expect(registry.resolve).toHaveBeenCalledTimes(2);

    // First retry 1 s after the failure: not sooner.
    clock.advance(999);
    expect(cache.isStale('users')).toBe(false);
    expect(await cache.load('users')).toBe(A);
    expect(registry.resolve).toHaveBeenCalledTimes(2);

    clock.advance(2);
    expect(await cache.load('users')).toBe(A);
    expect(registry.resolve).toHaveBeenCalledTimes(3);
    registry.last().reject(new Error('still down'));
    await flush();

    // Second retry 2 s later.
    clock.advance(1_999);
    await cache.load('users');
    expect(registry.resolve).toHaveBeenCalledTimes(3);
    clock.advance(2);
    await cache.load('users');
    expect(registry.resolve).toHaveBeenCalledTimes(4);
    registry.last().resolve(B);
    await flush();
    expect(await cache.load('users')).toBe(B);
    expect(listener.errors.map((e) => e.stale)).toEqual([true, true]);

    // Recovered: fresh for a full refreshMs again.
    clock.advance(REFRESH_MS - 1);
    await cache.load('users');
    expect(registry.resolve).toHaveBeenCalledTimes(4);
  });

  it('a first load that fails rejects with DiscoveryError and reports stale=false; the next load asks again', async () => {
    const registry = scriptedRegistry();
    const { cache, listener } = setup(registry);
    const cause = new Error('connection refused');
    const load = cache.load('users');
    await flush();
    registry.last().reject(cause);
    const error = await load.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as DiscoveryError).code).toBe('EDISCOVERY');
    expect((error as DiscoveryError).service).toBe('users');
    expect((error as DiscoveryError).cause).toBe(cause);
    expect(listener.errors).toEqual([{ service: 'users', error, stale: false }]);
    expect(cache.isStale('users')).toBe(true);

    const again = cache.load('users');
    await flush();
    expect(registry.resolve).toHaveBeenCalledTimes(2);
    registry.last().resolve(A);
    expect(await again).toBe(A);
  });

  it('concurrent first loads all reject with the same DiscoveryError', async () => {
    const registry = scriptedRegistry();
    const { cache } = setup(registry);
    const loads = [cache.load('users'), cache.load('users')];
    await flush();
    registry.last().reject(new Error('down'));
    const results = await Promise.allSettled(loads);
    expect(registry.resolve).toHaveBeenCalledTimes(1);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(DiscoveryError);
    }
  });

  it('a resolve() that never settles is cut off by resolveTimeoutMs, and its signal aborts', async () => {
    vi.useFakeTimers();
    const registry = scriptedRegistry();
    const { cache, listener } = setup(registry, { resolveTimeoutMs: 2_000 });
    const load = cache.load('users');
    const outcome = load.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    await flush();
    const { signal } = registry.calls[0]!;
    expect(signal.aborted).toBe(false);

    await vi.advanceTimersByTimeAsync(1_999);
    expect(signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const error = await outcome;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as DiscoveryError).message).toMatch(/longer than 2000 ms/);
    expect(signal.aborted).toBe(true);
    expect(listener.errors).toHaveLength(1);
    expect(listener.errors[0]!.stale).toBe(false);

    // The flight is released: the next load asks the registry again.
    void cache.load('users').catch(() => {});
    await flush();
    expect(registry.resolve).toHaveBeenCalledTimes(2);
  });

  it('a stuck refresh is cut off too, and the stale list keeps serving', async () => {
    vi.useFakeTimers();
    const registry = scriptedRegistry();
    const { cache, clock, listener } = setup(registry, { resolveTimeoutMs: 2_000 });
    const first = cache.load('users');
    await flush();
    registry.last().resolve(A);
    await first;
    clock.advance(REFRESH_MS + 1);
    expect(await cache.load('users')).toBe(A);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(listener.errors.map((e) => e.stale)).toEqual([true]);
    expect(await cache.load('users')).toBe(A);
  });

  it('a list that is not a list of endpoints counts as a failure', async () => {
    const registry = scriptedRegistry();
    const { cache, listener } = setup(registry);
    const load = cache.load('users');
    await flush();
    registry.last().resolve([{ host: '10.0.0.1', port: 80 }] as never);
    const error = await load.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as Error).message).toMatch(/invalid endpoint at \[0\]: id/);
    expect((error as Error).cause).toBeInstanceOf(TypeError);
    expect(listener.errors).toHaveLength(1);
  });

  it('copes with a resolve() that is not async: a plain array, or a synchronous throw', async () => {
    const plain: Registry = { resolve: (() => A) as never };
    expect(await setup(plain).cache.load('users')).toBe(A);
    const throwing: Registry = {
      resolve: () => {
        throw new Error('sync failure');
      },
    };
    const { cache, listener } = setup(throwing);
    await expect(cache.load('users')).rejects.toThrow(/sync failure/);
    expect(listener.errors.map((e) => e.stale)).toEqual([false]);
  });

  it('an empty list is an answer, not a failure', async () => {
    const registry = scriptedRegistry();
    const { cache, listener } = setup(registry);
    const load = cache.load('users');
    await flush();
    registry.last().resolve([]);
    expect(await load).toEqual([]);
    expect(listener.errors).toEqual([]);
    expect(listener.updates).toEqual([{ service: 'users', endpoints: [] }]);
  });

  it('expires by the clock even when the clock reads 0 at the first load (vitest fake timers, default clock)', async () => {
    vi.useFakeTimers();
    expect(performance.now()).toBe(0);
    const mem = memoryRegistry({ watch: false, initial: { users: ['10.0.0.1:80'] } });
    const cache = new DiscoveryCache(
      mem.registry,
      { refreshMs: REFRESH_MS, maxServices: 10, resolveTimeoutMs: 1_000, clock: systemClock },
      recorder(),
    );
    await cache.load('users');
    vi.advanceTimersByTime(REFRESH_MS - 1);
    expect(cache.isStale('users')).toBe(false);
    vi.advanceTimersByTime(2);
    expect(cache.isStale('users')).toBe(true);
  });

  it('accepts a refreshMs that is not a whole number', async () => {
    const mem = memoryRegistry({ watch: false, initial: { users: ['10.0.0.1:80'] } });
    const { cache, clock } = setup(mem.registry, { refreshMs: 1_500.5 });
    await cache.load('users');
    clock.advance(1_500);
    expect(cache.isStale('users')).toBe(false);
    clock.advance(2);
    expect(cache.isStale('users')).toBe(true);
  });
});

describe('DiscoveryCache: watch', () => {
  async function watched() {
    const mem = memoryRegistry({ watch: true, initial: { users: ['10.0.0.1:80', '10.0.0.2:80'] } });
    const ctx = setup(mem.registry);
    await Promise.all([ctx.cache.load('users'), ctx.cache.load('users')]);
    return { mem, ...ctx };
  }

  it('the first good list starts exactly one watch per service', async () => {
    const { mem, cache } = await watched();
    expect(mem.allWatches.map((w) => w.service)).toEqual(['users']);
    expect(cache.isWatched('users')).toBe(true);
    await cache.load('users');
    await cache.load('orders');
    expect(mem.allWatches.map((w) => w.service)).toEqual(['users', 'orders']);
  });

  it('a first load that fails starts no watch', async () => {
    const mem = memoryRegistry({ watch: true });
    mem.fail();
    const { cache } = setup(mem.registry);
    await expect(cache.load('users')).rejects.toBeInstanceOf(DiscoveryError);
    expect(mem.allWatches).toEqual([]);
  });

  it('updates replace the list and reach listener.update', async () => {
    const { mem, cache, listener } = await watched();
    mem.set('users', ['10.0.0.9:80']);
    expect(ids(await cache.load('users'))).toEqual(['10.0.0.9:80']);
    expect(listener.updates.map((u) => ids(u.endpoints))).toEqual([['10.0.0.1:80', '10.0.0.2:80'], ['10.0.0.9:80']]);
    expect(mem.resolveCount()).toBe(1);
  });

  it('a watched list no longer expires', async () => {
    const { mem, cache, clock } = await watched();
    clock.advance(REFRESH_MS * 100);
    expect(cache.isStale('users')).toBe(false);
    await cache.load('users');
    mem.set('users', ['10.0.0.9:80']);
    clock.advance(REFRESH_MS * 100);
    expect(cache.isStale('users')).toBe(false);
    expect(ids(await cache.load('users'))).toEqual(['10.0.0.9:80']);
    expect(mem.resolveCount()).toBe(1);
  });

  it('watch errors reach listener.error with stale=true, and the list keeps serving', async () => {
    const { mem, cache, listener } = await watched();
    mem.fail(new Error('watch broke'));
    expect(listener.errors).toHaveLength(1);
    expect(listener.errors[0]!.stale).toBe(true);
    expect(listener.errors[0]!.error).toBeInstanceOf(DiscoveryError);
    expect(listener.errors[0]!.error.message).toMatch(/watch broke/);
    expect(ids(await cache.load('users'))).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
  });

  it('an invalid pushed list is reported and ignored', async () => {
    const { mem, cache, listener } = await watched();
    mem.watches[0]!.onUpdate([{ id: 'x' }] as never);
    expect(listener.errors.map((e) => e.stale)).toEqual([true]);
    expect(listener.errors[0]!.error.message).toMatch(/watch\(\) returned an invalid endpoint/);
    expect(ids(await cache.load('users'))).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(listener.updates).toHaveLength(1);
  });

  it('a watch that pushes while it subscribes: the load resolves and the pushed list wins', async () => {
    const pushed = eps('10.0.0.7:80');
    const registry: Registry = {
      resolve: async () => A,
      watch: (_service, onUpdate) => {
        onUpdate(pushed);
        return () => {};
      },
    };
    const { cache, listener } = setup(registry);
    const loads = await Promise.all([cache.load('users'), cache.load('users')]);
    // Loads awaiting that flight get what resolve() returned; the cache and the listener end on the push.
    for (const list of loads) expect(list).toBe(A);
    expect(listener.updates.map((u) => u.endpoints)).toEqual([A, pushed]);
    expect(await cache.load('users')).toBe(pushed);
    expect(listener.errors).toEqual([]);
  });

  it('a watch that pushes in a microtask right after the resolve: no error, the pushed list wins', async () => {
    const pushed = eps('10.0.0.7:80');
    const registry: Registry = {
      resolve: async () => A,
      watch: (_service, onUpdate) => {
        queueMicrotask(() => onUpdate(pushed));
        return () => {};
      },
    };
    const { cache, listener } = setup(registry);
    const list = await cache.load('users');
    expect([A, pushed]).toContain(list);
    await flush();
    expect(await cache.load('users')).toBe(pushed);
    expect(listener.updates.at(-1)?.endpoints).toBe(pushed);
    expect(listener.errors).toEqual([]);
  });

  it('a watch() that throws is reported; the list then keeps its TTL and the next refresh tries to watch again', async () => {
    let attempts = 0;
    const registry: Registry = {
      resolve: async () => A,
      watch: () => {
        attempts++;
        if (attempts === 1) throw new Error('cannot watch');
        return () => {};
      },
    };
    const { cache, clock, listener } = setup(registry);
    expect(await cache.load('users')).toBe(A);
    expect(listener.errors.map((e) => [e.stale, e.error.message])).toEqual([[true, expect.stringMatching(/cannot watch/)]]);
    expect(cache.isWatched('users')).toBe(false);
    clock.advance(REFRESH_MS + 1);
    expect(cache.isStale('users')).toBe(true);
    await cache.load('users');
    await flush();
    expect(attempts).toBe(2);
    expect(cache.isWatched('users')).toBe(true);
    expect(cache.isStale('users')).toBe(false);
  });

  it('close() unsubscribes every watch; later loads reject and later pushes are ignored', async () => {
    const { mem, cache, listener } = await watched();
    await cache.load('orders');
    const [users, orders] = mem.allWatches;
    cache.close();
    expect(users!.unsubscribe).toHaveBeenCalledTimes(1);
    expect(orders!.unsubscribe).toHaveBeenCalledTimes(1);
    await expect(cache.load('users')).rejects.toBeInstanceOf(MeshClosedError);
    users!.onUpdate(eps('10.0.0.9:80'));
    users!.onError(new Error('late'));
    expect(listener.updates).toHaveLength(2);
    expect(listener.errors).toEqual([]);
    cache.close(); // twice is fine
    expect(users!.unsubscribe).toHaveBeenCalledTimes(1);
  });

  it('close() during a first load rejects it without reporting a registry error, and starts no watch', async () => {
    const registry = scriptedRegistry();
    const watch = vi.fn(() => () => {});
    registry.watch = watch;
    const { cache, listener } = setup(registry);
    const load = cache.load('users');
    await flush();
    cache.close();
    await expect(load).rejects.toBeInstanceOf(MeshClosedError);
    expect(registry.calls[0]!.signal.aborted).toBe(true);
    registry.last().resolve(A);
    await flush();
    expect(listener.errors).toEqual([]);
    expect(listener.updates).toEqual([]);
    expect(watch).not.toHaveBeenCalled();
  });

  it('eviction beyond maxServices unsubscribes the evicted service’s watch', async () => {
    const mem = memoryRegistry({ watch: true, initial: { a: ['10.0.0.1:80'], b: ['10.0.0.2:80'], c: ['10.0.0.3:80'] } });
    const { cache, listener } = setup(mem.registry, { maxServices: 2 });
    await cache.load('a');
    await cache.load('b');
    await cache.load('c');
    const [a, b, c] = mem.allWatches;
    expect(a!.unsubscribe).toHaveBeenCalledTimes(1);
    expect(b!.unsubscribe).not.toHaveBeenCalled();
    expect(c!.unsubscribe).not.toHaveBeenCalled();
    expect(cache.isWatched('a')).toBe(false);
    expect(cache.isStale('a')).toBe(true);

    // A late push on the stopped watch does not bring the service back.
    a!.onUpdate(eps('10.0.0.9:80'));
    expect(listener.updates.map((u) => u.service)).toEqual(['a', 'b', 'c']);

    // Loading it again resolves once more and watches again (evicting the least recently used, b).
    expect(ids(await cache.load('a'))).toEqual(['10.0.0.1:80']);
    expect(mem.resolveCount('a')).toBe(2);
    expect(mem.allWatches.map((w) => w.service)).toEqual(['a', 'b', 'c', 'a']);
    expect(b!.unsubscribe).toHaveBeenCalledTimes(1);
  });
});
