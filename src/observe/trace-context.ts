import { isRequestLike } from '../transport/http.js';

/**
 * The two pieces of `@opentelemetry/api` that trace-context propagation needs, typed structurally so the
 * mesh never imports the package: pass the API object itself (`import * as otel from '@opentelemetry/api'`).
 */
export interface TraceContextApi {
  /** `@opentelemetry/api`'s `context`. */
  readonly context: {
    /** The active context (the caller's span, if any). */
    active(): unknown;
  };
  /** `@opentelemetry/api`'s `propagation`. */
  readonly propagation: {
    /** Writes the context's propagation headers (`traceparent`, ...) into `carrier`. */
    inject(context: never, carrier: Record<string, string>): void;
  };
}

/**
 * Wraps a fetch so that every attempt carries the active trace context (`traceparent`, `tracestate` and
 * `baggage`, whatever the registered propagator writes). Give the result to `createMesh({ fetch })`: each
 * attempt of `mesh.fetch` (retries and hedges included) then propagates the caller's context, since the mesh
 * runs attempts in the caller's async context. With no active span the propagator writes nothing and the
 * request goes out untouched; a header the caller set is never overwritten.
 *
 * `@opentelemetry/api` stays an optional peer: nothing is loaded unless you pass it here. If you already run
 * OpenTelemetry's undici instrumentation on the global fetch, you do not need this.
 *
 * @param api `@opentelemetry/api` (or any object with its `context.active()` and `propagation.inject()`)
 * @param fetchImpl the fetch to wrap; default `globalThis.fetch` (read at each call)
 * @example
 * import * as otel from '@opentelemetry/api';
 * const mesh = createMesh({ registry, fetch: withTraceContext(otel) });
 */
export function withTraceContext(api: TraceContextApi, fetchImpl?: typeof globalThis.fetch): typeof globalThis.fetch {
  if (typeof api?.context?.active !== 'function' || typeof api?.propagation?.inject !== 'function') {
    throw new TypeError('withTraceContext(api): api must be @opentelemetry/api (with context.active and propagation.inject)');
  }
  return (input, init) => {
    const run = fetchImpl ?? globalThis.fetch;
    const carrier: Record<string, string> = {};
    api.propagation.inject(api.context.active() as never, carrier);
    const keys = Object.keys(carrier);
    if (keys.length === 0) return run(input, init);
    // A Request of any realm (global or undici's): its headers, by shape.
    const own = typeof input === 'object' && isRequestLike(input) ? (input.headers as unknown as HeadersInit) : undefined;
    const headers = new Headers(init?.headers ?? own);
    for (const key of keys) if (!headers.has(key)) headers.set(key, carrier[key]!);
    return run(input, { ...init, headers });
  };
}
