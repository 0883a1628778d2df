import { CallFailedError, FaultInjectedError, MeshClosedError, TimeoutError, type AttemptRecord } from '../errors.js';
import type { Call } from './call.js';
import { AttemptFailure } from './failure.js';

/** What a failed call hands out: the failing value itself (fetch semantics), or nothing (it throws). */
export interface FailedResult {
  readonly value: unknown;
  /** Every attempt the call made, for the error a `fallback` is shown in place of that value. */
  readonly attempts: readonly AttemptRecord[];
}

/**
 * The result of a call that did not succeed, decided once every attempt it was allowed is over:
 * - its last failure was a response (a 503): the call resolves with it, as fetch does, and counts as failed;
 *   every other failed value is freed (bodies cancelled);
 * - its last failure was a timeout: that `TimeoutError`, with every attempt listed;
 * - any other last failure: a `CallFailedError` with the last error as `cause` and every attempt;
 * - a fault injected an abort: the transport's synthetic answer (a Response), else the `FaultInjectedError`;
 * - the call stopped, or failed before any attempt: that error as it is (a caller's abort reason, a total
 *   `TimeoutError`, `MeshClosedError`, `NoEndpointsError`, ...).
 * Throws in the cases that reject.
 */
export function failedResult(call: Call, error: unknown): FailedResult {
  const failures = call.failures;
  const records: readonly AttemptRecord[] = failures === undefined ? [] : failures.map((f) => f.record);
  if (failures !== undefined) for (const f of failures) if (f !== error) f.free(call.transport, call);
  call.failures = undefined; // a streaming result keeps the call: it must not keep the values too
  if (error instanceof AttemptFailure) {
    // A failing response is still fetch's answer; a plain value `classify` called a failure is not an answer.
    if (error.value !== undefined && !error.discarded && call.transport.statusOf(error.value) !== undefined) {
      call.winner = error.attempt;
      return { value: error.value, attempts: records };
    }
    const last = error.error;
    if (last instanceof TimeoutError) {
      last.attempts = records;
      throw last;
    }
    throw new CallFailedError(call.target.name, last, records);
  }
  if (error instanceof FaultInjectedError) {
    // An injected abort answers as the transport would: a synthetic Response on fetch paths.
    const value = call.transport.faultValue?.(error);
    if (value !== undefined) return { value, attempts: records };
    throw error;
  }
  if (error instanceof TimeoutError && error.scope === 'total') error.attempts = records;
  if (error instanceof MeshClosedError && error.service !== call.target.name) throw new MeshClosedError(call.target.name);
  throw error;
}
