import type { TlsPolicy } from './transport/tls.js';
import type { Balancer } from './balancer/balancer.js';
import type { BalancerName } from './balancer/create.js';
import type { Endpoint } from './endpoint/endpoint.js';
import type { Registry } from './discovery/registry.js';
import type { BreakerPolicy } from './resilience/breaker.js';
import type { OutlierPolicy, ResolvedOutlier } from './resilience/outlier.js';
import type {
  AdaptiveConcurrencyPolicy,
  AdmissionPolicy,
  DeadlinePolicy,
  FailurePercentPolicy,
  Fallback,
  FallbackContext,
  HealthCheckPolicy,
  SuccessRatePolicy,
} from './resilience/health-policy.js';

export type { AdaptiveConcurrencyPolicy, AdmissionPolicy, DeadlinePolicy, FailurePercentPolicy, Fallback, FallbackContext, HealthCheckPolicy, SuccessRatePolicy, ResolvedOutlier };

export type { BreakerPolicy, OutlierPolicy, Outcome, Verdict, TlsPolicy };
import type { Outcome, Verdict } from './transport/transport.js';
import type { Clock } from './util/clock.js';
import type { Rng } from './util/random.js';
import type { ConfigSource, RouteSpec, SubsetSpec } from './config/types.js';
import type { TimeoutPolicy, BudgetPolicy, RetryPolicy, HedgePolicy, Policy, RingHashPolicy, MaglevPolicy, SlowStartPolicy, LocalityPolicy } from './config/policy.js';

export type { TimeoutPolicy, BudgetPolicy, RetryPolicy, HedgePolicy, Policy, RingHashPolicy, MaglevPolicy, SlowStartPolicy, LocalityPolicy };

/**
 * Options of {@link createMesh}.
 * @example
 * createMesh({ registry: staticRegistry({ users: ['127.0.0.1:8081'] }), defaults: { retry: { retries: 1 } } })
 */
export interface MeshOptions {
  /** Where endpoints come from. */
  registry: Registry;
  /** Policy for every service. */
  defaults?: Policy | undefined;
  /** Per-service overrides of `defaults`, merged key by key (one level deep). */
  services?: Record<string, Policy> | undefined;
  /** Routes per service (Gateway API HTTPRoute semantics; see the README's "Routes and subsets"). */
  routes?: Readonly<Record<string, readonly RouteSpec[]>> | undefined;
  /** Label filters over endpoints, per service, by subset name: what routes' backends name. */
  subsets?: Readonly<Record<string, Readonly<Record<string, SubsetSpec>>>> | undefined;
  /**
   * Config sources (`fileConfig`, `consulConfig`, your own): what they send wins over `defaults`, `services`,
   * `routes` and `subsets` (and `configure`) for the services they govern. They start with the mesh.
   */
  config?: ConfigSource | readonly ConfigSource[] | undefined;
  /**
   * This process's locality, for zone-aware balancing: endpoints whose `zone` matches are preferred (see the
   * policy's `locality`). Default: none, and zones are ignored.
   * @example 'eu-west-1a'
   */
  zone?: string | undefined;
  /**
   * This mesh's name, for its metrics: a `mesh="<name>"` label, first on every series, so that several meshes
   * can share one exposition or prom-client registry. 1 to 64 printable characters. Default: none, and no
   * `mesh` label.
   * @example createMesh({ registry, name: 'edge' })
   */
  name?: string | undefined;
  /** The implementation behind `mesh.fetch`. Default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch | undefined;
  /** Discovery cache tuning. */
  discovery?: DiscoveryOptions | undefined;
  /** Injected for tests and simulations. */
  clock?: Clock | undefined;
  /** Injected for tests and simulations (balancer choices, round-robin start offset). */
  random?: Rng | undefined;
}

/**
 * Discovery cache tuning.
 * @example { refreshMs: 30_000, maxServices: 1_000 }
 */
