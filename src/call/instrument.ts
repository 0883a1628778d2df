import type { Endpoint } from '../endpoint/endpoint.js';

/**
 * The call path's one seam for tracing (`withTelemetry`): spans must exist before a request is sent, so that each
 * attempt carries its own `traceparent`, which the mesh's events (emitted after the fact) cannot do. The hooks
 * sit on {@link CallEnv.instrument}, undefined while no telemetry is on: then the call path pays one undefined
 * check per call (admission) and one per attempt (the attempt step), nothing else. The instrument owns every
 * OpenTelemetry object and contains whatever they throw: a hook never throws into a call.
 *
 * The views below are what an instrument reads of a call and an attempt: the `Call` and `Attempt` classes satisfy
 * them, and this file imports neither (no import circle through the call's environment).
 */
export interface InstrumentedCall {
  /** The logical service. */
  readonly service: string;
  /** The backend the call runs on: its route (undefined when none matched) and backend. */
  readonly target: {
    readonly route: string | undefined;
    readonly backend: { readonly subset?: string; readonly service?: string } | undefined;
  };
  /** The call's protocol rules: the HTTP status of a value, when it is a response. */
  readonly transport: { statusOf(value: unknown): number | undefined };
  /** The caller's signal, to tell a caller's abort apart. */
  readonly settings: { readonly signal: AbortSignal | undefined };
  /** What the transport planned (a mesh.fetch plan, the undici path's dispatch options); undefined for call. */
  readonly request: unknown;
  /** Why the call stopped, once it has (an attempt ended with this reason was cancelled, not failed). */
  readonly stopped: unknown;
}

/** What an instrument reads of one attempt, and the way to start it. */
export interface InstrumentedAttempt {
  readonly call: InstrumentedCall;
  /** 1 for the first attempt, 2 for the first retry or hedge, ... */
  readonly attempt: number;
  readonly endpoint: Endpoint;
  /** Starts the attempt (sends it); settles with its verdict, as the attempt step's promise does. */
  run(): Promise<unknown>;
}

/** The hooks the call path calls when telemetry is on. */
export interface CallInstrument {
  /**
   * A call enters admission: the instrument opens its span, runs `step.admit(call)` under it and returns that
   * promise (settling as it does), ending the span when it settles.
   */
  call<C extends InstrumentedCall>(call: C, step: { admit(call: C): Promise<unknown> }): Promise<unknown>;
  /**
   * A call did not succeed: `outcome` indexes `CALL_OUTCOMES`, `error` is why. Called where the metrics count it
   * (off the success path), before a fallback may still answer the call.
   */
  failed(call: InstrumentedCall, outcome: number, error: unknown): void;
  /** An attempt starts: its span opens, `attempt.run()` runs with the span active, and the span ends with it. */
  attempt(attempt: InstrumentedAttempt): Promise<unknown>;
  /** The propagation headers (`traceparent`, ...) of an attempt's span, for the transport to send; or none. */
  headers(attempt: InstrumentedAttempt): Readonly<Record<string, string>> | undefined;
}
