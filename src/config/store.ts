import { resolvePolicy } from '../defaults.js';
import { define } from '../util/own.js';
import type { Policy, ResolvedPolicy } from '../options.js';
import { plainConfig, snapshotInput } from './plain.js';
import type { MeshConfigInput, MeshConfigView, RouteSpec, SubsetSpec } from './types.js';
import { validateMergedPolicies } from '../validate-merged.js';
import { validateConfigInput, validateRouting } from './validate-config.js';

/** What one service gets of the configuration in force. */
export interface EffectiveServiceConfig {
  readonly policy: ResolvedPolicy;
  readonly routes: readonly RouteSpec[] | undefined;
  readonly subsets: Readonly<Record<string, SubsetSpec>>;
}

/** The merged configuration: the API's layer, with each source's over the services it governs. */
interface Effective {
  readonly defaults: Policy;
  readonly services: Readonly<Record<string, Policy>>;
  readonly routes: Readonly<Record<string, readonly RouteSpec[]>>;
  readonly subsets: Readonly<Record<string, Readonly<Record<string, SubsetSpec>>>>;
  readonly governedBy: Readonly<Record<string, string>>;
}

/** One config source's layer: its name (for display and events) and what it last sent. */
interface Layer {
  readonly name: string;
  readonly input: MeshConfigInput;
}

/**
 * A change validated and merged, not yet in force: `configure` builds every service's new plan from it first,
 * and commits only when all of them were built, so a change is in force whole or not at all.
 */
export interface PendingConfig {
  readonly api: MeshConfigInput;
  readonly layers: ReadonlyMap<number, Layer>;
  readonly effective: Effective;
}

/** What a change did: the new version, and the services whose configuration changed. */
export interface ConfigChange {
  readonly version: number;
  /** The services named in either configuration whose part changed. */
  readonly services: readonly string[];
  /** `defaults` changed: every service the mesh runs changed too. */
  readonly defaultsChanged: boolean;
}

/**
 * The configuration in force, in layers: what `createMesh` and `configure` set (the API's), and what each
 * config source last sent, which wins for the services it governs (those it names). Sources are layered in the
 * order they were given, each under its own key (two sources of one name never overwrite each other). For a
 * service a source names, its policy is merged over the API's key by key, its routes replace the API's, and its
 * subsets are merged over the API's by subset name; its `defaults`, when it sends any, replace the API's.
 *
 * What is stored is a copy, frozen, of what was validated: a caller that changes its object afterwards changes
 * nothing here (functions and balancer objects are kept as they are).
 */
export class ConfigStore {
  version = 1;
  private current: PendingConfig;

  constructor(initial: MeshConfigInput) {
    const api = snapshotInput(initial);
    this.current = { api, layers: new Map(), effective: merge(api, new Map()) };
  }

  /** `configure`: the API's four parts replaced as a whole. A `TypeError` when invalid; nothing changes yet. */
  prepareApi(input: MeshConfigInput): PendingConfig {
    const api = snapshotInput(input);
    validateConfigInput(api, 'configure(config)');
    return this.prepare(api, this.current.layers);
  }

  /** A source's update (its layer replaced): validated alone, then merged; nothing changes yet. */
  prepareSource(key: number, name: string, input: MeshConfigInput): PendingConfig {
    const copy = snapshotInput(input);
    validateConfigInput(copy, `config source '${name}'`, false);
    const layers = new Map(this.current.layers);
    layers.set(key, { name, input: copy });
    return this.prepare(this.current.api, layers);
  }

  /** Puts a prepared change in force. */
  commit(pending: PendingConfig): ConfigChange {
    const before = this.current.effective;
    const after = pending.effective;
    this.current = pending;
    this.version++;
    return {
      version: this.version,
      services: changedServices(before, after),
      defaultsChanged: json(before.defaults) !== json(after.defaults),
    };
  }

