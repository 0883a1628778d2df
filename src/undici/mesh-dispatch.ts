import { Call } from '../call/call.js';
import { callSettings, type CallSettings } from '../call/settings.js';
import type { Endpoint } from '../endpoint/endpoint.js';
import type { MeshCore } from '../mesh-core.js';
import type { Service } from '../service.js';
import type { Backend } from '../routing/backend.js';

import { requestFacts, type RequestFacts } from '../config/route-match.js';
import type { LATER, TransportAttempt } from '../transport/attempt-context.js';
import { IDEMPOTENT_METHODS } from '../transport/http.js';
import { headerObjectWithout, requestHeader, withHeader, type RequestHeaders } from '../transport/request-headers.js';
import type { AttemptResponse } from './response.js';
import { sinkFor, type AnyHandler, type CallerSink } from './sink.js';
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
 *
 * A routed service that discovery has not answered yet waits for that answer before its route's backend is
 * chosen, as mesh.call and mesh.fetch do: a split passes the share of a backend without endpoints on, and a
 * failover goes to the next priority, which only the list can tell. The caller is handed its abort first (it
 * may abort while waiting: it then hears its abort at once, and nothing is sent); returns true either way.
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
  if (svc.ready || svc.plan.routes === undefined) {
    const call = planCall(core, svc, opts, sink, send);
    // Before begin(): an abort while the caller is handed its abort stops the call, which then sends nothing.
    sink.call = call;
    try {
      sink.begin();
    } catch (error) {
      sink.error(error); // the caller's onConnect threw: nothing is sent
      return true;
    }
    run(call, sink);
    return true;
  }
  dispatchWhenDiscovered(core, svc, opts, sink, send);
  return true;
}

/**
 * Cold and routed: the caller gets its abort now; the call is planned once discovery answered (or failed: the
 * call then fails as one on a service without a list does). A function of its own, so that the closure it needs
 * costs the warm path nothing.
 */
function dispatchWhenDiscovered(core: MeshCore, svc: Service, opts: DispatchOptions, sink: CallerSink, send: SendAttempt): void {
  const waiting = new DiscoveryWait(sink);
  sink.call = waiting;
  try {
    sink.begin();
  } catch (error) {
    sink.error(error); // the caller's onConnect threw: nothing is sent
    return;
  }
  if (waiting.stopped) return; // it aborted inside onConnect, and has heard so
  const go = (): void => {
    if (waiting.stopped) return;
    let call: Call;
    try {
      call = planCall(core, svc, opts, sink, send);
    } catch (error) {
      sink.fail(error);
      return;
    }
    sink.call = call;
    run(call, sink);
  };
  let loading: Promise<void> | undefined;
  try {
    loading = svc.prepare(core.env.clock.now());
  } catch {
    loading = undefined; // the call's own wait for endpoints meets the failure again, and reports it
  }
  if (loading === undefined) go();
  else loading.then(go, go);
}

/**
 * The caller's abort while a cold service waits for discovery: no call exists yet, so there is none to stop;
 * the caller hears its abort at once, and the call is never made.
 */
class DiscoveryWait {
  stopped = false;

  constructor(private readonly sink: CallerSink) {}

  stop(reason: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.sink.fail(reason);
  }
}

/**
 * The call of one dispatch: its route (matched here as on mesh.fetch) and backend, settings, fault, and the
 * options each attempt dispatches (`Host` set when the target's policy says `host: 'service'`: the target's
 * service, which a `{ service }` backend makes another one; the time left, with the `deadline` policy on).
 * No per-call mesh option is read here (a dispatch carries undici's options only), so no per-call `deadline`
 * either: the policy's `totalMs` bounds the call.
 */
function planCall(core: MeshCore, svc: Service, opts: DispatchOptions, sink: CallerSink, send: SendAttempt): Call {
  const method = typeof opts.method === 'string' ? opts.method : 'GET';
  const plan = svc.plan;
  // Routes match here as on mesh.fetch. An injected abort fails the dispatch with FaultInjectedError (no synthetic
  // response on this path), and requests are not mirrored from it.
  const facts = plan.routes === undefined ? undefined : requestFactsOf(opts, method);
  const route = facts === undefined ? undefined : plan.match(facts);
  const target = route === undefined ? plan.whole : route.chooseFor(facts!, undefined);
  const policy = target.policy;
  const idempotent =
    typeof opts.idempotent === 'boolean' ? opts.idempotent : IDEMPOTENT_METHODS.has(method) || IDEMPOTENT_METHODS.has(method.toUpperCase());
  const hashKey = policy.hashHeader === undefined ? undefined : requestHeader(opts.headers, policy.hashHeader);
  const settings = settingsFor(target, idempotent, replayableBody(opts.body), hashKey);
  const call = new Call(core.env, target, settings, undiciTransport, send as unknown as Call['send']);
  if (route !== undefined) call.drawn = { fault: route.drawFault(), mirror: undefined };
  const sent = policy.host === 'service' ? { ...opts, headers: withHeader(opts.headers, 'host', target.name) } : opts;
  // The `deadline` policy: each attempt adds the time left (CallerSink.optionsFor) to headers without the caller's.
  const deadline = policy.deadline;
  if (deadline === false) sink.opts = sent;
  else {
    sink.opts = { ...sent, headers: headerObjectWithout(sent.headers, deadline.header) };
    sink.deadlineHeader = deadline.header;
  }
  // Telemetry's `traceparent` per attempt (CallerSink.optionsFor), when it is on.
  if (core.env.instrument !== undefined) sink.traced = true;
  call.request = sink;
  return call;
}

/** What routes match a dispatch on. A function of its own: its closure then costs only routed dispatches. */
function requestFactsOf(opts: DispatchOptions, method: string): RequestFacts {
  return requestFacts(opts.path, method, (name) => requestHeader(opts.headers, name));
}

function run(call: Call, sink: CallerSink): void {
  // planCall made the call for a backend of the service's plan: its stack runs it.
  (call.target as Backend).stack.run(call).then(
    (value) => (value as AttemptResponse).commit(sink),
    // A call can still fail after a success was handed over (p-retry checks its signal once more): the
    // response then stops streaming too.
    (error: unknown) => sink.fail(error),
  );
}
