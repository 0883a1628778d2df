import type { BackendRef, RouteSpec } from '../config/types.js';
import type { Policy } from '../options.js';
import { serviceNameProblem } from '../util/service-name.js';
import { duration, isObject, optArray, optNumber, optObject, optString, own, timerMs, type Json } from './consul-chain-json.js';
import { ownOrDefine } from '../util/own.js';
import { translateMatch } from './consul-chain-match.js';
import { balancerOf, retryOf } from './consul-chain-policy.js';

/** A resolver subset of a target: Consul applies `filter` itself (`filter=` on the health query). */
export interface ConsulSubset {
  /** A go-bexpr expression over health entries; '' selects every instance. */
  readonly filter: string;
  /** Only instances whose checks all pass (else warning ones count too). */
  readonly onlyPassing: boolean;
}

/** What one service's compiled discovery chain becomes. */
export interface ChainMapping {
  /** The service's routes, in Consul's order ([] when the chain only resolves to the service itself). */
  readonly routes: RouteSpec[];
  /** The service's policy: balancer, hash header, ring size, and a resolver's request timeout. */
  readonly policy: Policy;
  /** Every subset the routes name, by service (this one or another) then subset name. */
  readonly subsets: Record<string, Record<string, ConsulSubset>>;
  /** What the chain asks for that cannot be expressed, and was left out or approximated. */
  readonly warnings: string[];
}

/** The name of the one route a splitter or resolver start node becomes. */
export const DEFAULT_ROUTE = 'consul-default';
/** The config validator's subset names (src/config/validate-config.ts); Consul's are DNS labels, a narrower set. */
const SUBSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * Maps `GET /v1/discovery-chain/:service`'s answer (`{ Chain: CompiledDiscoveryChain }`, or the chain itself) to
 * routes, a policy and subsets, as Consul's Envoy generator reads the same chain (agent/xds/routes.go):
 *
 * - start node `router`: route i becomes `consul-route-<i>` (Consul's index, so names stay put when a route is left
 *   out), its match as {@link translateMatch} says, its backends from its next node; the router's trailing
 *   catch-all (`PathPrefix: "/"`) becomes a route without match. `Destination.RequestTimeout` → `timeout` with
 *   `attemptMs` and `totalMs` both set: Envoy's route timeout bounds the whole request, retries included, and its
 *   per-try timeout defaults to it. `NumRetries` → `retry.retries`; `RetryOnStatusCodes` and the status classes of
 *   `RetryOn` (`5xx`, `gateway-error`, `retriable-4xx`) → `retry.retryOn`; connection failures are retried by the
 *   mesh's own rules (see `retryOf`). The next node's hash header → `hashHeader`, as Envoy hashes per route.
 *   `PrefixRewrite` and header modifiers are not applied (warned); `IdleTimeout` has no equivalent (ignored).
 * - start node `splitter`: one route `consul-default` with a backend per split, weighted by the split's percent.
 * - start node `resolver`: the service itself ([] routes), or `consul-default` to a subset or with failover.
 * - a resolver gives one backend for its target and one per failover target, priorities 1, 2, ... (a split leg's
 *   failover keeps the leg's weight; our priorities are per route, so a leg fails over only when every leg has no
 *   usable endpoint: warned when a split has failover). A target is `{ service }` when it names another service,
 *   plus `subset`; a target in another datacenter, namespace, partition or cluster peer cannot be reached through
 *   this mesh's registry and is left out (warned); a route left with no backend is left out.
 * - policy, from the first resolver of this service on the walk from the start node: `LoadBalancer` (see
 *   consul-chain-policy.ts), and a start resolver's `RequestTimeout` (Envoy applies a resolver's only there) as
 *   `timeout`. `ConnectTimeout` is not mapped: the compiler fills in 5 s when none is configured, and it bounds a
 *   TCP connect only, while `attemptMs` bounds the whole attempt.
 *
 * Throws a `TypeError` naming the field when the answer is not a compiled chain.
 */
export function mapDiscoveryChain(service: string, body: unknown): ChainMapping {
  try {
    return new ChainReader(service, body).map();
  } catch (error) {
    if (error instanceof TypeError) throw new TypeError(`the discovery chain of ${service} is not usable: ${error.message}`);
    throw error;
  }
}

