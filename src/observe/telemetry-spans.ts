import type { CallInstrument, InstrumentedAttempt, InstrumentedCall } from '../call/instrument.js';
import { AttemptFailure, HEDGE_LOST } from '../call/failure.js';
import { outcomeLabel } from '../call/settle.js';
import { MeshClosedError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { backendLabel } from './route-stats.js';
import { CALL_OUTCOMES, callOutcomeOf, OUTCOME } from './service-metrics.js';
import { SPAN_KIND, SPAN_STATUS, type TelemetryApi, type TelemetryAttributes, type TelemetrySpan, type TelemetryTracer } from './telemetry-api.js';
import { httpRequestOf, methodAttribute, urlFull, type HttpRequestFacts } from './telemetry-http.js';
import type { TelemetryInstruments } from './telemetry-metrics.js';

/** What the instrument is made of (telemetry.ts binds it to a mesh). */
export interface TelemetryParts {
  readonly api: TelemetryApi;
  readonly tracer: TelemetryTracer;
  readonly instruments: TelemetryInstruments;
  readonly clock: Clock;
  /** Reports what an OpenTelemetry object threw (the mesh's `callback-error`, callback `'telemetry'`). */
  readonly report: (service: string, error: unknown) => void;
}

/** One call's span, and what its end needs. */
interface CallSpan {
  readonly span: TelemetrySpan;
  /** The context with the call span active: the parent of its attempt spans. */
  readonly context: unknown;
  readonly startedAt: number;
  /** `proxyless.service`, and the route and backend when a route matched: on the span and the call metrics. */
  readonly attributes: TelemetryAttributes;
  /** The call's HTTP request, read once (undefined for a `mesh.call`). */
  readonly http: HttpRequestFacts | undefined;
  /** Set by {@link TelemetryInstrument.failed}: the call did not succeed, and why. */
  outcome: number | undefined;
  error: unknown;
}

/** One attempt's span. */
interface AttemptSpan {
  readonly span: TelemetrySpan;
  readonly context: unknown;
  /** Its call's HTTP request (undefined for a `mesh.call`). */
  readonly http: HttpRequestFacts | undefined;
  /** Its propagation headers, injected on first read. */
  headers: Record<string, string> | undefined;
}

/**
 * The tracing hooks of `withTelemetry`: a span per call (INTERNAL: the logical request) and a CLIENT child span
 * per attempt (each physical request, retries and hedges included), as the HTTP client semantic conventions
 * describe resends; and the OTel metrics recorded as calls and attempts end. Whatever an OpenTelemetry object
 * throws is reported and contained: a call is never broken or stranded by it (its span may then be missing).
 * Calls and attempts in flight are found through maps (an entry leaves as its span ends), so the call path keeps
 * no field for them; plain maps, not weak ones: a WeakMap entry per call and per attempt cost the garbage collector
 * more than the rest of the instrument (about 3 µs of CPU per call, measured with no-op OTel objects).
 */
export class TelemetryInstrument implements CallInstrument {
  /** No new spans and no metrics once closed; spans already open still end with their call. */
  closed = false;
  private readonly calls = new Map<object, CallSpan>();
  private readonly attempts = new Map<object, AttemptSpan>();

  constructor(private readonly parts: TelemetryParts) {}

  call<C extends InstrumentedCall>(call: C, step: { admit(call: C): Promise<unknown> }): Promise<unknown> {
    if (this.closed) return step.admit(call);
    const { api, tracer, clock } = this.parts;
    const service = call.service;
    const attributes: TelemetryAttributes = { 'proxyless.service': service };
    const { route, backend } = call.target;
    if (route !== undefined) attributes['proxyless.route'] = route;
    if (route !== undefined && backend !== undefined) attributes['proxyless.backend'] = backendLabel(backend);
    let record: CallSpan;
    try {
      const parent = api.context.active();
      const span = tracer.startSpan(`proxyless ${service}`, { kind: SPAN_KIND.INTERNAL, attributes }, parent as never);
      const context = api.trace.setSpan(parent as never, span as never);
      record = { span, context, startedAt: clock.now(), attributes, http: httpRequestOf(call.request), outcome: undefined, error: undefined };
    } catch (error) {
      this.parts.report(service, error);
      return step.admit(call);
    }
    this.calls.set(call, record);
    const settled = this.within(service, record.context, () => step.admit(call));
    settled.then(
      (value) => this.callEnded(call, record, value, undefined, false),
      (error: unknown) => this.callEnded(call, record, undefined, error, true),
    );
    return settled;
  }

  failed(call: InstrumentedCall, outcome: number, error: unknown): void {
    const record = this.calls.get(call);
    if (record === undefined) return;
    record.outcome = outcome;
    record.error = error;
  }

  attempt(attempt: InstrumentedAttempt): Promise<unknown> {
    const call = attempt.call;
    const record = this.calls.get(call);
    if (record === undefined || this.closed) return attempt.run(); // a call that started untraced stays so
    const { api, tracer, clock } = this.parts;
    const service = call.service;
    const endpoint = attempt.endpoint;
    const attributes: TelemetryAttributes = {
      'server.address': endpoint.host,
      'server.port': endpoint.port,
      'proxyless.service': service,
      'proxyless.endpoint.id': endpoint.id,
      'proxyless.attempt': attempt.attempt,
    };
    let name = service;
    const http = record.http;
    if (http !== undefined) {
      const { method, original } = methodAttribute(http.method);
      attributes['http.request.method'] = method;
      if (original !== undefined) attributes['http.request.method_original'] = original;
      attributes['url.full'] = urlFull(http, endpoint);
      // The semantic conventions' resend count: every attempt after the first, whatever made it (retry or hedge).
      if (attempt.attempt > 1) attributes['http.request.resend_count'] = attempt.attempt - 1;
      name = method === '_OTHER' ? 'HTTP' : method;
    }
    let own: AttemptSpan;
    try {
      const span = tracer.startSpan(name, { kind: SPAN_KIND.CLIENT, attributes }, record.context as never);
      own = { span, context: api.trace.setSpan(record.context as never, span as never), http, headers: undefined };
    } catch (error) {
      this.parts.report(service, error);
      return attempt.run();
    }
    // Before the attempt runs: its transport reads the headers as it sends.
    this.attempts.set(attempt, own);
    const endpointAttributes: TelemetryAttributes = { 'proxyless.service': service, 'proxyless.endpoint.id': endpoint.id };
    const startedAt = clock.now();
    const settled = this.within(service, own.context, () => attempt.run());
    settled.then(
      (value) => this.attemptEnded(attempt, own, startedAt, endpointAttributes, value, undefined, false),
      (error: unknown) => this.attemptEnded(attempt, own, startedAt, endpointAttributes, undefined, error, true),
    );
    return settled;
  }

  headers(attempt: InstrumentedAttempt): Readonly<Record<string, string>> | undefined {
    const own = this.attempts.get(attempt);
    if (own === undefined) return undefined;
    if (own.headers === undefined) {
      const carrier: Record<string, string> = {};
      try {
        this.parts.api.propagation.inject(own.context as never, carrier);
      } catch (error) {
        this.parts.report(attempt.call.service, error);
      }
      own.headers = carrier;
    }
    return own.headers;
  }

  /**
   * Runs `run` with `context` active (so the attempt's own function, and an instrumented client inside it, see
   * the span). A context manager that throws before `run` ran is reported and `run` goes on without it; one that
   * throws after leaves `run`'s result standing (it never throws itself: it returns the step's promise).
   */
  private within(service: string, context: unknown, run: () => Promise<unknown>): Promise<unknown> {
    let result: Promise<unknown> | undefined;
    try {
      this.parts.api.context.with(context as never, () => (result = run()));
    } catch (error) {
      this.parts.report(service, error);
    }
    return result ?? run();
  }

  private callEnded(call: InstrumentedCall, record: CallSpan, value: unknown, error: unknown, rejected: boolean): void {
    this.calls.delete(call);
    const service = call.service;
    const outcome = record.outcome ?? (rejected ? callOutcomeOf(error, call.settings.signal) : OUTCOME.success);
    const name = CALL_OUTCOMES[outcome] ?? 'failure';
    const span = record.span;
    this.safely(service, () => {
      span.setAttribute('proxyless.outcome', name);
      if (outcome !== OUTCOME.success) {
        // The reason the call failed (a fallback's value may still have answered it): the status code of a failing
        // response, else the error's code or class name.
        const why = record.error ?? error;
        const status = why === undefined && !rejected ? call.transport.statusOf(value) : undefined;
        span.setAttribute('error.type', status !== undefined ? String(status) : errorType(why));
        span.setStatus({ code: SPAN_STATUS.ERROR });
      }
    });
    this.safely(service, () => span.end());
    if (this.closed) return;
    const { instruments, clock } = this.parts;
    const attributes = { ...record.attributes, 'proxyless.outcome': name };
    this.safely(service, () => {
      instruments.calls.add(1, attributes);
      instruments.callDuration.record((clock.now() - record.startedAt) / 1_000, attributes);
    });
  }

  private attemptEnded(
    attempt: InstrumentedAttempt,
    own: AttemptSpan,
    startedAt: number,
    endpointAttributes: TelemetryAttributes,
    value: unknown,
    error: unknown,
    rejected: boolean,
  ): void {
    this.attempts.delete(attempt);
    const call = attempt.call;
    const service = call.service;
    let outcome: 'success' | 'failure' | 'cancelled' = 'success';
    let status: number | undefined;
    let type: string | undefined;
    if (!rejected) status = call.transport.statusOf(value);
    else if (error instanceof AttemptFailure) {
      outcome = 'failure';
      status = error.value === undefined ? undefined : call.transport.statusOf(error.value);
      type = error.record.outcome;
    } else if (error === HEDGE_LOST) {
      outcome = 'cancelled'; // another attempt won: no error of its own
    } else if (error === call.stopped || error instanceof MeshClosedError) {
      outcome = 'cancelled';
      type = errorType(error);
    } // else an error the policy's `classify` called a success
    // The semantic conventions: a status of 400 or more is an error of the client span, whatever `classify` says.
    if (type === undefined && status !== undefined && status >= 400) type = String(status);
    const span = own.span;
    this.safely(service, () => {
      span.setAttribute('proxyless.outcome', outcome);
      if (status !== undefined) span.setAttribute('http.response.status_code', status);
      if (type !== undefined) {
        span.setAttribute('error.type', type);
        span.setStatus({ code: SPAN_STATUS.ERROR });
      }
    });
    this.safely(service, () => span.end());
    if (this.closed) return;
    const { instruments, clock } = this.parts;
    const seconds = (clock.now() - startedAt) / 1_000;
    this.safely(service, () => {
      instruments.attempts.add(1, { ...endpointAttributes, 'proxyless.outcome': outcome });
      // As proxyless_attempt_duration_seconds: attempts with a verdict only (a hedge's loser, a caller's abort out).
      if (outcome === 'cancelled') return;
      instruments.attemptDuration.record(seconds, { 'proxyless.service': service });
      const http = own.http;
      if (http === undefined) return;
      const attributes: TelemetryAttributes = {
        'http.request.method': methodAttribute(http.method).method,
        'server.address': attempt.endpoint.host,
        'server.port': attempt.endpoint.port,
      };
      if (status !== undefined) attributes['http.response.status_code'] = status;
      if (type !== undefined) attributes['error.type'] = type;
      instruments.httpDuration.record(seconds, attributes);
    });
  }

  /** Runs `fn`, reporting what it throws (user-supplied OpenTelemetry objects may throw). */
  private safely(service: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.parts.report(service, error);
    }
  }
}

/** `error.type` of an error: an attempt's outcome label, else the error's code (through `CallFailedError`) or class. */
function errorType(error: unknown): string {
  return error instanceof AttemptFailure ? error.record.outcome : outcomeLabel(error);
}
