import { resolveTls, type TlsPolicy } from './transport/tls.js';
import { DEFAULT_OVERPROVISIONING_FACTOR } from './balancer/locality.js';
import { DEFAULT_MAGLEV } from './balancer/maglev.js';
import { DEFAULT_RING_HASH } from './balancer/ring-hash.js';
import { DEFAULT_SLOW_START } from './balancer/slow-start.js';
import { DEFAULT_RETRY_ON } from './transport/http.js';
import { definedOnly } from './util/defined.js';
import type {
  BudgetPolicy,
  BreakerPolicy,
  HedgePolicy,
  LocalityPolicy,
  MaglevPolicy,
  OutlierPolicy,
  Policy,
  ResolvedOutlier,
  SuccessRatePolicy,
  FailurePercentPolicy,
  AdaptiveConcurrencyPolicy,
  AdmissionPolicy,
  DeadlinePolicy,
  HealthCheckPolicy,
  ResolvedPolicy,
  ResolvedRetry,
  RetryPolicy,
  RingHashPolicy,
  SlowStartPolicy,
} from './options.js';

/** The policy defaults, for keys left out (the README's Options table lists them). */
export const DEFAULT_TIMEOUT = { attemptMs: 10_000, totalMs: 30_000 } as const;
export const DEFAULT_BUDGET: Required<BudgetPolicy> = { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 };
export const DEFAULT_RETRY = {
  retries: 2,
  minDelayMs: 25,
  maxDelayMs: 250,
  factor: 2,
  jitter: true,
  retryOn: DEFAULT_RETRY_ON,
  nonIdempotent: false,
} as const;
export const DEFAULT_BREAKER: Required<BreakerPolicy> = {
  errorThresholdPercentage: 50,
  volumeThreshold: 20,
  resetTimeoutMs: 10_000,
  rollingWindowMs: 10_000,
};
/** Envoy's success-rate defaults (`success_rate_minimum_hosts`, `_request_volume`, `_stdev_factor`, enforcing). */
export const DEFAULT_SUCCESS_RATE: Required<SuccessRatePolicy> = { minHosts: 5, requestVolume: 100, stdevFactor: 1.9, enforcingPercent: 100 };
/** Envoy's failure-percentage defaults (`failure_percentage_threshold`, `_minimum_hosts`, `_request_volume`). */
export const DEFAULT_FAILURE_PERCENT: Required<FailurePercentPolicy> = { threshold: 85, minHosts: 5, requestVolume: 50, enforcingPercent: 100 };
export const DEFAULT_OUTLIER: ResolvedOutlier = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 10,
  intervalMs: 10_000,
  successRate: DEFAULT_SUCCESS_RATE,
  failurePercent: false,
};
/** Netflix Gradient2Limit's defaults (initialLimit, minLimit, maxConcurrency, smoothing). */
export const DEFAULT_ADAPTIVE_CONCURRENCY: Required<AdaptiveConcurrencyPolicy> = { initial: 20, min: 20, max: 200, smoothing: 0.2 };
/** The SRE book's K = 2, Envoy admission_control's max rejection probability (80 %) and sampling window (30 s). */
export const DEFAULT_ADMISSION: Required<AdmissionPolicy> = { successRatio: 0.5, maxRejectPercent: 80, windowMs: 30_000 };
export const DEFAULT_DEADLINE_HEADER = 'x-request-deadline-ms';
/** Kubernetes-like probing: every 5 s, 1 s each, 3 failures eject, 2 passes restore. */
export const DEFAULT_HEALTH_CHECK: Required<HealthCheckPolicy> = {
  path: '/healthz',
  intervalMs: 5_000,
  timeoutMs: 1_000,
  unhealthyThreshold: 3,
  healthyThreshold: 2,
};
export const DEFAULT_PANIC_THRESHOLD_PERCENT = 50;
export const DEFAULT_HEDGE_MAX_ATTEMPTS = 2;
/** Peak-EWMA decay (Finagle, Linkerd: 10 s) and the cost of an endpoint not measured yet (Linkerd: 30 ms). */
export const EWMA_DECAY_MS = 10_000;
export const DEFAULT_RTT_MS = 30;
/** Zone-aware balancing is on by default (it acts only when the mesh has a `zone`). */
export const DEFAULT_LOCALITY: Required<LocalityPolicy> = { overprovisioningFactor: DEFAULT_OVERPROVISIONING_FACTOR };
export const DEFAULT_DISCOVERY = { refreshMs: 30_000, maxServices: 1_000, resolveTimeoutMs: 5_000 } as const;

