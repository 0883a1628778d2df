import assert from 'node:assert/strict';
import { assertEndpoints, type DiscoveryCache } from '../discovery/cache.js';
import type { Registry } from '../discovery/registry.js';
import { authority, type Endpoint, type EndpointInput } from '../endpoint/endpoint.js';
import { DiscoveryError } from '../errors.js';
import { addresses, cacheProbe, REFRESH_MS, StepClock, type CacheProbe } from './cache-probe.js';
import { skipCase, testApi, type ContractCase, type ContractTestApi } from './test-api.js';

/**
 * A hand on the registry's source of truth, for {@link registryContract}. For `staticRegistry` `set` is its own
 * `set()`; for Consul it edits a test Consul's catalog; for DNS, a test DNS server's zone.
 */
export interface RegistryContractHooks {
  /** Runs before each case, before `makeRegistry`: start the source (a test server) here. */
  setup?(): void | Promise<void>;
  /** Makes the source list exactly these endpoints for `service` (an empty list: none). */
  set(service: string, endpoints: readonly EndpointInput[]): void | Promise<void>;
  /**
   * Makes the source fail until `recover()`: `resolve()` must reject (not resolve with `[]`), and running watches
   * must call `onError`. Leave it out for a source that cannot fail (an in-memory one): the error cases are then
   * skipped.
   */
  fail?(): void | Promise<void>;
  recover?(): void | Promise<void>;
  /** Runs after each case, once the registry's own `close()` has returned: stop what `setup` started. */
  teardown?(): void | Promise<void>;
  /** Whether weights survive the trip through the source (DNS A records and Kubernetes have none). Default true. */
  readonly weights?: boolean | undefined;
  /** How long to wait for a change to show (a push, or a refresh). Default 2000 ms. */
  readonly waitMs?: number | undefined;
  /**
   * Resolves once the source delivered everything it will deliver for now, so that "nothing arrives" can be
   * asserted. Default: let pending promise callbacks run.
   */
  settle?(): Promise<void>;
  /**
   * The test runner: its module (`import * as vitest from 'vitest'`, `import * as test from 'node:test'`) or any
   * object with `describe`, `it`, `beforeEach` and `afterEach`. Default: the globals of that name.
   */
  readonly test?: ContractTestApi | undefined;
}

/** Makes the registry under test; called before each case, after `hooks.setup()`. */
export type MakeRegistry = () => Registry | Promise<Registry>;


/**
 * Registers the registry contract: the update and error cases every built-in registry passes, straight
 * (`resolve`, `watch`) and through the discovery cache the mesh puts in front of it (single-flight, refresh,
 * stale-on-error). Call it at the top level of a test file.
 *
 * @example
 * import * as vitest from 'vitest';
 * import { registryContract } from 'proxyless/testing';
 *
 * let server: MyTestServer;
 * registryContract('myRegistry', () => myRegistry({ url: server.url }), {
 *   setup: async () => { server = await startMyTestServer(); },
 *   set: (service, endpoints) => server.put(service, endpoints),
 *   fail: () => server.answer(500),
 *   recover: () => server.answer('normally'),
 *   teardown: () => server.close(),
 *   test: vitest,
 * });
 */
