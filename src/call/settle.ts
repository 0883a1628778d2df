import { DEFAULT_RETRY_ON } from '../transport/http.js';
import type { Verdict } from '../transport/transport.js';
import type { AttemptRecord } from '../errors.js';
import { TimeoutError } from '../errors.js';
import type { AttemptEnd, Call, LiveAttempt as Attempt } from './call.js';
import { AttemptFailure, HEDGE_LOST } from './failure.js';

const DEFAULT_RETRY_ON_SET: ReadonlySet<number> = new Set(DEFAULT_RETRY_ON);

/**
 * Classify and record: the verdict on one attempt, fed to the endpoint's latency, breaker and outlier
 * detector, the metrics and the events; then the attempt's promise settles. Resolves with the value on
 * success; rejects with an {@link AttemptFailure} on a failure and with the reason on an abort. A module
 * function, not a closure per attempt.
 */
export function settle(a: Attempt, end: AttemptEnd, result: unknown): void {
  const call = a.call;
  const { env, target, transport } = call;
  const now = env.clock.now();
  const durationMs = now - a.startedAt;
  const state = a.state;
  if (end === 'aborted') {
    // The caller, close() or a winning hedge ended it: no success or failure for the breaker or detector.
    if (result === HEDGE_LOST) {
      state.lostRace(durationMs, now);
      // The loser ran at least this long: leaving it out would bias the p95 estimate low.
      target.shared.latencyWindow?.add(durationMs);
    } else {
      state.cancel(durationMs, now);
    }
    a.rejectWith(result);
    return;
  }
  if (end === 'error') result = transport.explain(result);
  const verdict = verdictOf(a, end, result);
  const ok = verdict === 'success';
  state.end(durationMs, ok, now);
  target.metrics.attemptEnded(durationMs, now);
  if (state.breaker !== undefined && !a.probe) state.breaker.record(ok);
  target.health.record(state, ok, now);
  // Load biasing, whatever the verdict (a 429 that `classify` calls a success still asks for less), and after the
  // health record, whose revive (a breaker that closes) would otherwise wipe the charge at once.
  if (end === 'value' && transport.loadPenaltyMs !== undefined) {
    const penalty = transport.loadPenaltyMs(result);
    if (penalty !== undefined) state.shed(penalty, now);
  }
  if (ok) {
    target.shared.latencyWindow?.add(durationMs);
    if (env.events.has('success')) {
      env.events.emit('success', { service: target.name, endpoint: state.endpoint, attempt: a.attempt, durationMs, route: target.route, backend: target.backend });
    }
    if (end === 'value') {
      call.winner = a;
      a.resolveWith(result);
    } else {
      a.rejectWith(result); // an error that `classify` calls a success: the call's result, not a failure
    }
    return;
  }
  const value = end === 'value' ? result : undefined;
  const error = end === 'error' ? result : undefined;
  const status = value === undefined ? undefined : transport.statusOf(value);
  const label = outcomeLabel(error, status);
  if (env.events.has('failure')) {
    env.events.emit('failure', {
      service: target.name,
      endpoint: state.endpoint,
      attempt: a.attempt,
      durationMs,
      route: target.route,
      backend: target.backend,
      error: error instanceof Error ? error : new Error(status !== undefined ? `HTTP ${status}` : String(error ?? label)),
      ...(status !== undefined ? { status } : {}),
    });
  }
  const message = error instanceof Error ? error.message : status !== undefined ? `HTTP ${status}` : String(error ?? label);
  const record: AttemptRecord = { attempt: a.attempt, endpoint: state.id, durationMs, outcome: label, message };
  const failure = new AttemptFailure(record, a, state, error, value, retryable(call, verdict, error, a));
  (call.failures ??= []).push(failure);
  a.rejectWith(failure);
}

/** The verdict on one attempt: the policy's `classify` if any (contained), else the transport's rules. */
function verdictOf(a: Attempt, end: AttemptEnd, result: unknown): Verdict {
  const call = a.call;
  const custom = call.target.policy.classify;
  if (custom !== undefined) return customVerdict(a, custom, end, result);
  if (end === 'error') return defaultErrorVerdict(result);
  const retry = call.settings.retry;
  return call.transport.classifyValue(result, retry === false ? DEFAULT_RETRY_ON_SET : retry.retryOn);
}

/** The default verdict of a thrown error: retryable, unless the call's total deadline passed. */
function defaultErrorVerdict(error: unknown): Verdict {
  return error instanceof TimeoutError && error.scope === 'total' ? 'failure' : 'retryable-failure';
}

const VERDICTS: ReadonlySet<string> = new Set(['success', 'failure', 'retryable-failure']);

/**
 * User code decides. If it throws or answers something that is not a verdict, the attempt counts as a
 * failure (as Envoy and Finagle count a classifier failure), never retried on that account, and the error
 * is reported on `callback-error`: the call settles either way.
 */
function customVerdict(
  a: Attempt,
  classify: NonNullable<Call['target']['policy']['classify']>,
  end: AttemptEnd,
  result: unknown,
): Verdict {
  const { target, transport, env } = a.call;
  let verdict: unknown;
  try {
    const outcome =
      end === 'error'
        ? ({ kind: 'error', error: result, service: target.name, attempt: a.attempt } as const)
        : transport.outcomeOf(result, target.name, a.attempt);
    verdict = classify(outcome);
    if (typeof verdict === 'string' && VERDICTS.has(verdict)) return verdict as Verdict;
    throw new TypeError(`classify returned ${JSON.stringify(verdict) ?? String(verdict)}, not 'success', 'failure' or 'retryable-failure'`);
  } catch (error) {
    if (env.events.has('callback-error')) {
      env.events.emit('callback-error', { service: target.name, callback: 'classify', error });
    }
    return 'failure';
  }
}

/**
 * The idempotency rule: a retryable failure is replayed only when the request is idempotent, when policy
 * allows non-idempotent retries, or when the request provably never left this endpoint; a stream body never.
 */
function retryable(call: Call, verdict: Verdict, error: unknown, a: Attempt): boolean {
  const { settings } = call;
  const retry = settings.retry;
  if (verdict !== 'retryable-failure' || retry === false || retry.retries === 0 || !settings.replayable) return false;
  if (settings.idempotent || retry.nonIdempotent) return true;
  return error !== undefined && neverSent(call, error, a);
}

/** Proof that nothing left: the transport's (address-checked), or the policy's `unsent` hook (contained). */
function neverSent(call: Call, error: unknown, a: Attempt): boolean {
  if (call.transport.unsent(error, a.state.endpoint)) return true;
  const hook = call.target.policy.unsent;
  if (hook === undefined) return false;
  try {
    return hook(error) === true;
  } catch (thrown) {
    if (call.env.events.has('callback-error')) {
      call.env.events.emit('callback-error', { service: call.target.name, callback: 'unsent', error: thrown });
    }
    return false;
  }
}

/** A short label for an outcome, for attempt records and metrics: `'503'`, `'ECONNREFUSED'`, `'TimeoutError'`. */
export function outcomeLabel(error: unknown, status?: number): string {
  if (status !== undefined) return String(status);
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'ECALLFAILED') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return error instanceof Error ? error.name : typeof error;
}
