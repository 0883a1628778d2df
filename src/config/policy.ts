/** The policy keys of `defaults`, `services[name]` and `configure` (re-exported by options.ts). */
import type { TlsPolicy } from '../transport/tls.js';
import type { Balancer } from '../balancer/balancer.js';
import type { BalancerName } from '../balancer/create.js';
import type { BreakerPolicy } from '../resilience/breaker.js';
import type { OutlierPolicy } from '../resilience/outlier.js';
import type { Outcome, Verdict } from '../transport/transport.js';
import type { AdaptiveConcurrencyPolicy, AdmissionPolicy, DeadlinePolicy, Fallback, HealthCheckPolicy } from '../resilience/health-policy.js';

/**
 * Timeouts. `attemptMs` bounds one try; `totalMs` bounds the whole call, backoff and retries included.
 * @example { attemptMs: 2_000, totalMs: 5_000 }
 */
export interface TimeoutPolicy {
  /** Bound of one attempt, in ms. Default 10 s. */
  attemptMs?: number | undefined;
  /** Bound of the whole call, backoff and retries included, in ms. Default 30 s. */
  totalMs?: number | undefined;
}

/**
 * Retry budget, after Finagle's `RetryBudget`: retries (and hedges) may be at most `ratio` of recent
 * requests, plus a reserve of `minPerSecond` per second so a quiet client can still retry.
 * @example { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 }
 */
export interface BudgetPolicy {
  /** Retries allowed per request in the window (0.2: one retry per 5 requests). Default 0.2. */
  ratio?: number | undefined;
  /** Retries per second always allowed, however few requests there were. Default 10. */
  minPerSecond?: number | undefined;
  /** The window requests and retries are counted over, in ms (1 s to 60 s). Default 10 s. */
  ttlMs?: number | undefined;
}

/**
 * Retries, driven by p-retry after the first failure.
 * @example { retries: 2, minDelayMs: 25, maxDelayMs: 250, factor: 2, jitter: true }
 */
export interface RetryPolicy {
  /** Retries after the first attempt. Default 2. */
  retries?: number | undefined;
  /** First backoff delay. Default 25 ms. */
  minDelayMs?: number | undefined;
  /** Largest backoff delay (a `Retry-After` may ask for more, within the deadline). Default 250 ms. */
  maxDelayMs?: number | undefined;
  /** Exponential factor. Default 2. */
  factor?: number | undefined;
  /** Randomise each delay in [d, 2d), as p-retry's `randomize`. Default true. */
  jitter?: boolean | undefined;
  /** Budget shared by retries and hedges; `false` turns it off. */
  budget?: false | BudgetPolicy | undefined;
  /** HTTP statuses that may be retried (for idempotent requests). Default `[429, 500, 502, 503, 504]`. */
  retryOn?: readonly number[] | undefined;
  /**
   * Retry requests that are not idempotent (POST, PATCH, `mesh.call` without `idempotent: true`) after
   * failures other than "never sent". Default false: only a request that provably never left is replayed.
   */
  nonIdempotent?: boolean | undefined;
}

/**
 * Hedged requests, for idempotent calls only.
 * @example { delayMs: 'p95', maxAttempts: 2 }
 */
export interface HedgePolicy {
  /** How long the first attempt may run before a hedge starts, in ms, or `'p95'` of recent latencies. */
  delayMs: number | 'p95';
  /** Attempts in flight at most, the first included. Default 2. */
  maxAttempts?: number | undefined;
}

/**
 * Policy for a service. Set in `defaults` for all services and in `services[name]` to override.
 * @example { balancer: 'round-robin', retry: { retries: 3 }, timeout: { attemptMs: 500 } }
 */
