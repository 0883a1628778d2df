import { LRUCache } from 'lru-cache';
import { hostProblem, type Endpoint } from '../endpoint/endpoint.js';
import { DiscoveryError, MeshClosedError, NoEndpointsError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { raceAbort } from '../util/race-abort.js';
import type { Registry } from './registry.js';

/** Who hears about discovery results (the mesh routes them to services and events). */
export interface DiscoveryListener {
  update(service: string, endpoints: readonly Endpoint[]): void;
  /** `stale` is true when a last good list keeps serving. */
  error(service: string, error: DiscoveryError, stale: boolean): void;
  /**
   * The list of `service` left the cache (evicted by `maxServices`) and its watch stopped: whoever holds that
   * list must load it again before trusting it, or it would follow a registry that no longer pushes to it.
   */
  evicted?(service: string): void;
}

export interface DiscoveryCacheOptions {
  readonly refreshMs: number;
  readonly maxServices: number;
  readonly resolveTimeoutMs: number;
  readonly clock: Clock;
}

/** First retry after a failed refresh; it doubles per failure up to `refreshMs` (grpc-js's resolver backs off from 1 s). */
/** How long an empty list is served before asking again. */
const EMPTY_TTL_MS = 1_000;
const RETRY_BASE_MS = 1_000;
/** setTimeout's limit; a longer delay would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** One watch: `stop` arrives once `registry.watch` returns; `active` goes false when it is stopped. */
interface Watch {
  active: boolean;
  stop: (() => void) | undefined;
}

/**
 * The discovery cache, on lru-cache's `fetch`:
 * - single-flight: concurrent loads of one service share one `resolve()`;
 * - TTL refresh: a list older than `refreshMs` is served while one background refresh runs;
 * - stale-on-error: a failed refresh keeps the last good list, reports the error, and is retried after a
 *   backoff (1 s, 2 s, 4 s ... up to `refreshMs`), so a failing registry is not asked again on every call;
 * - push: when the registry has `watch`, the first good list starts a watch, and its updates replace
 *   the list without expiry until the service is evicted or the cache is closed. An eviction (past
 *   `maxServices`) stops the watch and tells the listener (`evicted`), so a list held elsewhere is not
 *   trusted as current any more.
 */
export class DiscoveryCache {
  private readonly lru: LRUCache<string, readonly Endpoint[]>;
  private readonly watches = new Map<string, Watch>();
  /** Consecutive failed refreshes per service (only while a stale list serves), for the backoff. */
  private readonly failures = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly registry: Registry,
    private readonly options: DiscoveryCacheOptions,
    private readonly listener: DiscoveryListener,
  ) {
    const clock = options.clock;
    // lru-cache reads a start time of 0 as "no TTL", and a fake or injected clock may well read 0 (vitest's
    // fake performance.now() starts there), so entries would never expire: shift the clock to start at 1.
    const origin = clock.now();
    this.lru = new LRUCache<string, readonly Endpoint[]>({
      max: options.maxServices,
      ttl: wholeMs(options.refreshMs),
      perf: { now: () => clock.now() - origin + 1 },
      // Read the clock on every check: the default (1 ms) caches it behind a setTimeout per millisecond,
      // which costs a timer on the call path and lets an injected clock's jumps go unseen.
      ttlResolution: 0,
      allowStale: true,
      // A fetch that lru-cache aborts because a watch update replaced it still hands its list to its
      // awaiters (the newer pushed list stays in the cache). Evictions and close() are raced in resolve().
      ignoreFetchAbort: true,
      fetchMethod: (service, stale, { signal, options: setOptions }) => this.resolve(service, stale, signal, setOptions),
      disposeAfter: (_value, service, reason) => {
        if (reason === 'set') return;
        this.stopWatch(service);
        this.failures.delete(service);
        if (!this.closed) this.listener.evicted?.(service);
      },
    });
  }

  /**
   * The endpoints of `service`: cached when fresh, else one shared `resolve()`. A stale list is returned
   * at once while one background refresh runs. With nothing cached, a failure rejects with a
   * {@link DiscoveryError}; after {@link close}, loads reject with a `MeshClosedError`.
   */
  async load(service: string): Promise<readonly Endpoint[]> {
    if (this.closed) throw new MeshClosedError(service);
    let list: readonly Endpoint[] | undefined;
    try {
      list = await this.lru.fetch(service);
    } catch (cause) {
      if (this.closed) throw new MeshClosedError(service);
      if (cause instanceof NoEndpointsError) throw cause;
      throw toDiscoveryError(service, cause);
    }
    if (this.closed) throw new MeshClosedError(service);
    if (list === undefined) throw new DiscoveryError(service, 'the registry returned nothing');
    return list;
  }

  /** Whether the cached list of `service` is missing or past its TTL (never while a watch keeps it current). */
  isStale(service: string): boolean {
    return this.lru.getRemainingTTL(service) <= 0;
  }

  /** Milliseconds until the list of `service` goes stale: Infinity while watched, 0 when stale or absent. */
  remainingTtl(service: string): number {
    return Math.max(0, this.lru.getRemainingTTL(service));
  }

  /** Drops the list of `service` and stops its watch (the service was retired); the listener hears `evicted`. */
  forget(service: string): void {
    this.lru.delete(service);
  }

  /** Whether a watch of `service` is running. */
  isWatched(service: string): boolean {
    return this.watches.has(service);
  }

  /** Stops every watch and drops every list; later loads reject. Refreshes in flight are abandoned. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const service of [...this.watches.keys()]) this.stopWatch(service);
    this.failures.clear();
    this.lru.clear();
  }

  /** lru-cache's fetchMethod: one `registry.resolve()` (shared by every concurrent load of `service`). */
  private async resolve(
    service: string,
    stale: readonly Endpoint[] | undefined,
    signal: AbortSignal,
    setOptions: { ttl?: number },
  ): Promise<readonly Endpoint[]> {
    let list: readonly Endpoint[];
    try {
      list = await this.callRegistry(service, signal);
      assertEndpoints(list, 'resolve()');
    } catch (cause) {
      // Aborted by the cache itself: no registry failure to report. A watch update that replaced this
      // fetch left a newer list to hand out; close() and eviction leave nothing.
      if (this.closed) throw toDiscoveryError(service, cause);
      if (signal.aborted) {
        const replacement = this.lru.peek(service, { allowStale: true });
        if (replacement !== undefined) return replacement;
        throw toDiscoveryError(service, cause);
      }
      const error = toDiscoveryError(service, cause);
      if (stale === undefined) {
        this.listener.error(service, error, false);
        // "No such service" from the registry (DNS NXDOMAIN) reaches the caller as a NoEndpointsError.
        throw cause instanceof NoEndpointsError ? cause : error;
      }
      // Stale-on-error: the last good list is stored again, with a short TTL that sets when to retry.
      const failures = (this.failures.get(service) ?? 0) + 1;
      this.failures.set(service, failures);
      setOptions.ttl = wholeMs(Math.min(this.options.refreshMs, RETRY_BASE_MS * 2 ** Math.min(failures - 1, 30)));
      this.listener.error(service, error, true);
      return stale;
    }
    this.failures.delete(service);
    if (this.closed || signal.aborted) return list;
    // Report before a watch starts: a watch may push a newer list synchronously, and that one must win.
    this.listener.update(service, list);
    if (this.registry.watch && !this.watches.has(service)) this.startWatch(service);
    if (this.watches.has(service)) setOptions.ttl = 0; // pushed updates keep it current: no expiry
    // An empty answer is cached briefly (negative caching, as DNS does): the service may appear soon.
    else if (list.length === 0) setOptions.ttl = wholeMs(Math.min(this.options.refreshMs, EMPTY_TTL_MS));
    return list;
  }

  /** `registry.resolve()` bounded by our own deadline: a registry that never answers must not hold the flight. */
  private async callRegistry(service: string, signal: AbortSignal): Promise<readonly Endpoint[]> {
    const timeoutMs = this.options.resolveTimeoutMs;
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new Error(`resolve() took longer than ${timeoutMs} ms`));
    }, Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS));
    const both = AbortSignal.any([signal, deadline.signal]);
    try {
      return await raceAbort(Promise.resolve(this.registry.resolve(service, { signal: both })), both);
    } finally {
      clearTimeout(timer);
    }
  }

  private startWatch(service: string): void {
    const watch: Watch = { active: true, stop: undefined };
    this.watches.set(service, watch); // a watch may call back before it returns
    const current = (): boolean => watch.active && !this.closed;
    try {
      watch.stop = this.registry.watch!(
        service,
        (list) => {
          if (!current()) return;
          try {
            assertEndpoints(list, 'watch()');
          } catch (cause) {
            this.listener.error(service, toDiscoveryError(service, cause), true);
            return;
          }
          this.failures.delete(service);
          this.lru.set(service, list, { ttl: 0 });
          this.listener.update(service, list);
        },
        (cause) => {
          if (!current()) return;
          const stale = this.lru.peek(service, { allowStale: true }) !== undefined;
          this.listener.error(service, toDiscoveryError(service, cause), stale);
        },
      );
    } catch (cause) {
      // No push then: the list keeps its TTL, and the next refresh tries to watch again.
      if (this.watches.get(service) === watch) this.watches.delete(service);
      watch.active = false;
      this.listener.error(service, toDiscoveryError(service, cause), true);
      return;
    }
    if (!watch.active) watch.stop?.(); // stopped while it was starting
  }

  private stopWatch(service: string): void {
    const watch = this.watches.get(service);
    if (!watch) return;
    this.watches.delete(service);
    watch.active = false;
    watch.stop?.();
  }
}