class ChainReader {
  private readonly chain: Json;
  private readonly nodes: Json;
  private readonly targets: Json;
  private readonly dc: string;
  private readonly namespace: string;
  private readonly partition: string;
  private readonly subsets: Record<string, Record<string, ConsulSubset>> = {};
  private readonly warnings: string[] = [];
  /** Resolver node keys in walk order, for the policy. */
  private readonly resolvers: string[] = [];

  constructor(
    private readonly service: string,
    body: unknown,
  ) {
    if (!isObject(body)) throw new TypeError('the answer must be a JSON object');
    const chain = 'Chain' in body ? optObject(body.Chain, 'Chain') : body;
    if (chain === undefined) throw new TypeError('Chain is null');
    this.chain = chain;
    const name = optString(chain.ServiceName, 'Chain.ServiceName');
    if (name !== '' && name !== service) throw new TypeError('Chain.ServiceName names another service');
    const nodes = optObject(chain.Nodes, 'Chain.Nodes');
    if (nodes === undefined) throw new TypeError('Chain.Nodes is missing');
    this.nodes = nodes;
    this.targets = optObject(chain.Targets, 'Chain.Targets') ?? {};
    this.dc = optString(chain.Datacenter, 'Chain.Datacenter');
    this.namespace = optString(chain.Namespace, 'Chain.Namespace') || 'default';
    this.partition = optString(chain.Partition, 'Chain.Partition') || 'default';
  }

  map(): ChainMapping {
    const startKey = optString(this.chain.StartNode, 'Chain.StartNode');
    if (startKey === '') throw new TypeError('Chain.StartNode is missing');
    const start = this.node(startKey, 'Chain.StartNode');
    let routes: RouteSpec[];
    if (start.Type === 'router') {
      routes = this.routerRoutes(start);
    } else {
      const backends = this.backendsOf(startKey, 'Chain.StartNode');
      const usable = reachable(backends);
      if (!usable) this.warnings.push('the start node has no target this mesh can reach: the service is used as it is');
      routes = !usable || wholeService(backends) ? [] : [{ name: DEFAULT_ROUTE, backends }];
    }
    const policy = this.policy(start);
    return { routes, policy, subsets: this.subsets, warnings: [...new Set(this.warnings)] };
  }

  private routerRoutes(router: Json): RouteSpec[] {
    const out: RouteSpec[] = [];
    const list = optArray(router.Routes, 'router.Routes');
    list.forEach((raw, i) => {
      const at = `router.Routes[${i}]`;
      const name = `consul-route-${i}`;
      const r = optObject(raw, at) ?? {};
      const def = optObject(r.Definition, `${at}.Definition`) ?? {};
      const next = optString(r.NextNode, `${at}.NextNode`);
      const translated = translateMatch(def.Match, `${at}.Definition.Match`);
      if (!translated.ok) return void this.warnings.push(`${name}: ${translated.reason}; the route is left out`);
      for (const note of translated.notes) this.warnings.push(`${name}: ${note}`);
      const backends = this.backendsOf(next, `${at}.NextNode`);
      if (!reachable(backends)) return void this.warnings.push(`${name}: no target this mesh can reach; the route is left out`);
      const route: RouteSpec & Record<string, unknown> = { name };
      if (translated.match !== undefined) route.match = translated.match;
      if (!wholeService(backends)) route.backends = backends;
      this.destination(optObject(def.Destination, `${at}.Definition.Destination`), route, `${at}.Definition.Destination`);
      const hash = balancerOf(optObject(this.node(next, `${at}.NextNode`).LoadBalancer, 'LoadBalancer'), this.warnings).hashHeader;
      if (hash !== undefined) route.hashHeader = hash;
      out.push(route);
    });
    return out;
  }

  /** Timeout, retries, and what is not applied, of a router route's Destination. */
  private destination(d: Json | undefined, route: RouteSpec & Record<string, unknown>, at: string): void {
    if (d === undefined) return;
    const timeout = duration(d.RequestTimeout, `${at}.RequestTimeout`);
    if (timeout > 0) route.timeout = { attemptMs: timerMs(timeout), totalMs: timerMs(timeout) };
    const retry = retryOf(d, at, this.warnings, route.name);
    if (retry !== undefined) route.retry = retry;
    if (optString(d.PrefixRewrite, `${at}.PrefixRewrite`) !== '') this.warnings.push(`${route.name}: PrefixRewrite is not applied (paths are sent as they are)`);
    if (d.RequestHeaders != null || d.ResponseHeaders != null) this.warnings.push(`${route.name}: request and response header modifiers are not applied`);
  }

