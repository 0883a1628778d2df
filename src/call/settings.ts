import { resolveHedge, resolveRetry } from '../defaults.js';
import type { CallOptions, Fallback, ResolvedPolicy, ResolvedRetry, RetryPolicy } from '../options.js';
import { validateHedge, validateRetry, validateTimeout } from '../validate.js';
import { definedOnly } from '../util/defined.js';

/** A hedge policy with its defaults filled in. */
export interface ResolvedHedge {
  readonly delayMs: number | 'p95';
  readonly maxAttempts: number;
}

/** One call's settings, resolved once from the policy, the per-call options and the transport's request facts. */
export interface CallSettings {
  readonly signal: AbortSignal | undefined;
  readonly hashKey: string | undefined;
  readonly idempotent: boolean;
  /** False when the request body is a stream: such a request is never replayed. */
  readonly replayable: boolean;
  readonly attemptMs: number;
  /**
   * The call's total bound: the policy's (or the per-call `timeout`'s), or less when a per-call `deadline` leaves
   * less. It may be <= 0 (the deadline has passed): admission then fails the call before touching anything.
   */
  readonly totalMs: number;
  readonly retry: false | ResolvedRetry;
  /** Hedging, already limited to idempotent, replayable requests; false otherwise. */
  readonly hedge: false | ResolvedHedge;
  /** What a failed call resolves with: the per-call `fallback`, else the policy's. */
  readonly fallback: Fallback | undefined;
}

/** The mesh's per-call option keys (on `mesh.call`'s third argument and on fetch's `init`). */
export const CALL_OPTION_KEYS: readonly string[] = Object.freeze(['signal', 'hashKey', 'idempotent', 'timeout', 'retry', 'hedge', 'deadline', 'fallback']);

/** A frozen set of the keys a per-call options object may have: the mesh's, plus (for fetch) fetch's own. */
export function optionKeys(extra: readonly string[] = []): ReadonlySet<string> {
  return Object.freeze(new Set([...CALL_OPTION_KEYS, ...extra]));
}

/**
 * Checks a per-call options object as `createMesh` checks its own: an unknown key (`idempotant`) is a
 * `TypeError` naming it. A lookup per key in a frozen set: no allocation on the call path.
 */
export function checkOptionKeys(options: object, known: ReadonlySet<string>, at: string): void {
  for (const key in options) {
    if (!known.has(key)) {
      throw new TypeError(`${at}.${key} is not a known per-call option (known: ${[...known].join(', ')})`);
    }
  }
}

/** The settings of a call without options: not idempotent, so never hedged. Built once per service. */
export function plainSettings(policy: ResolvedPolicy): CallSettings {
  return Object.freeze({
    signal: undefined,
    hashKey: undefined,
    idempotent: false,
    replayable: true,
    attemptMs: policy.timeout.attemptMs,
    totalMs: policy.timeout.totalMs,
    retry: policy.retry,
    hedge: false,
    fallback: policy.fallback,
  });
}

/**
 * Resolves one call's settings. `idempotent` and `replayable` are the transport's reading of the request
 * (the method rule, a stream body); the caller's `idempotent` overrides the former.
 */
export function callSettings(
  policy: ResolvedPolicy,
  options: Omit<CallOptions, 'signal'>,
  signal: AbortSignal | undefined,
  hashKey: string | undefined,
  idempotentByRule: boolean,
  replayable: boolean,
): CallSettings {
  if (options.timeout !== undefined) validateTimeout(options.timeout, 'options.timeout');
  if (options.retry !== undefined) validateRetry(options.retry, 'options.retry');
  if (options.hedge !== undefined) validateHedge(options.hedge, 'options.hedge');
  if (hashKey !== undefined && typeof hashKey !== 'string') throw new TypeError('options.hashKey must be a string');
  if (options.idempotent !== undefined && typeof options.idempotent !== 'boolean') {
    throw new TypeError('options.idempotent must be a boolean');
  }
  if (signal !== undefined && !isSignal(signal)) throw new TypeError('options.signal must be an AbortSignal');
  if (options.fallback !== undefined && typeof options.fallback !== 'function') throw new TypeError('options.fallback must be a function');
  const totalMs = options.timeout?.totalMs ?? policy.timeout.totalMs;
  const idempotent = options.idempotent ?? idempotentByRule;
  const hedge = options.hedge === undefined ? policy.hedge : resolveHedge(options.hedge);
  return {
    signal,
    hashKey,
    idempotent,
    replayable,
    hedge: idempotent && replayable ? hedge : false,
    attemptMs: options.timeout?.attemptMs ?? policy.timeout.attemptMs,
    // One field check when no deadline is given.
    totalMs: options.deadline === undefined ? totalMs : boundedBy(options.deadline, totalMs),
    retry: options.retry === undefined ? policy.retry : overrideRetry(policy.retry, options.retry),
    fallback: options.fallback ?? policy.fallback,
  };
}

/**
 * A per-call `deadline` (epoch ms, `Date.now()`'s clock) over the total bound: what is left of it, whole
 * milliseconds rounded down (the call never outlives it), when that is less. Read once, as the call is planned:
 * from there on the call's own clock counts (`Call.begin`), so a wall-clock step does not move it.
 */
function boundedBy(deadline: unknown, totalMs: number): number {
  if (typeof deadline !== 'number' || !Number.isFinite(deadline)) {
    throw new TypeError(`options.deadline must be a finite number of epoch milliseconds (Date.now()'s clock, e.g. Date.now() + 250), got ${describe(deadline)}`);
  }
  const left = Math.floor(deadline - Date.now());
  return left < totalMs ? left : totalMs;
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (value instanceof Date) return 'a Date (pass date.getTime())';
  return typeof value;
}

function isSignal(value: unknown): value is AbortSignal {
  return typeof (value as AbortSignal).aborted === 'boolean' && typeof (value as AbortSignal).addEventListener === 'function';
}

/** A per-call `retry` merged over the service's resolved retry policy. */
export function overrideRetry(base: false | ResolvedRetry, override: false | RetryPolicy): false | ResolvedRetry {
  if (override === false) return false;
  const raw: RetryPolicy = base === false ? {} : { ...base, retryOn: [...base.retryOn] };
  return resolveRetry({ ...raw, ...definedOnly(override) });
}
