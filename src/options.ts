import type { Balancer } from './balancer/balancer.js';
import type { BalancerName } from './balancer/create.js';
import type { Endpoint } from './endpoint/endpoint.js';
import type { Registry } from './discovery/registry.js';
import type { Clock } from './util/clock.js';
import type { Rng } from './util/random.js';

/**
 * Timeouts. `attemptMs` bounds one try; `totalMs` bounds the whole call, backoff and retries included.
 * @example { attemptMs: 2_000, totalMs: 5_000 }
 */
export interface TimeoutPolicy {
  attemptMs?: number;
  totalMs?: number;
}

/**
 * Retry budget, after Finagle's `RetryBudget`: retries (and hedges) may be at most `ratio` of recent
 * requests, plus a reserve of `minPerSecond` per second so a quiet client can still retry.
 * @example { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 }
 */
export interface BudgetPolicy {
  ratio?: number;
  minPerSecond?: number;
  ttlMs?: number;
}

/**
 * Retries, driven by p-retry after the first failure.
 * @example { retries: 2, minDelayMs: 25, maxDelayMs: 250, factor: 2, jitter: true }
 */
export interface RetryPolicy {
  /** Retries after the first attempt. Default 2. */
  retries?: number;
  /** First backoff delay. Default 25 ms. */
  minDelayMs?: number;
  /** Largest backoff delay (a `Retry-After` may ask for more, within the deadline). Default 250 ms. */
  maxDelayMs?: number;
  /** Exponential factor. Default 2. */
  factor?: number;
  /** Randomise each delay in [d, 2d), as p-retry's `randomize`. Default true. */
  jitter?: boolean;
  /** Budget shared by retries and hedges; `false` turns it off. */
  budget?: false | BudgetPolicy;
  /** HTTP statuses that may be retried (for idempotent requests). Default `[429, 500, 502, 503, 504]`. */
  retryOn?: readonly number[];
  /**
   * Retry requests that are not idempotent (POST, PATCH, `mesh.call` without `idempotent: true`) after
   * failures other than "never sent". Default false: only a request that provably never left is replayed.
   */
  nonIdempotent?: boolean;
}

/**
 * Circuit breaker per endpoint (opossum).
 * @example { errorThresholdPercentage: 50, volumeThreshold: 20, resetTimeoutMs: 10_000, rollingWindowMs: 10_000 }
 */
export interface BreakerPolicy {
  errorThresholdPercentage?: number;
  volumeThreshold?: number;
  resetTimeoutMs?: number;
  rollingWindowMs?: number;
}

/**
 * Passive outlier ejection, with Envoy's semantics.
 * @example { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 10 }
 */
export interface OutlierPolicy {
  consecutiveFailures?: number;
  baseEjectionMs?: number;
  maxEjectionMs?: number;
  maxEjectionPercent?: number;
}

/**
 * Hedged requests, for idempotent calls only.
 * @example { delayMs: 'p95', maxAttempts: 2 }
 */
export interface HedgePolicy {
  delayMs: number | 'p95';
  maxAttempts?: number;
}

/** What the default or a custom `classify` is shown of one attempt. */
export type Outcome =
  | { readonly kind: 'value'; readonly value: unknown; readonly service: string; readonly attempt: number }
  | { readonly kind: 'response'; readonly response: Response; readonly service: string; readonly attempt: number }
  | { readonly kind: 'error'; readonly error: unknown; readonly service: string; readonly attempt: number };

/** How an outcome counts: towards health (failure or not) and whether it may be retried. */
export type Verdict = 'success' | 'failure' | 'retryable-failure';

/**
 * Policy for a service. Set in `defaults` for all services and in `services[name]` to override.
 * @example { balancer: 'round-robin', retry: { retries: 3 }, timeout: { attemptMs: 500 } }
 */
export interface Policy {
  /** How an endpoint is chosen. Default `'peak-ewma'`. */
  balancer?: BalancerName | Balancer;
  timeout?: TimeoutPolicy;
  /** `false` turns retries off. */
  retry?: false | RetryPolicy;
  breaker?: false | BreakerPolicy;
  outlier?: false | OutlierPolicy;
  /** Below this percentage of healthy endpoints, balance over all of them. Default 50. */
  panicThresholdPercent?: number;
  hedge?: false | HedgePolicy;
  /** In-flight calls per service before `BulkheadFullError`. Default: no limit. */
  maxConcurrent?: number;
  /**
   * With `maxConcurrent`: how many calls may wait (first in, first out, within their deadline) for a slot
   * instead of being rejected at once. Default 0.
   * @example { maxConcurrent: 100, maxQueued: 50 }
   */
  maxQueued?: number;
  /** Overrides the default outcome classification. */
  classify?: (outcome: Outcome) => Verdict;
}

/**
 * Options of {@link createMesh}.
 * @example
 * createMesh({ registry: staticRegistry({ users: ['127.0.0.1:8081'] }), defaults: { retry: { retries: 1 } } })
 */
export interface MeshOptions {
  /** Where endpoints come from. */
  registry: Registry;
  /** Policy for every service. */
  defaults?: Policy;
  /** Per-service overrides of `defaults`, merged key by key (one level deep). */
  services?: Record<string, Policy>;
  /** This process's locality, for zone-aware balancing. */
  zone?: string;
  /** The implementation behind `mesh.fetch`. Default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
  /** Discovery cache tuning. */
  discovery?: DiscoveryOptions;
  /** Injected for tests and simulations. */
  clock?: Clock;
  /** Injected for tests and simulations (balancer choices, round-robin start offset). */
  random?: Rng;
}

/**
 * Discovery cache tuning.
 * @example { refreshMs: 30_000, maxServices: 1_000 }
 */
export interface DiscoveryOptions {
  /** How long a resolved list is fresh when the registry does not push (`watch`). Default 30 s. */
  refreshMs?: number;
  /** Services kept in the cache at most (least recently used are dropped). Default 1000. */
  maxServices?: number;
  /** Timeout of one `resolve()`. Default 5 s. */
  resolveTimeoutMs?: number;
}

/** Per-call options, on `mesh.call`'s third argument and on fetch's `init`. */
export interface CallOptions {
  /** The caller's abort: the call rejects with the signal's reason, at any point. */
  signal?: AbortSignal | null | undefined;
  /** Affinity key for `ring-hash` and `maglev`. */
  hashKey?: string;
  /** Overrides the method rule: true lets a POST be retried and hedged. */
  idempotent?: boolean;
  timeout?: TimeoutPolicy;
  retry?: false | RetryPolicy;
  hedge?: false | HedgePolicy;
}

/** A policy with every default filled in. The hot path reads only this. */
export interface ResolvedPolicy {
  readonly balancer: BalancerName | Balancer;
  readonly timeout: { readonly attemptMs: number; readonly totalMs: number };
  readonly retry: false | ResolvedRetry;
  readonly breaker: false | Required<BreakerPolicy>;
  readonly outlier: false | Required<OutlierPolicy>;
  readonly panicThresholdPercent: number;
  readonly hedge: false | Required<HedgePolicy>;
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly classify: ((outcome: Outcome) => Verdict) | undefined;
}

export interface ResolvedRetry {
  readonly retries: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly factor: number;
  readonly jitter: boolean;
  readonly budget: false | Required<BudgetPolicy>;
  readonly retryOn: ReadonlySet<number>;
  readonly nonIdempotent: boolean;
}

export type { Endpoint };
