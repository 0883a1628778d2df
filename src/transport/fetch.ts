import { authority } from '../endpoint/endpoint.js';
import type { AttemptContext, AttemptFn } from './attempt-context.js';
import { timeLeftMs } from './deadline.js';
import {
  cancelBody,
  classifyStatus,
  IDEMPOTENT_METHODS,
  isHeadersLike,
  isRequestLike,
  isResponseLike,
  loadPenaltyMs,
  parseRetryAfter,
  type RequestLike,
} from './http.js';
import { describeCause, networkCause, provesUnsent } from './network-error.js';
import { headerPairsWithout, type RequestHeaders } from './request-headers.js';
import { parseServiceUrl } from './service-url.js';
import type { Exchange, Transport } from './transport.js';

/** What planning reads of `init` beyond fetch's own keys (the mesh's `MeshRequestInit`). */
export interface PlannedInit extends RequestInit {
  readonly idempotent?: boolean | undefined;
}

/** fetch's own `init` keys (WHATWG `RequestInit`, plus undici's `dispatcher` and `duplex`): passed through as they are. */
export const FETCH_INIT_KEYS: readonly string[] = Object.freeze([
  'body', 'cache', 'credentials', 'headers', 'integrity', 'keepalive', 'method', 'mode', 'priority', 'redirect',
  'referrer', 'referrerPolicy', 'signal', 'window', 'duplex', 'dispatcher',
]);

/** The keys of a `Request` that fetch reads when it is given as `init` (what `new Request(url, request)` copies). */
const REQUEST_MEMBERS = ['method', 'headers', 'redirect', 'integrity', 'keepalive', 'referrer', 'referrerPolicy', 'mode', 'credentials', 'cache'] as const;

/** The mesh's own per-call keys, which never reach fetch. */
const MESH_KEYS: ReadonlySet<string> = new Set(['hashKey', 'idempotent', 'timeout', 'retry', 'hedge', 'deadline', 'fallback', 'signal']);

/** A `mesh.fetch` taken apart once per call, so each attempt only swaps the authority. */
export interface FetchPlan extends Exchange<Response> {
  readonly service: string;
  /** The caller's signal: `init.signal`, else the Request's own. */
  readonly signal: AbortSignal | undefined;
  /** `http://` or `https://`, and the path and query: each attempt puts an endpoint's authority between. */
  readonly prefix: string;
  readonly rest: string;
  /** The init every attempt sends, less its signal. */
  readonly base: Readonly<Record<string, unknown>>;
}

/**
 * The fetch transport. Responses of any realm count (global fetch's or undici's own): a 5xx is retried,
 * breakers are fed, `Retry-After` is read, and a response the caller will not get has its body cancelled.
 */
export const fetchTransport: Transport = {
  statusOf: (value) => (isResponseLike(value) ? value.status : undefined),
  classifyValue: (value, retryOn) => (isResponseLike(value) ? classifyStatus(value.status, retryOn) : 'success'),
  outcomeOf: (value, service, attempt) =>
    isResponseLike(value)
      ? { kind: 'response', response: value as unknown as Response, service, attempt }
      : { kind: 'value', value, service, attempt },
  retryAfterMs: (value) => (isResponseLike(value) ? parseRetryAfter(value.headers.get('retry-after'), Date.now()) : undefined),
  loadPenaltyMs: (value) =>
    isResponseLike(value) && value.status >= 400 ? loadPenaltyMs(value.status, value.headers.get('retry-after')) : undefined,
  discard: (value, owner) => {
    if (isResponseLike(value)) cancelBody(value, owner);
  },
  streams: (value) => isResponseLike(value) && value.body !== null && value.body !== undefined,
  // fetch dials the endpoint itself; only a redirect reaches elsewhere, and an address then tells it apart.
  unsent: (error, endpoint) => provesUnsent(error, endpoint, true),
  explain: explainFetchFailure,
  // Envoy's fault filter answers with this body; the header names the route, so a test or a log can tell it apart.
  faultValue: (fault) =>
    new Response('fault filter abort', {
      status: fault.status,
      headers: { 'content-type': 'text/plain', 'x-proxyless-fault': fault.route },
    }),
};

