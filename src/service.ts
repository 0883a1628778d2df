import type { Balancer, PickRequest } from './balancer/balancer.js';
import type { Step } from './call/step.js';
import { composeCallStack } from './call/stack.js';
import { plainSettings, type CallSettings } from './call/settings.js';
import type { CallTarget } from './call/target.js';
import { createBalancer, isBalancerName } from './balancer/create.js';
import { LocalityBalancer } from './balancer/locality.js';
import { SlowStart } from './balancer/slow-start.js';
import { DEFAULT_RTT_MS, EWMA_DECAY_MS } from './defaults.js';
import type { DiscoveryCache } from './discovery/cache.js';
import type { Endpoint } from './endpoint/endpoint.js';
import type { EndpointState } from './endpoint/endpoint-state.js';
import { EndpointSet, type EndpointSetChange } from './endpoint/endpoint-set.js';
import type { ResolvedPolicy } from './options.js';
import { RetryBudget } from './resilience/budget.js';
import { BulkheadQueue } from './resilience/bulkhead.js';
import { LatencyWindow } from './resilience/latency-window.js';
import { ServiceMetrics } from './observe/service-metrics.js';
import type { Rng } from './util/random.js';
import { ServiceHealth, type HealthDeps } from './service-health.js';
import { ServiceDispatcher } from './transport/fetch-dispatcher.js';

/** Shared by every service of a mesh. */
export interface ServiceDeps extends HealthDeps {
  readonly discovery: DiscoveryCache;
  readonly rng: Rng;
  /** The mesh's `zone`: with it, built-in balancers are wrapped for zone-aware balancing (policy `locality`). */
  readonly zone?: string | undefined;
}

/**
 * One logical service: its endpoint set, its balancer, its policy, its counters and its call stack.
 * Discovery pushes lists in through {@link Service.applyEndpoints}; calls run through {@link Service.stack},
 * and see the service only as a {@link CallTarget}.
 */
export class Service implements CallTarget {
  /** The call stack (src/call/stack.ts), composed once for this service. */
  readonly stack: Step = composeCallStack();
  readonly plainSettings: CallSettings;
  /** A balancer of the user's: its picks are checked before use. */
  private readonly custom: boolean;
  readonly endpoints: EndpointSet;
  readonly balancer: Balancer;
  /** Ramps the weight of endpoints added after the first list (policy `slowStart`). */
  readonly slowStart: SlowStart | undefined;
  /** When ramping weights are next due for a recompute: one comparison per pick (Infinity when off or idle). */
  private rampCheckAt = Infinity;
  readonly budget: RetryBudget | undefined;
  readonly health: ServiceHealth;
  /** Recent latencies, kept only when a hedge delay of `'p95'` needs them. */
  latencyWindow: LatencyWindow | undefined;
  /** Calls in flight (the bulkhead counts these). */
  active = 0;
  /** Where calls wait for a slot when the bulkhead is full and `maxQueued` > 0. */
  readonly queue: BulkheadQueue | undefined;
  /** mesh.fetch's dispatcher, when the policy's `tls` or `host: 'service'` needs one. */
  readonly fetchDispatcher: ServiceDispatcher | undefined;
  /** When the latest call was admitted (clock reading): the idlest service is retired first. */
  lastCallAt = 0;
  /** Calls started, and how they ended. */
  calls = 0;
  callFailures = 0;
  /** Counters for `mesh.metrics()` that no other state keeps (call outcomes, durations, governance events). */
  readonly metrics = new ServiceMetrics();
  /** Whether a list was applied at least once. */
  ready = false;
  /** When the last good list arrived (clock reading). */
  updatedAt = 0;
  private loading: Promise<void> | undefined;
  /** Until when the current list is fresh: one number to compare on the call path. */
  private freshUntil = 0;

  constructor(
    readonly name: string,
    readonly policy: ResolvedPolicy,
    private readonly deps: ServiceDeps,
  ) {
    this.endpoints = new EndpointSet({ decayMs: EWMA_DECAY_MS, defaultRttMs: DEFAULT_RTT_MS });
    const spec = policy.balancer;
    const make = (): Balancer => createBalancer(spec, { rng: deps.rng, ringHash: policy.ringHash, maglev: policy.maglev });
    this.balancer =
      deps.zone !== undefined && policy.locality !== false && isBalancerName(spec)
        ? new LocalityBalancer(make, {
            zone: deps.zone,
            overprovisioningFactor: policy.locality.overprovisioningFactor,
            rng: deps.rng,
            onSpill: (spill) => {
              if (deps.events.has('zone-spill')) deps.events.emit('zone-spill', { service: name, ...spill });
            },
          })
        : make();
    this.slowStart = policy.slowStart === false ? undefined : new SlowStart(policy.slowStart);
    const budget = policy.retry === false ? false : policy.retry.budget;
    this.budget = budget ? new RetryBudget(budget.ratio, budget.minPerSecond, budget.ttlMs, deps.clock) : undefined;
    this.queue = policy.maxQueued > 0 ? new BulkheadQueue(policy.maxQueued) : undefined;
    this.health = new ServiceHealth(name, policy, deps, () => this.endpoints.states, (state, now) => {
      if (this.slowStart === undefined) return;
      this.slowStart.begin([state], now);
      this.rampCheckAt = Math.min(this.rampCheckAt, this.slowStart.checkAt);
    });
    if (policy.hedge !== false && policy.hedge.delayMs === 'p95') this.latencyWindow = new LatencyWindow();
    this.plainSettings = plainSettings(policy);
    this.fetchDispatcher = ServiceDispatcher.wanted(policy) ? new ServiceDispatcher(name, policy) : undefined;
    this.custom = !isBalancerName(spec);
  }

