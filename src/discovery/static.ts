import { toEndpoint, type Endpoint, type EndpointInput } from '../endpoint/endpoint.js';
import type { Registry } from './registry.js';

/** A fixed map from service name to endpoints, changeable live with `set`. */
export interface StaticRegistry extends Registry {
  /** Replaces a service's endpoints; watching meshes see the change at once. */
  set(service: string, endpoints: readonly EndpointInput[]): void;
}

/**
 * A registry from a fixed map, for local development, tests and small fleets.
 *
 * @example
 * const registry = staticRegistry({ users: ['127.0.0.1:8081', { host: '127.0.0.1', port: 8082, weight: 2 }] });
 * registry.set('users', ['127.0.0.1:8083']);   // live change
 */
export function staticRegistry(map: Readonly<Record<string, readonly EndpointInput[]>> = {}): StaticRegistry {
  if (map === null || typeof map !== 'object') throw new TypeError('staticRegistry(map): map must be an object');
  const lists = new Map<string, readonly Endpoint[]>();
  const watchers = new Map<string, Set<(endpoints: readonly Endpoint[]) => void>>();

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
      let set = watchers.get(service);
      if (!set) watchers.set(service, (set = new Set()));
      set.add(onUpdate);
      return () => {
        set.delete(onUpdate);
        if (set.size === 0) watchers.delete(service);
      };
    },
    set(service, inputs) {
      const list = normalise(service, inputs);
      lists.set(service, list);
      for (const onUpdate of watchers.get(service) ?? []) onUpdate(list);
    },
    close() {
      watchers.clear();
    },
  };
}
