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
  /** The endpoint this attempt goes to. */
  readonly endpoint: Endpoint;
}

/** The function a call runs against one endpoint. */
export type AttemptFn<T> = (endpoint: Endpoint, ctx: AttemptContext) => T | Promise<T>;
