import { Call } from './call/call.js';
import type { CallEnv } from './call/env.js';
import { callSettings, checkOptionKeys, optionKeys, type CallSettings } from './call/settings.js';
import { callFacts } from './config/route-match.js';
import { MeshClosedError } from './errors.js';
import type { CallOptions, MeshRequestInit } from './options.js';
import type { Backend } from './routing/backend.js';
import { fetchFacts } from './routing/facts.js';
import type { Mirrors } from './routing/mirror.js';
import type { RoutePlan } from './routing/plan.js';
import type { Service } from './service.js';
import type { AttemptFn } from './transport/attempt-context.js';
import { callTransport } from './transport/call.js';
import { FETCH_INIT_KEYS, headerValue, planFetch, sendThrough, sendWithHeaders, type FetchPlan } from './transport/fetch.js';
import type { Clock } from './util/clock.js';

const CALL_KEYS = optionKeys(['route']);
const FETCH_KEYS = optionKeys(FETCH_INIT_KEYS);

/** What the mesh's two entry points need from it. */
export interface CallEntryDeps {
  readonly env: CallEnv;
  readonly clock: Clock;
  readonly fetchImpl: (input: string, init: RequestInit) => Promise<Response>;
  readonly mirrors: Mirrors;
  /** The service of this name (made on first use). */
  readonly service: (name: string) => Service;
}

/** The mesh's `call` and `fetch`. */
export interface CallEntries {
  call<T>(name: string, fn: AttemptFn<T>, callOptions?: CallOptions): Promise<T>;
  fetch(input: string | URL | Request, init?: MeshRequestInit): Promise<Response>;
}

/**
 * `mesh.call` and `mesh.fetch`, from their arguments to the first step of the call stack: they find the service,
 * read its plan once, match routes and choose a backend (or take the whole service), resolve the call's settings,
 * and run the backend's stack. Made once per mesh; nothing here is made per call but the call itself.
 */
export function callEntries(deps: CallEntryDeps): CallEntries {
  const { env, clock, fetchImpl, mirrors } = deps;
  const serviceFor = deps.service;

/**
 * A routed call's fault and mirror, drawn now; the route step applies them once the call is admitted. Its own
 * function, so that the call path of an unrouted call creates no closure (a closure there costs a context object
 * per call). A mirror to another service goes through that service's dispatcher (its tls, its Host).
 */
const routed = (c: Call, route: RoutePlan, plan: FetchPlan | undefined): Call => {
  const fault = route.drawFault();
  const mirror = plan === undefined || plan.replayable ? route.drawMirror() : undefined;
  if (fault === undefined && mirror === undefined) return c;
  let fire: { fire(): void } | undefined;
  if (mirror !== undefined) {
    let send = c.send;
    if (plan !== undefined) {
      const d = serviceFor(mirror.name).fetchDispatcher;
      send = d === undefined ? plan.send : sendThrough(fetchImpl, plan, d);
    }
    fire = mirrors.prepare(mirror, send, c.transport, route.stats);
  }
  c.drawn = { fault, mirror: fire };
  return c;
};

/**
 * A call to a service with routes and no endpoint list yet runs once discovery first answers (or fails: the
 * call's endpoints step then reports it): a split passes the share of a backend without endpoints on, which it
 * can only know then.
 */
const afterDiscovery = <T>(svc: Service, run: () => Promise<T>, deadline: unknown): Promise<T> => {
  const loading = svc.prepare(clock.now());
  if (loading === undefined) return run();
  if (typeof deadline !== 'number') return loading.then(run, run); // none (or invalid: the call's checks say so)
  // A per-call deadline bounds this wait too: once it passes, the call goes on and admission fails it at once.
  const left = deadline - Date.now();
  if (!(left > 0)) return run();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, Math.min(left, 2_147_483_647));
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    loading.then(done, done);
  }).then(run);
};
// Functions of their own: a closure in `call` or `fetchVia` would cost every call a context object.
const callAfterDiscovery = <T>(svc: Service, fn: AttemptFn<T>, callOptions: CallOptions | undefined): Promise<T> =>
  afterDiscovery(svc, () => callRouted(svc, fn, callOptions), callOptions?.deadline);
const fetchAfterDiscovery = (svc: Service, plan: FetchPlan, input: string | URL | Request, init: MeshRequestInit | undefined): Promise<Response> =>
  afterDiscovery(svc, () => fetchRouted(svc, plan, input, init), init?.deadline);

// The unrouted path stays in `call` and `fetchVia` themselves, with no closure and no extra frame: what a service
// without routes pays for routes is one property read.
const call = <T>(name: string, fn: AttemptFn<T>, callOptions?: CallOptions): Promise<T> => {
  try {
    if (env.isClosed()) throw new MeshClosedError(String(name));
    if (typeof fn !== 'function') throw new TypeError('mesh.call(service, fn): fn must be a function');
    const svc = serviceFor(name);
    const plan = svc.plan;
    if (plan.routes !== undefined) return svc.ready ? callRouted(svc, fn, callOptions) : callAfterDiscovery(svc, fn, callOptions);
    const target = plan.whole;
    let settings = target.plainSettings;
    if (callOptions !== undefined) settings = callSettingsOf(target, checkCallOptions(callOptions));
    return target.stack.run(new Call(env, target, settings, callTransport, fn as AttemptFn<unknown>)) as Promise<T>;
  } catch (error) {
    return Promise.reject(error);
  }
};