/** Merges `defaults` and a service's overrides, one level deep, and fills every gap with a default. */
export function resolvePolicy(defaults: Policy = {}, override: Policy = {}): ResolvedPolicy {
  // `undefined` is "not set", as everywhere in the options: it never hides what `defaults` sets.
  const pick = <K extends keyof Policy>(key: K): Policy[K] => (override[key] !== undefined ? override[key] : defaults[key]);
  const merged = <T extends object>(
    key:
      | 'timeout' | 'retry' | 'breaker' | 'outlier' | 'hedge' | 'ringHash' | 'maglev' | 'slowStart' | 'locality' | 'tls'
      | 'adaptiveConcurrency' | 'admission' | 'deadline' | 'healthCheck',
  ): T | false | undefined => {
    const o = override[key];
    const d = defaults[key];
    if (o === false) return false;
    if (o === undefined) return d as T | false | undefined;
    return { ...(d || {}), ...o } as T;
  };
  return {
    balancer: pick('balancer') ?? 'peak-ewma',
    timeout: { ...DEFAULT_TIMEOUT, ...merged<{ attemptMs?: number; totalMs?: number }>('timeout') },
    retry: resolveRetry(merged<RetryPolicy>('retry')),
    breaker: resolveOptional(merged<BreakerPolicy>('breaker'), DEFAULT_BREAKER),
    outlier: resolveOutlier(merged<OutlierPolicy>('outlier')),
    panicThresholdPercent: pick('panicThresholdPercent') ?? DEFAULT_PANIC_THRESHOLD_PERCENT,
    hedge: resolveHedge(merged<HedgePolicy>('hedge')),
    maxConcurrent: pick('maxConcurrent') ?? Infinity,
    maxQueued: pick('maxQueued') ?? 0,
    classify: pick('classify'),
    unsent: pick('unsent'),
    hashHeader: pick('hashHeader')?.toLowerCase(),
    tls: resolveTls(merged<TlsPolicy>('tls') || undefined),
    host: pick('host') ?? 'endpoint',
    ringHash: { ...DEFAULT_RING_HASH, ...(merged<RingHashPolicy>('ringHash') || {}) },
    maglev: { ...DEFAULT_MAGLEV, ...(merged<MaglevPolicy>('maglev') || {}) },
    slowStart: resolveSlowStart(merged<SlowStartPolicy>('slowStart')),
    locality: resolveOptional(merged<LocalityPolicy>('locality'), DEFAULT_LOCALITY),
    adaptiveConcurrency: resolveOff(merged<AdaptiveConcurrencyPolicy>('adaptiveConcurrency'), DEFAULT_ADAPTIVE_CONCURRENCY),
    admission: resolveOff(merged<AdmissionPolicy>('admission'), DEFAULT_ADMISSION),
    deadline: resolveDeadline(merged<DeadlinePolicy>('deadline')),
    healthCheck: resolveOff(merged<HealthCheckPolicy>('healthCheck'), DEFAULT_HEALTH_CHECK),
    fallback: pick('fallback'),
  };
}

/** Outlier detection is on by default, success rate with it; failure percentage only when a policy sets it. */
function resolveOutlier(value: OutlierPolicy | false | undefined): false | ResolvedOutlier {
  if (value === false) return false;
  const { successRate, failurePercent, ...rest } = value ?? {};
  return {
    ...DEFAULT_OUTLIER,
    ...rest,
    successRate: resolveOptional(successRate, DEFAULT_SUCCESS_RATE),
    failurePercent: resolveOff(failurePercent, DEFAULT_FAILURE_PERCENT),
  };
}

/** A mechanism that is off unless a policy sets it (`{}` turns it on with every default). */
function resolveOff<T extends object>(value: T | false | undefined, defaults: Required<T>): false | Required<T> {
  return value === false || value === undefined ? false : { ...defaults, ...value };
}

function resolveDeadline(value: DeadlinePolicy | false | undefined): false | Required<DeadlinePolicy> {
  if (value === false || value === undefined) return false;
  return { header: (value.header ?? DEFAULT_DEADLINE_HEADER).toLowerCase() };
}

/** Slow start is off unless a policy sets it (then `windowMs` is required: validated). */
function resolveSlowStart(value: SlowStartPolicy | false | undefined): false | Required<SlowStartPolicy> {
  if (value === false || value === undefined) return false;
  return { ...DEFAULT_SLOW_START, ...value };
}

function resolveOptional<T extends object>(value: T | false | undefined, defaults: Required<T>): false | Required<T> {
  return value === false ? false : { ...defaults, ...(value ?? {}) };
}

export function resolveRetry(retry: RetryPolicy | false | undefined): false | ResolvedRetry {
  if (retry === false) return false;
  // Per-call policies are not snapshotted (config ones are, config/plain.ts): a key set to `undefined` is not set.
  const r = { ...DEFAULT_RETRY, ...definedOnly(retry) };
  return {
    retries: r.retries,
    minDelayMs: r.minDelayMs,
    maxDelayMs: r.maxDelayMs,
    factor: r.factor,
    jitter: r.jitter,
    budget: r.budget === false ? false : { ...DEFAULT_BUDGET, ...definedOnly(r.budget) },
    retryOn: new Set(r.retryOn),
    nonIdempotent: r.nonIdempotent,
  };
}

export function resolveHedge(hedge: HedgePolicy | false | undefined): false | Required<HedgePolicy> {
  if (!hedge) return false;
  return { maxAttempts: DEFAULT_HEDGE_MAX_ATTEMPTS, ...definedOnly(hedge) } as Required<HedgePolicy>;
}
