import type { ExpositionSink, LabelSet } from './exposition-sink.js';
import { DURATION_BOUNDS_MS, type Histogram } from './histogram.js';
import { MeshClosedError } from '../errors.js';
import { meshCore, type MeshCore } from '../mesh-core.js';
import type { Mesh } from '../mesh.js';
import { checkDistinct } from './render-meshes.js';
import { METRIC_FAMILIES, type MetricAggregator, type MetricFamily, type MetricType } from './metric-families.js';
import { writeMetrics } from './prometheus.js';

/** One value of a metric as prom-client's collect path wants it (`get()`'s `values`). */
export interface PromClientValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** What prom-client's `Registry` reads of a metric object: `registerMetric`, `metrics()`, `getMetricsAsJSON()`, cluster. */
export interface PromClientMetric {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly aggregator: MetricAggregator;
  get(): { name: string; help: string; type: MetricType; aggregator: MetricAggregator; values: PromClientValue[] };
  reset(): void;
}

/**
 * The part of a prom-client `Registry` (15.x, the version tested) that {@link registerMeshMetrics} uses; typed
 * here so that the core never imports prom-client (an optional peer).
 */
export interface PromClientRegistry {
  /** Typed `never`, so that prom-client's own signature (`Metric<T>`) fits: it receives a {@link PromClientMetric}. */
  registerMetric(metric: never): void;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

const LE = DURATION_BOUNDS_MS.map((ms) => ms / 1_000);

/** Gathers the model's samples as prom-client values, per family (one walk for every family and mesh). */
class PromClientSink implements ExpositionSink {
  readonly values = new Map<string, PromClientValue[]>();
  private current: PromClientValue[] = [];
  private name = '';

  family(f: MetricFamily): void {
    this.current = [];
    this.name = f.name;
    this.values.set(f.name, this.current);
  }

  sample(labels: LabelSet, value: number, extraName?: string, extraValue?: string): void {
    this.current.push({ value, labels: labels.object(extraName, extraValue) });
  }

  histogram(labels: LabelSet, h: Histogram): void {
    // As prom-client's own Histogram: `metricName` per sample, `le` a number (`'+Inf'` for the last bucket).
    const name = this.name;
    let cumulative = 0;
    for (let i = 0; i < LE.length; i++) {
      cumulative += h.counts[i]!;
      this.current.push({ value: cumulative, labels: { ...labels.object(), le: LE[i]! }, metricName: `${name}_bucket` });
    }
    cumulative += h.counts[LE.length]!;
    this.current.push({ value: cumulative, labels: { ...labels.object(), le: '+Inf' }, metricName: `${name}_bucket` });
    this.current.push({ value: h.sumMs / 1_000, labels: labels.object(), metricName: `${name}_sum` });
    this.current.push({ value: cumulative, labels: labels.object(), metricName: `${name}_count` });
  }
}

/** The meshes of one prom-client registry, and the one metric object per family name registered in it. */
class RegistryState {
  readonly meshes = new Map<object, { source: MeshCore; stopWatching: () => void }>();
  readonly metrics: FamilyMetric[];
  private cache: Map<string, PromClientValue[]> | undefined;

  constructor() {
    this.metrics = Object.values(METRIC_FAMILIES).map((f) => new FamilyMetric(f, this));
  }

  /**
   * The values of one family. prom-client calls every metric's `get()` in one synchronous loop (`metrics()`,
   * `getMetricsAsJSON()`), so the first call renders every mesh once, and the result is dropped in a microtask:
   * a scrape walks the services once, and the next scrape sees fresh counters.
   */
  values(name: string): PromClientValue[] {
    if (this.cache === undefined) {
      const sink = new PromClientSink();
      writeMetrics([...this.meshes.values()].map(({ source }) => source.metricsModel()), sink);
      this.cache = sink.values;
      queueMicrotask(() => (this.cache = undefined));
    }
    return this.cache.get(name) ?? [];
  }
}

/**
 * One proxyless family as a prom-client metric. In OpenMetrics mode prom-client renames a counter before it
 * writes it (`name` without `_total`; it adds `_total` back to the samples), then calls `getForPromString()` at
 * once: the setter notes the rename for that call only, so that `name` itself (the registry's key) never
 * changes and a later text-format scrape still says `proxyless_requests_total`.
 */
class FamilyMetric implements PromClientMetric {
  readonly help: string;
  readonly type: MetricType;
  readonly aggregator: MetricAggregator;
  private renamed: string | undefined;

