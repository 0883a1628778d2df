// registerMeshMetrics with the real prom-client: the mesh's series in the app's own registry, in both content
// types, as JSON, with several meshes, after unregistering and closing, and through cluster aggregation.
import { AggregatorRegistry, Counter, Registry, type MetricObjectWithValues, type MetricValue, type RegistryContentType } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, registerMeshMetrics, staticRegistry, type Mesh, type MeshOptions } from '../../src/index.js';
import { METRIC_FAMILIES } from '../../src/observe/metric-families.js';
import { parseExposition, value } from './exposition.js';

const meshes: Mesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

function mesh(options: Partial<MeshOptions> = {}): Mesh {
  const m = createMesh({ registry: staticRegistry({ users: ['127.0.0.1:1', '127.0.0.1:2'] }), ...options });
  meshes.push(m);
  return m;
}

async function calls(m: Mesh, n: number, fail = 0): Promise<void> {
  for (let i = 0; i < n; i++) await m.call('users', async () => 'ok');
  for (let i = 0; i < fail; i++) {
    await m.call('users', async () => Promise.reject(new Error('boom')), { retry: false }).catch(() => undefined);
  }
}

/** A registry with the app's own counter, as an app has before it adds the mesh. */
function appRegistry(contentType: RegistryContentType = Registry.PROMETHEUS_CONTENT_TYPE): Registry<RegistryContentType> {
  // prom-client's types leave out the constructor's content type argument (lib/registry.js takes it).
  const registry = new (Registry as unknown as new (type: RegistryContentType) => Registry<RegistryContentType>)(contentType);
  const appCounter = new Counter({ name: 'app_orders_total', help: 'Orders taken.', registers: [registry] });
  appCounter.inc(7);
  return registry;
}

