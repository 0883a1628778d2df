import { resolveTls, type TlsPolicy } from './transport/tls.js';
import { DEFAULT_OVERPROVISIONING_FACTOR } from './balancer/locality.js';
import { DEFAULT_MAGLEV } from './balancer/maglev.js';
import { DEFAULT_RING_HASH } from './balancer/ring-hash.js';
import { DEFAULT_SLOW_START } from './balancer/slow-start.js';
import { DEFAULT_RETRY_ON } from './transport/http.js';
import type {
  BudgetPolicy,
  BreakerPolicy,
  HedgePolicy,
  LocalityPolicy,
  MaglevPolicy,
  OutlierPolicy,
  Policy,
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
export const DEFAULT_OUTLIER: Required<OutlierPolicy> = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 10,
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
  const pick = <K extends keyof Policy>(key: K): Policy[K] => (key in override ? override[key] : defaults[key]);
  const merged = <T extends object>(
    key: 'timeout' | 'retry' | 'breaker' | 'outlier' | 'hedge' | 'ringHash' | 'maglev' | 'slowStart' | 'locality' | 'tls',
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
    outlier: resolveOptional(merged<OutlierPolicy>('outlier'), DEFAULT_OUTLIER),
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
  };
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
  const r = { ...DEFAULT_RETRY, ...(retry ?? {}) };
  return {
    retries: r.retries,
    minDelayMs: r.minDelayMs,
    maxDelayMs: r.maxDelayMs,
    factor: r.factor,
    jitter: r.jitter,
    budget: r.budget === false ? false : { ...DEFAULT_BUDGET, ...(r.budget ?? {}) },
    retryOn: new Set(r.retryOn),
    nonIdempotent: r.nonIdempotent,
  };
}

export function resolveHedge(hedge: HedgePolicy | false | undefined): false | Required<HedgePolicy> {
  if (!hedge) return false;
  return { maxAttempts: DEFAULT_HEDGE_MAX_ATTEMPTS, ...hedge };
}
