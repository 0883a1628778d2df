import type { PickRequest } from './balancer/balancer.js';
import { Attempt, type AttemptEnd, type AttemptFn } from './attempt.js';
import { DEFAULT_RETRY } from './defaults.js';
import type { EndpointState } from './endpoint/endpoint-state.js';
import {
  CallFailedError,
  CircuitOpenError,
  MeshClosedError,
  NoEndpointsError,
  TimeoutError,
  type AttemptRecord,
} from './errors.js';
import type { MeshEmitter } from './observe/emitter.js';
import type { Outcome, ResolvedRetry, Verdict } from './options.js';
import { classifyError, classifyStatus, isUnsent, outcomeLabel } from './resilience/classify.js';
import type { Service } from './service.js';
import type { Clock } from './util/clock.js';
import type { TimeoutList } from './util/timeout-list.js';

/** What the mesh gives every call. */
export interface CallEnv {
  readonly clock: Clock;
  readonly events: MeshEmitter;
  /** Attempts in flight that are in no timeout list (cut short by the call's deadline). */
  readonly attempts: Set<Attempt>;
  readonly isClosed: () => boolean;
  /** Aborts when the mesh closes: ends backoff sleeps at once. */
  readonly closeSignal: AbortSignal;
  /** The shared attempt-timeout list for a duration (every attempt in flight is in one, or in `attempts`). */
  readonly timeouts: (attemptMs: number) => TimeoutList;
}

/** One call's settings, already resolved from policy, per-call options and (for fetch) the method. */
export interface CallRequest {
  readonly signal: AbortSignal | undefined;
  readonly hashKey: string | undefined;
  /** From the method rule or the caller's `idempotent`. */
  readonly idempotent: boolean;
  /** False when the request body is a stream: such a request is never replayed. */
  readonly replayable: boolean;
  readonly attemptMs: number;
  readonly totalMs: number;
  readonly retry: false | ResolvedRetry;
  /** Hedging, already limited to idempotent, replayable requests; false otherwise. */
  readonly hedge: false | ResolvedHedge;
  /** Whether a resolved value is an HTTP `Response` to classify by status. */
  readonly http: boolean;
}

/** A hedge policy with its defaults filled in. */
export interface ResolvedHedge {
  readonly delayMs: number | 'p95';
  readonly maxAttempts: number;
}

/**
 * What one call has done so far, kept once it needs more than one attempt (retry or hedge): the
 * endpoints it tried, its failed attempts (for `MeshError.attempts`) and how many attempts it started.
 */
export class CallProgress {
  readonly tried: EndpointState[] = [];
  readonly failures: AttemptFailure[] = [];
  started = 0;

  /** The progress of a call whose single first attempt failed. */
  static after(first: AttemptFailure): CallProgress {
    const progress = new CallProgress();
    progress.tried.push(first.state);
    progress.failures.push(first);
    progress.started = 1;
    return progress;
  }

  records(): AttemptRecord[] {
    return this.failures.map((f) => f.record);
  }
}

/**
 * A failed attempt, as the retry step sees it. Internal: it never reaches the caller (the call ends
 * with a Response, a TimeoutError, a CallFailedError or the caller's abort reason).
 */
export class AttemptFailure extends Error {
  /** Read by the endpoint's breaker: this rejection is a failure (an abort or a success-classified error is not). */
  readonly countsAsFailure = true;

  constructor(
    readonly record: AttemptRecord,
    readonly state: EndpointState,
    readonly error: unknown,
    readonly response: Response | undefined,
    readonly retryable: boolean,
  ) {
    super(record.outcome);
  }
}

/** The reason a losing hedged attempt's signal aborts with. */
export const HEDGE_LOST = Object.freeze(new Error('another attempt of this call won (hedge)'));

const DEFAULT_RETRY_ON: ReadonlySet<number> = new Set(DEFAULT_RETRY.retryOn);

/** Picks for attempt `attempt`, or throws `NoEndpointsError` when nothing can be picked. */
export function pickOrThrow(
  env: CallEnv,
  svc: Service,
  attempt: number,
  tried: readonly EndpointState[],
  req: CallRequest,
  now: number,
): EndpointState {
  svc.health.restoreDue(now);
  const request: PickRequest = { attempt, tried, hashKey: req.hashKey, now, panic: svc.health.panic };
  const state = svc.pick(request);
  if (state !== undefined) return state;
  // Nothing to pick: fail fast, without touching the network.
  if (svc.health.allOpen()) throw new CircuitOpenError(svc.name);
  if (svc.endpoints.size === 0) throw new NoEndpointsError(svc.name);
  throw new NoEndpointsError(svc.name, 'every endpoint is ejected or unavailable');
}

/**
 * Runs one attempt and classifies it. Resolves with the value (or Response) on success; rejects with
 * an {@link AttemptFailure} on a failure, with the caller's reason on abort, and with the function's
 * own error when `classify` counts that error as a success (it is the call's result, not a failure).
 */
