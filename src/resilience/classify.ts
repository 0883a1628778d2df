import type { Verdict } from '../options.js';
import { TimeoutError } from '../errors.js';

/**
 * Error codes that prove a request never left this process: the connection was never made, so even a
 * POST can be replayed safely (as Envoy's `connect-failure` and grpc-js's transparent retry do).
 */
const UNSENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Whether `error` (or an error in its `cause` chain, as undici nests them) proves the request was not sent. */
export function isUnsent(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNSENT_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
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

/**
 * The default classification of an HTTP status (DESIGN.md step 5): a status in `retryOn` (default 429, 500,
 * 502, 503, 504) is a retryable failure, any other 5xx a failure, everything else (4xx included: the
 * caller's fault, not the endpoint's) a success. A value that is not a Response is always a success.
 */
export function classifyStatus(status: number, retryOn: ReadonlySet<number>): Verdict {
  if (retryOn.has(status)) return 'retryable-failure';
  return status >= 500 ? 'failure' : 'success';
}

/**
 * The default verdict of a thrown error: retryable, unless the call's total deadline passed. Whether it is
 * actually retried also depends on idempotency, which the call step checks separately.
 */
export function classifyError(error: unknown): Verdict {
  return error instanceof TimeoutError && error.scope === 'total' ? 'failure' : 'retryable-failure';
}
