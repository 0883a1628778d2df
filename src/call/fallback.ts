import { CallFailedError, MeshClosedError } from '../errors.js';
import type { Fallback } from '../resilience/health-policy.js';
import type { Call } from './call.js';
import type { FailedResult } from './result.js';

/**
 * The fallback a failed call runs, or undefined when it runs none:
 * - none configured (the per-call `fallback`, else the policy's: `settings.fallback`);
 * - the caller's own abort: the caller asked for the call to end, not for a value;
 * - a closed mesh: the application is shutting down, and a value would hide that;
 * - a transport whose caller cannot take a value (`Transport.fallback === false`: the undici dispatcher).
 * Every other failure runs it: retries exhausted, `NoEndpointsError`, `CircuitOpenError`, `BulkheadFullError`,
 * `AdmissionRejectedError`, a `TimeoutError` (a spent deadline included), an injected fault, a failing final Response.
 */
export function fallbackFor(call: Call, error: unknown): Fallback | undefined {
  const fallback = call.settings.fallback;
  if (fallback === undefined || call.transport.fallback === false) return undefined;
  // `stopped` too: a stop can land after the last attempt failed (the retry step then gives up with that failure,
  // a CallFailedError or a 503), and the call was still stopped by its caller or by close().
  const stopped = call.stopped;
  if (error instanceof MeshClosedError || stopped instanceof MeshClosedError) return undefined;
  const signal = call.settings.signal;
  if (signal !== undefined && signal.aborted && (error === signal.reason || stopped === signal.reason)) return undefined;
  return fallback;
}

/**
 * Runs a fallback for a call that failed with `error`: its value, or the value its promise settles with, is the
 * call's result; a throw or a rejection rejects the call with that error. The fallback runs one microtask later,
 * once the admission step has freed the call's bulkhead slot, so a fallback that calls the service again finds
 * the slot free. Counted in `proxyless_fallbacks_total`; the call keeps the outcome of its failure. Not bounded by
 * the call's deadline (it often runs because that passed): a promise of the fallback's that never settles leaves
 * the call pending, unless the caller's signal aborts, which rejects the call with its reason.
 */
export async function runFallback(call: Call, fallback: Fallback, error: unknown): Promise<unknown> {
  await undefined;
  const target = call.target;
  const signal = call.settings.signal;
  // The caller gave up in that microtask: it asked for the call to end, not for a value.
  if (signal !== undefined && signal.aborted) throw signal.reason;
  target.metrics.fallbacks++;
  // An async function: a synchronous throw of the fallback becomes the call's rejection, never an uncaught error.
  const answer = fallback(error, { service: target.name, route: target.route });
  if (signal === undefined || !isThenable(answer)) return await answer;
  // The call has left its deadline and its signal's listener: the caller's abort must still end a slow fallback.
  return await untilAborted(answer, signal);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

/** What `answer` settles with, unless `signal` aborts first (then its reason); the listener goes either way. */
function untilAborted(answer: PromiseLike<unknown>, signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve(answer).then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (thrown: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(thrown);
      },
    );
  });
}

/**
 * What a fallback is shown for a failing final Response (a 503 after every retry): a `CallFailedError` whose cause
 * is `HTTP 503` (with its `status`), listing every attempt, as a call without a Response would reject.
 */
export function responseFailure(call: Call, result: FailedResult): CallFailedError {
  const status = call.transport.statusOf(result.value);
  const cause = Object.assign(new Error(`HTTP ${status}`), { status });
  return new CallFailedError(call.target.name, cause, result.attempts);
}