export function registryContract(name: string, makeRegistry: MakeRegistry, hooks: RegistryContractHooks): void {
  if (typeof name !== 'string' || name === '') throw new TypeError('registryContract: name must be a non-empty string');
  if (typeof makeRegistry !== 'function') throw new TypeError('registryContract: makeRegistry must be a function returning a Registry');
  if (hooks === null || typeof hooks !== 'object' || typeof hooks.set !== 'function') {
    throw new TypeError('registryContract: hooks.set(service, endpoints) is required');
  }
  for (const key of ['setup', 'fail', 'recover', 'teardown', 'settle'] as const) {
    if (hooks[key] !== undefined && typeof hooks[key] !== 'function') throw new TypeError(`registryContract: hooks.${key} must be a function`);
  }
  const { describe, it, beforeEach, afterEach } = testApi(hooks.test, 'registryContract');
  const skipIt = (title: string, body: ContractCase): unknown => (it.skip ? it.skip(title, body) : undefined);
  const waitMs = hooks.waitMs ?? 2_000;

  let registry: Registry;
  let clock: StepClock;
  let caches: DiscoveryCache[];

  const settle = async (): Promise<void> => {
    if (hooks.settle) await hooks.settle();
    else for (let i = 0; i < 50; i++) await Promise.resolve();
  };
  /**
   * Retries `check` until it passes: first only letting promise callbacks run (an in-process source needs nothing
   * more), then in real 5 ms steps (a source behind a socket) up to `waitMs`.
   */
  const waitFor = async <T>(check: () => T | Promise<T>): Promise<T> => {
    const deadline = Date.now() + waitMs;
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
  const resolve = (service: string): Promise<readonly Endpoint[]> => registry.resolve(service, { signal: new AbortController().signal });

  const probe = (counted?: { resolves: number }): CacheProbe => {
    const p = cacheProbe(registry, { refreshMs: REFRESH_MS, resolveTimeoutMs: waitMs, clock }, counted);
    caches.push(p.cache);
    return p;
  };

  /** Loads until the cache serves `expected` (a push arrives by itself; a TTL source needs the clock moved). */
  const eventually = (cache: DiscoveryCache, service: string, expected: string[]): Promise<void> =>
    waitFor(async () => {
      clock.advance(REFRESH_MS + 1);
      assert.deepEqual(addresses(await cache.load(service)), expected);
    });

  describe(`${name} (registry contract)`, () => {
    beforeEach(async () => {
      caches = [];
      clock = new StepClock();
      await hooks.setup?.();
      registry = await makeRegistry();
      if (registry === null || typeof registry !== 'object' || typeof registry.resolve !== 'function') {
        throw new TypeError('registryContract: makeRegistry must return a Registry (an object with resolve())');
      }
    });

    afterEach(async () => {
      for (const cache of caches) cache.close();
      try {
        await registry?.close?.();
      } finally {
        await hooks.teardown?.();
      }
    });

    describe('updates', () => {
      it('resolve() lists the endpoints the source has, as valid endpoints with unique ids', async () => {
        await hooks.set('users', ['127.0.0.1:8081', '127.0.0.1:8082']);
        const list = await resolve('users');
        assertEndpoints(list, 'resolve()');
        assert.deepEqual(addresses(list), ['127.0.0.1:8081', '127.0.0.1:8082']);
        assert.equal(new Set(list.map((e) => e.id)).size, list.length, 'endpoint ids must be unique');
      });

      it('resolve() of a service the source does not have is an empty list, not an error', async () => {
        await hooks.set('users', ['127.0.0.1:8081']);
        assert.deepEqual(await resolve('nobody-has-this'), []);
      });

      it('resolve() sees every later change, down to an empty list', async () => {
        await hooks.set('users', ['127.0.0.1:8081']);
        assert.deepEqual(addresses(await resolve('users')), ['127.0.0.1:8081']);
        await hooks.set('users', ['127.0.0.1:8082', '127.0.0.1:8083']);
        await waitFor(async () => assert.deepEqual(addresses(await resolve('users')), ['127.0.0.1:8082', '127.0.0.1:8083']));
        await hooks.set('users', []);
        await waitFor(async () => assert.deepEqual(await resolve('users'), []));
      });

      it('services are independent', async () => {
        await hooks.set('users', ['127.0.0.1:8081']);
        await hooks.set('orders', ['127.0.0.1:9001']);
        await hooks.set('users', ['127.0.0.1:8082']);
        await waitFor(async () => assert.deepEqual(addresses(await resolve('users')), ['127.0.0.1:8082']));
        assert.deepEqual(addresses(await resolve('orders')), ['127.0.0.1:9001']);
      });

      (hooks.weights === false ? skipIt : it)('carries weights', async () => {
        await hooks.set('users', [{ host: '127.0.0.1', port: 8081, weight: 3 }, '127.0.0.1:8082']);
        const byAddress = new Map((await resolve('users')).map((e) => [authority(e.host, e.port), e.weight]));
        assert.equal(byAddress.get('127.0.0.1:8081'), 3);
        assert.equal(byAddress.get('127.0.0.1:8082'), 1);
      });

      it('watch(), when offered: pushes changes to that service’s watchers until they unsubscribe', async function (this: unknown, ...args: unknown[]) {
        if (!registry.watch) return skipCase(this, args);
        await watchCase(registry as Required<Pick<Registry, 'watch'>> & Registry);
      });

      it('through the cache: the first load serves the list, and a change reaches the listener', async () => {
        await hooks.set('users', ['127.0.0.1:8081', '127.0.0.1:8082']);
        const { cache, updates, errors } = probe();
        assert.deepEqual(addresses(await cache.load('users')), ['127.0.0.1:8081', '127.0.0.1:8082']);
        await hooks.set('users', ['127.0.0.1:8083']);
        await eventually(cache, 'users', ['127.0.0.1:8083']);
        assert.deepEqual(updates.get('users')?.map(addresses).at(-1), ['127.0.0.1:8083']);
        assert.deepEqual(errors, []);
      });

      it('through the cache: concurrent first loads share one resolve()', async () => {
        await hooks.set('users', ['127.0.0.1:8081']);
        const counted = { resolves: 0 };
        const { cache } = probe(counted);
        const lists = await Promise.all([cache.load('users'), cache.load('users'), cache.load('users')]);
        for (const list of lists) assert.deepEqual(addresses(list), ['127.0.0.1:8081']);
        assert.equal(counted.resolves, 1);
      });
    });

    describe('errors', () => {
      const errorIt = hooks.fail ? it : skipIt;
      const fail = async (): Promise<void> => hooks.fail!();

      errorIt('resolve() rejects while the source fails (a failure never looks like "no endpoints")', async () => {
        await hooks.set('users', ['127.0.0.1:8081']);
        await fail();
        await assert.rejects(resolve('users'));
      });

      errorIt('through the cache: a first load while the source fails rejects with DiscoveryError, stale=false', async () => {
        await hooks.set('users', ['127.0.0.1:8081']);
        await fail();
        const { cache, errors } = probe();
        const error = await cache.load('users').catch((e: unknown) => e);
        assert.ok(error instanceof DiscoveryError, `expected a DiscoveryError, got ${String(error)}`);
        assert.equal(error.code, 'EDISCOVERY');
        assert.deepEqual(errors.map((e) => [e.service, e.stale]), [['users', false]]);
      });

      errorIt('through the cache: when the source fails later, the last good list keeps serving and the error says stale', async () => {
        await hooks.set('users', ['127.0.0.1:8081', '127.0.0.1:8082']);
        const { cache, errors } = probe();
        await cache.load('users');
        await fail();
        await waitFor(async () => {
          clock.advance(REFRESH_MS + 1);
          assert.deepEqual(addresses(await cache.load('users')), ['127.0.0.1:8081', '127.0.0.1:8082']);
          assert.ok(errors.length > 0, 'the failure is reported');
        });
        assert.ok(errors.every((e) => e.service === 'users' && e.stale && e.error instanceof DiscoveryError));
      });

      errorIt('through the cache: after the source recovers, changes flow again', async () => {
        await hooks.set('users', ['127.0.0.1:8081']);
        const { cache } = probe();
        await cache.load('users');
        await fail();
        await hooks.recover?.();
        await hooks.set('users', ['127.0.0.1:8089']);
        await eventually(cache, 'users', ['127.0.0.1:8089']);
      });
    });
  });

  async function watchCase(r: Registry & Required<Pick<Registry, 'watch'>>): Promise<void> {
    await hooks.set('users', ['127.0.0.1:8081']);
    await hooks.set('orders', ['127.0.0.1:9001']);
    const users: (readonly Endpoint[])[] = [];
    const second: (readonly Endpoint[])[] = [];
    const orders: (readonly Endpoint[])[] = [];
    const stopUsers = r.watch('users', (l) => users.push(l), () => {});
    const stopSecond = r.watch('users', (l) => second.push(l), () => {});
    const stopOrders = r.watch('orders', (l) => orders.push(l), () => {});
    try {
      await hooks.set('users', ['127.0.0.1:8082']);
      await waitFor(() => assert.deepEqual(users.map(addresses).at(-1), ['127.0.0.1:8082']));
      await waitFor(() => assert.deepEqual(second.map(addresses).at(-1), ['127.0.0.1:8082']));
      for (const list of users) assertEndpoints(list, 'watch()');
      await settle();
      assert.deepEqual(orders.map(addresses).filter((a) => a[0] !== '127.0.0.1:9001'), [], 'orders heard only its own list');

      stopUsers();
      const heard = users.length;
      await hooks.set('users', ['127.0.0.1:8083']);
      await waitFor(() => assert.deepEqual(second.map(addresses).at(-1), ['127.0.0.1:8083']));
      await settle();
      assert.equal(users.length, heard, 'an unsubscribed watcher hears nothing more');
    } finally {
      stopUsers();
      stopSecond();
      stopOrders();
    }
  }
}
