/**
 * The layers of src/, bottom first. An import must point down (or stay in its layer), so each layer can be
 * read, tested and replaced without the ones above it:
 * - kernel: errors, events, utilities, the endpoint value;
 * - resilience: protocol-free policy (breaker, outlier, budget, bulkhead, latency window), each with its options;
 * - endpoint: an endpoint's live state (latency, in-flight, its breaker and detector) and the set of them;
 * - policy: balancers (they read endpoint state), discovery (it never imports a balancer), counters;
 * - transport: the protocol seam (fetch, any call);
 * - config: option types, defaults, validation, the configuration store and route matching;
 * - call: the ordered steps of one call;
 * - service: a service's health, its plan (backends, routes) and mirrors;
 * - observe: snapshot, metrics, admin (they read services);
 * - sources: config sources (file, Consul's discovery chain): they send configurations, they hold no service;
 * - mesh (and its core, for adapters);
 * - adapter: what runs calls through the core with a transport of its own (undici, clients per endpoint), or hooks
 *   into it (OpenTelemetry);
 * - testing: the published kit for adapter authors (the registry contract); it drives discovery, nothing imports it;
 * - the entry points.
 */
/** The files of src/observe/ that read a mesh's core (its services, name, close) and so sit with the adapters. */
const MESH_BOUND = ['src/observe/telemetry.ts', 'src/observe/prom-client.ts', 'src/observe/render-meshes.ts'];

export const LAYERS: readonly (readonly [name: string, test: (path: string) => boolean])[] = [
  ['kernel', (p) => p.startsWith('src/util/') || ['src/errors.ts', 'src/events.ts', 'src/observe/emitter.ts', 'src/observe/histogram.ts', 'src/endpoint/endpoint.ts'].includes(p)],
  ['resilience', (p) => p.startsWith('src/resilience/')],
  ['endpoint', (p) => p.startsWith('src/endpoint/')],
  ['policy', (p) => p.startsWith('src/balancer/') || p.startsWith('src/discovery/') || ['src/observe/service-metrics.ts', 'src/observe/route-stats.ts'].includes(p)],
  ['transport', (p) => p.startsWith('src/transport/')],
  ['config', (p) => ['src/options.ts', 'src/defaults.ts', 'src/validate.ts', 'src/validate-health.ts', 'src/validate-merged.ts', 'src/validate-primitives.ts'].includes(p) || p.startsWith('src/config/')],
  ['call', (p) => p.startsWith('src/call/')],
  ['service', (p) => ['src/service.ts', 'src/service-health.ts', 'src/service-table.ts', 'src/health-check.ts'].includes(p) || p.startsWith('src/routing/')],
  // telemetry.ts, prom-client.ts and render-meshes.ts bind to a mesh's core, as an adapter does (the rest is observe)
  ['observe', (p) => p.startsWith('src/observe/') && !MESH_BOUND.includes(p)],
  ['sources', (p) => p.startsWith('src/sources/')],
  ['mesh', (p) => ['src/mesh.ts', 'src/mesh-core.ts', 'src/mesh-config.ts', 'src/mesh-calls.ts', 'src/warmup.ts'].includes(p)],
  ['adapter', (p) => p.startsWith('src/undici/') || p === 'src/endpoint-clients.ts' || MESH_BOUND.includes(p)],
  ['testing', (p) => p.startsWith('src/testing/')],
  ['entry', (p) => /^src\/[a-z-]+\.ts$/.test(p)],
];

export function layerOf(path: string): number {
  const i = LAYERS.findIndex(([, test]) => test(path));
  if (i < 0) throw new Error(`${path} is in no layer: add it to test/architecture/layers.ts`);
  return i;
}
