import { resolvePolicy } from '../defaults.js';
import type { Policy, ResolvedPolicy } from '../options.js';
import type { MeshConfigInput, MeshConfigView, RouteSpec, SubsetSpec } from './types.js';
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
 * config source last sent, which wins for the services it governs (those it names). A change is validated
 * whole, merged included, before anything moves; then the version goes up by one. Sources are layered in the
 * order they were given. A source's policy for a service is merged over the API's, key by key; its routes and
 * subsets for a service replace the API's; its `defaults`, when it sends any, replace the API's.
 */
export class ConfigStore {
  version = 1;
  private api: MeshConfigInput;
  private readonly sources = new Map<string, MeshConfigInput>();
  private effective: Effective;
  private readonly resolved = new Map<string, ResolvedPolicy>();

  constructor(initial: MeshConfigInput) {
    this.api = initial;
    this.effective = merge(initial, this.sources);
  }

  /** `configure`: replaces the API's four parts as a whole. Throws a `TypeError` (and changes nothing) when invalid. */
  setApi(input: MeshConfigInput): ConfigChange {
    validateConfigInput(input, 'configure(config)');
    return this.commit(input, this.sources);
  }

  /** A source's update (validated as `configure` is): it replaces that source's layer. */
  setSource(name: string, input: MeshConfigInput): ConfigChange {
    validateConfigInput(input, `config source '${name}'`);
    const sources = new Map(this.sources);
    sources.set(name, input);
    return this.commit(this.api, sources);
  }

  /** Whether a configuration names this service (its policy, routes or subsets). */
  names(service: string): boolean {
    const e = this.effective;
    return Object.hasOwn(e.services, service) || Object.hasOwn(e.routes, service) || Object.hasOwn(e.subsets, service);
  }

  /** The policy, routes and subsets in force for `service`. */
  serviceConfig(service: string): EffectiveServiceConfig {
    const e = this.effective;
    let policy = this.resolved.get(service);
    if (policy === undefined) {
      policy = resolvePolicy(e.defaults, Object.hasOwn(e.services, service) ? e.services[service] : undefined);
      this.resolved.set(service, policy);
    }
    return {
      policy,
      routes: Object.hasOwn(e.routes, service) ? e.routes[service] : undefined,
      subsets: Object.hasOwn(e.subsets, service) ? e.subsets[service]! : {},
    };
  }

  /** `mesh.config()`: plain JSON of what is in force. */
  view(): MeshConfigView {
    const e = this.effective;
    return plain({
      version: this.version,
      defaults: e.defaults,
      services: e.services,
      routes: e.routes,
      subsets: e.subsets,
      sources: e.governedBy,
    }) as MeshConfigView;
  }

  private commit(api: MeshConfigInput, sources: ReadonlyMap<string, MeshConfigInput>): ConfigChange {
    const next = merge(api, sources);
    // Each layer is valid alone; the merge must be too (a source's route may name a subset of the API's).
    validateRouting(next.routes, next.subsets);
    const changed = changedServices(this.effective, next);
    const defaultsChanged = json(this.effective.defaults) !== json(next.defaults);
    this.api = api;
    if (sources !== this.sources) {
      this.sources.clear();
      for (const [k, v] of sources) this.sources.set(k, v);
    }
    this.effective = next;
    this.resolved.clear();
    this.version++;
    return { version: this.version, services: changed, defaultsChanged };
  }
}

function merge(api: MeshConfigInput, sources: ReadonlyMap<string, MeshConfigInput>): Effective {
  let defaults: Policy = api.defaults ?? {};
  const services: Record<string, Policy> = copy(api.services);
  const routes: Record<string, readonly RouteSpec[]> = copy(api.routes);
  const subsets: Record<string, Readonly<Record<string, SubsetSpec>>> = copy(api.subsets);
  const governedBy: Record<string, string> = {};
  for (const name of new Set([...Object.keys(services), ...Object.keys(routes), ...Object.keys(subsets)])) define(governedBy, name, 'api');
  for (const [source, layer] of sources) {
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
      define(subsets, name, byName);
      define(governedBy, name, source);
    }
  }
  return { defaults, services, routes, subsets, governedBy };
}

/** Services whose part changed (every one named anywhere when `defaults` changed). */
function changedServices(a: Effective, b: Effective): string[] {
  const names = new Set([a, b].flatMap((e) => [...Object.keys(e.services), ...Object.keys(e.routes), ...Object.keys(e.subsets)]));
  const defaultsChanged = json(a.defaults) !== json(b.defaults);
  return [...names].filter(
    (n) =>
      defaultsChanged ||
      json(a.services[n]) !== json(b.services[n]) ||
      json(a.routes[n]) !== json(b.routes[n]) ||
      json(a.subsets[n]) !== json(b.subsets[n]),
  );
}

function json(value: unknown): string {
  return JSON.stringify(plain(value)) ?? '';
}

/** Own keys only; a name like `__proto__` is an ordinary key (defined, not assigned). */
function copy<T>(record: Readonly<Record<string, T>> | undefined): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(record ?? {})) define(out, k, v);
  return out;
}

function define<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Plain JSON of a configuration part: functions as `"[function]"`, a balancer object as its name, Sets as
 * arrays, everything else as it is (frozen, so `config()` cannot be used to change what is in force).
 */
function plain(value: unknown): unknown {
  if (typeof value === 'function') return '[function]';
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Set) return Object.freeze([...value].map(plain));
  if (Array.isArray(value)) return Object.freeze(value.map(plain));
  const v = value as Record<string, unknown>;
  if (typeof v.pick === 'function' && typeof v.name === 'string') return v.name;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined) define(out, k, plain(x));
  return Object.freeze(out);
}
