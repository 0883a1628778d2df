import { toEndpoint, type Endpoint, type EndpointInput } from '../endpoint/endpoint.js';
import type { Registry } from './registry.js';

/** A fixed map from service name to endpoints, changeable live with `set`. */
export interface StaticRegistry extends Registry {
  /**
   * Replaces a service's endpoints; watching meshes see the change at once (no TTL to wait for).
   * Throws a `TypeError` naming the bad entry, and then changes nothing.
   * @example
   * const registry = staticRegistry({ users: ['127.0.0.1:8081'] });
   * registry.set('users', ['127.0.0.1:8083', { host: '127.0.0.1', port: 8084, weight: 2 }]);
   */
  set(service: string, endpoints: readonly EndpointInput[]): void;
}

type OnUpdate = (endpoints: readonly Endpoint[]) => void;

/**
 * A registry from a fixed map, for local development, tests and small fleets. An unknown service
 * resolves to an empty list. It never fails and holds no resources, so one instance may be shared by
 * several meshes (each mesh's `close()` ends only its own watches).
 *
 * @example
 * const registry = staticRegistry({ users: ['127.0.0.1:8081', { host: '127.0.0.1', port: 8082, weight: 2 }] });
 * registry.set('users', ['127.0.0.1:8083']);   // live change
 */
export function staticRegistry(map: Readonly<Record<string, readonly EndpointInput[]>> = {}): StaticRegistry {
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new TypeError('staticRegistry(map): map must be an object of service name to endpoints');
  }
  // `{ __proto__: [...] }` in an object literal sets the prototype instead of naming a service: say so, rather
  // than lose the service without a word.
  if (Array.isArray(Object.getPrototypeOf(map))) {
    throw new TypeError(
      "staticRegistry(map): a '__proto__' key in an object literal sets the map's prototype; for a service named " +
        "__proto__, build the map with JSON.parse or call registry.set('__proto__', endpoints)",
    );
  }
  const lists = new Map<string, readonly Endpoint[]>();
  // One entry per subscription (not per callback), so the same callback watched twice is unsubscribed once.
  const watchers = new Map<string, Set<{ onUpdate: OnUpdate }>>();

  const normalise = (service: string, inputs: readonly EndpointInput[]): readonly Endpoint[] => {
    if (!Array.isArray(inputs)) throw new TypeError(`staticRegistry: ${service} must be an array of endpoints`);
    return Object.freeze(inputs.map((input, i) => toEndpoint(input, `staticRegistry: ${service}[${i}]`)));
  };
  for (const [service, inputs] of Object.entries(map)) lists.set(service, normalise(service, inputs));

  return {
    async resolve(service) {
      return lists.get(service) ?? [];
    },
    watch(service, onUpdate) {
      let subs = watchers.get(service);
      if (!subs) watchers.set(service, (subs = new Set()));
      const sub = { onUpdate };
      subs.add(sub);
      return () => {
        subs.delete(sub);
        if (subs.size === 0 && watchers.get(service) === subs) watchers.delete(service);
      };
    },
    set(service, inputs) {
      if (typeof service !== 'string' || service === '') {
        throw new TypeError('staticRegistry.set(service, endpoints): service must be a non-empty string');
      }
      const list = normalise(service, inputs);
      lists.set(service, list);
      const subs = watchers.get(service);
      if (!subs) return;
      // Every watcher hears of the change even if one throws; the first error is rethrown afterwards.
      let failed = false;
      let first: unknown;
      for (const sub of [...subs]) {
        if (!subs.has(sub)) continue; // unsubscribed by an earlier watcher
        try {
          sub.onUpdate(list);
        } catch (error) {
          if (!failed) [failed, first] = [true, error];
        }
      }
      if (failed) throw first;
    },
  };
}
