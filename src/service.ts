import type { RouteSpec, SubsetSpec } from './config/types.js';
import { SlowStart } from './balancer/slow-start.js';
import { DEFAULT_RTT_MS, EWMA_DECAY_MS } from './defaults.js';
import type { DiscoveryCache } from './discovery/cache.js';
import type { Endpoint } from './endpoint/endpoint.js';
import { EndpointSet, type EndpointSetChange } from './endpoint/endpoint-set.js';
import type { EndpointState } from './endpoint/endpoint-state.js';
import type { ResolvedPolicy } from './options.js';
import { RetryBudget } from './resilience/budget.js';
import { BulkheadQueue } from './resilience/bulkhead.js';
import { LatencyWindow } from './resilience/latency-window.js';
import { adoptGuard, type OverloadGuard } from './resilience/overload-guard.js';
import { ServiceMetrics } from './observe/service-metrics.js';
import { ServicePlan, type PlanEnv, type PlanOwner } from './routing/plan.js';
import { ServiceHealth, type HealthDeps } from './service-health.js';
import { adoptHealthCheck, type HealthChecker } from './health-check.js';
import { ServiceDispatcher } from './transport/fetch-dispatcher.js';
import { samePolicyPart } from './util/same.js';

/** Shared by every service of a mesh. */
export interface ServiceDeps extends HealthDeps {
  readonly discovery: DiscoveryCache;
  /** What plans need: the balancer environment, other services (for `{ service }` backends), route counters. */
  readonly plans: PlanEnv;
}

/** The parts of the configuration in force that concern one service. */
export interface ServiceConfig {
  readonly policy: ResolvedPolicy;
  readonly routes: readonly RouteSpec[] | undefined;
  readonly subsets: Readonly<Record<string, SubsetSpec>>;
}

/**
 * One logical service: what lasts across configurations (its endpoint set and their state, its counters, its
 * health, retry budget, bulkhead queue and slow start), and the {@link ServicePlan} in force (policy, balancers,
 * routes), which `configure` swaps in one assignment. Discovery pushes lists in through
 * {@link Service.applyEndpoints}; calls target one of the plan's backends.
 */