export interface DiscoveryOptions {
  /** How long a resolved list is fresh when the registry does not push (`watch`). Default 30 s. */
  refreshMs?: number | undefined;
  /** Services kept in the cache at most (least recently used are dropped). Default 1000. */
  maxServices?: number | undefined;
  /** Timeout of one `resolve()`. Default 5 s. */
  resolveTimeoutMs?: number | undefined;
}

/** Per-call options, on `mesh.call`'s third argument and on fetch's `init`. */
export interface CallOptions {
  /** The caller's abort: the call rejects with the signal's reason, at any point. */
  signal?: AbortSignal | null | undefined;
  /**
   * Affinity key for `ring-hash` and `maglev`: calls with the same key go to the same endpoint while it is available.
   * Without one (and without the policy's `hashHeader` on fetch), a hash balancer uses a random key.
   * @example { hashKey: 'user-42' }
   */
  hashKey?: string | undefined;
  /** Overrides the method rule: true lets a POST be retried and hedged. */
  idempotent?: boolean | undefined;
  /** Overrides the policy's timeouts for this call. */
  timeout?: TimeoutPolicy | undefined;
  /** Overrides the policy's retries for this call (`false`: none). */
  retry?: false | RetryPolicy | undefined;
  /** Overrides the policy's hedging for this call (`false`: none). */
  hedge?: false | HedgePolicy | undefined;
  /**
   * The latest time the call may run to, in epoch ms (`Date.now()`'s clock): the call's total timeout becomes the
   * smaller of `totalMs` and what is left. When nothing is left, the call fails with `TimeoutError` (scope
   * `'total'`) and touches no backend. Pass `inboundDeadline(req)` to honour the caller's caller.
   * @example { deadline: inboundDeadline(req) }
   */
  deadline?: number | undefined;
  /** The value this call resolves with once it has failed; wins over the policy's `fallback`. */
  fallback?: Fallback | undefined;
  /** What routes match a `mesh.call` on (`mesh.fetch` matches on its request). */
  route?: { path?: string | undefined; method?: string | undefined; headers?: Readonly<Record<string, string>> | undefined } | undefined;
}

/** A policy with every default filled in. The hot path reads only this. */
export interface ResolvedPolicy {
  readonly balancer: BalancerName | Balancer;
  readonly timeout: { readonly attemptMs: number; readonly totalMs: number };
  readonly retry: false | ResolvedRetry;
  readonly breaker: false | Required<BreakerPolicy>;
  readonly outlier: false | ResolvedOutlier;
  readonly panicThresholdPercent: number;
  readonly hedge: false | Required<HedgePolicy>;
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly classify: ((outcome: Outcome) => Verdict) | undefined;
  readonly unsent: ((error: unknown) => boolean) | undefined;
  /** Lower-cased header name, or undefined. */
  readonly hashHeader: string | undefined;
  readonly tls: Readonly<TlsPolicy> | undefined;
  readonly host: 'service' | 'endpoint';
  readonly ringHash: Required<RingHashPolicy>;
  readonly maglev: Required<MaglevPolicy>;
  readonly slowStart: false | Required<SlowStartPolicy>;
  readonly locality: false | Required<LocalityPolicy>;
  readonly adaptiveConcurrency: false | Required<AdaptiveConcurrencyPolicy>;
  readonly admission: false | Required<AdmissionPolicy>;
  /** With the header name lower-cased. */
  readonly deadline: false | Required<DeadlinePolicy>;
  readonly healthCheck: false | Required<HealthCheckPolicy>;
  readonly fallback: Fallback | undefined;
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

/** fetch's `init` plus the mesh's per-call options (`mesh.fetch(input, init)`). */
export interface MeshRequestInit extends RequestInit, Omit<CallOptions, 'signal'> {
  /** undici's `dispatcher` (accepted by undici's and Node's fetch), passed through. */
  dispatcher?: unknown;
  /** Required by fetch for a stream body (`'half'`). */
  duplex?: 'half' | undefined;
}
