import type { AttemptFn } from './attempt.js';
import { BulkheadFullError, MeshClosedError, TimeoutError } from './errors.js';
import { callOutcomeOf, OUTCOME } from './observe/service-metrics.js';
import { retryAfterFailure } from './resilience/retry.js';
import { runHedged } from './resilience/hedge.js';
import {
  AttemptFailure,
  CallProgress,
  finish,
  pickOrThrow,
  runAttempt,
  type CallEnv,
  type CallRequest,
} from './run-attempt.js';
import type { Service } from './service.js';

const NO_TRIES: readonly never[] = [];

/**
 * Runs one call through the steps of DESIGN.md's "How one call flows". The first attempt runs
 * inline; only a retryable failure hands over to the retry step (p-retry), so the success path stays cheap.
 */
export async function executeCall<T>(env: CallEnv, svc: Service, fn: AttemptFn<T>, req: CallRequest): Promise<T> {
  // 1. Admission. The bulkhead counts calls, not attempts; the total deadline starts here.
  if (env.isClosed()) throw new MeshClosedError(svc.name);
  const signal = req.signal;
  if (signal?.aborted) throw signal.reason;
  const start = env.clock.now();
  const deadline = start + req.totalMs;
  if (svc.active >= svc.policy.maxConcurrent) {
    // A full bulkhead rejects at once, unless its bounded queue has room (the slot is then handed over).
    const waiting = svc.queue?.wait(signal, req.totalMs, () => new TimeoutError(svc.name, 'total', req.totalMs));
    if (waiting === undefined) {
      svc.metrics.callEnded(OUTCOME.rejected);
      if (env.events.has('rejected')) env.events.emit('rejected', { service: svc.name, reason: 'bulkhead' });
      throw new BulkheadFullError(svc.name, svc.policy.maxConcurrent);
    }
    try {
      await waiting;
    } catch (error) {
      svc.metrics.callEnded(callOutcomeOf(error, signal), env.clock.now() - start);
      throw error;
    }
  } else {
    svc.active++;
  }
  svc.calls++;
  svc.budget?.onRequest(start);
  try {
    // 2. Endpoints: only a cold cache waits for the registry, and that wait honours abort and deadline.
    const loading = svc.prepare(start);
    let now = start;
    if (loading !== undefined) {
      await waitFor(loading, signal, deadline - now, svc.name, req.totalMs);
      now = env.clock.now();
    }
    // 3-6. Pick, attempt, classify, record. Without a hedge the first attempt allocates no progress record.
    const state = pickOrThrow(env, svc, 1, NO_TRIES, req, now);
    let progress: CallProgress | undefined;
    let value: unknown;
    try {
      if (req.hedge === false) {
        value = await runAttempt(env, svc, fn, req, state, 1, deadline, now);
      } else {
        progress = new CallProgress();
        value = await runHedged(env, svc, fn, req, req.hedge, state, deadline, progress, now);
      }
    } catch (error) {
      if (!(error instanceof AttemptFailure)) throw error;
      progress ??= CallProgress.after(error);
      // 7. Retry: a retryable failure hands over to p-retry; anything else ends the call here.
      const result = error.retryable
        ? await retryAfterFailure(env, svc, fn, req, progress, deadline)
        : finish(svc, error, progress.records());
      // A failing last Response resolves the call (fetch semantics) but counts as a failed call.
      const failed = result instanceof Response && progress.failures.some((f) => f.response === result);
      if (failed) svc.callFailures++;
      svc.metrics.callEnded(failed ? OUTCOME.failure : OUTCOME.success, env.clock.now() - start);
      return result as T;
    }
    // Metrics: the success path reads no clock; the winning attempt's end time is on record.
    svc.metrics.callSucceeded(start);
    return value as T;
  } catch (error) {
    svc.callFailures++;
    svc.metrics.callEnded(callOutcomeOf(error, signal), env.clock.now() - start);
    throw error;
  } finally {
    if (svc.queue === undefined || !svc.queue.handOver()) svc.active--;
  }
}

/** Awaits discovery within the caller's signal and the call's deadline. */
function waitFor(
  loading: Promise<void>,
  signal: AbortSignal | undefined,
  remainingMs: number,
  service: string,
  totalMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new TimeoutError(service, 'total', totalMs)), Math.max(0, remainingMs));
    const onAbort = (): void => done(signal!.reason);
    const done = (error?: unknown): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    signal?.addEventListener('abort', onAbort);
    loading.then(() => done(), done);
  });
}