export class Service implements PlanOwner {
  /** The configuration in force for this service: a call reads it once. */
  plan: ServicePlan;
  readonly endpoints: EndpointSet;
  /** Ramps the weight of endpoints added after the first list (policy `slowStart`). */
  slowStart: SlowStart | undefined;
  /** When ramping weights are next due for a recompute: one comparison per pick (Infinity when off or idle). */
  rampCheckAt = Infinity;
  budget: RetryBudget | undefined;
  readonly health: ServiceHealth;
  /** Active health checks (policy `healthCheck`), while the policy asks for them. */
  healthCheck: HealthChecker | undefined;
  /** Recent latencies, kept only when a hedge delay of `'p95'` needs them. */
  latencyWindow: LatencyWindow | undefined;
  /** Calls in flight (the bulkhead counts these, across configurations). */
  active = 0;
  /** Where calls wait for a slot when the bulkhead is full and `maxQueued` > 0 (kept across configurations). */
  queue: BulkheadQueue | undefined;
  /** The adaptive concurrency limit and admission throttle (kept across configurations); undefined when both are off. */
  guard: OverloadGuard | undefined;
  /** mesh.fetch's dispatcher, when the policy's `tls` or `host: 'service'` needs one. */
  fetchDispatcher: ServiceDispatcher | undefined;
  /** Dispatchers a configuration replaced, still open for the calls that started with them. */
  private readonly retired = new Map<ServiceDispatcher, ReturnType<typeof setTimeout>>();
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
    config: ServiceConfig,
    private readonly deps: ServiceDeps,
  ) {
    this.endpoints = new EndpointSet({ decayMs: EWMA_DECAY_MS, defaultRttMs: DEFAULT_RTT_MS });
    const policy = config.policy;
    this.health = new ServiceHealth(name, policy, deps, () => this.endpoints.states, (state, now) => {
      if (this.slowStart === undefined) return;
      this.slowStart.begin([state], now);
      this.rampCheckAt = Math.min(this.rampCheckAt, this.slowStart.checkAt);
    });
    this.adopt(undefined, policy);
    this.healthCheck = adoptHealthCheck(undefined, this, undefined, policy, deps);
    this.plan = this.planFor(config);
  }

  /** The policy in force. */
  get policy(): ResolvedPolicy {
    return this.plan.policy;
  }

  /** The endpoints discovery lists now, in its order (backends filter these). */
  get states(): readonly EndpointState[] {
    return this.endpoints.states;
  }

  /**
   * The plan a configuration would give this service: built apart (it may throw, e.g. a balancer of yours whose
   * `update` throws), so that `configure` can build every service's plan before any is put in force.
   */
  planFor(config: ServiceConfig): ServicePlan {
    return new ServicePlan(this, config.policy, config.routes, config.subsets, this.deps.plans);
  }

  /**
   * Puts a configuration in force with the plan {@link planFor} built for it. The shared parts the policy shapes
   * are kept when their part of the policy is the same, else remade (see {@link ServiceHealth.reconfigure}).
   * Calls in flight keep the backend, policy and stack they started with.
   */
  reconfigure(config: ServiceConfig, plan: ServicePlan): void {
    this.adopt(this.plan.policy, config.policy);
    this.health.reconfigure(config.policy, this.deps.clock.now());
    this.healthCheck = adoptHealthCheck(this.healthCheck, this, this.plan.policy, config.policy, this.deps);
    this.plan.retire();
    this.plan = plan;
  }

  /** The retry budget, queue, slow start, latency window, overload guard and fetch dispatcher of `policy` (kept where unchanged). */
  private adopt(old: ResolvedPolicy | undefined, policy: ResolvedPolicy): void {
    const budget = policy.retry === false ? false : policy.retry.budget;
    const oldBudget = old === undefined || old.retry === false ? false : old.retry.budget;
    if (old === undefined || !samePolicyPart(budget, oldBudget)) {
      this.budget = budget ? new RetryBudget(budget.ratio, budget.minPerSecond, budget.ttlMs, this.deps.clock) : undefined;
    }
    // The queue keeps its waiters: only its capacity follows (0 refuses new waiters).
    if (this.queue !== undefined) this.queue.capacity = policy.maxQueued;
    else if (policy.maxQueued > 0) this.queue = new BulkheadQueue(policy.maxQueued);
    if (old === undefined || !samePolicyPart(policy.slowStart, old.slowStart)) {
      this.slowStart = policy.slowStart === false ? undefined : new SlowStart(policy.slowStart);
      if (old !== undefined) this.forgetRamps();
    }
    if (policy.hedge !== false && policy.hedge.delayMs === 'p95') this.latencyWindow ??= new LatencyWindow();
    // The limit and the throttle's window outlive a configuration; the mesh's seeded random draws their jitter and rejections.
    this.guard = adoptGuard(this.guard, policy, this.deps.clock.now(), this.deps.plans.rng);
    if (old === undefined || !samePolicyPart([policy.tls, policy.host], [old.tls, old.host])) {
      if (this.fetchDispatcher !== undefined) this.retireDispatcher(this.fetchDispatcher, old?.timeout.totalMs ?? 0);
      this.fetchDispatcher = ServiceDispatcher.wanted(policy) ? new ServiceDispatcher(this.name, policy) : undefined;
    }
  }

  /**
   * A dispatcher a new `tls` or `host` replaced. Calls in flight hold it (a retry or a hedge sends through it, a
   * body streams through it), and every one of them is over by its total deadline: it is closed once that has
   * passed for the latest of them, or when the service closes.
   */
  private retireDispatcher(dispatcher: ServiceDispatcher, totalMs: number): void {
    const timer = setTimeout(() => {
      this.retired.delete(dispatcher);
      void dispatcher.close('close');
    }, totalMs + 1_000);
    timer.unref?.();
    this.retired.set(dispatcher, timer);
  }

  /** A changed slow-start policy: ramping weights go back to discovery's (a new ramp starts with the next joiners). */
  private forgetRamps(): void {
    for (const state of this.endpoints.states) state.weight = state.endpoint.weight;
    this.rampCheckAt = Infinity;
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
    // Joining a running service: from the peers' median cost (the first list keeps the default RTT).
    if (this.ready) this.health.seed(change.added, now);
    this.healthCheck?.remove(change.removed);
    this.healthCheck?.add(change.added);
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
    this.ready = true;
    this.plan.refresh(this.endpoints.states);
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
    this.health.close();
    this.healthCheck?.close();
    const closing = [...this.retired.keys()].map((d) => d.close(how));
    for (const timer of this.retired.values()) clearTimeout(timer);
    this.retired.clear();
    if (this.fetchDispatcher !== undefined) closing.push(this.fetchDispatcher.close(how));
    return Promise.all(closing).then(() => undefined);
  }

  /** Slow start: recomputes the ramping weights and lets every backend see them (at most every 100 ms). */
  ramp(now: number): void {
    const slowStart = this.slowStart;
    if (slowStart === undefined) {
      this.rampCheckAt = Infinity;
      return;
    }
    if (slowStart.refresh(now)) this.plan.refresh(this.endpoints.states);
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
