import { LRUCache } from 'lru-cache';
import type { Endpoint } from '../endpoint/endpoint.js';
import { DiscoveryError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { Registry } from './registry.js';

/** Who hears about discovery results (the mesh routes them to services and events). */
export interface DiscoveryListener {
  update(service: string, endpoints: readonly Endpoint[]): void;
  /** `stale` is true when a last good list keeps serving. */
  error(service: string, error: DiscoveryError, stale: boolean): void;
}

export interface DiscoveryCacheOptions {
  readonly refreshMs: number;
  readonly maxServices: number;
  readonly resolveTimeoutMs: number;
  readonly clock: Clock;
}

/**
 * The discovery cache, on lru-cache's `fetch`:
 * - single-flight: concurrent loads of one service share one `resolve()`;
 * - TTL refresh: a list older than `refreshMs` is served while one background refresh runs;
 * - stale-on-error: a failed refresh keeps the last good list (and reports the error);
 * - push: when the registry has `watch`, the first good list starts a watch, and its updates replace
 *   the list without expiry until the service is evicted or the cache is closed.
 */
export class DiscoveryCache {
  private readonly lru: LRUCache<string, readonly Endpoint[]>;
  private readonly unwatch = new Map<string, () => void>();
  private closed = false;

  constructor(
    private readonly registry: Registry,
    private readonly options: DiscoveryCacheOptions,
    private readonly listener: DiscoveryListener,
  ) {
    this.lru = new LRUCache<string, readonly Endpoint[]>({
      max: options.maxServices,
      ttl: options.refreshMs,
      perf: options.clock,
      allowStale: true,
      allowStaleOnFetchRejection: true,
      noDeleteOnFetchRejection: true,
      fetchMethod: (service, _stale, { signal, options: setOptions }) => this.resolve(service, signal, setOptions),
      disposeAfter: (_value, service, reason) => {
        if (reason === 'evict' || reason === 'delete') this.stopWatch(service);
      },
    });
  }

  /**
   * The endpoints of `service`: cached when fresh, else one shared `resolve()`. A refresh that fails
   * resolves with the stale list; with nothing cached it rejects with a {@link DiscoveryError}.
   */
  async load(service: string): Promise<readonly Endpoint[]> {
    if (this.closed) throw new DiscoveryError(service, 'the mesh is closed');
    const list = await this.lru.fetch(service);
    if (list === undefined) throw new DiscoveryError(service, 'the registry returned nothing');
    return list;
  }

  /** Whether the cached list of `service` is past its TTL (false while a watch keeps it current). */
  isStale(service: string): boolean {
    return this.lru.getRemainingTTL(service) <= 0;
  }

  close(): void {
    this.closed = true;
    for (const service of [...this.unwatch.keys()]) this.stopWatch(service);
    this.lru.clear();
  }

  private async resolve(
    service: string,
    signal: AbortSignal,
    setOptions: { ttl?: number },
  ): Promise<readonly Endpoint[]> {
    const stale = this.lru.peek(service, { allowStale: true }) !== undefined;
    let list: readonly Endpoint[];
    // Our own deadline: a registry that never answers must not hold the single flight forever.
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new Error(`resolve() took longer than ${this.options.resolveTimeoutMs} ms`));
    }, this.options.resolveTimeoutMs);
    try {
      const both = AbortSignal.any([signal, deadline.signal]);
      list = await Promise.race([this.registry.resolve(service, { signal: both }), rejectOnAbort(both)]);
      if (!Array.isArray(list)) throw new TypeError('resolve() must return an array of endpoints');
    } catch (cause) {
      const error =
        cause instanceof DiscoveryError
          ? cause
          : new DiscoveryError(service, cause instanceof Error ? cause.message : String(cause), { cause });
      this.listener.error(service, error, stale);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    if (this.closed) return list;
    this.listener.update(service, list);
    if (this.registry.watch && !this.unwatch.has(service)) this.startWatch(service);
    if (this.unwatch.has(service)) setOptions.ttl = 0; // pushed updates keep it current: no expiry
    return list;
  }

  private startWatch(service: string): void {
    this.unwatch.set(service, noop); // a watch may call back before it returns
    const stop = this.registry.watch!(
      service,
      (list) => {
        if (this.closed || !this.unwatch.has(service)) return;
        this.lru.set(service, list, { ttl: 0 });
        this.listener.update(service, list);
      },
      (cause) => {
        if (this.closed) return;
        const error = cause instanceof DiscoveryError ? cause : new DiscoveryError(service, cause.message, { cause });
        this.listener.error(service, error, this.lru.peek(service, { allowStale: true }) !== undefined);
      },
    );
    this.unwatch.set(service, stop);
  }

  private stopWatch(service: string): void {
    const stop = this.unwatch.get(service);
    if (!stop) return;
    this.unwatch.delete(service);
    stop();
  }
}

const noop = (): void => {};

/** A promise that rejects with the signal's reason once it aborts (never resolves). */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