function toDiscoveryError(service: string, cause: unknown): DiscoveryError {
  if (cause instanceof DiscoveryError) return cause;
  return new DiscoveryError(service, cause instanceof Error ? cause.message : String(cause), { cause });
}

/** lru-cache wants whole, positive milliseconds for a TTL. */
function wholeMs(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

/**
 * Checks what a registry handed back against the {@link Endpoint} shape, so that a broken adapter fails
 * discovery (and the last good list keeps serving) instead of failing calls later. Throws a `TypeError`
 * naming the entry.
 */
export function assertEndpoints(list: unknown, from: string): asserts list is readonly Endpoint[] {
  if (!Array.isArray(list)) throw new TypeError(`${from} must return an array of endpoints`);
  for (let i = 0; i < list.length; i++) {
    const problem = endpointProblem(list[i]);
    if (problem) throw new TypeError(`${from} returned an invalid endpoint at [${i}]: ${problem} (toEndpoint() builds one)`);
  }
}

function endpointProblem(e: unknown): string | undefined {
  if (e === null || typeof e !== 'object') return 'not an object';
  const { id, host, port, weight, zone, tags, meta } = e as Record<string, unknown>;
  if (typeof id !== 'string' || id === '') return 'id must be a non-empty string';
  const badHost = hostProblem(host);
  if (badHost) return `host ${JSON.stringify(String(host).slice(0, 80))} is not a host name or IP address: ${badHost}`;
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) return 'port must be an integer from 1 to 65535';
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) return 'weight must be a finite number > 0';
  if (zone !== undefined && typeof zone !== 'string') return 'zone must be a string';
  if (!Array.isArray(tags)) return 'tags must be an array';
  if (meta === null || typeof meta !== 'object') return 'meta must be an object';
  return undefined;
}
