import { Call } from './call/call.js';
import type { CallEnv } from './call/env.js';
import type { AttemptFn } from './transport/attempt-context.js';
import { DEFAULT_DISCOVERY } from './defaults.js';
import type { ConfigSource, MeshConfigInput, MeshConfigView } from './config/types.js';
import { validateRouting } from './config/validate-config.js';
import { MeshController } from './mesh-config.js';
import { callEntries } from './mesh-calls.js';
import { Mirrors } from './routing/mirror.js';
import { DiscoveryCache } from './discovery/cache.js';
import type { Registry } from './discovery/registry.js';
import { MeshClosedError } from './errors.js';
import type { MeshEventName, MeshEvents } from './events.js';
import { MeshEmitter } from './observe/emitter.js';
import { createAdminHandler, type AdminHandler, type AdminHandlerOptions } from './observe/admin.js';
import { subscribeMetrics } from './observe/metrics-subscriber.js';
import { renderMetrics } from './observe/prometheus.js';
import { metricsFormat, type MetricsOptions } from './observe/exposition-sink.js';
import { RETIRED_GRACE_MS } from './observe/service-metrics.js';
import { BreakerClock } from './resilience/breaker.js';
import { takeSnapshot, type MeshSnapshot } from './observe/snapshot.js';
import type { CallOptions, MeshOptions, MeshRequestInit } from './options.js';
import { Service, type ServiceConfig } from './service.js';
import { ServiceTable } from './service-table.js';
import { systemClock } from './util/clock.js';
import { durationKey, TimeoutList } from './util/timeout-list.js';
import { defaultRng } from './util/random.js';
import { validateMeshOptions } from './validate.js';
import { registerCore, type MeshCore } from './mesh-core.js';
import type { Endpoint } from './endpoint/endpoint.js';
import { serviceNameProblem } from './util/service-name.js';
import { warmup } from './warmup.js';
import { definedOnly } from './util/defined.js';


/** A client bound to one service. */
export interface ServiceClient {
  /** The service this client calls. */
  readonly name: string;
  /**
   * fetch with a path: `users.fetch('/v1/me')` is `mesh.fetch('http://users/v1/me')`.
   * @example await mesh.service('users').fetch('/v1/me', { headers: { accept: 'application/json' } })
   */
  fetch(path: string, init?: MeshRequestInit): Promise<Response>;
  /** `mesh.call` for this service. */
  call<T>(fn: AttemptFn<T>, options?: CallOptions): Promise<T>;
}

