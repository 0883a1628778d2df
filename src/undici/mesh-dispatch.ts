import { Call } from '../call/call.js';
import { callSettings, type CallSettings } from '../call/settings.js';
import type { Endpoint } from '../endpoint/endpoint.js';
import type { MeshCore } from '../mesh-core.js';
import type { Service } from '../service.js';
import type { Backend } from '../routing/backend.js';
import type { RoutePlan } from '../routing/plan.js';
import type { RequestFacts } from '../config/route-match.js';
import type { LATER, TransportAttempt } from '../transport/attempt-context.js';
import { IDEMPOTENT_METHODS } from '../transport/http.js';
import { requestHeader, withHeader, type RequestHeaders } from '../transport/request-headers.js';
import type { AttemptResponse } from './response.js';
import { sinkFor, type AnyHandler } from './sink.js';
import { undiciTransport } from './transport.js';

/** The members of undici's `DispatchOptions` the mesh reads; the rest passes through to the pool as it is. */
export interface DispatchOptions {
  origin?: string | URL;
  path: string;
  method?: string;
  headers?: RequestHeaders;
  body?: unknown;
  idempotent?: boolean;
  upgrade?: string | null;
  [key: string]: unknown;
}

/**
 * Sends one attempt: dispatches the call's options (`attempt.request`) to `endpoint` with a fresh response
 * handler, which answers the attempt when the head arrives; returns {@link LATER}. One function per dispatcher
 * and scheme, not a closure per request.
 */
export type SendAttempt = (endpoint: Endpoint, attempt: TransportAttempt) => typeof LATER;

/**
 * Per backend (a service's, or a route's, in one configuration), the settings of a request without a hash key,
 * by (idempotent, replayable): built once, not per request. A WeakMap, so a replaced configuration or a retired
 * service takes its entry with it.
 */
const settingsCache = new WeakMap<Backend, (CallSettings | undefined)[]>();

function settingsFor(target: Backend, idempotent: boolean, replayable: boolean, hashKey: string | undefined): CallSettings {
  if (hashKey !== undefined) return callSettings(target.policy, {}, undefined, hashKey, idempotent, replayable);
  let cached = settingsCache.get(target);
  if (cached === undefined) settingsCache.set(target, (cached = []));
  const slot = (idempotent ? 1 : 0) + (replayable ? 2 : 0);
  return (cached[slot] ??= callSettings(target.policy, {}, undefined, undefined, idempotent, replayable));
}

/**
 * Whether a request body can be sent again: text and bytes can; a stream, an async iterable or anything else
 * is read once, so such a request is never replayed or hedged (as for mesh.fetch).
 */
function replayableBody(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer;
}

/**
 * One undici dispatch run as a mesh call: the origin's hostname is the service; each attempt goes to the
 * endpoint the mesh picks, through `send`. The idempotency rule is the method's (RFC 9110), or undici's own
 * `idempotent` option when the caller set it. The caller's handler is told of the call's result only, never
 * of a retried or hedged-away attempt. The caller's abort (its signal, fetch's abort) stops the call.
 */
export function dispatchThroughMesh(core: MeshCore, service: string, opts: DispatchOptions, handler: AnyHandler, send: SendAttempt): boolean {
  const sink = sinkFor(handler);
  let svc: Service;
  try {
    if (opts.upgrade || opts.method === 'CONNECT') {
      throw new TypeError('proxyless/undici: upgrade and CONNECT requests do not go through the mesh');
    }
    svc = core.service(service);
  } catch (error) {
    sink.refuse(error);
    return true;
  }
  const method = typeof opts.method === 'string' ? opts.method : 'GET';
  const plan = svc.plan;
  let target = plan.whole;
  let route: RoutePlan | undefined;
  if (plan.routes !== undefined) {
    // Routes match here as on mesh.fetch. An injected abort fails the dispatch with FaultInjectedError (no
    // synthetic response on this path), and requests are not mirrored from it.
    const facts = dispatchFacts(opts.path, method, opts.headers);
    route = plan.match(facts);
    if (route !== undefined) target = route.chooseFor(facts, undefined);
  }
  const policy = target.policy;
  const idempotent =
    typeof opts.idempotent === 'boolean' ? opts.idempotent : IDEMPOTENT_METHODS.has(method) || IDEMPOTENT_METHODS.has(method.toUpperCase());
  const hashKey = policy.hashHeader === undefined ? undefined : requestHeader(opts.headers, policy.hashHeader);
  const settings = settingsFor(target, idempotent, replayableBody(opts.body), hashKey);
  const call = new Call(core.env, target, settings, undiciTransport, send as unknown as Call['send']);
  if (route !== undefined) call.fault = route.drawFault();
  sink.opts = policy.host === 'service' ? { ...opts, headers: withHeader(opts.headers, 'host', service) } : opts;
  call.request = sink;
  // Before begin(): an abort while the caller is handed its abort stops the call, which then sends nothing.
  sink.call = call;
  try {
    sink.begin();
  } catch (error) {
    sink.error(error); // the caller's onConnect threw: nothing is sent
    return true;
  }
  target.stack.run(call).then(
    (value) => (value as AttemptResponse).commit(sink),
    // A call can still fail after a success was handed over (p-retry checks its signal once more): the
    // response then stops streaming too.
    (error: unknown) => sink.fail(error),
  );
  return true;
}

/** The facts routes match on, from undici's dispatch options (path with its query, method, headers). */
function dispatchFacts(rawPath: string, method: string, headers: RequestHeaders): RequestFacts {
  const q = rawPath.indexOf('?');
  let params: URLSearchParams | undefined;
  return {
    path: q < 0 ? rawPath : rawPath.slice(0, q),
    method: method.toUpperCase(),
    header: (name) => requestHeader(headers, name),
    query(name) {
      if (q < 0) return undefined;
      params ??= new URLSearchParams(rawPath.slice(q + 1));
      return params.get(name) ?? undefined;
    },
  };
}