describe('registerMeshMetrics(mesh, registry) with prom-client', () => {
  it('puts the mesh series into registry.metrics() (text 0.0.4), beside the app metric', async () => {
    const registry = appRegistry();
    const m = mesh();
    registerMeshMetrics(m, registry);
    await calls(m, 3, 2);
    const text = await registry.metrics();
    expect(registry.contentType).toBe(Registry.PROMETHEUS_CONTENT_TYPE);
    const families = parseExposition(text);
    expect(value(families, 'app_orders_total')).toBe(7);
    expect(value(families, 'proxyless_requests_total', { service: 'users', outcome: 'success' })).toBe(3);
    expect(value(families, 'proxyless_requests_total', { service: 'users', outcome: 'failure' })).toBe(2);
    expect(value(families, 'proxyless_request_duration_seconds_count', { service: 'users' })).toBe(5);
    expect(value(families, 'proxyless_request_duration_seconds_bucket', { service: 'users', le: '+Inf' })).toBe(5);
    expect(value(families, 'proxyless_endpoints', { service: 'users', state: 'healthy' })).toBe(2);
    for (const f of Object.values(METRIC_FAMILIES)) expect(families.get(f.name)?.type).toBe(f.type);
    // The same samples as mesh.metrics() gives (prom-client writes the same text, but for blank lines).
    const own = parseExposition(m.metrics());
    expect(value(families, 'proxyless_attempts_total', { endpoint: '127.0.0.1:1', outcome: 'success' })).toBe(
      value(own, 'proxyless_attempts_total', { endpoint: '127.0.0.1:1', outcome: 'success' }),
    );
  });

  it('follows the registry into OpenMetrics (setContentType) and back, counters named as each format wants', async () => {
    const registry = appRegistry();
    const m = mesh();
    registerMeshMetrics(m, registry);
    await calls(m, 2);
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const om = await registry.metrics();
    expect(om.endsWith('\n# EOF\n')).toBe(true);
    expect(om.match(/# EOF/g)).toHaveLength(1);
    expect(om).toContain('# TYPE proxyless_requests counter\n');
    expect(om).toContain('proxyless_requests_total{service="users",outcome="success"} 2\n');
    expect(om).not.toContain('proxyless_requests_total_total');
    expect(om).toContain('# TYPE app_orders counter\n');
    expect(om).toContain('# TYPE proxyless_request_duration_seconds histogram\n');

    // Back to text: the registry key and the family name are still proxyless_requests_total.
    registry.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE proxyless_requests_total counter\n');
    expect(value(parseExposition(text), 'proxyless_requests_total', { outcome: 'success' })).toBe(2);
    expect(registry.getSingleMetric('proxyless_requests_total')).toBeDefined();
  });

  it('works in a registry made for OpenMetrics (new Registry(OPENMETRICS_CONTENT_TYPE))', async () => {
    const registry = appRegistry(Registry.OPENMETRICS_CONTENT_TYPE);
    const m = mesh({ name: 'edge' });
    registerMeshMetrics(m, registry);
    await calls(m, 1);
    const om = await registry.metrics();
    expect(om).toContain('proxyless_requests_total{mesh="edge",service="users",outcome="success"} 1\n');
    expect(om).toContain('app_orders_total 7\n');
    expect(om.endsWith('# EOF\n')).toBe(true);
  });

  it('gives the series in getMetricsAsJSON(), with each family aggregator', async () => {
    const registry = appRegistry();
    const m = mesh({ name: 'edge' });
    registerMeshMetrics(m, registry);
    await calls(m, 4);
    const json = await registry.getMetricsAsJSON();
    const requests = json.find((f) => f.name === 'proxyless_requests_total')!;
    expect(requests).toMatchObject({ type: 'counter', aggregator: 'sum', help: METRIC_FAMILIES.requests.help });
    expect(requests.values).toContainEqual({ value: 4, labels: { mesh: 'edge', service: 'users', outcome: 'success' } });
    // Label order: mesh first.
    expect(Object.keys(requests.values[0]!.labels)).toEqual(['mesh', 'service', 'outcome']);
    const latency = json.find((f) => f.name === 'proxyless_endpoint_latency_ewma_seconds')!;
    expect(latency.aggregator).toBe('average');
    const hist = json.find((f) => f.name === 'proxyless_request_duration_seconds')!;
    expect(hist.values.find((v) => (v as { metricName?: string }).metricName === 'proxyless_request_duration_seconds_count')?.value).toBe(4);
    expect(json.find((f) => f.name === 'app_orders_total')?.values[0]?.value).toBe(7);
  });

  it('holds two named meshes in one registry: each family once, every mesh with its label', async () => {
    const registry = appRegistry();
    const edge = mesh({ name: 'edge' });
    const internal = mesh({ name: 'internal' });
    registerMeshMetrics(edge, registry);
    registerMeshMetrics(internal, registry);
    await calls(edge, 2);
    await calls(internal, 5);
    const families = parseExposition(await registry.metrics()); // throws on a family declared twice
    expect(value(families, 'proxyless_requests_total', { mesh: 'edge', outcome: 'success' })).toBe(2);
    expect(value(families, 'proxyless_requests_total', { mesh: 'internal', outcome: 'success' })).toBe(5);
    expect(value(families, 'app_orders_total')).toBe(7);
  });

  it('refuses two meshes that would write the same series, and a name another metric holds', () => {
    const registry = new Registry();
    registerMeshMetrics(mesh(), registry);
    expect(() => registerMeshMetrics(mesh(), registry)).toThrow(/two unnamed meshes/);
    const named = mesh({ name: 'a' });
    registerMeshMetrics(named, registry);
    expect(() => registerMeshMetrics(named, registry)).toThrow(/already registered/);
    expect(() => registerMeshMetrics(mesh({ name: 'a' }), registry)).toThrow(/two meshes are named "a"/);

    const other = new Registry();
    new Counter({ name: 'proxyless_retries_total', help: 'Not ours.', registers: [other] });
    expect(() => registerMeshMetrics(mesh(), other)).toThrow(/already has a metric named proxyless_retries_total/);
    expect(other.getSingleMetric('proxyless_requests_total')).toBeUndefined(); // nothing half-registered
    expect(() => registerMeshMetrics(mesh(), {} as never)).toThrow(TypeError);
    expect(() => registerMeshMetrics({} as never, registry)).toThrow(/made by createMesh/);
  });

  it('unregisters: the returned function, and closing the mesh, take its series out', async () => {
    const registry = appRegistry();
    const edge = mesh({ name: 'edge' });
    const internal = mesh({ name: 'internal' });
    const unregisterEdge = registerMeshMetrics(edge, registry);
    registerMeshMetrics(internal, registry);
    await calls(edge, 1);
    await calls(internal, 1);

    unregisterEdge();
    unregisterEdge(); // idempotent
    let text = await registry.metrics();
    expect(text).not.toContain('mesh="edge"');
    expect(text).toContain('mesh="internal"');

    await internal.close();
    text = await registry.metrics();
    expect(text).not.toContain('proxyless_');
    expect(parseExposition(text).has('app_orders_total')).toBe(true);
    // The names are free again: the mesh can come back.
    registerMeshMetrics(edge, registry);
    expect(await registry.metrics()).toContain('mesh="edge"');
    await expect(registry.metrics()).resolves.toContain('app_orders_total 7');
    expect(() => registerMeshMetrics(internal, new Registry())).toThrow(expect.objectContaining({ code: 'ECLOSED' }));
  });

  it('keeps its counters through registry.resetMetrics() (they belong to the mesh)', async () => {
    const registry = new Registry();
    const m = mesh();
    registerMeshMetrics(m, registry);
    await calls(m, 2);
    registry.resetMetrics();
    expect(value(parseExposition(await registry.metrics()), 'proxyless_requests_total', { outcome: 'success' })).toBe(2);
  });

  it('renders each scrape from fresh counters (the per-scrape cache is dropped)', async () => {
    const registry = new Registry();
    const m = mesh();
    registerMeshMetrics(m, registry);
    await calls(m, 1);
    expect(value(parseExposition(await registry.metrics()), 'proxyless_requests_total', { outcome: 'success' })).toBe(1);
    await calls(m, 1);
    expect(value(parseExposition(await registry.metrics()), 'proxyless_requests_total', { outcome: 'success' })).toBe(2);
  });

  it('aggregates two workers with AggregatorRegistry: counters and histograms summed, gauges as chosen', async () => {
    const workers = [mesh({ name: 'edge' }), mesh({ name: 'edge' })];
    const jsons: MetricObjectWithValues<MetricValue<string>>[][] = [];
    for (const [i, m] of workers.entries()) {
      const registry = new Registry();
      registerMeshMetrics(m, registry);
      await calls(m, i + 1);
      jsons.push(await registry.getMetricsAsJSON());
    }
    const aggregated = AggregatorRegistry.aggregate(jsons);
    const families = parseExposition(await aggregated.metrics());
    expect(value(families, 'proxyless_requests_total', { mesh: 'edge', service: 'users', outcome: 'success' })).toBe(3);
    expect(value(families, 'proxyless_request_duration_seconds_count', { service: 'users' })).toBe(3);
    expect(value(families, 'proxyless_request_duration_seconds_bucket', { service: 'users', le: '+Inf' })).toBe(3);
    // Averaged, not summed: two workers each see two healthy endpoints.
    expect(value(families, 'proxyless_endpoints', { service: 'users', state: 'healthy' })).toBe(2);
    // Flags take the max; info keeps its 1.
    expect(value(families, 'proxyless_panic', { service: 'users' })).toBe(0);
    expect(value(families, 'proxyless_endpoint_info', { endpoint: '127.0.0.1:1' })).toBe(1);
  });
});
