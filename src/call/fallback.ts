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
  if (fallback === undefined || call.transport.fallback === false || error instanceof MeshClosedError) return undefined;
  const signal = call.settings.signal;
  if (signal !== undefined && signal.aborted && error === signal.reason) return undefined;
  return fallback;
}

/**
 * Runs a fallback for a call that failed with `error`: its value, or the value its promise settles with, is the
 * call's result; a throw or a rejection rejects the call with that error. The fallback runs one microtask later,
 * once the admission step has freed the call's bulkhead slot, so a fallback that calls the service again finds
 * the slot free. Counted in `proxyless_fallbacks_total`; the call keeps the outcome of its failure.
 */
export async function runFallback(call: Call, fallback: Fallback, error: unknown): Promise<unknown> {
  await undefined;
  const target = call.target;
  target.metrics.fallbacks++;
  // An async function: a synchronous throw of the fallback becomes the call's rejection, never an uncaught error.
  return await fallback(error, { service: target.name, route: target.route });
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