/**
 * Plans a `mesh.fetch`: the URL's hostname is the logical service name; each attempt calls `fetchImpl` with
 * the endpoint's `http://host:port` plus the original path and query, and an init dictionary. A `Request`
 * input of any realm is read member by member (never passed to a foreign fetch as an object it would not
 * recognise). The `Host` header names the endpoint, as with a direct call.
 */
export function planFetch(
  fetchImpl: (input: string, init: RequestInit) => Promise<Response>,
  input: string | URL | Request,
  init: PlannedInit | undefined,
): FetchPlan {
  const request = typeof input === 'object' && input !== null && isRequestLike(input) ? (input as RequestLike) : undefined;
  const { scheme, service, rest } = parseServiceUrl(request ? request.url : String(input));
  const prefix = `${scheme}//`;
  const base: Record<string, unknown> = {};
  let body: unknown = init?.body ?? undefined;
  if (request !== undefined) {
    for (const key of REQUEST_MEMBERS) {
      const value = (request as unknown as Record<string, unknown>)[key];
      if (value !== undefined) base[key] = value;
    }
    if (body === undefined && request.body !== null && request.body !== undefined) body = request.body;
  }
  if (init !== undefined) {
    // An `undefined` member is absent, as WebIDL reads fetch's init: `{ method: undefined }` keeps the
    // Request's own POST (copying it would turn the call into a GET, which then refuses the body).
    for (const key in init) {
      const value = (init as Record<string, unknown>)[key];
      if (value !== undefined && !MESH_KEYS.has(key)) base[key] = value;
    }
  }
  if (body !== undefined) base.body = body;
  const replayable = !isStreamBody(body);
  if (!replayable) base.duplex ??= 'half';
  const method = String(base.method ?? 'GET').toUpperCase();
  const idempotent = init?.idempotent ?? IDEMPOTENT_METHODS.has(method);
  const signal = init?.signal ?? request?.signal ?? undefined;
  const send: AttemptFn<Response> = (endpoint, ctx) =>
    fetchImpl(prefix + authority(endpoint.host, endpoint.port) + rest, { ...base, signal: ctx.signal } as RequestInit);
  return { transport: fetchTransport, service, send, idempotent, replayable, signal, prefix, rest, base };
}

/**
 * The attempts of `plan` through a dispatcher of the service's (its `tls`, its `Host`: see ServiceDispatcher),
 * unless the caller brought a `dispatcher` of its own, which wins. The first attempt may wait for it to be made.
 */
export function sendThrough(
  fetchImpl: (input: string, init: RequestInit) => Promise<Response>,
  plan: FetchPlan,
  dispatcher: { get(): object | Promise<object> },
): AttemptFn<Response> {
  if (plan.base.dispatcher !== undefined) return plan.send;
  const { prefix, rest, base } = plan;
  return (endpoint, ctx) => {
    const url = prefix + authority(endpoint.host, endpoint.port) + rest;
    const d = dispatcher.get();
    if (!(d instanceof Promise)) return fetchImpl(url, { ...base, signal: ctx.signal, dispatcher: d } as RequestInit);
    return d.then((ready) => fetchImpl(url, { ...base, signal: ctx.signal, dispatcher: ready } as RequestInit));
  };
}

/**
 * The attempts of `plan` with headers of their own, added per attempt as it starts:
 * - with the `deadline` policy on (`deadlineHeader`, lower case), the time the call has left, so a retry or a hedge
 *   sends less than the attempt before it. The mesh's value replaces a header of that name the caller set (the
 *   caller's is dropped, whatever its case): the mesh knows the call's real deadline, and a caller that has a budget
 *   of its own passes it as `deadline` (`inboundDeadline(req)`), which the mesh's value then never exceeds;
 * - with telemetry on (`traced`), the propagation headers of the attempt's own span (`traceparent`, ...), read as
 *   the attempt is sent, under its span, so each retry and hedge carries its own. A header of that name the caller
 *   set is the caller's and is never overwritten, as `withTraceContext` does.
 * Through the service's dispatcher, as {@link sendThrough}, unless the caller brought one. The caller's headers are
 * copied once per call; a plan with neither never comes here.
 */
