import type { Endpoint } from '../endpoint/endpoint.js';

/** What the user's function (or fetch) gets for one attempt. */
export interface AttemptContext {
  /**
   * Aborts when this attempt times out, is hedged away, the call's total deadline passes, the caller
   * aborts, or the mesh closes. Created on first read, so a function that never reads it costs nothing.
   * For a result that streams (a fetch body), it keeps aborting on the total deadline, the caller's abort
   * and `close()` after the call resolved, as fetch's own `signal` does.
   */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  /** The logical service. */
  readonly service: string;
  /** The call's total deadline, in epoch milliseconds (comparable with `Date.now()`). */
  readonly deadline: number;
  /**
   * With the service's `deadline` policy on, the time the call has left as a gRPC `grpc-timeout` value (`'250m'`:
   * at most 8 digits, in seconds, minutes or hours past that; `'1n'` when nothing is left), to put in the metadata
   * of a raw gRPC request; computed when read. `undefined` with the policy off (then use `deadline`: the policy
   * says whether the time left should reach the backend at all).
   * @example if (ctx.grpcTimeout !== undefined) metadata.set('grpc-timeout', ctx.grpcTimeout)
   */
  readonly grpcTimeout?: string | undefined;
  /** The endpoint this attempt goes to. */
  readonly endpoint: Endpoint;
  /** The name of the route that chose this call's backend; undefined when no route matched. */
  readonly route?: string | undefined;
  /** The backend that route chose: a subset, another service, or both. */
  readonly backend?: { readonly subset?: string | undefined; readonly service?: string | undefined } | undefined;
  /** True for a mirrored copy of a request (its outcome reaches nobody). */
  readonly mirror?: boolean | undefined;
}

/** The function a call runs against one endpoint. */
export type AttemptFn<T> = (endpoint: Endpoint, ctx: AttemptContext) => T | Promise<T>;

/** What a transport's own stop handler is: the attempt calls `abort` once (see {@link TransportAttempt.onAbort}). */
export interface Abortable {
  abort(reason: unknown): void;
}

/**
 * Returned by a transport's send instead of a promise: the result comes later through
 * {@link TransportAttempt.answer} or {@link TransportAttempt.fail}, which spares a promise and two reactions per
 * attempt on the undici path.
 */
export const LATER: unique symbol = Symbol('proxyless.later');

/**
 * What a transport of the mesh's own (the undici dispatcher) gets of an attempt beyond {@link AttemptContext}:
 * a way to hear a stop without an `AbortSignal` (undici charges for reading one: a listener per request), a way
 * to hand in its result without a promise, and a way to say that a streaming result is over. Not public API.
 */
export interface TransportAttempt extends AttemptContext {
  /** What the transport planned for this call (the dispatch options of the undici path). */
  readonly request: unknown;
  /**
   * What the call has left now, in whole ms rounded down, 0 when nothing: what the `deadline` policy's header
   * carries, read as the attempt is sent (the call's clock, not `Date.now()`).
   */
  readonly timeLeftMs: number;
  /**
   * `target.abort` runs once when the attempt is aborted: timed out, hedged away, the caller's abort, the total
   * deadline or `close()`; at once if it already was. For a result that streams, it also runs on such a stop
   * after the call resolved, until {@link TransportAttempt.finished}.
   */
  onAbort(target: Abortable): void;
  /**
   * The attempt's result, when send returned {@link LATER}. It is classified at once: when this returns, `won`
   * says whether the call will resolve with it.
   */
  answer(value: unknown): void;
  /** Whether this attempt's result is the call's (a success that won); set by {@link TransportAttempt.answer}. */
  readonly won: boolean;
  /** The attempt's error, when send returned {@link LATER}. */
  fail(error: unknown): void;
  /** The streaming result is over (its body ended or failed): the call leaves its deadline list now. */
  finished(): void;
}