export function runAttempt<T>(
  env: CallEnv,
  svc: Service,
  fn: AttemptFn<T>,
  req: CallRequest,
  state: EndpointState,
  attemptNo: number,
  deadline: number,
  now: number,
  group?: Attempt[],
): Promise<unknown> {
  if (env.isClosed()) return Promise.reject(new MeshClosedError(svc.name));
  state.begin();
  if (env.events.has('request')) {
    env.events.emit('request', { service: svc.name, endpoint: state.endpoint, attempt: attemptNo });
  }
  const attempt = new Attempt(env, svc, req, state, attemptNo, now, deadline, onAttemptEnd);
  group?.push(attempt);
  // A closed breaker is fed the verdict directly (see EndpointBreaker); only a half-open probe runs
  // through opossum's fire(), which lets exactly one through and closes or reopens on its outcome.
  const breaker = state.breaker;
  if (breaker === undefined || !breaker.halfOpen) return attempt.run(fn);
  attempt.probe = true;
  return breaker.probe(() => attempt.run(fn));
}

function onAttemptEnd(a: Attempt, end: AttemptEnd, result: unknown): void {
  const { env, svc, req } = a;
  const now = env.clock.now();
  const durationMs = now - a.startedAt;
  const state = a.state;
  if (end === 'aborted') {
    // The caller, close() or a winning hedge ended it: no success or failure for the breaker or detector.
    if (result === HEDGE_LOST) {
      state.lostRace(durationMs, now);
      // The loser ran at least this long: leaving it out would bias the p95 estimate low.
      svc.latencyWindow?.add(durationMs);
    } else {
      state.cancel(durationMs, now);
    }
    a.settle(false, result);
    return;
  }
  const verdict = verdictOf(a, end, result);
  const ok = verdict === 'success';
  state.end(durationMs, ok, now);
  svc.metrics.attemptEnded(durationMs, now);
  if (state.breaker !== undefined && !a.probe) state.breaker.record(ok);
  svc.health.record(state, ok, now);
  if (verdict === 'success') {
    svc.latencyWindow?.add(durationMs);
    if (env.events.has('success')) {
      env.events.emit('success', { service: svc.name, endpoint: state.endpoint, attempt: a.attempt, durationMs });
    }
    a.settle(end === 'value', result);
    return;
  }
  const response = end === 'value' && req.http && result instanceof Response ? result : undefined;
  const error = end === 'error' ? result : undefined;
  const label = outcomeLabel(error, response?.status);
  if (env.events.has('failure')) {
    env.events.emit('failure', {
      service: svc.name,
      endpoint: state.endpoint,
      attempt: a.attempt,
      durationMs,
      error: error instanceof Error ? error : new Error(`HTTP ${label}`),
      ...(response ? { status: response.status } : {}),
    });
  }
  const record: AttemptRecord = { attempt: a.attempt, endpoint: state.id, durationMs, outcome: label };
  a.settle(false, new AttemptFailure(record, state, error, response, isRetryable(req, verdict, error)));
}

/** The verdict on one attempt: the policy's `classify` if any, else the default rules without allocating. */
function verdictOf(a: Attempt, end: AttemptEnd, result: unknown): Verdict {
  const { svc, req } = a;
  const custom = svc.policy.classify;
  if (custom !== undefined) return custom(toOutcome(req, end, result, svc.name, a.attempt));
  if (end === 'error') return classifyError(result);
  if (req.http && result instanceof Response) {
    return classifyStatus(result.status, req.retry === false ? DEFAULT_RETRY_ON : req.retry.retryOn);
  }
  return 'success';
}

function toOutcome(req: CallRequest, end: AttemptEnd, result: unknown, service: string, attempt: number): Outcome {
  if (end === 'error') return { kind: 'error', error: result, service, attempt };
  if (req.http && result instanceof Response) return { kind: 'response', response: result, service, attempt };
  return { kind: 'value', value: result, service, attempt };
}

/**
 * The idempotency rule: a retryable failure is replayed only when the request is idempotent, when
 * policy allows non-idempotent retries, or when the request provably never left; a stream body never.
 */
function isRetryable(req: CallRequest, verdict: Verdict, error: unknown): boolean {
  if (verdict !== 'retryable-failure' || req.retry === false || req.retry.retries === 0 || !req.replayable) return false;
  return req.idempotent || req.retry.nonIdempotent || isUnsent(error);
}

/**
 * 8. Result of a call whose last attempt failed: fetch resolves with the last Response (fetch's own
 * semantics); a timeout rejects with the TimeoutError; anything else with a CallFailedError.
 */
export function finish(svc: Service, last: AttemptFailure, records: readonly AttemptRecord[]): unknown {
  if (last.response !== undefined) return last.response;
  const error = last.error;
  if (error instanceof TimeoutError) {
    error.attempts = records;
    throw error;
  }
  throw new CallFailedError(svc.name, error, records);
}

