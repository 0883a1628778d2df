import type { CallOptions, ResolvedRetry, RetryPolicy } from './options.js';
import { resolveHedge, resolveRetry } from './defaults.js';
import { LatencyWindow } from './resilience/latency-window.js';
import type { CallRequest } from './run-attempt.js';
import type { Service } from './service.js';
import { validateHedge, validateRetry, validateTimeout } from './validate.js';

const plainCalls = new WeakMap<Service, CallRequest>();

/**
 * Resolves one call's settings from the service policy and the per-call options. A `mesh.call`
 * with no options reuses one frozen request per service, so the common path allocates nothing here.
 */
export function buildRequest(
  svc: Service,
  options: CallOptions | undefined,
  methodIdempotent: boolean,
  replayable: boolean,
  http: boolean,
): CallRequest {
  const policy = svc.policy;
  if (options === undefined && !http) {
    let cached = plainCalls.get(svc);
    if (cached === undefined) {
      cached = Object.freeze({
        signal: undefined,
        hashKey: undefined,
        idempotent: false,
        replayable: true,
        attemptMs: policy.timeout.attemptMs,
        totalMs: policy.timeout.totalMs,
        retry: policy.retry,
        hedge: false, // not idempotent: never hedged
        http: false,
      });
      plainCalls.set(svc, cached);
    }
    return cached;
  }
  const o = options ?? {};
  if (o.timeout !== undefined) validateTimeout(o.timeout, 'options.timeout');
  if (o.retry !== undefined) validateRetry(o.retry, 'options.retry');
  if (o.hedge !== undefined) validateHedge(o.hedge, 'options.hedge');
  if (o.hashKey !== undefined && typeof o.hashKey !== 'string') throw new TypeError('options.hashKey must be a string');
  if (o.idempotent !== undefined && typeof o.idempotent !== 'boolean') {
    throw new TypeError('options.idempotent must be a boolean');
  }
  const idempotent = o.idempotent ?? methodIdempotent;
  const hedge = o.hedge === undefined ? policy.hedge : resolveHedge(o.hedge);
  if (hedge !== false && hedge.delayMs === 'p95') svc.latencyWindow ??= new LatencyWindow();
  return {
    signal: o.signal ?? undefined,
    hashKey: o.hashKey,
    idempotent,
    replayable,
    hedge: idempotent && replayable ? hedge : false,
    attemptMs: o.timeout?.attemptMs ?? policy.timeout.attemptMs,
    totalMs: o.timeout?.totalMs ?? policy.timeout.totalMs,
    retry: o.retry === undefined ? policy.retry : overrideRetry(policy.retry, o.retry),
    http,
  };
}

/** A per-call `retry` merged over the service's resolved retry policy. */
function overrideRetry(base: false | ResolvedRetry, override: false | RetryPolicy): false | ResolvedRetry {
  if (override === false) return false;
  const raw: RetryPolicy = base === false ? {} : { ...base, retryOn: [...base.retryOn] };
  return resolveRetry({ ...raw, ...override });
}