  /** Whether the configuration in force names this service (its policy, routes or subsets). */
  names(service: string): boolean {
    const e = this.current.effective;
    return Object.hasOwn(e.services, service) || Object.hasOwn(e.routes, service) || Object.hasOwn(e.subsets, service);
  }

  /** The policy, routes and subsets of `service`, in force or in a prepared change. */
  serviceConfig(service: string, of: PendingConfig = this.current): EffectiveServiceConfig {
    const e = of.effective;
    return {
      policy: resolvePolicy(e.defaults, Object.hasOwn(e.services, service) ? e.services[service] : undefined),
      routes: Object.hasOwn(e.routes, service) ? e.routes[service] : undefined,
      subsets: Object.hasOwn(e.subsets, service) ? e.subsets[service]! : {},
    };
  }

  /** `mesh.config()`: plain JSON of what is in force (secrets of a `tls` policy redacted). */
  view(): MeshConfigView {
    const e = this.current.effective;
    return plainConfig({
      version: this.version,
      defaults: e.defaults,
      services: e.services,
      routes: e.routes,
      subsets: e.subsets,
      sources: e.governedBy,
    }) as MeshConfigView;
  }

  private prepare(api: MeshConfigInput, layers: ReadonlyMap<number, Layer>): PendingConfig {
    const effective = merge(api, layers);
    // Each layer is valid alone; the merge must be too (a source's route may name a subset of the API's).
    validateRouting(effective.routes, effective.subsets);
    // And bounds set across layers (`defaults` in one, a service's `max` or a route's timeout in another) hold as
    // each service and route resolves them.
    validateMergedPolicies(effective.defaults, effective.services, effective.routes);
    return { api, layers, effective };
  }
}

function merge(api: MeshConfigInput, layers: ReadonlyMap<number, Layer>): Effective {
  let defaults: Policy = api.defaults ?? {};
  const services: Record<string, Policy> = copy(api.services);
  const routes: Record<string, readonly RouteSpec[]> = copy(api.routes);
  const subsets: Record<string, Readonly<Record<string, SubsetSpec>>> = copy(api.subsets);
  const governedBy: Record<string, string> = {};
  for (const name of new Set([...Object.keys(services), ...Object.keys(routes), ...Object.keys(subsets)])) define(governedBy, name, 'api');
  for (const { name: source, input: layer } of layers.values()) {
    if (layer.defaults !== undefined) defaults = layer.defaults;
    for (const [name, policy] of Object.entries(layer.services ?? {})) {
      define(services, name, { ...(Object.hasOwn(services, name) ? services[name] : {}), ...policy });
      define(governedBy, name, source);
    }
    for (const [name, list] of Object.entries(layer.routes ?? {})) {
      define(routes, name, list);
      define(governedBy, name, source);
    }
    for (const [name, byName] of Object.entries(layer.subsets ?? {})) {
      const merged = copy(Object.hasOwn(subsets, name) ? subsets[name] : undefined);
      for (const [subset, spec] of Object.entries(byName)) define(merged, subset, spec);
      define(subsets, name, merged);
      define(governedBy, name, source);
    }
  }
  return { defaults, services, routes, subsets, governedBy };
}

/** Services whose part changed (`defaults` is reported apart). */
function changedServices(a: Effective, b: Effective): string[] {
  const names = new Set([a, b].flatMap((e) => [...Object.keys(e.services), ...Object.keys(e.routes), ...Object.keys(e.subsets)]));
  const part = (e: Effective, key: 'services' | 'routes' | 'subsets', n: string): unknown => (Object.hasOwn(e[key], n) ? e[key][n] : undefined);
  return [...names].filter((n) => (['services', 'routes', 'subsets'] as const).some((k) => json(part(a, k, n)) !== json(part(b, k, n))));
}

function json(value: unknown): string {
  return JSON.stringify(plainConfig(value)) ?? '';
}

/** Own keys only; a name like `__proto__` is an ordinary key (defined, not assigned). */
function copy<T>(record: Readonly<Record<string, T>> | undefined): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(record ?? {})) define(out, k, v);
  return out;
}