export function sendWithHeaders(
  fetchImpl: (input: string, init: RequestInit) => Promise<Response>,
  plan: FetchPlan,
  dispatcher: { get(): object | Promise<object> } | undefined,
  deadlineHeader: string | undefined,
  traced: boolean,
): AttemptFn<Response> {
  const { prefix, rest, base } = plan;
  const others = headerPairsWithout(base.headers as RequestHeaders, deadlineHeader ?? '');
  const callerSet = traced ? new Set(others.map(([name]) => name.toLowerCase())) : undefined;
  const own = base.dispatcher === undefined ? dispatcher : undefined;
  const init = (ctx: AttemptContext, d: object | undefined, trace: Readonly<Record<string, string>> | undefined): RequestInit => {
    const headers = [...others];
    if (deadlineHeader !== undefined) headers.push([deadlineHeader, String(timeLeftMs(ctx))]);
    // Names compared without regard to case (a propagator may write `X-Trace-Id` where the caller set `x-trace-id`).
    if (trace !== undefined) for (const name of Object.keys(trace)) if (!callerSet!.has(name.toLowerCase())) headers.push([name, trace[name]!]);
    return (d === undefined ? { ...base, headers, signal: ctx.signal } : { ...base, headers, signal: ctx.signal, dispatcher: d }) as RequestInit;
  };
  return (endpoint, ctx) => {
    const url = prefix + authority(endpoint.host, endpoint.port) + rest;
    // Read now, under the attempt's span (a wait for the dispatcher below runs outside it).
    const trace = traced ? (ctx as { readonly traceHeaders?: Readonly<Record<string, string>> | undefined }).traceHeaders : undefined;
    if (own === undefined) return fetchImpl(url, init(ctx, undefined, trace));
    const d = own.get();
    if (!(d instanceof Promise)) return fetchImpl(url, init(ctx, d, trace));
    // Read once the dispatcher is ready: the wait comes out of what is left.
    return d.then((ready) => fetchImpl(url, init(ctx, ready, trace)));
  };
}

/**
 * The value of header `name` (lower case) on a mesh.fetch request, as fetch would send it: `init.headers` when
 * given (they replace a Request's own), else the Request's headers. Used for the policy's `hashHeader`.
 *
 * @example headerValue('http://users/v1/me', { headers: { 'X-User-Id': '42' } }, 'x-user-id') // '42'
 */
export function headerValue(input: string | URL | Request, init: RequestInit | undefined, name: string): string | undefined {
  const headers: unknown = init?.headers ?? (typeof input === 'object' && isRequestLike(input) ? input.headers : undefined);
  if (headers === undefined || headers === null) return undefined;
  if (isHeadersLike(headers)) return headers.get(name) ?? undefined;
  if (Array.isArray(headers)) {
    const values = headers.filter((pair) => String(pair[0]).toLowerCase() === name).map((pair) => String(pair[1]));
    return values.length === 0 ? undefined : values.join(', ');
  }
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name) return String((headers as Record<string, string>)[key]);
  }
  return undefined;
}

/**
 * Adds the reason of a network failure to its message, once: undici's `TypeError('fetch failed')` says
 * nothing until one digs into `cause`; `fetch failed (ECONNREFUSED 127.0.0.1:8081)` says it at once, on the
 * error, the `failure` and `retry` events and `MeshError.attempts`.
 */
export function explainFetchFailure(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const cause = networkCause(error);
  if (cause === undefined || error.message.includes(cause.code)) return error;
  try {
    error.message = `${error.message} (${describeCause(cause)})`;
  } catch {
    // a frozen error keeps its message; its cause still says why
  }
  return error;
}

function isStreamBody(body: unknown): boolean {
  if (body === null || body === undefined) return false;
  if (typeof body === 'string' || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return false;
  if (body instanceof URLSearchParams || body instanceof Blob || body instanceof FormData) return false;
  return true; // ReadableStream, async iterables, Node streams, foreign-realm bodies: readable once
}

