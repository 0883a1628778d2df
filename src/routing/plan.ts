import type { RequestFacts } from '../config/route-match.js';
import { compileMatch, type Matcher } from '../config/route-match.js';
import type { FaultSpec, RouteSpec, SubsetSpec } from '../config/types.js';
import { overrideRetry } from '../call/settings.js';
import type { InjectedFault } from '../call/call.js';
import type { EndpointState } from '../endpoint/endpoint-state.js';
import { backendLabel, type BackendLabel, type RouteStats } from '../observe/route-stats.js';
import type { ResolvedPolicy } from '../options.js';
import { murmur3 } from '../util/hash.js';
import { Backend, type BackendHost, type BalancerEnv } from './backend.js';
import { SubsetFilter } from './subset.js';

/** A service as routes of other services see it: its current plan (for `{ service }` backends). */
export interface PlanOwner extends BackendHost {
  readonly plan: ServicePlan;
}

/** What plans need from the mesh. */
export interface PlanEnv extends BalancerEnv {
  /** The service of this name (made on first use): the target of a `{ service }` backend or mirror. */
  service(name: string): PlanOwner;
}

/** Where a route sends its share: a backend of this plan, or one made on demand in another service's plan. */
interface RouteBackend {
  readonly label: BackendLabel;
  readonly key: string;
  readonly weight: number;
  readonly priority: number;
  /** Set for a backend of this service; `{ service }` backends are found in that service's plan at each call. */
  readonly local: Backend | undefined;
}

/**
 * One service's configuration in force: its policy, its whole-service backend, its routes and their backends.
 * Built whole by `configure` (or when a config source pushes) and swapped in one assignment; a call reads the
 * plan once and keeps the backend it chose, so a change never reaches a call in flight. With no routes, a call
 * pays one property read for all this.
 */
export class ServicePlan {
  /** Calls no route matched, and every call of a service without routes. */
  readonly whole: Backend;
  /** The routes, first match wins; undefined when the service has none. */
  readonly routes: readonly RoutePlan[] | undefined;
  /**
   * Backends of this service made for routes of other services (`{ service: this }`) and for mirrors, per route
   * (by identity, so a route rebuilt, or its service retired and made again, never finds another's backend) and
   * backend. They follow this service's endpoints lazily (see `Backend.sync`).
   */
  private readonly foreign = new WeakMap<RoutePlan, Map<string, Backend>>();
  private readonly locals: Backend[] = [];

  constructor(
    private readonly host: BackendHost,
    readonly policy: ResolvedPolicy,
    routes: readonly RouteSpec[] | undefined,
    private readonly subsets: Readonly<Record<string, SubsetSpec>>,
    private readonly env: PlanEnv,
  ) {
    this.whole = new Backend(host, policy, undefined, env);
    this.routes = routes === undefined || routes.length === 0 ? undefined : routes.map((r) => new RoutePlan(this, host.name, host.metrics.route(r.name), r, env));
  }

  /** The first route that matches the request, or undefined (the call goes to {@link whole}). */
  match(facts: RequestFacts): RoutePlan | undefined {
    const routes = this.routes;
    if (routes === undefined) return undefined;
    for (const route of routes) if (route.matches(facts)) return route;
    return undefined;
  }

  /** A backend of this service for a route (of this service or another): its subset, its policy overrides. */
  backendFor(route: RoutePlan, label: BackendLabel, foreign: boolean, mirror = false): Backend {
    const key = `${mirror ? 'mirror:' : ''}${backendLabel(label)}`;
    let made = foreign ? this.foreign.get(route) : undefined;
    if (foreign && made === undefined) this.foreign.set(route, (made = new Map()));
    const found = made?.get(key);
    if (found !== undefined) return found;
    const spec = label.subset !== undefined && Object.hasOwn(this.subsets, label.subset) ? this.subsets[label.subset] : undefined;
    const filter = spec === undefined ? undefined : new SubsetFilter(spec);
    // A mirror's backend carries no route counters of its own: mirrored requests are counted apart, by the route.
    const place = {
      route: route.name,
      backend: label,
      stats: mirror ? undefined : route.stats.backend(backendLabel(label)),
      routeStep: !mirror && (route.fault !== undefined || route.mirror !== undefined),
    };
    const backend = new Backend(this.host, route.policyOver(this.policy), filter, this.env, place);
    if (made !== undefined) {
      backend.lazy = true;
      made.set(key, backend);
    } else this.locals.push(backend);
    return backend;
  }

  /** A configuration replaced this plan: calls in flight still hold its backends, which now catch up lazily. */
  retire(): void {
    this.whole.lazy = true;
    for (const b of this.locals) b.lazy = true;
  }

  /** The service's endpoints changed, or their ramping weights: every backend's members and balancer follow. */
  refresh(states: readonly EndpointState[]): void {
    this.whole.refresh(states);
    for (const b of this.locals) b.refresh(states);
  }
}

/**
 * One route of a service, compiled: its matcher, its backends grouped by priority, its fault and mirror.
 * The split is weighted-random (the mesh's seeded `random`), or by a hash of the sticky key (`stickyHeader`'s
 * value, else the call's `hashKey`), so one key keeps its backend while the weights stay the same. A backend
 * with no usable endpoint passes its share to the others of its priority; a priority with none passes to the next.
 */
export class RoutePlan {
  readonly name: string;
  readonly owner: string;
  readonly stats: RouteStats;
  readonly fault: FaultSpec | undefined;
  readonly mirror: { readonly label: BackendLabel; readonly percent: number } | undefined;
  readonly stickyHeader: string | undefined;
  private readonly matcher: Matcher;
  /** Backends by priority, lowest first. */
  private readonly levels: readonly (readonly RouteBackend[])[];
  private readonly usable: boolean[] = [];

