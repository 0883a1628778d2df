import type { Policy } from './policy.js';

/**
 * A label filter over a service's endpoints: an endpoint is in the subset when it has every tag listed, every
 * meta key with that value, and (when `ids` is given) one of those ids. Filters are AND-ed; an empty filter
 * selects every endpoint. `ids` is what a config source uses when a registry applied the filter itself (Consul's
 * resolver subsets: `filter=` on the health query).
 * @example { tags: ['v2'] }  { meta: { version: '2' } }
 */
export interface SubsetSpec {
  tags?: readonly string[] | undefined;
  meta?: Readonly<Record<string, string>> | undefined;
  ids?: readonly string[] | undefined;
}

/** A string matched exactly, or by a regular expression (JavaScript syntax, unanchored unless you anchor it). */
export type StringMatch = string | { readonly regex: string };

/** A path match: exact, a prefix on `/` segment boundaries (`/v1` matches `/v1` and `/v1/x`, not `/v10`), or a regex. */
export type PathMatch = { readonly exact: string } | { readonly prefix: string } | { readonly regex: string };

/** One match entry: every field given must hold (AND). A route's entries are OR-ed. */
export interface RouteMatch {
  path?: PathMatch | undefined;
  /** An HTTP method, case-insensitive. */
  method?: string | undefined;
  /** Header name (case-insensitive) → exact value, or `{ regex }`. */
  headers?: Readonly<Record<string, StringMatch>> | undefined;
  /** Query parameter name → exact value. */
  query?: Readonly<Record<string, string>> | undefined;
}

/**
 * Where a route sends its share: a subset of this service, another service (with its own discovery and
 * policy), or a subset of another service. `weight` defaults to 1; 0 sends nothing. `priority` (default 0):
 * backends of a higher number get traffic only when every backend of a lower one has no usable endpoint
 * (Envoy's priorities; Consul's failover targets map to 1, 2, ...).
 */
export interface BackendRef {
  subset?: string | undefined;
  service?: string | undefined;
  weight?: number | undefined;
  priority?: number | undefined;
}

/** Envoy's HTTP fault filter (gRPC A33): percents are of the route's requests. */
export interface FaultSpec {
  /** Waits `ms` before any network use (within the call's deadline). */
  delay?: { readonly ms: number; readonly percent: number } | undefined;
  /** Answers `status` (a synthetic Response on fetch paths; `FaultInjectedError` for `call`). Never retried. */
  abort?: { readonly status: number; readonly percent: number } | undefined;
}

/** Envoy's `request_mirror_policies`: a copy of `percent` of the route's requests, fire and forget. */
export interface MirrorSpec {
  subset?: string | undefined;
  service?: string | undefined;
  /** Default 100. */
  percent?: number | undefined;
}

/** A route, with Kubernetes Gateway API HTTPRoute semantics: the first route of a service that matches wins. */
export interface RouteSpec {
  /** The route's name: `ctx.route`, events, and the `route` label in metrics. Unique within a service. */
  name: string;
  /** OR-ed entries; empty or missing matches every request. */
  match?: readonly RouteMatch[] | undefined;
  /** Weighted backends; missing means the whole service. */
  backends?: readonly BackendRef[] | undefined;
  /** The header whose value keeps a request on one backend while weights stay the same. */
  stickyHeader?: string | undefined;
  /** Per-route overrides of the service policy. */
  timeout?: Policy['timeout'] | undefined;
  retry?: Policy['retry'] | undefined;
  hashHeader?: string | undefined;
  fault?: FaultSpec | undefined;
  mirror?: MirrorSpec | undefined;
}

/**
 * The four parts `configure` replaces as a whole, and the shape a {@link ConfigSource} sends (for the services it
 * governs) and `fileConfig` reads.
 */
export interface MeshConfigInput {
  defaults?: Policy | undefined;
  services?: Readonly<Record<string, Policy>> | undefined;
  routes?: Readonly<Record<string, readonly RouteSpec[]>> | undefined;
  subsets?: Readonly<Record<string, Readonly<Record<string, SubsetSpec>>>> | undefined;
}

/** `mesh.config()`: what is in force, as plain JSON (functions appear as `"[function]"`, a balancer object by its name). */
export interface MeshConfigView {
  readonly version: number;
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly services: Readonly<Record<string, unknown>>;
  readonly routes: Readonly<Record<string, readonly RouteSpec[]>>;
  readonly subsets: Readonly<Record<string, Readonly<Record<string, SubsetSpec>>>>;
  /** Where each governed service's configuration comes from: `'api'`, or a config source's name. */
  readonly sources: Readonly<Record<string, string>>;
}

/**
 * A controller: pushes configuration for the services it governs. What it sets wins over `createMesh` and
 * `configure` for those services. Last good wins: an error (`onError`) never empties what is in force.
 */
export interface ConfigSource {
  /** Its name in `config-update` and `config-error` events (`'file:/etc/mesh.json'`, `'consul'`). */
  readonly name?: string | undefined;
  /** Starts watching; `onUpdate` gets each new configuration in full. Returns the unsubscribe. */
  watch(onUpdate: (config: MeshConfigInput) => void, onError: (error: Error) => void): () => void;
  close?(): void | Promise<void>;
}