const callRouted = <T>(svc: Service, fn: AttemptFn<T>, callOptions: CallOptions | undefined): Promise<T> => {
  try {
    if (callOptions !== undefined) checkCallOptions(callOptions);
    const plan = svc.plan;
    const facts = callFacts(callOptions?.route);
    const route = plan.match(facts);
    // Its calls may all go to another service (which choosing may make): it must not look idle to the table.
    svc.lastCallAt = clock.now();
    const target = route === undefined ? plan.whole : route.chooseFor(facts, callOptions?.hashKey);
    const settings = callOptions === undefined ? target.plainSettings : callSettingsOf(target, callOptions);
    const c = new Call(env, target, settings, callTransport, fn as AttemptFn<unknown>);
    return target.stack.run(route === undefined ? c : routed(c, route, undefined)) as Promise<T>;
  } catch (error) {
    return Promise.reject(error);
  }
};

const fetchVia = (input: string | URL | Request, init?: MeshRequestInit): Promise<Response> => {
  try {
    if (init !== undefined && init !== null) checkOptionKeys(init, FETCH_KEYS, 'init');
    const plan = planFetch(fetchImpl, input, init ?? undefined);
    if (env.isClosed()) throw new MeshClosedError(plan.service);
    const svc = serviceFor(plan.service);
    if (svc.plan.routes !== undefined) return svc.ready ? fetchRouted(svc, plan, input, init) : fetchAfterDiscovery(svc, plan, input, init);
    return fetchTo(svc, svc.plan.whole, plan, input, init, undefined);
  } catch (error) {
    return Promise.reject(error);
  }
};

const fetchRouted = (svc: Service, plan: FetchPlan, input: string | URL | Request, init: MeshRequestInit | undefined): Promise<Response> => {
  try {
    const servicePlan = svc.plan;
    const facts = fetchFacts(input, init ?? undefined, plan.rest, plan.base.method);
    const route = servicePlan.match(facts);
    svc.lastCallAt = clock.now();
    const target = route === undefined ? servicePlan.whole : route.chooseFor(facts, init?.hashKey);
    return fetchTo(svc, target, plan, input, init, route);
  } catch (error) {
    return Promise.reject(error);
  }
};

/** Runs a planned fetch against a backend (the whole service's, or the one its route chose). */
const fetchTo = (
  svc: Service,
  target: Backend,
  plan: FetchPlan,
  input: string | URL | Request,
  init: MeshRequestInit | undefined,
  route: RoutePlan | undefined,
): Promise<Response> => {
  const hashHeader = target.policy.hashHeader;
  const hashKey = init?.hashKey ?? (hashHeader === undefined ? undefined : headerValue(input, init, hashHeader));
  const settings = callSettings(target.policy, init ?? {}, plan.signal, hashKey, plan.idempotent, plan.replayable);
  // A { service } backend is another service: its own dispatcher (its tls, its Host), if it has one.
  const dispatcher = target.name === svc.name ? svc.fetchDispatcher : serviceFor(target.name).fetchDispatcher;
  // Headers per attempt, the `deadline` policy's and telemetry's `traceparent`: with both off (the default), the
  // plan's own sender, untouched.
  const deadline = target.policy.deadline;
  const traced = env.instrument !== undefined;
  const send =
    deadline !== false || traced
      ? sendWithHeaders(fetchImpl, plan, dispatcher, deadline === false ? undefined : deadline.header, traced)
      : dispatcher === undefined
        ? plan.send
        : sendThrough(fetchImpl, plan, dispatcher);
  const c = new Call(env, target, settings, plan.transport, send);
  c.request = plan; // what telemetry reads of a fetch (method, URL); the fetch transport itself reads nothing here
  return target.stack.run(route === undefined ? c : routed(c, route, plan)) as Promise<Response>;
};

  return { call, fetch: fetchVia };
}

/** Checks a `mesh.call` options object: its type, its keys, its `route`. Returns it. */
function checkCallOptions(options: CallOptions): CallOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('mesh.call options must be an object');
  checkOptionKeys(options, CALL_KEYS, 'options');
  routeOption(options);
  return options;
}

/** A call's settings from its (checked) options, over its target's policy. */
function callSettingsOf(target: Backend, options: CallOptions): CallSettings {
  return callSettings(target.policy, options, options.signal ?? undefined, options.hashKey, false, true);
}

/** `mesh.call`'s `route` option (what routes match on), checked: `{ path?, method?, headers? }`. */
function routeOption(options: CallOptions): CallOptions['route'] {
  const route = options.route;
  if (route === undefined) return undefined;
  if (route === null || typeof route !== 'object') throw new TypeError('options.route must be an object { path?, method?, headers? }');
  for (const key of ['path', 'method'] as const) {
    if (route[key] !== undefined && typeof route[key] !== 'string') throw new TypeError(`options.route.${key} must be a string`);
  }
  if (route.headers !== undefined && (route.headers === null || typeof route.headers !== 'object')) {
    throw new TypeError('options.route.headers must be an object of header names to values');
  }
  return route;
}
