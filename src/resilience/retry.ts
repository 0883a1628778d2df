import pRetry from 'p-retry';
import type { AttemptFn } from '../attempt.js';
import {
  AttemptFailure,
  finish,
  pickOrThrow,
  runAttempt,
  type CallEnv,
  type CallProgress,
  type CallRequest,
} from '../run-attempt.js';
import { MeshClosedError, TimeoutError } from '../errors.js';
import { runHedged } from './hedge.js';
import type { Service } from '../service.js';
import { retryAfterMs } from './retry-after.js';

/**
 * The retry step, entered only after a retryable first failure. p-retry drives the loop: exponential
 * backoff with jitter, and a signal that ends the backoff sleep at once when the caller aborts or the
 * total deadline passes. Each retry:
 * - needs a token from the retry budget (else `budget-exhausted`, and the call ends with its last failure);
 * - needs time: a `Retry-After` longer than what is left ends the call;
 * - goes to an endpoint not tried yet whenever one exists.
 *
 * p-retry's input is called first with attempt 1; we rethrow the first failure there, so its own backoff
 * schedule applies from the first retry on without our running the first attempt through it.
 */
export async function retryAfterFailure<T>(
  env: CallEnv,
  svc: Service,
  fn: AttemptFn<T>,
  req: CallRequest,
  progress: CallProgress,
  deadline: number,
): Promise<unknown> {
  const retry = req.retry;
  const first = progress.failures[progress.failures.length - 1] as AttemptFailure;
  if (retry === false) return finish(svc, first, progress.records());
  const deadlineCtl = new AbortController();
  const timer = setTimeout(() => {
    deadlineCtl.abort(new TimeoutError(svc.name, 'total', req.totalMs));
  }, Math.max(0, deadline - env.clock.now()));
  timer.unref?.();
  // The backoff sleep ends at once on the caller's abort, the total deadline, or the mesh closing.
  const signal = AbortSignal.any(
    req.signal ? [req.signal, deadlineCtl.signal, env.closeSignal] : [deadlineCtl.signal, env.closeSignal],
  );
  try {
    return await pRetry(
      (n) => {
        if (n === 1) throw first;
        const now = env.clock.now();
        const state = pickOrThrow(env, svc, progress.started + 1, progress.tried, req, now);
        if (req.hedge !== false) return runHedged(env, svc, fn, req, req.hedge, state, deadline, progress, now);
        progress.tried.push(state);
        return runAttempt(env, svc, fn, req, state, ++progress.started, deadline, now).catch((error: unknown) => {
          if (error instanceof AttemptFailure) progress.failures.push(error);
          throw error;
        });
      },
      {
        retries: retry.retries,
        factor: retry.factor,
        minTimeout: retry.minDelayMs,
        maxTimeout: retry.maxDelayMs,
        randomize: retry.jitter,
        signal,
        shouldRetry: async ({ error, retriesConsumed }) => {
          if (!(error instanceof AttemptFailure) || !error.retryable) return false;
          const left = deadline - env.clock.now();
          const nominal = Math.min(retry.maxDelayMs, retry.minDelayMs * retry.factor ** retriesConsumed);
          const asked = error.response ? retryAfterMs(error.response.headers.get('retry-after'), Date.now()) : undefined;
          if (left <= nominal + (asked ?? 0)) return false; // no time for the backoff and an attempt
          if (retry.budget !== false && svc.budget !== undefined && !svc.budget.tryWithdraw()) {
            if (env.events.has('budget-exhausted')) {
              env.events.emit('budget-exhausted', { service: svc.name, attempt: error.record.attempt });
            }
            return false;
          }
          if (env.events.has('retry')) {
            env.events.emit('retry', {
              service: svc.name,
              endpoint: error.state.endpoint,
              attempt: error.record.attempt,
              error: errorOf(error),
              delayMs: nominal + (asked ?? 0),
            });
          }
          error.response?.body?.cancel().catch(noop); // free the connection of a response we drop
          // Retry-After asks for at least this long; p-retry's own backoff follows it.
          if (asked !== undefined && asked > 0) await sleep(asked, signal);
          return true;
        },
      },
    );
  } catch (error) {
    if (error instanceof AttemptFailure) return finish(svc, error, progress.records());
    if (error instanceof TimeoutError && error.scope === 'total') error.attempts = progress.records();
    if (error instanceof MeshClosedError) throw new MeshClosedError(svc.name);
    throw error; // the caller's abort reason, a total timeout, NoEndpointsError, MeshClosedError
  } finally {
    clearTimeout(timer);
  }
}

function errorOf(failure: AttemptFailure): Error {
  if (failure.error instanceof Error) return failure.error;
  return new Error(failure.response ? `HTTP ${failure.response.status}` : String(failure.error));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const noop = (): void => {};
