import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { assertEndpoints, DiscoveryCache, type DiscoveryListener } from '../../src/discovery/cache.js';
import type { Registry } from '../../src/discovery/registry.js';
import { authority, type Endpoint, type EndpointInput } from '../../src/endpoint/endpoint.js';
import { DiscoveryError } from '../../src/errors.js';
import type { Clock } from '../../src/util/clock.js';

/**
 * What a registry needs to provide to run the contract: the registry, and a hand on its source of truth.
 * For staticRegistry that is `set()`; for Consul it is the Consul double's catalog; for DNS, the test
 * DNS server's zone. A registry plugs in with a small adapter, e.g.
 *
 * @example
 * registryContract('consulRegistry', async () => {
 *   const consul = await startConsulDouble();
 *   return {
 *     registry: consulRegistry({ url: consul.url }),
 *     set: (service, endpoints) => consul.setService(service, endpoints),
 *     fail: () => consul.respondWith(500),
 *     recover: () => consul.respondNormally(),
 *     close: () => consul.close(),
 *   };
 * });
 */
export interface RegistryHarness {
  readonly registry: Registry;
  /** Makes the source list exactly these endpoints for `service` (an empty list: none). */
  set(service: string, endpoints: readonly EndpointInput[]): void | Promise<void>;
  /**
   * Makes the source fail until `recover()`: resolve() must reject (not resolve with `[]`), and running
   * watches must call `onError`. Leave out for a source that cannot fail (staticRegistry): the error
   * cases are then skipped.
   */
  fail?(): void | Promise<void>;
  recover?(): void | Promise<void>;
  /** Frees what the harness opened (servers, sockets); the registry's own `close()` is called first. */
  close?(): void | Promise<void>;
  /** Whether weights survive the trip through the source (DNS A records have none). Default true. */
  readonly weights?: boolean;
  /** How long to wait for a change to show (push or refresh). Default 2000 ms. */
  readonly waitMs?: number;
  /**
   * Resolves once the source delivered everything it will deliver for now, so that "nothing arrives"
   * can be asserted. Default: let pending promise callbacks run.
   */
  settle?(): Promise<void>;
}

export type MakeRegistryHarness = () => RegistryHarness | Promise<RegistryHarness>;

