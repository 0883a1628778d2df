/**
 * `npx tsx examples/otel.ts`: proxyless with OpenTelemetry, through `@opentelemetry/api` only (an optional peer).
 *
 * 1. `withTelemetry(mesh, otel)`, the one line most applications need: a span per call with a CLIENT span per
 *    attempt (HTTP semantic conventions), each attempt sending its own `traceparent`, and OTel metrics that mirror
 *    the Prometheus series (`http.client.request.duration`, `proxyless.client.*`). `main()` below uses it.
 * 2. Lighter alternatives, when you want no spans of the mesh's own: `withTraceContext(otel)` makes every attempt
 *    of `mesh.fetch` carry the caller's trace context, and {@link instrumentMesh} turns the mesh's events into OTel
 *    metrics (counters and an attempt-duration histogram from events, gauges from `mesh.snapshot()`).
 *
 * In an application, an SDK registers the real pieces (`@opentelemetry/sdk-node`: a MeterProvider with an OTLP
 * or Prometheus exporter, the W3C propagator, the AsyncLocalStorage context manager). So that this file runs
 * with the API alone, {@link installMinimalTracing} registers small stand-ins for the last two; without an SDK
 * the meter is a no-op, and the run prints what the backend received.
 *
 * A note on cost: `success`/`failure` listeners make the mesh build an event payload per attempt (an
 * allocation on the hot path). If Prometheus is your backend, `mesh.metrics()` exports the same at no
 * per-call cost; use this when your pipeline is OTLP.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import * as otel from '@opentelemetry/api';
import { createMesh, staticRegistry, withTelemetry, type Mesh, type MeshEvents } from 'proxyless';

/** Attribute names: OTel's semantic conventions where one exists (`server.*`), else `proxyless.*`. */
const attrs = (service: string, endpoint?: { host: string; port: number }, extra?: otel.Attributes): otel.Attributes => ({
  'proxyless.service': service,
  ...(endpoint ? { 'server.address': endpoint.host, 'server.port': endpoint.port } : {}),
  ...extra,
});

/**
 * Records the mesh's activity on `meter`. Returns a function that removes every listener and callback.
 *
 * @example instrumentMesh(mesh, otel.metrics.getMeter('proxyless'))
 */
export function instrumentMesh(mesh: Mesh, meter: otel.Meter): () => void {
  const attempts = meter.createCounter('proxyless.attempts', { description: 'Attempts that ended, by outcome', unit: '{attempt}' });
  const attemptDuration = meter.createHistogram('proxyless.attempt.duration', {
    description: 'Duration of attempts with a verdict',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
  });
  const retries = meter.createCounter('proxyless.retries', { description: 'Retries started', unit: '{retry}' });
  const hedges = meter.createCounter('proxyless.hedges', { description: 'Hedged attempts started', unit: '{attempt}' });
  const refused = meter.createCounter('proxyless.retry_budget.exhausted', { description: 'Retries or hedges refused by the budget' });
  const ejections = meter.createCounter('proxyless.ejections', { description: 'Outlier ejections', unit: '{ejection}' });
  const breaker = meter.createCounter('proxyless.breaker.transitions', { description: 'Breaker state changes, by state entered' });
  const rejected = meter.createCounter('proxyless.bulkhead.rejections', { description: 'Calls refused by the bulkhead', unit: '{call}' });
  const inflight = meter.createObservableGauge('proxyless.endpoint.in_flight', { description: 'Attempts in flight', unit: '{attempt}' });
  const ewma = meter.createObservableGauge('proxyless.endpoint.latency_ewma', { description: 'Peak-EWMA latency', unit: 's' });
  const budget = meter.createObservableGauge('proxyless.retry_budget.balance', { description: 'Retries the budget allows now' });

  const listeners: { [E in keyof MeshEvents]?: (payload: MeshEvents[E]) => void } = {
    success: ({ service, endpoint, durationMs }) => {
      attempts.add(1, attrs(service, endpoint, { 'proxyless.outcome': 'success' }));
      attemptDuration.record(durationMs / 1_000, attrs(service, endpoint, { 'proxyless.outcome': 'success' }));
    },
    failure: ({ service, endpoint, durationMs, status }) => {
      const extra = { 'proxyless.outcome': 'failure', ...(status !== undefined ? { 'http.response.status_code': status } : {}) };
      attempts.add(1, attrs(service, endpoint, extra));
      attemptDuration.record(durationMs / 1_000, attrs(service, endpoint, extra));
    },
    retry: ({ service }) => retries.add(1, attrs(service)),
    hedge: ({ service }) => hedges.add(1, attrs(service)),
    'budget-exhausted': ({ service }) => refused.add(1, attrs(service)),
    ejected: ({ service, endpoint }) => ejections.add(1, attrs(service, endpoint)),
    'breaker-open': ({ service, endpoint }) => breaker.add(1, attrs(service, endpoint, { 'proxyless.breaker.state': 'open' })),
    'breaker-half-open': ({ service, endpoint }) => breaker.add(1, attrs(service, endpoint, { 'proxyless.breaker.state': 'half-open' })),
    'breaker-close': ({ service, endpoint }) => breaker.add(1, attrs(service, endpoint, { 'proxyless.breaker.state': 'closed' })),
    rejected: ({ service }) => rejected.add(1, attrs(service)),
  };
  for (const [event, listener] of Object.entries(listeners)) mesh.on(event as keyof MeshEvents, listener as never);

  const observe: otel.BatchObservableCallback = (result) => {
    for (const [service, s] of Object.entries(mesh.snapshot().services)) {
      if (s.retryBudget !== null) result.observe(budget, s.retryBudget, attrs(service));
      for (const e of s.endpoints) {
        result.observe(inflight, e.inflight, attrs(service, e));
        result.observe(ewma, e.ewmaMs / 1_000, attrs(service, e));
      }
    }
  };
  meter.addBatchObservableCallback(observe, [inflight, ewma, budget]);

  return () => {
    for (const [event, listener] of Object.entries(listeners)) mesh.off(event as keyof MeshEvents, listener as never);
    meter.removeBatchObservableCallback(observe, [inflight, ewma, budget]);
  };
}