  /** A node by key, its Type checked. */
  private node(key: string, at: string): Json {
    const node = optObject(own(this.nodes, key), `${at} (a Nodes entry)`);
    if (node === undefined) throw new TypeError(`${at} names no node of Chain.Nodes`);
    if (node.Type !== 'router' && node.Type !== 'splitter' && node.Type !== 'resolver') {
      throw new TypeError(`${at}: a node's Type must be router, splitter or resolver`);
    }
    return node;
  }

  /** The backends of a splitter or resolver node (a router can only start a chain). */
  private backendsOf(key: string, at: string): BackendRef[] {
    const node = this.node(key, at);
    if (node.Type === 'resolver') return merge(this.resolverBackends(key, node, at, undefined));
    if (node.Type !== 'splitter') throw new TypeError(`${at}: a router can only be the start node`);
    const out: BackendRef[] = [];
    const splits = optArray(node.Splits, `${at}: Splits`);
    let failover = false;
    splits.forEach((raw, i) => {
      const split = optObject(raw, `${at}: Splits[${i}]`) ?? {};
      const weight = optNumber(split.Weight, `${at}: Splits[${i}].Weight`); // omitted when 0 (omitempty)
      if (weight < 0) throw new TypeError(`${at}: Splits[${i}].Weight must be >= 0`);
      const nextKey = optString(split.NextNode, `${at}: Splits[${i}].NextNode`);
      const next = this.node(nextKey, `${at}: Splits[${i}].NextNode`);
      // The compiler flattens splitters into resolvers; Consul's own generator refuses anything else.
      if (next.Type !== 'resolver') throw new TypeError(`${at}: Splits[${i}].NextNode must be a resolver`);
      const legs = this.resolverBackends(nextKey, next, `${at}: Splits[${i}].NextNode`, weight);
      failover ||= legs.some((b) => (b.priority ?? 0) > 0);
      out.push(...legs);
      const headers = optObject(split.Definition, `${at}: Splits[${i}].Definition`);
      if (headers?.RequestHeaders != null || headers?.ResponseHeaders != null) this.warnings.push(`split ${i}: header modifiers are not applied`);
    });
    if (failover && splits.length > 1) {
      this.warnings.push('a split leg has failover targets: they take traffic only when no leg has a usable endpoint (Consul fails each leg over on its own)');
    }
    return merge(out);
  }

  /** The resolver's target (priority 0) and failover targets (1, 2, ...), each with `weight` when given. */
  private resolverBackends(key: string, node: Json, at: string, weight: number | undefined): BackendRef[] {
    if (!this.resolvers.includes(key)) this.resolvers.push(key);
    const resolver = optObject(node.Resolver, `${at}: Resolver`) ?? {};
    const ids = [optString(resolver.Target, `${at}: Resolver.Target`)];
    const failover = optObject(resolver.Failover, `${at}: Resolver.Failover`);
    optArray(failover?.Targets, `${at}: Resolver.Failover.Targets`).forEach((t, i) => ids.push(optString(t, `${at}: Resolver.Failover.Targets[${i}]`)));
    if (ids[0] === '') throw new TypeError(`${at}: Resolver.Target is missing`);
    const out: BackendRef[] = [];
    ids.forEach((id, priority) => {
      const ref = this.target(id, `${at}: ${priority === 0 ? 'Resolver.Target' : `Resolver.Failover.Targets[${priority - 1}]`}`);
      if (ref === undefined) return;
      out.push({ ...ref, ...(weight === undefined ? {} : { weight }), ...(priority > 0 ? { priority } : {}) });
    });
    return out;
  }