  constructor(
    private readonly family: MetricFamily,
    private readonly state: RegistryState,
  ) {
    this.help = family.help;
    this.type = family.type;
    this.aggregator = family.aggregator;
  }

  get name(): string {
    return this.family.name;
  }

  set name(name: string) {
    this.renamed = name;
  }

  get() {
    return { name: this.family.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.state.values(this.family.name) };
  }

  /** What prom-client's `metrics()` reads in place of `get()`. */
  getForPromString() {
    const name = this.renamed ?? this.family.name;
    this.renamed = undefined;
    return { ...this.get(), name };
  }

  /** A no-op: the counters belong to the mesh, and `registry.resetMetrics()` must not make them go back. */
  reset(): void {}
}

const states = new WeakMap<object, RegistryState>();

/**
 * Puts a mesh's series into a prom-client registry, through prom-client's collect path (no text is parsed): they
 * appear in `registry.metrics()` (in the registry's content type, text 0.0.4 or OpenMetrics), in
 * `getMetricsAsJSON()`, and so in cluster mode's `AggregatorRegistry` (each family's `aggregator` says how
 * workers combine). Several meshes may share a registry: each family is registered once, and gathers every
 * mesh in it, with its `mesh` label; two meshes with the same `name` (or two unnamed ones) are refused. The
 * series leave when the returned function is called or the mesh closes; a mesh already closed is refused with
 * `MeshClosedError`. prom-client is an optional peer: pass
 * your own `Registry` (or `register`, the global one).
 * @example
 * import { Registry, collectDefaultMetrics } from 'prom-client';
 * const registry = new Registry();
 * collectDefaultMetrics({ register: registry });
 * const unregister = registerMeshMetrics(createMesh({ registry: staticRegistry({}), name: 'edge' }), registry);
 * // ... later, to take the series out: unregister();
 */
export function registerMeshMetrics(mesh: Mesh, registry: PromClientRegistry): () => void {
  const at = 'registerMeshMetrics(mesh, registry)';
  const source = meshCore(mesh, at);
  const r = registry as unknown as Record<string, unknown> | null;
  if (r === null || typeof r !== 'object' || !['registerMetric', 'getSingleMetric', 'removeSingleMetric'].every((m) => typeof r[m] === 'function')) {
    throw new TypeError(`${at}: registry must be a prom-client Registry (registerMetric, getSingleMetric, removeSingleMetric)`);
  }
  // As every mesh method that would start work after close(): a closed mesh's series are gone for good.
  if (source.isClosed()) throw new MeshClosedError('*');
  let state = states.get(registry);
  if (state?.meshes.has(mesh)) throw new TypeError(`${at}: this mesh is already registered in this registry`);
  checkDistinct([...(state?.meshes.values() ?? [])].map((m) => m.source.name).concat(source.name), at);
  state ??= new RegistryState();
  // Every name is checked before any is registered: a clash leaves the registry as it was.
  for (const metric of state.metrics) {
    const held = registry.getSingleMetric(metric.name);
    if (held !== undefined && held !== metric) throw new Error(`${at}: the registry already has a metric named ${metric.name}`);
  }
  for (const metric of state.metrics) if (registry.getSingleMetric(metric.name) === undefined) registry.registerMetric(metric as never);
  states.set(registry, state);
  const entry = { source, stopWatching: () => {} };
  state.meshes.set(mesh, entry);
  const s = state;
  const unregister = (): void => {
    if (s.meshes.get(mesh) !== entry) return; // already done
    s.meshes.delete(mesh);
    entry.stopWatching();
    if (s.meshes.size > 0) return;
    for (const metric of s.metrics) if (registry.getSingleMetric(metric.name) === metric) registry.removeSingleMetric(metric.name);
    if (states.get(registry) === s) states.delete(registry);
  };
  entry.stopWatching = source.onClose(unregister);
  return unregister;
}
