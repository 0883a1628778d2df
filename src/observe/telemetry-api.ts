/**
 * The parts of `@opentelemetry/api` (1.x) that `withTelemetry` uses, typed structurally so that the mesh never
 * imports the package (an optional peer): pass the module itself, `import * as otel from '@opentelemetry/api'`.
 * Contexts, spans and attributes stay opaque or minimal here; the API's own types are assignable to these.
 */

/** An attribute value, as OpenTelemetry accepts it. */
export type TelemetryAttributeValue = string | number | boolean;

/** Span or metric attributes. */
export type TelemetryAttributes = Record<string, TelemetryAttributeValue>;

/** `@opentelemetry/api`'s `Span`, what the mesh calls on it. */
export interface TelemetrySpan {
  setAttribute(key: string, value: TelemetryAttributeValue): unknown;
  setStatus(status: { code: number; message?: string | undefined }): unknown;
  end(): void;
}

/** `@opentelemetry/api`'s `Tracer`. */
export interface TelemetryTracer {
  startSpan(name: string, options: { kind: number; attributes: TelemetryAttributes }, context: never): TelemetrySpan;
}

/** A synchronous counter or up-down counter. */
export interface TelemetryCounter {
  add(value: number, attributes: TelemetryAttributes): void;
}

/** A synchronous histogram. */
export interface TelemetryHistogram {
  record(value: number, attributes: TelemetryAttributes): void;
}

/** What instruments are created with. */
export interface TelemetryInstrumentOptions {
  description: string;
  unit: string;
  // No `| undefined`: this is what the mesh hands to OTel's createHistogram, whose `advice?: MetricAdvice` refuses
  // undefined under exactOptionalPropertyTypes (test/types/examples.test.ts compiles withTelemetry(mesh, otel)).
  advice?: { explicitBucketBoundaries: number[] };
}

/** An asynchronous (observable) instrument: observed in a batch callback, at collection time. */
export type TelemetryObservable = object;

/** What a batch observable callback records into. */
export interface TelemetryObservations {
  observe(instrument: never, value: number, attributes: TelemetryAttributes): void;
}

/** A batch observable callback. */
export type TelemetryBatchCallback = (observations: TelemetryObservations) => void;

/** `@opentelemetry/api`'s `Meter`. */
export interface TelemetryMeter {
  createCounter(name: string, options: TelemetryInstrumentOptions): TelemetryCounter;
  createHistogram(name: string, options: TelemetryInstrumentOptions): TelemetryHistogram;
  createObservableUpDownCounter(name: string, options: TelemetryInstrumentOptions): TelemetryObservable;
  addBatchObservableCallback(callback: TelemetryBatchCallback, observables: never[]): void;
  removeBatchObservableCallback(callback: TelemetryBatchCallback, observables: never[]): void;
}

/**
 * The `@opentelemetry/api` module, as `withTelemetry` reads it: its `trace`, `context`, `propagation` and
 * `metrics` entry points (their globals are what an SDK registers).
 */
export interface TelemetryApi {
  readonly trace: {
    getTracer(name: string, version?: string): TelemetryTracer;
    /** A context with `span` as its active span. */
    setSpan(context: never, span: never): unknown;
  };
  readonly context: {
    active(): unknown;
    with(context: never, fn: () => unknown): unknown;
  };
  readonly propagation: {
    /** Writes the context's propagation headers (`traceparent`, ...) into `carrier`. */
    inject(context: never, carrier: Record<string, string>): void;
  };
  readonly metrics: {
    getMeter(name: string, version?: string): TelemetryMeter;
  };
}

/** `SpanKind` and `SpanStatusCode` values, fixed by the OpenTelemetry API since 1.0 (read as numbers, no import). */
export const SPAN_KIND = { INTERNAL: 0, CLIENT: 2 } as const;
export const SPAN_STATUS = { UNSET: 0, ERROR: 2 } as const;