/** The mesh: one per process is typical. */
export interface Mesh {
  /**
   * fetch, drop-in: the URL's hostname is the logical service. HTTP error statuses resolve with the
   * last Response; network failures reject.
   * @example await mesh.fetch('http://users/v1/me')
   */
  fetch(input: string | URL | Request, init?: MeshRequestInit): Promise<Response>;
  /**
   * A client scoped to one service. Throws `InvalidServiceNameError` for a bad name, and `MeshClosedError` after
   * {@link Mesh.close} (a client taken before then rejects its calls with `MeshClosedError`).
   */
  service(name: string): ServiceClient;
  /**
   * Any async call, any protocol. `fn` gets the chosen endpoint and the attempt's context (its signal).
   * Not idempotent unless `idempotent: true`: a thrown error is then retried only when it proves the
   * request never left (connection refused, DNS failure).
   * @example await mesh.call('redis', (ep, { signal }) => ping(ep.host, ep.port, signal), { idempotent: true })
   */
  call<T>(service: string, fn: AttemptFn<T>, options?: CallOptions): Promise<T>;
  /**
   * Listens to an event (see {@link MeshEvents}). A listener that throws is reported on `listener-error`.
   * Throws `MeshClosedError` after {@link Mesh.close}: a closed mesh emits nothing, so the listener would never run.
   * @example mesh.on('ejected', ({ service, endpoint, durationMs }) => log.warn({ service, endpoint: endpoint.id, durationMs }))
   */
  on<E extends MeshEventName>(event: E, listener: (payload: MeshEvents[E]) => void): Mesh;
  /** Listens to the next occurrence of an event only. Throws `MeshClosedError` after {@link Mesh.close}, as `on` does. */
  once<E extends MeshEventName>(event: E, listener: (payload: MeshEvents[E]) => void): Mesh;
  /** Removes a listener added with `on` or `once` (a no-op after {@link Mesh.close}, which removed them all). */
  off<E extends MeshEventName>(event: E, listener: (payload: MeshEvents[E]) => void): Mesh;
  /** Plain JSON of every service and endpoint. */
  snapshot(): MeshSnapshot;
  /**
   * Prometheus text exposition (format 0.0.4) of every service and endpoint: request and attempt counters by
   * outcome, duration histograms, endpoint and breaker gauges. Every name starts `proxyless_`; the README's
   * "Operating it" lists them; a named mesh (`createMesh({ name })`) puts a `mesh` label first on every series.
   * `{ format: 'openmetrics' }` gives OpenMetrics 1.0 text instead (ending in `# EOF`). Serve it yourself, or
   * through {@link Mesh.adminHandler}; to join an app's prom-client registry, use `registerMeshMetrics`.
   * @example res.setHeader('content-type', 'text/plain; version=0.0.4').end(mesh.metrics())
   * @example res.setHeader('content-type', OPENMETRICS_CONTENT_TYPE).end(mesh.metrics({ format: 'openmetrics' }))
   */
  metrics(options?: MetricsOptions): string;
  /**
   * A read-only `(req, res)` handler for `node:http`: `/metrics`, `/snapshot` (JSON), `/` (a live HTML
   * dashboard), 404 for anything else.
   * @example http.createServer(mesh.adminHandler()).listen(9901, '127.0.0.1')
   */
  adminHandler(options?: AdminHandlerOptions): AdminHandler;
  /**
   * Replaces `defaults`, `services`, `routes` and `subsets` as a whole (what is left out returns to its default),
   * atomically: calls in flight finish under the configuration they started with, every call that starts after
   * this returns uses the new one. Validated first: a bad option throws a `TypeError` naming it, and nothing
   * changes. Endpoint state (latency, breakers, ejection, slow start) survives for endpoints that remain. What a
   * config source sets still wins for the services it governs. Returns the new version.
   * @example mesh.configure({ routes: { users: [{ name: 'split', backends: [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }] }] }, subsets })
   */
  configure(config: MeshConfigInput): number;
  /** The configuration in force, as plain JSON, with its version (routes from config sources included). */
  config(): MeshConfigView;
  /**
   * Resolves these services now, instead of on their first call, all at once, and settles when every one has
   * answered. It rejects when a service ends with nothing usable, after trying every name: with that service's
   * error (`NoEndpointsError` when discovery lists no endpoint, `DiscoveryError` when the registry failed,
   * `InvalidServiceNameError`), or with an `AggregateError` of them all, in the order given, when several fail.
   * A service whose routes send to other services is warmed through them. After {@link Mesh.close} it rejects
   * with `MeshClosedError`.
   * @example await mesh.warmup(['users', 'billing']) // before the readiness probe answers 200
   */
  warmup(services: readonly string[]): Promise<void>;
  /**
   * Stops watches and timers, aborts calls in flight (they reject with `MeshClosedError`), closes the registry.
   * Idempotent: a second call returns the first one's promise, which settles once everything is closed.
   * Afterwards every method that would start work refuses with `MeshClosedError`, as a closed undici Agent does:
   * `fetch`, `call` and a service client's calls and `warmup` reject; `service`, `on`, `once` and `configure`
   * throw. What reads the state stays usable for a last look: `snapshot`, `metrics`, `config`, `adminHandler`, `off`.
   * @example process.once('SIGTERM', () => void mesh.close())
   */
  close(): Promise<void>;
}

/**
 * Creates a mesh. Every option is validated here, at once; a bad one throws a `TypeError` naming it.
 * Nothing is resolved or connected until the first call for a service (or `warmup`).
 *
 * @example
 * const mesh = createMesh({
 *   registry: staticRegistry({ users: ['127.0.0.1:8081', '127.0.0.1:8082'] }),
 *   defaults: { retry: { retries: 2 }, timeout: { attemptMs: 2_000, totalMs: 5_000 } },
 * });
 */
