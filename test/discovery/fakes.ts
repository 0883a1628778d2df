import { vi } from 'vitest';
import type { DiscoveryListener } from '../../src/discovery/cache.js';
import type { Registry } from '../../src/discovery/registry.js';
import { toEndpoint, type Endpoint, type EndpointInput } from '../../src/endpoint/endpoint.js';
import type { DiscoveryError } from '../../src/errors.js';
import type { Clock } from '../../src/util/clock.js';

/** A clock the test moves by hand. It starts at 0 on purpose: lru-cache reads a start of 0 as "no TTL". */
export interface ManualClock extends Clock {
  advance(ms: number): void;
}

export function manualClock(start = 0): ManualClock {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

/** Frozen endpoints from 'host:port' strings or inputs. */
export function eps(...inputs: EndpointInput[]): readonly Endpoint[] {
  return Object.freeze(inputs.map((input, i) => toEndpoint(input, `eps[${i}]`)));
}

/** Ids of a list, in order. */
export function ids(list: readonly { id: string }[] | undefined): string[] {
  return (list ?? []).map((e) => e.id);
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Lets every pending promise chain run (lru-cache's fetch adds a few hops). Microtasks only, so it works
 * the same with and without fake timers.
 */
export async function flush(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

/** A DiscoveryListener that records what it hears. */
export interface RecordingListener extends DiscoveryListener {
  readonly updates: { service: string; endpoints: readonly Endpoint[] }[];
  readonly errors: { service: string; error: DiscoveryError; stale: boolean }[];
}

export function recorder(): RecordingListener {
  const updates: RecordingListener['updates'] = [];
  const errors: RecordingListener['errors'] = [];
  return {
    updates,
    errors,
    update: (service, endpoints) => updates.push({ service, endpoints }),
    error: (service, error, stale) => errors.push({ service, error, stale }),
  };
}

/** A registry whose every resolve() is a {@link Deferred} the test settles. */
export interface ScriptedRegistry extends Registry {
  readonly resolve: ReturnType<typeof vi.fn<Registry['resolve']>>;
  /** One entry per resolve() call, in order. */
  readonly calls: { service: string; signal: AbortSignal; result: Deferred<readonly Endpoint[]> }[];
  /** The pending resolve() of the last call. */
  last(): Deferred<readonly Endpoint[]>;
}

export function scriptedRegistry(): ScriptedRegistry {
  const calls: ScriptedRegistry['calls'] = [];
  return {
    calls,
    resolve: vi.fn<Registry['resolve']>((service, { signal }) => {
      const result = deferred<readonly Endpoint[]>();
      calls.push({ service, signal, result });
      return result.promise;
    }),
    last() {
      const call = calls.at(-1);
      if (!call) throw new Error('resolve() was not called');
      return call.result;
    },
  };
}

/** One live watch of a {@link MemoryRegistry}. */
export interface MemoryWatch {
  readonly service: string;
  readonly onUpdate: (endpoints: readonly Endpoint[]) => void;
  readonly onError: (error: Error) => void;
  readonly unsubscribe: ReturnType<typeof vi.fn<() => void>>;
}

/**
 * A small custom registry, as a user would write one: an in-memory map that can be made to fail.
 * With `watch: true` it pushes changes and errors to watchers.
 */
export interface MemoryRegistry {
  readonly registry: Registry;
  set(service: string, inputs: readonly EndpointInput[]): void;
  /** resolve() rejects with `error`, and watchers hear it, until recover(). */
  fail(error?: Error): void;
  recover(): void;
  resolveCount(service?: string): number;
  /** Watches not yet unsubscribed. */
  readonly watches: MemoryWatch[];
  /** Every watch ever started. */
  readonly allWatches: MemoryWatch[];
}

export function memoryRegistry(options: { watch: boolean; initial?: Record<string, readonly EndpointInput[]> }): MemoryRegistry {
  const lists = new Map<string, readonly Endpoint[]>();
  const resolved: string[] = [];
  const watches: MemoryWatch[] = [];
  const allWatches: MemoryWatch[] = [];
  let failing: Error | undefined;
  for (const [service, inputs] of Object.entries(options.initial ?? {})) lists.set(service, eps(...inputs));

  const registry: Registry = {
    async resolve(service) {
      resolved.push(service);
      if (failing) throw failing;
      return lists.get(service) ?? [];
    },
  };
  if (options.watch) {
    registry.watch = (service, onUpdate, onError) => {
      const w: MemoryWatch = {
        service,
        onUpdate,
        onError,
        unsubscribe: vi.fn(() => {
          const i = watches.indexOf(w);
          if (i >= 0) watches.splice(i, 1);
        }),
      };
      watches.push(w);
      allWatches.push(w);
      return w.unsubscribe;
    };
  }
  return {
    registry,
    watches,
    allWatches,
    set(service, inputs) {
      const list = eps(...inputs);
      lists.set(service, list);
      for (const w of [...watches]) if (w.service === service) w.onUpdate(list);
    },
    fail(error = new Error('registry is down')) {
      failing = error;
      for (const w of [...watches]) w.onError(error);
    },
    recover() {
      failing = undefined;
    },
    resolveCount: (service) => (service === undefined ? resolved.length : resolved.filter((s) => s === service).length),
  };
}