  /** A target as a backend, its subset noted; undefined (warned) when this mesh cannot reach it. */
  private target(id: string, at: string): { service?: string; subset?: string } | undefined {
    const t = optObject(own(this.targets, id), `${at} (a Targets entry)`);
    if (t === undefined) throw new TypeError(`${at} names no target of Chain.Targets`);
    const service = optString(t.Service, `${at}: Targets entry .Service`);
    const subset = optString(t.ServiceSubset, `${at}: Targets entry .ServiceSubset`);
    const where = `target ${id}`;
    if (optString(t.Peer, `${at}: Targets entry .Peer`) !== '') return void this.warnings.push(`${where} is on a cluster peer; left out`);
    const dc = optString(t.Datacenter, `${at}: Targets entry .Datacenter`);
    if (dc !== '' && this.dc !== '' && dc !== this.dc) return void this.warnings.push(`${where} is in datacenter ${dc}, which this mesh's registry does not see; left out`);
    const ns = optString(t.Namespace, `${at}: Targets entry .Namespace`) || 'default';
    const partition = optString(t.Partition, `${at}: Targets entry .Partition`) || 'default';
    if (ns !== this.namespace || partition !== this.partition) return void this.warnings.push(`${where} is in another namespace or partition; left out`);
    if (serviceNameProblem(service)) return void this.warnings.push(`${where} does not name a valid service; left out`);
    if (subset !== '' && !SUBSET_NAME.test(subset)) return void this.warnings.push(`${where} has a subset name this mesh refuses; left out`);
    const ref: { service?: string; subset?: string } = {};
    if (service !== this.service) ref.service = service;
    if (subset !== '') {
      ref.subset = subset;
      const spec = optObject(t.Subset, `${at}: Targets entry .Subset`) ?? {};
      // Own properties only: a service or subset named `__proto__` or `constructor` is a key like any other.
      const byName = ownOrDefine(this.subsets, service, () => ({}));
      ownOrDefine(byName, subset, () => ({
        filter: optString(spec.Filter, `${at}: Targets entry .Subset.Filter`),
        onlyPassing: spec.OnlyPassing === true,
      }));
    }
    return ref;
  }

  private policy(start: Json): Policy {
    const policy: Policy & Record<string, unknown> = {};
    const mine = this.resolvers.map((k) => this.node(k, 'resolver')).find((n) => this.targetService(n) === this.service);
    const lb = optObject((mine ?? (start.Type === 'splitter' ? start : undefined))?.LoadBalancer, 'LoadBalancer');
    Object.assign(policy, balancerOf(lb, this.warnings));
    if (start.Type === 'resolver') {
      const resolver = optObject(start.Resolver, 'Resolver') ?? {};
      const t = duration(resolver.RequestTimeout, 'Chain.StartNode: Resolver.RequestTimeout');
      // Negative turns Envoy's route timeout off: the longest a timer allows is the closest.
      if (t !== 0) policy.timeout = { attemptMs: timerMs(t < 0 ? Infinity : t), totalMs: timerMs(t < 0 ? Infinity : t) };
    }
    return policy;
  }

  private targetService(node: Json): string | undefined {
    const id = optString(optObject(node.Resolver, 'Resolver')?.Target, 'Resolver.Target');
    const t = own(this.targets, id);
    return isObject(t) && typeof t.Service === 'string' ? t.Service : undefined;
  }
}

/** One backend per (service, subset, priority), weights summed; priorities renumbered 0, 1, ... in order. */
function merge(list: readonly BackendRef[]): BackendRef[] {
  const byKey = new Map<string, BackendRef & { weight?: number }>();
  for (const b of list) {
    const key = JSON.stringify([b.service ?? null, b.subset ?? null, b.priority ?? 0]);
    const seen = byKey.get(key);
    if (seen === undefined) byKey.set(key, { ...b });
    else if (b.weight !== undefined) seen.weight = (seen.weight ?? 0) + b.weight;
  }
  const levels = [...new Set([...byKey.values()].map((b) => b.priority ?? 0))].sort((a, b) => a - b);
  return [...byKey.values()].map((b) => {
    const { priority, ...rest } = b;
    const level = levels.indexOf(priority ?? 0);
    return level > 0 ? { ...rest, priority: level } : rest;
  });
}

/** Some backend can take traffic (the validator refuses a route whose every weight is 0). */
function reachable(backends: readonly BackendRef[]): boolean {
  return backends.some((b) => (b.weight ?? 1) > 0);
}

/** A single backend that is the governed service itself: the same as no backends. */
function wholeService(backends: readonly BackendRef[]): boolean {
  return backends.length === 1 && backends[0]!.service === undefined && backends[0]!.subset === undefined && (backends[0]!.priority ?? 0) === 0;
}