/** A clock the contract moves by hand, so that TTL refreshes need no sleeping. */
class StepClock implements Clock {
  private t = 0;
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** `host:port` of each endpoint, sorted (a source need not keep order, nor use the default id). */
function addresses(list: readonly Endpoint[]): string[] {
  return list.map((e) => authority(e.host, e.port)).sort();
}

const REFRESH_MS = 1_000;

/**
 * The update and error cases every registry passes, straight (resolve, watch) and through the
 * discovery cache the mesh puts in front of it (single-flight, refresh, stale-on-error).
 */
export function registryContract(name: string, makeHarness: MakeRegistryHarness): void {
  describe(`${name} (registry contract)`, () => {
    let h: RegistryHarness;
    let clock: StepClock;
    let caches: DiscoveryCache[];
    const signal = (): AbortSignal => new AbortController().signal;
    const settle = async (): Promise<void> => {
      if (h.settle) await h.settle();
      else for (let i = 0; i < 50; i++) await Promise.resolve();
    };
    /**
     * Retries `check` until it passes: first only letting promise callbacks run (an in-process source
     * needs nothing more), then in real 5 ms steps (a source behind a socket: Consul, DNS) up to `waitMs`.
     */
    const waitFor = async <T>(check: () => T | Promise<T>): Promise<T> => {
      const deadline = Date.now() + (h.waitMs ?? 2_000);
      for (let tries = 0; ; tries++) {
        try {
          return await check();
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await settle();
          if (tries >= 3) await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const resolve = (service: string): Promise<readonly Endpoint[]> => h.registry.resolve(service, { signal: signal() });

    function cacheOf(): { cache: DiscoveryCache; updates: Map<string, (readonly Endpoint[])[]>; errors: { service: string; error: DiscoveryError; stale: boolean }[] } {
      const updates = new Map<string, (readonly Endpoint[])[]>();
      const errors: { service: string; error: DiscoveryError; stale: boolean }[] = [];
      const listener: DiscoveryListener = {
        update: (service, list) => updates.set(service, [...(updates.get(service) ?? []), list]),
        error: (service, error, stale) => errors.push({ service, error, stale }),
      };
      const cache = new DiscoveryCache(h.registry, { refreshMs: REFRESH_MS, maxServices: 100, resolveTimeoutMs: h.waitMs ?? 2_000, clock }, listener);
      caches.push(cache);
      return { cache, updates, errors };
    }

    /** Loads until the cache serves `expected` (a push arrives by itself; a TTL source needs the clock moved). */
    async function eventually(cache: DiscoveryCache, service: string, expected: string[]): Promise<void> {
      await waitFor(async () => {
        clock.advance(REFRESH_MS + 1);
        expect(addresses(await cache.load(service))).toEqual(expected);
      });
    }

    beforeEach(async () => {
      h = await makeHarness();
      clock = new StepClock();
      caches = [];
    });

    afterEach(async () => {
      for (const cache of caches) cache.close();
      await h.registry.close?.();
      await h.close?.();
    });

    describe('updates', () => {
      it('resolve() lists the endpoints the source has, as valid endpoints with unique ids', async () => {
        await h.set('users', ['127.0.0.1:8081', '127.0.0.1:8082']);
        const list = await resolve('users');
        assertEndpoints(list, 'resolve()');
        expect(addresses(list)).toEqual(['127.0.0.1:8081', '127.0.0.1:8082']);
        expect(new Set(list.map((e) => e.id)).size).toBe(list.length);
      });

      it('resolve() of a service the source does not have is an empty list, not an error', async () => {
        await h.set('users', ['127.0.0.1:8081']);
        expect(await resolve('nobody-has-this')).toEqual([]);
      });

      it('resolve() sees every later change, down to an empty list', async () => {
        await h.set('users', ['127.0.0.1:8081']);
        expect(addresses(await resolve('users'))).toEqual(['127.0.0.1:8081']);
        await h.set('users', ['127.0.0.1:8082', '127.0.0.1:8083']);
        await waitFor(async () => expect(addresses(await resolve('users'))).toEqual(['127.0.0.1:8082', '127.0.0.1:8083']));
        await h.set('users', []);
        await waitFor(async () => expect(await resolve('users')).toEqual([]));
      });

      it('services are independent', async () => {
        await h.set('users', ['127.0.0.1:8081']);
        await h.set('orders', ['127.0.0.1:9001']);
        await h.set('users', ['127.0.0.1:8082']);
        await waitFor(async () => expect(addresses(await resolve('users'))).toEqual(['127.0.0.1:8082']));
        expect(addresses(await resolve('orders'))).toEqual(['127.0.0.1:9001']);
      });

      it('carries weights', async (ctx) => {
        if (h.weights === false) ctx.skip();
        await h.set('users', [{ host: '127.0.0.1', port: 8081, weight: 3 }, '127.0.0.1:8082']);
        const list = await resolve('users');
        const byAddress = new Map(list.map((e) => [authority(e.host, e.port), e.weight]));
        expect(byAddress.get('127.0.0.1:8081')).toBe(3);
        expect(byAddress.get('127.0.0.1:8082')).toBe(1);
      });

      it('watch(), when offered: pushes changes to that service’s watchers until they unsubscribe', async (ctx) => {
        if (!h.registry.watch) ctx.skip();
        await h.set('users', ['127.0.0.1:8081']);
        await h.set('orders', ['127.0.0.1:9001']);
        const users: (readonly Endpoint[])[] = [];
        const second: (readonly Endpoint[])[] = [];
        const orders: (readonly Endpoint[])[] = [];
        const stopUsers = h.registry.watch!('users', (l) => users.push(l), () => {});
        const stopSecond = h.registry.watch!('users', (l) => second.push(l), () => {});
        const stopOrders = h.registry.watch!('orders', (l) => orders.push(l), () => {});
        try {
          await h.set('users', ['127.0.0.1:8082']);
          await waitFor(() => expect(users.map(addresses).at(-1)).toEqual(['127.0.0.1:8082']));
          await waitFor(() => expect(second.map(addresses).at(-1)).toEqual(['127.0.0.1:8082']));
          for (const list of users) assertEndpoints(list, 'watch()');
          await settle();
          expect(orders.map(addresses).filter((a) => a[0] !== '127.0.0.1:9001')).toEqual([]);

          stopUsers();
          const heard = users.length;
          await h.set('users', ['127.0.0.1:8083']);
          await waitFor(() => expect(second.map(addresses).at(-1)).toEqual(['127.0.0.1:8083']));
          await settle();
          expect(users.length).toBe(heard);
        } finally {
          stopUsers();
          stopSecond();
          stopOrders();
        }
      });

      it('through the cache: the first load serves the list, and a change reaches the listener', async () => {
        await h.set('users', ['127.0.0.1:8081', '127.0.0.1:8082']);
        const { cache, updates, errors } = cacheOf();
        expect(addresses(await cache.load('users'))).toEqual(['127.0.0.1:8081', '127.0.0.1:8082']);
        await h.set('users', ['127.0.0.1:8083']);
        await eventually(cache, 'users', ['127.0.0.1:8083']);
        expect(updates.get('users')?.map(addresses).at(-1)).toEqual(['127.0.0.1:8083']);
        expect(errors).toEqual([]);
      });

      it('through the cache: concurrent first loads share one resolve()', async () => {
        await h.set('users', ['127.0.0.1:8081']);
        const spy = vi.spyOn(h.registry, 'resolve');
        const { cache } = cacheOf();
        const lists = await Promise.all([cache.load('users'), cache.load('users'), cache.load('users')]);
        for (const list of lists) expect(addresses(list)).toEqual(['127.0.0.1:8081']);
        expect(spy.mock.calls.filter(([s]) => s === 'users')).toHaveLength(1);
        spy.mockRestore();
      });
    });

    describe('errors', () => {
      beforeEach((ctx) => {
        if (!h.fail) ctx.skip();
      });

      it('resolve() rejects while the source fails (a failure never looks like "no endpoints")', async () => {
        await h.set('users', ['127.0.0.1:8081']);
        await h.fail!();
        await expect(resolve('users')).rejects.toBeInstanceOf(Error);
      });

      it('through the cache: a first load while the source fails rejects with DiscoveryError, stale=false', async () => {
        await h.set('users', ['127.0.0.1:8081']);
        await h.fail!();
        const { cache, errors } = cacheOf();
        const error = await cache.load('users').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DiscoveryError);
        expect((error as DiscoveryError).code).toBe('EDISCOVERY');
        expect(errors.map((e) => [e.service, e.stale])).toEqual([['users', false]]);
      });

      it('through the cache: when the source fails later, the last good list keeps serving and the error says stale', async () => {
        await h.set('users', ['127.0.0.1:8081', '127.0.0.1:8082']);
        const { cache, errors } = cacheOf();
        await cache.load('users');
        await h.fail!();
        await waitFor(async () => {
          clock.advance(REFRESH_MS + 1);
          expect(addresses(await cache.load('users'))).toEqual(['127.0.0.1:8081', '127.0.0.1:8082']);
          expect(errors.length).toBeGreaterThan(0);
        });
        expect(errors.every((e) => e.service === 'users' && e.stale && e.error instanceof DiscoveryError)).toBe(true);
      });

      it('through the cache: after the source recovers, changes flow again', async () => {
        await h.set('users', ['127.0.0.1:8081']);
        const { cache } = cacheOf();
        await cache.load('users');
        await h.fail!();
        await h.recover?.();
        await h.set('users', ['127.0.0.1:8089']);
        await eventually(cache, 'users', ['127.0.0.1:8089']);
      });
    });
  });
}