  constructor(
    private readonly plan: ServicePlan,
    owner: string,
    stats: RouteStats,
    private readonly spec: RouteSpec,
    private readonly env: PlanEnv,
  ) {
    this.name = spec.name;
    this.owner = owner;
    this.stats = stats;
    this.fault = spec.fault;
    this.stickyHeader = spec.stickyHeader?.toLowerCase();
    this.matcher = compileMatch(spec.match);
    const mirror = spec.mirror;
    this.mirror = mirror === undefined ? undefined : { label: labelOf(mirror, owner), percent: mirror.percent ?? 100 };
    const refs = spec.backends ?? [{}];
    const byPriority = new Map<number, RouteBackend[]>();
    for (const ref of refs) {
      const label = labelOf(ref, owner);
      const priority = ref.priority ?? 0;
      const entry: RouteBackend = {
        label,
        key: backendLabel(label),
        weight: ref.weight ?? 1,
        priority,
        local: label.service === undefined ? plan.backendFor(this, label, false) : undefined,
      };
      if (!byPriority.has(priority)) byPriority.set(priority, []);
      byPriority.get(priority)!.push(entry);
    }
    this.levels = [...byPriority.keys()].sort((a, b) => a - b).map((p) => byPriority.get(p)!);
  }

  /** The configured weight of each backend, by backend label (for the snapshot and the dashboard). */
  weights(): Map<string, number> {
    const out = new Map<string, number>();
    for (const level of this.levels) for (const b of level) out.set(b.key, (out.get(b.key) ?? 0) + b.weight);
    return out;
  }

  matches(facts: RequestFacts): boolean {
    return this.matcher(facts);
  }

  /** The service policy with this route's `timeout`, `retry` and `hashHeader` over it. */
  policyOver(policy: ResolvedPolicy): ResolvedPolicy {
    const { timeout, retry, hashHeader } = this.spec;
    if (timeout === undefined && retry === undefined && hashHeader === undefined) return policy;
    return {
      ...policy,
      timeout: { ...policy.timeout, ...timeout },
      retry: retry === undefined ? policy.retry : overrideRetry(policy.retry, retry),
      hashHeader: hashHeader ?? policy.hashHeader,
    };
  }

  /** The backend for one request: sticky by this route's header when the request has it, else by `hashKey`. */
  chooseFor(facts: RequestFacts, hashKey: string | undefined): Backend {
    const sticky = this.stickyHeader === undefined ? undefined : facts.header(this.stickyHeader);
    return this.choose(sticky ?? hashKey);
  }

  /** Chooses a backend for one call (see the class comment). `key` makes it sticky. */
  choose(key: string | undefined): Backend {
    const unit = key === undefined ? this.env.rng() : murmur3(key, SPLIT_SEED) / 0x1_0000_0000;
    for (const level of this.levels) {
      let total = 0;
      for (let i = 0; i < level.length; i++) {
        const b = level[i]!;
        const ok = b.weight > 0 && this.target(b).hasUsable();
        this.usable[i] = ok;
        if (ok) total += b.weight;
      }
      if (total === 0) continue;
      let point = unit * total;
      let last: RouteBackend | undefined;
      for (let i = 0; i < level.length; i++) {
        if (!this.usable[i]) continue;
        last = level[i]!;
        point -= last.weight;
        if (point < 0) break;
      }
      return this.target(last!);
    }
    // Nothing usable anywhere: the first weighted backend takes the call, which then fails as a service with
    // nothing to pick fails (NoEndpointsError or CircuitOpenError), naming its service.
    for (const level of this.levels) for (const b of level) if (b.weight > 0) return this.target(b);
    return this.target(this.levels[0]![0]!); // unreachable: validation wants one weight > 0
  }

  /** Draws this call's fault (independent draws for delay and abort, as Envoy's filter does), if any. */
  drawFault(): InjectedFault | undefined {
    const fault = this.fault;
    if (fault === undefined) return undefined;
    const rng = this.env.rng;
    const delayMs = fault.delay !== undefined && rng() * 100 < fault.delay.percent ? fault.delay.ms : 0;
    const abortStatus = fault.abort !== undefined && rng() * 100 < fault.abort.percent ? fault.abort.status : undefined;
    if (delayMs === 0 && abortStatus === undefined) return undefined;
    if (delayMs > 0) this.stats.delays++;
    if (abortStatus !== undefined) this.stats.aborts++;
    return { route: this.name, delayMs, abortStatus };
  }

  /** The mirror target of this call, when its percent draws it. */
  drawMirror(): Backend | undefined {
    const mirror = this.mirror;
    if (mirror === undefined || !(this.env.rng() * 100 < mirror.percent)) return undefined;
    const { label } = mirror;
    const svc = label.service === undefined ? undefined : this.env.service(label.service);
    return (svc?.plan ?? this.plan).backendFor(this, label, true, true);
  }

  private target(b: RouteBackend): Backend {
    if (b.local !== undefined) return b.local;
    return this.env.service(b.label.service!).plan.backendFor(this, b.label, true);
  }
}

/**
 * The split's own hash seed: with the call's `hashKey` as the sticky key, a seed of 0 would be the very hash a
 * ring-hash balancer places the key with, and a backend's keys would crowd into its share of the ring.
 */
const SPLIT_SEED = 0x5bd1e995;

/** A backend's label; `{ service }` naming the route's own service is the service itself (one label, one row). */
function labelOf(ref: { subset?: string | undefined; service?: string | undefined }, owner: string): BackendLabel {
  const label: { subset?: string; service?: string } = {};
  if (ref.service !== undefined && ref.service !== owner) label.service = ref.service;
  if (ref.subset !== undefined) label.subset = ref.subset;
  return Object.freeze(label);
}
