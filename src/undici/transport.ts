import { explainFetchFailure } from '../transport/fetch.js';
import { classifyStatus, loadPenaltyMs, parseRetryAfter } from '../transport/http.js';
import { provesUnsent } from '../transport/network-error.js';
import type { Transport } from '../transport/transport.js';
import { AttemptResponse } from './response.js';

/**
 * undici refuses a request on a pool that is closing (`UND_ERR_CLOSED`) before it is queued: nothing was sent,
 * so, like a refused connection, it may be replayed elsewhere even when not idempotent.
 */
const REFUSED_BEFORE_SENDING: ReadonlySet<string> = new Set(['EENDPOINTGONE', 'UND_ERR_CLOSED']);

const asResponse = (value: AttemptResponse): Response =>
  ({
    status: value.statusCode,
    statusText: value.statusMessage ?? '',
    ok: value.statusCode >= 200 && value.statusCode < 300,
    headers: { get: (name: string) => value.header(String(name).toLowerCase()) },
    body: null,
  }) as unknown as Response;

/**
 * The transport of the undici dispatcher: an attempt's value is an {@link AttemptResponse}, classified on its
 * status as a fetch Response is (5xx retried, breakers fed, `Retry-After` read). A `classify` of the policy
 * sees it as a response with `status` and `headers.get` (no body: it is still held for the caller).
 */
export const undiciTransport: Transport = {
  statusOf: (value) => (value instanceof AttemptResponse ? value.statusCode : undefined),
  classifyValue: (value, retryOn) => (value instanceof AttemptResponse ? classifyStatus(value.statusCode, retryOn) : 'success'),
  outcomeOf: (value, service, attempt) =>
    value instanceof AttemptResponse
      ? { kind: 'response', response: asResponse(value), service, attempt }
      : { kind: 'value', value, service, attempt },
  retryAfterMs: (value) => (value instanceof AttemptResponse ? parseRetryAfter(value.header('retry-after'), Date.now()) : undefined),
  loadPenaltyMs: (value) =>
    value instanceof AttemptResponse && value.statusCode >= 400 ? loadPenaltyMs(value.statusCode, value.header('retry-after')) : undefined,
  discard: (value, owner) => {
    if (value instanceof AttemptResponse) value.discard(owner);
  },
  streams: (value) => value instanceof AttemptResponse && value.streaming,
  // The pool dials the endpoint itself: an addressless connect failure is about this endpoint.
  unsent: (error, endpoint) => {
    const code = (error as { code?: unknown } | null)?.code;
    return (typeof code === 'string' && REFUSED_BEFORE_SENDING.has(code)) || provesUnsent(error, endpoint, true);
  },
  explain: explainFetchFailure,
  // A dispatch handler takes a response, not a value: a fallback is not run on this path (see Transport.fallback).
  fallback: false,
};
