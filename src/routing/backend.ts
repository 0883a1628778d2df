import type { Balancer, PickRequest } from '../balancer/balancer.js';
import { createBalancer, isBalancerName } from '../balancer/create.js';
import { LocalityBalancer } from '../balancer/locality.js';
import { plainSettings, type CallSettings } from '../call/settings.js';
import { composeCallStack, CALL_STEPS, ROUTE_STEPS } from '../call/stack.js';
import type { Step } from '../call/step.js';
import type { BackendLabel, CallTarget, SharedTarget, TargetHealth } from '../call/target.js';
import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { MeshEmitter } from '../observe/emitter.js';
import type { BackendStats } from '../observe/route-stats.js';
import type { ServiceMetrics } from '../observe/service-metrics.js';
import type { ResolvedPolicy } from '../options.js';
import type { Rng } from '../util/random.js';
import type { SubsetFilter } from './subset.js';

/**
 * What a backend shares with every other backend of its service, across configurations: the endpoint states,
 * counters, health, retry budget and queue. `Service` is the one implementation.
 */
export interface BackendHost extends SharedTarget {
  readonly states: readonly EndpointState[];
  /** How many endpoints discovery lists now. */
  readonly size: number;
  /** Whether discovery answered at least once. */
  readonly ready: boolean;
  /** When slow start's ramping weights are next due for a recompute (Infinity when off or idle). */
  readonly rampCheckAt: number;
  /** Slow start: recomputes the ramping weights (called when `rampCheckAt` is due). */
  ramp(now: number): void;
}

/** What makes a backend's balancer. */
export interface BalancerEnv {
  readonly rng: Rng;
  readonly events: MeshEmitter;
  /** The mesh's `zone`: built-in balancers are then wrapped for zone-aware balancing. */
  readonly zone: string | undefined;
}

/** Where a backend sits in the routing table (absent for the whole service outside any route). */
export interface BackendPlace {
  readonly route: string;
  readonly backend: BackendLabel;
  /** Absent for a mirror's backend (mirrored requests are counted by the route). */
  readonly stats: BackendStats | undefined;
  /** The route injects faults or mirrors: its stack has the route step. */
  readonly routeStep: boolean;
}

/**
 * One balancer over some endpoints of a service, with the policy of one configuration: the whole service, or
 * a subset a route sends to. It is what a call targets: the call reads this one object (its policy, settings,
 * stack and balancer) from admission to its last attempt, so a `configure` that makes new backends never
 * changes a call in flight. Endpoint state (latency, breakers, ejection, slow start) is not here but on the
 * shared {@link EndpointState}s, so every backend and configuration sees the same endpoint the same way.
 */
export class Backend implements CallTarget {
  readonly stack: Step;
  readonly plainSettings: CallSettings;
  readonly balancer: Balancer;
  /** The endpoints this backend balances over (all of the service's, or a subset's), in discovery order. */
  members: readonly EndpointState[] = [];
  /** The service's list `members` was taken from: a backend made for another service's route catches up lazily. */
  private seen: readonly EndpointState[] | undefined;
  readonly route: string | undefined;
  readonly backend: BackendLabel | undefined;
  readonly routeStats: BackendStats | undefined;
  /** The service's own, which never change: plain fields, read on the call path without a hop. */
  readonly name: string;
  readonly shared: SharedTarget;
  readonly metrics: ServiceMetrics;
  readonly health: TargetHealth;
  private readonly custom: boolean;
  /**
   * Whether its members may lag the service's list: true for a backend made for another service's route or a
   * mirror, and for every backend of a plan a configuration replaced (calls in flight still hold them). The
   * backends of the plan in force are refreshed eagerly, and skip the check.
   */
  lazy = false;

  constructor(
    private readonly host: BackendHost,
    readonly policy: ResolvedPolicy,
    private readonly filter: SubsetFilter | undefined,
    env: BalancerEnv,
    place?: BackendPlace,
  ) {
    this.stack = composeCallStack(place?.routeStep ? ROUTE_STEPS : CALL_STEPS);
    this.plainSettings = plainSettings(policy);
    this.balancer = makeBalancer(host.name, policy, env);
    this.custom = !isBalancerName(policy.balancer);
    this.route = place?.route;
    this.backend = place?.backend;
    this.routeStats = place?.stats;
    this.name = host.name;
    this.shared = host;
    this.metrics = host.metrics;
    this.health = host.health;
    this.refresh(host.states);
  }

  /** How many endpoints this backend balances over now. */
  get size(): number {
    this.sync();
    return this.members.length;
  }

  /** The service's endpoints changed (or their weights ramped): the members and the balancer follow. */
  refresh(states: readonly EndpointState[]): void {
    this.seen = states;
    this.members = this.filter === undefined ? states : states.filter((s) => this.filter!.has(s.endpoint));
    this.balancer.update?.(this.members);
  }

  /** Takes the service's list again if discovery replaced it since (a compare when it did not). */
  private sync(): void {
    if (!this.lazy) return;
    const states = this.host.states;
    if (states !== this.seen) this.refresh(states);
  }

  choose(request: PickRequest): EndpointState | undefined {
    if (request.now >= this.host.rampCheckAt) this.host.ramp(request.now);
    if (this.lazy) this.sync();
    const chosen = this.balancer.pick(this.members, request);
    if (this.custom && chosen !== undefined && (chosen === null || !this.members.includes(chosen) || !chosen.usable(request.panic))) {
      // Your balancer's answer is checked (ours are trusted): the pick step reports the throw and picks nothing.
      throw new TypeError(`balancer '${this.balancer.name}' returned something that is not a usable endpoint of '${this.name}'`);
    }
    return chosen;
  }

  /** True when every member's breaker refuses requests (the call fails fast with CircuitOpenError). */
  allOpen(): boolean {
    this.sync();
    const members = this.members;
    if (members.length === 0) return false;
    for (const s of members) if (s.breaker === undefined || s.breaker.allowsRequest) return false;
    return true;
  }

  /**
   * Whether some member could take a request now: a split passes the share of a backend without one on. A
   * backend whose service discovery has not answered yet is given its share (its first call loads the list).
   */
  hasUsable(): boolean {
    if (!this.host.ready) return true;
    this.sync();
    const panic = this.host.health.panic;
    for (const s of this.members) if (s.usable(panic)) return true;
    return false;
  }
}

/** The balancer a policy asks for, zone-aware when the mesh has a `zone` and the policy's `locality` is on. */
function makeBalancer(service: string, policy: ResolvedPolicy, env: BalancerEnv): Balancer {
  const spec = policy.balancer;
  const make = (): Balancer => createBalancer(spec, { rng: env.rng, ringHash: policy.ringHash, maglev: policy.maglev });
  if (env.zone === undefined || policy.locality === false || !isBalancerName(spec)) return make();
  return new LocalityBalancer(make, {
    zone: env.zone,
    overprovisioningFactor: policy.locality.overprovisioningFactor,
    rng: env.rng,
    onSpill: (spill) => {
      if (env.events.has('zone-spill')) env.events.emit('zone-spill', { service, ...spill });
    },
  });
}
