import pRetry from 'p-retry';
import type { ResolvedRetry } from '../options.js';
import type { Call } from './call.js';
import { AttemptFailure } from './failure.js';
import { below, type Step } from './step.js';

/**
 * The retry step, above the pick step so that every retry is picked afresh (never an endpoint already tried
 * when another exists). The first attempt runs inline: on the way down the step only arms its recovery on the
 * call (a store, no async frame), and a first failure on the way back up is handed to it by the admission step.
 * p-retry takes over only then, so the success path never builds p-retry's options (about 9 µs on Node 20).
 * Each retry:
 * - needs a token from the retry budget (else `budget-exhausted`, and the call ends with its last failure);
 * - needs time: a `Retry-After` or backoff longer than what is left ends the call;
 * - frees the failed attempt's value once the retry has an endpoint (the pick step cancels a 503's body, so
 *   its connection is reused): a retry that finds nothing to pick ends the call with that value, still readable.
 * p-retry's backoff sleep ends at once when the call stops (caller's abort, total deadline, close).
 */
export class RetryStep implements Step {
  readonly name = 'retry';
  private readonly next: Step;

  constructor(next: Step | undefined) {
    this.next = below(next, this.name);
  }

  run(call: Call): Promise<unknown> {
    if (call.settings.retry !== false) {
      call.recovery = recover;
      call.recoveryNext = this.next;
    }
    return this.next.run(call);
  }
}

/** The armed recovery (a module function: arming allocates nothing). */
function recover(call: Call, error: unknown): Promise<unknown> {
  if (!(error instanceof AttemptFailure) || !error.retryable) return Promise.reject(error);
  return retryAfterFailure(call, call.recoveryNext as Step, error);
}

function retryAfterFailure(call: Call, next: Step, first: AttemptFailure): Promise<unknown> {
  const retry = call.settings.retry as ResolvedRetry;
  const { env, target } = call;
  const signal = call.sleepSignal();
  return pRetry(
    (n) => {
      if (n === 1) throw first; // p-retry's schedule applies from the first retry on
      return next.run(call);
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
        if (retry.budget !== false && target.shared.budget !== undefined && !target.shared.budget.tryWithdraw()) {
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
            route: target.route,
            backend: target.backend,
          });
        }
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