/**
 * Stand-ins for what an OTel SDK registers, so this example runs with `@opentelemetry/api` alone: an
 * AsyncLocalStorage context manager and a W3C Trace Context propagator (inject only). Not for production.
 */
export function installMinimalTracing(): void {
  const storage = new AsyncLocalStorage<otel.Context>();
  const manager: otel.ContextManager = {
    active: () => storage.getStore() ?? otel.ROOT_CONTEXT,
    with: (ctx, fn, thisArg, ...args) => storage.run(ctx, () => fn.call(thisArg, ...args)),
    bind: (_ctx, target) => target,
    enable() {
      return this;
    },
    disable() {
      storage.disable();
      return this;
    },
  };
  otel.context.setGlobalContextManager(manager);
  otel.propagation.setGlobalPropagator({
    inject(ctx, carrier, setter) {
      const span = otel.trace.getSpanContext(ctx);
      if (span === undefined || !otel.isSpanContextValid(span)) return;
      const flags = `0${(span.traceFlags & otel.TraceFlags.SAMPLED).toString(16)}`;
      setter.set(carrier, 'traceparent', `00-${span.traceId}-${span.spanId}-${flags}`);
    },
    extract: (ctx) => ctx,
    fields: () => ['traceparent'],
  });
}

async function main(): Promise<void> {
  installMinimalTracing();
  const seen: (string | undefined)[] = [];
  const backend = http.createServer((req, res) => {
    seen.push(req.headers.traceparent as string | undefined);
    res.end('ok');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const mesh = createMesh({ registry: staticRegistry({ api: [address] }) });
  // With an SDK registered, each attempt gets a span of its own and sends that span's traceparent; with the API
  // alone (as here) spans are no-ops, and each attempt sends the caller's context.
  const telemetry = withTelemetry(mesh, otel);
  try {
    // A span as an instrumented HTTP server would start it for an incoming request (here made by hand).
    const span = otel.trace.wrapSpanContext({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 });
    await otel.context.with(otel.trace.setSpan(otel.context.active(), span), async () => {
      await (await mesh.fetch('http://api/inside-a-span')).text();
    });
    await (await mesh.fetch('http://api/no-span')).text();
    console.log(`traceparent inside a span: ${seen[0]}`);
    console.log(`traceparent with no span:  ${seen[1] ?? '(none)'}`);
  } finally {
    telemetry.close();
    await mesh.close();
    backend.closeAllConnections();
    await new Promise((resolve) => backend.close(resolve));
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