export function createMesh(options: MeshOptions): Mesh {
  validateMeshOptions(options);
  const registry: Registry = options.registry;
  const clock = options.clock ?? systemClock;
  const rng = options.random ?? defaultRng;
  // Read at each call, so a test or an instrumentation that swaps globalThis.fetch later is honoured.
  const fetchImpl = (options.fetch ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init))) as (
    input: string,
    init: RequestInit,
  ) => Promise<Response>;
  validateRouting(options.routes, options.subsets);
  const events = new MeshEmitter();
  const maxServices = options.discovery?.maxServices ?? DEFAULT_DISCOVERY.maxServices;
  const breakerClock = new BreakerClock();
  let closed = false;
  let closing: Promise<void> | undefined;
  const removedListeners = new Set<(service: string, removed: readonly Endpoint[]) => void>();
  const closeListeners = new Set<() => void | Promise<void>>();
  const notifyRemoved = (service: string, states: readonly { readonly endpoint: Endpoint }[]): void => {
    if (removedListeners.size === 0) return;
    const endpoints = states.map((s) => s.endpoint);
    for (const listener of [...removedListeners]) listener(service, endpoints);
  };
  subscribeMetrics(events, (name) => table.get(name)?.metrics, clock);
  // A stale discovery flag holds this long after the latest error: failing refreshes repeat well within it.
  const staleHoldMs = 2 * Math.max(options.discovery?.refreshMs ?? DEFAULT_DISCOVERY.refreshMs, 60_000);

  const discovery = new DiscoveryCache(
    registry,
    { ...DEFAULT_DISCOVERY, ...definedOnly(options.discovery), clock },
    {
      update(name, list) {
        const svc = table.get(name);
        if (!svc) return;
        const first = !svc.ready;
        const { added, removed, updated } = svc.applyEndpoints(list);
        const changed = added.length > 0 || removed.length > 0 || updated.length > 0;
        if (removed.length > 0) notifyRemoved(name, removed);
        if ((first || changed) && events.has('discovery-update')) {
          events.emit('discovery-update', {
            service: name,
            endpoints: list,
            added: added.map((s) => s.endpoint),
            removed: removed.map((s) => s.endpoint),
            updated: updated.map((s) => s.endpoint),
          });
        }
      },
      error(name, error, stale) {
        if (events.has('discovery-error')) events.emit('discovery-error', { service: name, error, stale });
      },
      evicted(name) {
        table.evicted(name);
      },
    },
  );

  const attemptLists = new Map<number, TimeoutList>();
  const deadlineLists = new Map<number, TimeoutList>();
  const listFor = (lists: Map<number, TimeoutList>, ms: number): TimeoutList => {
    let list = lists.get(ms);
    if (list === undefined) lists.set(ms, (list = new TimeoutList(clock)));
    return list;
  };
  const env: CallEnv = {
    clock,
    events,
    isClosed: () => closed,
    attemptTimeouts: (ms) => listFor(attemptLists, ms),
    // Keyed by durationKey: per-call deadlines give every call its own total, which must not grow a list per call.
    callDeadlines: (ms) => listFor(deadlineLists, durationKey(ms)),
    instrument: undefined, // set by withTelemetry
  };

  const controller: MeshController = new MeshController(
    { defaults: options.defaults, services: options.services, routes: options.routes, subsets: options.subsets },
    events,
    (pending): (() => readonly string[]) => {
      const staged = [...table.values()].map((svc: Service) => {
        const config: ServiceConfig = controller.store.serviceConfig(svc.name, pending);
        return { svc, config, plan: svc.planFor(config) };
      });
      return () => {
        for (const { svc, config, plan } of staged) svc.reconfigure(config, plan);
        return staged.map(({ svc }) => svc.name);
      };
    },
  );
  const mirrors = new Mirrors(env);
  const plans = { rng, events, zone: options.zone, service: (name: string) => serviceFor(name) };

  // The cache's listener reads `table` only when discovery answers, after this line has run.
  const table: ServiceTable = new ServiceTable(
    maxServices,
    (name) => new Service(name, controller.store.serviceConfig(name), { discovery, clock, events, breakerClock, random: rng, plans }),
    (svc) => {
      discovery.forget(svc.name);
      // Its endpoints leave with it: what adapters keep per endpoint (pools, clients) is closed.
      if (svc.size > 0) notifyRemoved(svc.name, svc.endpoints.states);
    },
  );
  const serviceFor = (name: string): Service => table.obtain(name);

  const { call, fetch: fetchVia } = callEntries({ env, clock, fetchImpl, mirrors, service: serviceFor });

  const mesh: Mesh = {
    fetch: fetchVia,
    call,
    service(name) {
      if (closed) throw new MeshClosedError(String(name));
      serviceFor(name); // validates the name now, not at the first call
      return {
        name,
        fetch(path, init) {
          if (typeof path !== 'string' || !path.startsWith('/')) {
            return Promise.reject(new TypeError(`service('${name}').fetch(path): path must start with '/'`));
          }
          return fetchVia(`http://${name}${path}`, init);
        },
        call: (fn, callOptions) => call(name, fn, callOptions),
      };
    },
    on(event, listener) {
      // A listener added after close() would never hear anything: say so, as configure() does.
      if (closed) throw new MeshClosedError('*');
      events.on(event, listener);
      return mesh;
    },
    once(event, listener) {
      if (closed) throw new MeshClosedError('*');
      events.once(event, listener);
      return mesh;
    },
    off(event, listener) {
      events.off(event, listener);
      return mesh;
    },
    configure: (config) => controller.configure(config),
    config: () => controller.store.view(),
    snapshot: () => takeSnapshot(table.services, clock.now(), controller.store.view()),
    metrics: (metricsOptions) => {
      const format = metricsFormat(metricsOptions, 'mesh.metrics(options)');
      return renderMetrics(table.values(), { now: clock.now(), retiredGraceMs: RETIRED_GRACE_MS, staleHoldMs }, format, options.name);
    },
    adminHandler: (adminOptions) => createAdminHandler(mesh, adminOptions),
    warmup: (names) =>
      warmup(names, {
        service: serviceFor,
        routes: (name) => controller.store.serviceConfig(name).routes,
        now: () => clock.now(),
        isClosed: () => closed,
      }),
    // One shutdown, shared: a second close() (a SIGTERM handler and a test's afterEach, say) settles when the
    // first has closed everything, as undici's Agent.close() does, rather than at once while sockets are still open.
    close: () => (closing ??= shutdown()),
  };
  async function shutdown(): Promise<void> {
    closed = true;
    // Every call is in a deadline list from admission until it is over, a streaming body included.
    const calls: Call[] = [];
    for (const list of deadlineLists.values()) calls.push(...(list.entries() as Call[]));
    for (const c of calls) c.stop(new MeshClosedError(c.service));
    mirrors.close();
    const controlling = controller.close();
    discovery.close();
    const services = [...table.values()].map((svc) => svc.close(new MeshClosedError(svc.name)));
    breakerClock.close();
    for (const list of attemptLists.values()) list.clear();
    for (const list of deadlineLists.values()) list.clear();
    events.removeAll();
    const closingListeners = [...closeListeners].map((listener) => Promise.resolve().then(listener));
    closeListeners.clear();
    removedListeners.clear();
    await Promise.allSettled([...closingListeners, ...services, controlling]);
    await registry.close?.();
  }
  const core: MeshCore = {
    env,
    service: serviceFor,
    async knows(name) {
      if (serviceNameProblem(name) !== undefined) return false;
      if (controller.store.names(name)) return true;
      const svc = table.get(name);
      if (svc !== undefined && svc.ready && svc.size > 0) return true;
      const known = await discovery.load(name).then((list) => list.length > 0, () => false);
      if (!known && table.get(name) === undefined) discovery.forget(name);
      return known;
    },
    onRemoved(listener) {
      removedListeners.add(listener);
      return () => removedListeners.delete(listener);
    },
    onClose(listener) {
      closeListeners.add(listener);
      return () => closeListeners.delete(listener);
    },
    isClosed: () => closed,
    name: options.name,
    // This mesh's series, read at scrape time.
    metricsModel: () => ({ name: options.name, services: table.values(), options: { now: clock.now(), retiredGraceMs: RETIRED_GRACE_MS, staleHoldMs } }),
  };
  registerCore(mesh, core);
  // Sources start with the mesh, in a microtask: the caller's `config-error` listener, added after createMesh
  // returns, hears a source that fails at once.
  const sources = options.config;
  if (sources !== undefined) {
    queueMicrotask(() => {
      if (!closed) controller.watch(Array.isArray(sources) ? sources : [sources as ConfigSource]);
    });
  }
  return mesh;
}