export interface Policy {
  /** How an endpoint is chosen. Default `'peak-ewma'`. */
  balancer?: BalancerName | Balancer | undefined;
  /** Attempt and total timeouts. */
  timeout?: TimeoutPolicy | undefined;
  /** `false` turns retries off. */
  retry?: false | RetryPolicy | undefined;
  /** A circuit breaker per endpoint; `false` turns breakers off. */
  breaker?: false | BreakerPolicy | undefined;
  /** Passive outlier ejection; `false` turns it off. */
  outlier?: false | OutlierPolicy | undefined;
  /** Below this percentage of healthy endpoints, balance over all of them. Default 50. */
  panicThresholdPercent?: number | undefined;
  /** Hedged requests (idempotent calls only). Default `false`. */
  hedge?: false | HedgePolicy | undefined;
  /** In-flight calls per service before `BulkheadFullError`. Default: no limit. */
  maxConcurrent?: number | undefined;
  /**
   * With `maxConcurrent`: how many calls may wait (first in, first out, within their deadline) for a slot
   * instead of being rejected at once. Default 0.
   * @example { maxConcurrent: 100, maxQueued: 50 }
   */
  maxQueued?: number | undefined;
  /**
   * Overrides the default outcome classification. If it throws or returns something else than a verdict, the
   * attempt counts as a `'failure'` (not retried on that account) and `callback-error` reports it.
   * @example { classify: (o) => (o.kind === 'response' && o.response.status === 409 ? 'retryable-failure' : o.kind === 'error' ? 'retryable-failure' : 'success') }
   */
  classify?: ((outcome: Outcome) => Verdict) | undefined;
  /**
   * Tells the mesh that an error proves the request never left (gRPC status 14 before a connection was made,
   * say), so that it is retried even when the call is not idempotent. It is asked only when the built-in proof
   * (a refused connection to the endpoint's own address and port) is missing. A throw counts as `false`.
   * @example { unsent: (error) => (error as { code?: number }).code === 14 && /connect/i.test(String((error as Error).message)) }
   */
  unsent?: ((error: unknown) => boolean) | undefined;
  /**
   * For `mesh.fetch`: the request header whose value is the affinity key of `ring-hash` and `maglev` when the call
   * passes no `hashKey`. Case-insensitive. Default: none (a call without a key gets a random one).
   * @example { balancer: 'ring-hash', hashHeader: 'x-user-id' }
   */
  hashHeader?: string | undefined;
  /**
   * TLS for `https://service/...`: SNI, CAs and a client certificate (see {@link TlsPolicy}). Used by the undici
   * dispatcher's pools, and by `mesh.fetch` through a dispatcher of this service's (undici, loaded when used).
   * @example { tls: { servername: 'users.internal', ca: caPem, cert: clientPem, key: clientKeyPem } }
   */
  tls?: TlsPolicy | undefined;
  /**
   * The `Host` an attempt sends: `'endpoint'` (default) names the endpoint's `host:port`, as a direct call does;
   * `'service'` sends the service name alone, the logical authority, as a sidecar does (virtual hosts behind
   * it). fetch cannot set `Host` itself, so on `mesh.fetch` this goes through a dispatcher of this service's.
   */
  host?: 'service' | 'endpoint' | undefined;
  /** Tuning of the `ring-hash` balancer. */
  ringHash?: RingHashPolicy | undefined;
  /** Tuning of the `maglev` balancer. */
  maglev?: MaglevPolicy | undefined;
  /**
   * Ramps the weight of endpoints that discovery adds after the first list, over `windowMs` (Envoy's slow start).
   * Honoured by round-robin, random, least-request and peak-ewma; not by the hash balancers. Default `false`.
   * @example { slowStart: { windowMs: 30_000, aggression: 1, minWeightPercent: 10 } }
   */
  slowStart?: false | SlowStartPolicy | undefined;
  /**
   * Zone-aware balancing, when the mesh has a `zone`: prefer endpoints of that zone, and spill to the others as the
   * local zone loses healthy endpoints. `false` turns it off for a service. Default on, `{ overprovisioningFactor: 1.4 }`.
   * @example { locality: { overprovisioningFactor: 1.2 } }
   */
  locality?: false | LocalityPolicy | undefined;
  /** A Gradient2 concurrency limit in place of a fixed `maxConcurrent` (see {@link AdaptiveConcurrencyPolicy}). Default `false`. */
  adaptiveConcurrency?: false | AdaptiveConcurrencyPolicy | undefined;
  /** Client-side throttling on failures (see {@link AdmissionPolicy}). Default `false`. */
  admission?: false | AdmissionPolicy | undefined;
  /**
   * Send the time the call has left to each attempt (see {@link DeadlinePolicy}). Default `false`: the header would
   * go to every backend, third parties included; `deadline: {}` turns it on. A per-call `deadline` bounds a call
   * whatever this says.
   */
  deadline?: false | DeadlinePolicy | undefined;
  /** Active HTTP health checks (see {@link HealthCheckPolicy}). Default `false`. */
  healthCheck?: false | HealthCheckPolicy | undefined;
  /** The value a failed call resolves with (a per-call `fallback` wins over it). Default: none, the call rejects. */
  fallback?: Fallback | undefined;
}

/**
 * Ring hash (Envoy's `RING_HASH`): virtual nodes in proportion to weight on a 32-bit ring.
 * @example { minRingSize: 1024, maxRingSize: 8_388_608, hashBalanceFactor: 150 }
 */
export interface RingHashPolicy {
  /** Fewest ring entries (the ring grows in powers of two per unit of weight to reach it). Default 1024. */
  minRingSize?: number | undefined;
  /** Most ring entries, at most 8,388,608. Default 8,388,608 (Envoy's). */
  maxRingSize?: number | undefined;
  /**
   * Bounded load, in percent (>= 100): an endpoint above this share of the average load passes the key on to the
   * next one in a fixed pseudo-random order (Envoy's `hash_balance_factor`). Default: off.
   */
  hashBalanceFactor?: number | undefined;
}

/**
 * Maglev (Envoy's `MAGLEV`): a lookup table of `tableSize` slots, filled by each endpoint's permutation.
 * @example { tableSize: 65_537 }
 */
export interface MaglevPolicy {
  /** Table size M, a prime up to 5,000,011; about 100 × the endpoints or more keeps shares within 1 %. Default 65537. */
  tableSize?: number | undefined;
  /** Bounded load, in percent (>= 100), as for ring hash. Default: off. */
  hashBalanceFactor?: number | undefined;
}

/**
 * Slow start, Envoy's formula: weight × max(minWeightPercent ÷ 100, (t ÷ windowMs) ^ (1 ÷ aggression)).
 * @example { windowMs: 30_000, aggression: 2, minWeightPercent: 10 }
 */
export interface SlowStartPolicy {
  /** How long a new endpoint ramps. Required. */
  windowMs: number;
  /** Above 1 ramps faster at first, below 1 slower. Default 1 (linear). */
  aggression?: number | undefined;
  /** The least share of its weight a ramping endpoint gets, in percent. Default 10. */
  minWeightPercent?: number | undefined;
}

/**
 * Zone-aware balancing (needs the mesh's `zone`).
 * @example { overprovisioningFactor: 1.4 }
 */
export interface LocalityPolicy {
  /**
   * The local zone keeps all traffic while its healthy share × this factor ≥ 1 (with 1.4: until fewer than ~72 % of
   * its endpoints are healthy); below that it keeps healthy share × factor of the traffic. Default 1.4 (Envoy's).
   */
  overprovisioningFactor?: number | undefined;
}