  /** How many endpoints discovery lists now. */
  get size(): number {
    return this.endpoints.size;
  }

  /** Takes a list from discovery; endpoints that stay keep their state. */
  applyEndpoints(list: readonly Endpoint[]): EndpointSetChange {
    const now = this.deps.clock.now();
    const change = this.endpoints.apply(list, now);
    for (const state of change.added) this.health.attach(state, now);
    for (const state of change.removed) this.health.detach(state);
    this.metrics.retire(change.removed, now);
    this.health.changed();
    const slowStart = this.slowStart;
    if (slowStart !== undefined) {
      // Envoy ramps hosts that join a running cluster; the first list is the initial set (see slow-start.ts).
      if (this.ready) slowStart.begin(change.added, now);
      slowStart.forget(change.removed);
      slowStart.refresh(now);
      this.rampCheckAt = slowStart.checkAt;
    }
    this.balancer.update?.(this.endpoints.states);
    this.ready = true;
    this.updatedAt = now;
    this.noteFreshness();
    return change;
  }

  /**
   * Makes sure a list is there: the first call awaits discovery (single-flight in the cache); later
   * calls only start a background refresh when the list is past its TTL, and never wait for it.
   */
  prepare(now: number): Promise<void> | undefined {
    if (this.ready) {
      if (now >= this.freshUntil && this.loading === undefined) this.refresh();
      return undefined;
    }
    return (this.loading ??= this.deps.discovery.load(this.name).then(
      (list) => {
        this.loading = undefined;
        if (!this.ready) this.applyEndpoints(list); // served from cache without a fresh resolve
        this.noteFreshness();
      },
      (error: unknown) => {
        this.loading = undefined;
        throw error;
      },
    ));
  }

  /**
   * Discovery dropped this service's list (evicted by `discovery.maxServices`), and with it the watch that
   * kept it current: the next call reloads it (and watches again) instead of trusting it forever.
   */
  markStale(): void {
    this.freshUntil = 0;
  }

  /**
   * Stops every breaker's timers and rejects queued calls (the mesh is closing, or the service is retired).
   * Resolves once mesh.fetch's dispatcher of this service, if it made one, has closed its sockets: destroyed
   * (the mesh's close aborts everything), or closed once its requests are done (a retired service).
   */
  close(error: unknown, how: 'close' | 'destroy' = 'destroy'): Promise<void> {
    this.queue?.clear(error);
    for (const state of this.endpoints.states) this.health.detach(state);
    return this.fetchDispatcher?.close(how) ?? Promise.resolve();
  }

  /**
   * One balancer pick among the usable endpoints not in `request.tried` (breaker closed or probe free, not
   * ejected outside panic). The call path's pick step decides what "nothing" means.
   */
  choose(request: PickRequest): EndpointState | undefined {
    if (request.now >= this.rampCheckAt) this.ramp(request.now);
    const chosen = this.balancer.pick(this.endpoints.states, request);
    if (this.custom && chosen !== undefined && (chosen === null || this.endpoints.get(chosen.id) !== chosen || !chosen.usable(request.panic))) {
      // Your balancer's answer is checked (ours are trusted): the pick step reports the throw and picks nothing.
      throw new TypeError(`balancer '${this.balancer.name}' returned something that is not a usable endpoint of '${this.name}'`);
    }
    return chosen;
  }

  /** Slow start: recomputes the ramping weights and lets the balancer see them (at most every 100 ms). */
  private ramp(now: number): void {
    const slowStart = this.slowStart as SlowStart;
    if (slowStart.refresh(now)) this.balancer.update?.(this.endpoints.states);
    this.rampCheckAt = slowStart.checkAt;
  }

  private refresh(): void {
    const done = (): void => {
      this.loading = undefined;
      this.noteFreshness();
    };
    // A failure is reported as discovery-error; the stale list keeps serving until the cache's retry time.
    this.loading = this.deps.discovery.load(this.name).then(done, done);
  }

  /** Reads the list's remaining TTL from the cache (Infinity while a watch keeps it current). */
  private noteFreshness(): void {
    this.freshUntil = this.deps.clock.now() + this.deps.discovery.remainingTtl(this.name);
  }
}
