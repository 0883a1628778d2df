import type { MeshEvents } from '../events.js';
import { MeshClosedError } from '../errors.js';
import { meshCore } from '../mesh-core.js';
import type { Mesh } from '../mesh.js';
import type { TelemetryApi, TelemetryAttributes, TelemetryBatchCallback, TelemetryCounter } from './telemetry-api.js';
import { createInstruments } from './telemetry-metrics.js';
import { TelemetryInstrument } from './telemetry-spans.js';

/** The tracer's and the meter's instrumentation scope version: the package's (a test keeps it equal to package.json). */
export const PROXYLESS_VERSION = '0.1.0';

/** What {@link withTelemetry} returns. */
export interface Telemetry {
  /**
   * Stops it: no new spans, no more metric recordings, its listeners removed, the mesh's call path back to no
   * telemetry. Spans already open end with their call. Idempotent; `mesh.close()` does it too.
   */
  close(): void;
}

/**
 * Traces and measures every call of `mesh` made from now on with OpenTelemetry, following its semantic
 * conventions:
 * - a span per call (kind INTERNAL, the logical request): `proxyless.service`, `proxyless.outcome`, the route and
 *   backend when a route matched, and on failure status ERROR with `error.type`;
 * - a CLIENT child span per attempt (every physical request, retries and hedges alike): `server.address`,
 *   `server.port`, `proxyless.endpoint.id`, and for HTTP `http.request.method`, `url.full`,
 *   `http.response.status_code` and `http.request.resend_count` from the second attempt on (1, 2, ...);
 *   `error.type` (the status code, or the error's code or class name) on failure;
 * - each attempt runs with its span active, and a mesh.fetch attempt sends that span's `traceparent` (what the
 *   registered propagator writes), so each retry and hedge carries its own; a header the caller set is kept;
 * - OTel metrics that mirror the Prometheus series: `http.client.request.duration` and `proxyless.client.*`.
 *
 * `otel` is the `@opentelemetry/api` module (an optional peer: the mesh never imports it); the SDK you register
 * supplies the tracer, meter, context manager (AsyncLocalStorage, for the active span to follow each attempt) and
 * propagator. What those throw is reported on `callback-error` (callback `'telemetry'`), never to a call.
 * One telemetry per mesh at a time: a second `withTelemetry` before `close()` throws a `TypeError`; a closed
 * mesh is refused with `MeshClosedError`.
 *
 * @param mesh a mesh made by `createMesh`
 * @param otel `@opentelemetry/api` (or an object with its `trace`, `context`, `propagation` and `metrics`)
 * @example
 * import * as otel from '@opentelemetry/api';
 * const telemetry = withTelemetry(mesh, otel);
 * // ... on shutdown
 * telemetry.close();
 */
export function withTelemetry(mesh: Mesh, otel: TelemetryApi): Telemetry {
  const api = otel as Partial<TelemetryApi> | undefined;
  if (
    typeof api?.trace?.getTracer !== 'function' ||
    typeof api.trace.setSpan !== 'function' ||
    typeof api.context?.active !== 'function' ||
    typeof api.context.with !== 'function' ||
    typeof api.propagation?.inject !== 'function' ||
    typeof api.metrics?.getMeter !== 'function'
  ) {
    throw new TypeError('withTelemetry(mesh, otel): otel must be @opentelemetry/api (with trace, context, propagation and metrics)');
  }
  const core = meshCore(mesh, 'withTelemetry(mesh, otel)');
  // As every mesh method that would start work after close() (`on` included): a closed mesh makes no calls.
  if (core.isClosed()) throw new MeshClosedError('*');
  const env = core.env;
  if (env.instrument !== undefined) {
    throw new TypeError('withTelemetry(mesh, otel): this mesh already has telemetry on; close() that one first');
  }
  const meter = otel.metrics.getMeter('proxyless', PROXYLESS_VERSION);
  const instruments = createInstruments(meter);
  const events = env.events;
  const report = (service: string, error: unknown): void => {
    if (events.has('callback-error')) events.emit('callback-error', { service, callback: 'telemetry', error });
  };
  const instrument = new TelemetryInstrument({
    api: otel,
    tracer: otel.trace.getTracer('proxyless', PROXYLESS_VERSION),
    instruments,
    clock: env.clock,
    report,
  });
  // The governance counters come from the mesh's own events (off the success path), as its Prometheus twins do. What
  // a counter throws is telemetry's to report (callback-error), not the emitter's (listener-error, console.error).
  const count = (counter: TelemetryCounter, attributes: TelemetryAttributes & { 'proxyless.service': string }): void => {
    try {
      counter.add(1, attributes);
    } catch (error) {
      report(attributes['proxyless.service'], error);
    }
  };
  const listeners = {
    retry: ({ service }: MeshEvents['retry']) => count(instruments.retries, { 'proxyless.service': service }),
    hedge: ({ service }: MeshEvents['hedge']) => count(instruments.hedges, { 'proxyless.service': service }),
    ejected: ({ service, endpoint, reason }: MeshEvents['ejected']) =>
      count(instruments.ejections, { 'proxyless.service': service, 'proxyless.endpoint.id': endpoint.id, 'proxyless.ejection.reason': reason }),
  };
  // Calls and attempts in flight, read at collection time from the snapshot (what the Prometheus gauges read).
  const observed = [instruments.activeCalls, instruments.activeAttempts] as never[];
  const observe: TelemetryBatchCallback = (result) => {
    for (const [service, s] of Object.entries(mesh.snapshot().services)) {
      result.observe(instruments.activeCalls as never, s.activeCalls, { 'proxyless.service': service });
      for (const e of s.endpoints) {
        result.observe(instruments.activeAttempts as never, e.inflight, { 'proxyless.service': service, 'proxyless.endpoint.id': e.id });
      }
    }
  };
  meter.addBatchObservableCallback(observe, observed);
  // Only once nothing above can throw: a meter that refuses the callback must leave no listener counting behind.
  events.on('retry', listeners.retry).on('hedge', listeners.hedge).on('ejected', listeners.ejected);
  env.instrument = instrument;
  let stopOnClose: (() => void) | undefined;
  const telemetry: Telemetry = {
    close() {
      if (instrument.closed) return;
      instrument.closed = true;
      if (env.instrument === instrument) env.instrument = undefined;
      events.off('retry', listeners.retry).off('hedge', listeners.hedge).off('ejected', listeners.ejected);
      try {
        meter.removeBatchObservableCallback(observe, observed);
      } catch {
        // a meter that fails to let go changes nothing for the mesh: the callback reads a closed telemetry's mesh only
      }
      stopOnClose?.();
    },
  };
  stopOnClose = core.onClose(() => telemetry.close());
  return telemetry;
}
