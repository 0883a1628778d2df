import { describe, expect, it, vi } from 'vitest';
import { DiscoveryCache } from '../../src/discovery/cache.js';
import { staticRegistry } from '../../src/discovery/static.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { ids, manualClock, recorder } from './fakes.js';

const signal = new AbortController().signal;

describe('staticRegistry', () => {
  it('resolves the normalised endpoints of a service', async () => {
    const registry = staticRegistry({
      users: ['127.0.0.1:8081', '[::1]:8082', { host: '10.0.0.3', port: 8083, weight: 3, zone: 'b', tags: ['x'] }],
    });
    const list = await registry.resolve('users', { signal });
    expect(list).toEqual([
      { id: '127.0.0.1:8081', host: '127.0.0.1', port: 8081, weight: 1, tags: [], meta: {} },
      { id: '[::1]:8082', host: '::1', port: 8082, weight: 1, tags: [], meta: {} },
      { id: '10.0.0.3:8083', host: '10.0.0.3', port: 8083, weight: 3, zone: 'b', tags: ['x'], meta: {} },
    ]);
    expect(Object.isFrozen(list)).toBe(true);
    expect(Object.isFrozen(list[0])).toBe(true);
  });

  it('resolves an unknown service to an empty list', async () => {
    expect(await staticRegistry({ users: ['127.0.0.1:8081'] }).resolve('orders', { signal })).toEqual([]);
    expect(await staticRegistry().resolve('users', { signal })).toEqual([]);
  });

  it('set() changes what resolve() returns, and pushes the list to that service’s watchers only', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081'] });
    const users = vi.fn();
    const orders = vi.fn();
    registry.watch!('users', users, () => {});
    registry.watch!('orders', orders, () => {});
    registry.set('users', ['127.0.0.1:9000']);
    expect(ids(await registry.resolve('users', { signal }))).toEqual(['127.0.0.1:9000']);
    expect(users).toHaveBeenCalledTimes(1);
    expect(ids(users.mock.calls[0]![0] as Endpoint[])).toEqual(['127.0.0.1:9000']);
    expect(orders).not.toHaveBeenCalled();
  });

  it('set() can add a service and empty one', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081'] });
    registry.set('orders', ['127.0.0.1:9000']);
    registry.set('users', []);
    expect(ids(await registry.resolve('orders', { signal }))).toEqual(['127.0.0.1:9000']);
    expect(await registry.resolve('users', { signal })).toEqual([]);
  });

  it('unsubscribe stops updates, is idempotent, and leaves other watchers alone', () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081'] });
    const a = vi.fn();
    const b = vi.fn();
    const stopA = registry.watch!('users', a, () => {});
    registry.watch!('users', b, () => {});
    stopA();
    stopA();
    registry.set('users', ['127.0.0.1:9000']);
    expect(a).not.toHaveBeenCalled();
    expect(b).toHaveBeenCalledTimes(1);
  });

  it('the same callback watched twice is unsubscribed once per subscription', () => {
    const registry = staticRegistry();
    const cb = vi.fn();
    const first = registry.watch!('users', cb, () => {});
    registry.watch!('users', cb, () => {});
    first();
    registry.set('users', ['127.0.0.1:9000']);
    expect(cb).toHaveBeenCalledTimes(1);
  });

  it('a watcher that unsubscribes another during an update does not break the loop', () => {
    const registry = staticRegistry();
    const b = vi.fn();
    let stopB = (): void => {};
    registry.watch!('users', () => stopB(), () => {});
    stopB = registry.watch!('users', b, () => {});
    registry.set('users', ['127.0.0.1:9000']);
    expect(b).not.toHaveBeenCalled();
  });

  it('a watcher that throws does not keep the others from hearing; set() rethrows afterwards', async () => {
    const registry = staticRegistry();
    const boom = new Error('listener bug');
    const after = vi.fn();
    registry.watch!('users', () => {
      throw boom;
    }, () => {});
    registry.watch!('users', after, () => {});
    expect(() => registry.set('users', ['127.0.0.1:9000'])).toThrow(boom);
    expect(after).toHaveBeenCalledTimes(1);
    expect(ids(await registry.resolve('users', { signal }))).toEqual(['127.0.0.1:9000']);
  });

  it.each([
    ['a bad host:port string', ['127.0.0.1:8081', 'localhost'], /staticRegistry: users\[1\] must be 'host:port'/],
    ['port 0', [{ host: '127.0.0.1', port: 0 }], /staticRegistry: users\[0\]\.port must be an integer from 1 to 65535/],
    ['port 0 in a string', ['127.0.0.1:0'], /staticRegistry: users\[0\]\.port/],
    ['weight -1', ['127.0.0.1:8081', '127.0.0.1:8082', { host: '127.0.0.1', port: 8083, weight: -1 }], /users\[2\]\.weight must be a finite number > 0/],
    ['a host with a path', [{ host: 'a/b', port: 80 }], /users\[0\]\.host/],
    ['not an array', '127.0.0.1:8081', /staticRegistry: users must be an array/],
  ])('refuses %s with a TypeError naming the entry, at construction and in set()', (_what, inputs, message) => {
    expect(() => staticRegistry({ users: inputs as never })).toThrow(TypeError);
    expect(() => staticRegistry({ users: inputs as never })).toThrow(message);
    const registry = staticRegistry({ users: ['127.0.0.1:8081'] });
    const watcher = vi.fn();
    registry.watch!('users', watcher, () => {});
    expect(() => registry.set('users', inputs as never)).toThrow(message);
    expect(watcher).not.toHaveBeenCalled();
  });

  it('a refused set() leaves the list as it was', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081'] });
    expect(() => registry.set('users', ['127.0.0.1:9000', 'nope'])).toThrow(TypeError);
    expect(ids(await registry.resolve('users', { signal }))).toEqual(['127.0.0.1:8081']);
  });

  it('refuses a map that is not an object, and a service name that is not a string', () => {
    expect(() => staticRegistry(null as never)).toThrow(/map must be an object/);
    expect(() => staticRegistry([['127.0.0.1:80']] as never)).toThrow(/map must be an object/);
    expect(() => staticRegistry().set(42 as never, [])).toThrow(/service must be a non-empty string/);
  });

  it('can be shared by two caches: closing one leaves the other’s watch working', async () => {
    const registry = staticRegistry({ users: ['127.0.0.1:8081'] });
    const options = { refreshMs: 1_000, maxServices: 10, resolveTimeoutMs: 1_000, clock: manualClock() };
    const first = new DiscoveryCache(registry, options, recorder());
    const secondListener = recorder();
    const second = new DiscoveryCache(registry, options, secondListener);
    await first.load('users');
    await second.load('users');
    first.close();
    await registry.close?.();
    registry.set('users', ['127.0.0.1:9000']);
    expect(ids(await second.load('users'))).toEqual(['127.0.0.1:9000']);
    expect(secondListener.updates.map((u) => ids(u.endpoints))).toEqual([['127.0.0.1:8081'], ['127.0.0.1:9000']]);
  });
});
