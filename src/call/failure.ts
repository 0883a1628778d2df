import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { AttemptRecord } from '../errors.js';
import type { DrainOwner, Transport } from '../transport/transport.js';

/** The attempt a call's result came from: its signal keeps covering a streaming body after the call resolved. */
export interface ResultSource {
  /** Whether the transport took this attempt's signal (only then can a streaming result be aborted). */
  readonly hasSignal: boolean;
  /** Aborts the signal of a finished attempt whose result still streams (the call stopped). */
  abort(reason: unknown): void;
}

/**
 * A failed attempt, as the retry, hedge and result steps see it. Internal: it never reaches the caller
 * (the call ends with the failing value, a TimeoutError, a CallFailedError or the caller's abort reason).
 * An Error, because p-retry only handles Errors.
 */
export class AttemptFailure extends Error {
  /** Read by the endpoint's breaker: this rejection is a failure (an abort or a success-classified error is not). */
  readonly countsAsFailure = true;
  /** The failing value's resources were freed (its body cancelled): it can no longer be the call's result. */
  discarded = false;

  constructor(
    readonly record: AttemptRecord,
    /** The attempt: when its failing value becomes the call's result, its signal keeps covering the body. */
    readonly attempt: ResultSource,
    readonly state: EndpointState,
    /** What the attempt threw, when it threw. */
    readonly error: unknown,
    /** What the attempt resolved with, when a resolved value (a 503 Response) was classified a failure. */
    readonly value: unknown,
    /** Whether the retry rules allow replaying it (verdict, idempotency, body). */
    public retryable: boolean,
  ) {
    super(record.outcome);
  }

  /** Frees the failing value (a response body) once it can no longer be the call's result; `owner` is the call. */
  free(transport: Transport, owner: DrainOwner): void {
    if (this.discarded || this.value === undefined) return;
    this.discarded = true;
    transport.discard(this.value, owner);
  }
}

/** The reason a losing hedged attempt's signal aborts with. */
export const HEDGE_LOST = Object.freeze(new Error('another attempt of this call won (hedge)'));
