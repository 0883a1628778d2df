// What the contract puts between itself and a registry: a hand-moved clock, and the mesh's discovery cache with a
// listener that records what it hears.
import { DiscoveryCache, type DiscoveryListener } from '../discovery/cache.js';
import type { Registry } from '../discovery/registry.js';
import { authority, type Endpoint } from '../endpoint/endpoint.js';
import type { DiscoveryError } from '../errors.js';
import type { Clock } from '../util/clock.js';

/** The cache's refresh period in the contract; the step clock jumps past it to force a refresh. */
export const REFRESH_MS = 1_000;

/** A clock the contract moves by hand, so that refreshes by TTL need no sleeping. */
export class StepClock implements Clock {
  private t = 0;
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** `host:port` of each endpoint, sorted (a source need keep neither order nor the default id). */
export function addresses(list: readonly Endpoint[]): string[] {
  return list.map((e) => authority(e.host, e.port)).sort();
}

export interface CacheProbe {
  readonly cache: DiscoveryCache;
  readonly updates: Map<string, (readonly Endpoint[])[]>;
  readonly errors: { service: string; error: DiscoveryError; stale: boolean }[];
}

/**
 * The mesh's discovery cache over `registry`, recording what it tells its listener. With `counted`, resolves of
 * `users` are counted through a wrapper rather than a spy: the registry may be frozen, and the contract must not
 * change it.
 */
export function cacheProbe(
  registry: Registry,
  options: { refreshMs: number; resolveTimeoutMs: number; clock: Clock },
  counted?: { resolves: number },
): CacheProbe {
  const updates = new Map<string, (readonly Endpoint[])[]>();
  const errors: CacheProbe['errors'] = [];
  const listener: DiscoveryListener = {
    update: (service, list) => updates.set(service, [...(updates.get(service) ?? []), list]),
    error: (service, error, stale) => errors.push({ service, error, stale }),
  };
  const source: Registry = counted
    ? {
        resolve: (service, ctx) => {
          if (service === 'users') counted.resolves++;
          return registry.resolve(service, ctx);
        },
        ...(registry.watch ? { watch: registry.watch.bind(registry) } : {}),
      }
    : registry;
  const cache = new DiscoveryCache(source, { ...options, maxServices: 100 }, listener);
  return { cache, updates, errors };
}
