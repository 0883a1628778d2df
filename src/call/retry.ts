import pRetry from 'p-retry';
import type { ResolvedRetry } from '../options.js';
import type { Call } from './call.js';
import { AttemptFailure } from './failure.js';
import { discardFailure } from './hedge.js';
import type { Next, Step } from './step.js';

/**
 * The retry step, above the pick step so that every retry is picked afresh (never an endpoint already tried
 * when another exists). The first attempt runs inline; p-retry takes over only after a retryable failure,
 * so the success path never builds p-retry's options (about 9 µs on Node 20). Each retry:
 * - needs a token from the retry budget (else `budget-exhausted`, and the call ends with its last failure);
 * - needs time: a `Retry-After` or backoff longer than what is left ends the call;
 * - frees the failed attempt's value first (a 503's body is cancelled, its connection reused).
 * p-retry's backoff sleep ends at once when the call stops (caller's abort, total deadline, close).
 */
export const retryStep: Step = {
  name: 'retry',
  async run(call, next) {
    if (call.settings.retry === false) return next(call);
    try {
      return await next(call);
    } catch (error) {
      if (!(error instanceof AttemptFailure) || !error.retryable) throw error;
      return retryAfterFailure(call, next, error);
    }
  },
};

function retryAfterFailure(call: Call, next: Next, first: AttemptFailure): Promise<unknown> {
  const retry = call.settings.retry as ResolvedRetry;
  const { env, target } = call;
  const signal = call.sleepSignal();
  return pRetry(
    (n) => {
      if (n === 1) throw first; // p-retry's schedule applies from the first retry on
      return next(call);
    },
    {
      retries: retry.retries,
      factor: retry.factor,
      minTimeout: retry.minDelayMs,
      maxTimeout: retry.maxDelayMs,
      randomize: retry.jitter,
      signal,
      shouldRetry: async ({ error, retriesConsumed }) => {
        if (!(error instanceof AttemptFailure) || !error.retryable || call.stopped !== undefined) return false;
        const left = call.expiresAt - env.clock.now();
        const nominal = Math.min(retry.maxDelayMs, retry.minDelayMs * retry.factor ** retriesConsumed);
        const asked = error.value === undefined ? undefined : call.transport.retryAfterMs(error.value);
        if (left <= nominal + (asked ?? 0)) return false; // no time for the backoff and an attempt
        if (retry.budget !== false && target.budget !== undefined && !target.budget.tryWithdraw()) {
          if (env.events.has('budget-exhausted')) {
            env.events.emit('budget-exhausted', { service: target.name, attempt: error.record.attempt });
          }
          return false;
        }
        if (env.events.has('retry')) {
          env.events.emit('retry', {
            service: target.name,
            endpoint: error.state.endpoint,
            attempt: error.record.attempt,
            error: errorOf(error),
            delayMs: nominal + (asked ?? 0),
          });
        }
        discardFailure(call, error);
        // Retry-After asks for at least this long; p-retry's own backoff follows it.
        if (asked !== undefined && asked > 0) await sleep(asked, signal);
        return true;
      },
    },
  );
}

function errorOf(failure: AttemptFailure): Error {
  if (failure.error instanceof Error) return failure.error;
  return new Error(failure.record.message ?? failure.record.outcome);
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
