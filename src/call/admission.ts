import { BulkheadFullError, FaultInjectedError, MeshClosedError, TimeoutError } from '../errors.js';
import { callOutcomeOf, OUTCOME } from '../observe/service-metrics.js';
import type { Call } from './call.js';
import type { CallTarget } from './target.js';
import { failedResult } from './result.js';
import { below, type Step } from './step.js';

/**
 * The admission step, the top of the stack; it opens the call and closes it:
 * - refuses a closed mesh and an aborted signal at once;
 * - starts the total deadline and listens to the caller's signal (one listener for the whole call);
 * - takes a bulkhead slot, or waits in its bounded queue, or rejects with `BulkheadFullError`; the bulkhead
 *   counts calls, not attempts, and the retry budget one request per call;
 * - hands out the result: the value, or what {@link failedResult} makes of a failure, and records the call's
 *   outcome and duration. A streaming value keeps the call's deadline and signal until its body is done.
 */
export class AdmissionStep implements Step {
  readonly name = 'admission';
  private readonly next: Step;

  constructor(next: Step | undefined) {
    this.next = below(next, this.name);
  }

  async run(call: Call): Promise<unknown> {
    const { env, target, settings } = call;
    // The counters every configuration of the service shares: plain fields, no accessor on the call path.
    const shared = target.shared;
    if (env.isClosed()) throw new MeshClosedError(target.name);
    const signal = settings.signal;
    if (signal?.aborted) throw signal.reason;
    const start = env.clock.now();
    call.begin(start);
    if (shared.active >= target.policy.maxConcurrent) {
      // A full bulkhead rejects at once, unless its bounded queue has room (the slot is then handed over).
      // The call's own stop signal when the caller gave none: a transport may stop the call without one (the
      // undici path hands the caller an abort function), and a waiting call must hear that too.
      const waiting = shared.queue?.wait(signal ?? call.sleepSignal(), settings.totalMs, () => new TimeoutError(target.name, 'total', settings.totalMs));
      if (waiting === undefined) {
        call.release();
        ended(target, OUTCOME.rejected);
        if (env.events.has('rejected')) env.events.emit('rejected', { service: target.name, reason: 'bulkhead' });
        throw new BulkheadFullError(target.name, target.policy.maxConcurrent);
      }
      try {
        await waiting;
        call.now = env.clock.now();
      } catch (error) {
        call.release();
        ended(target, callOutcomeOf(error, signal), env.clock.now() - start);
        throw error;
      }
    } else {
      shared.active++;
    }
    shared.calls++;
    shared.lastCallAt = start;
    shared.budget?.onRequest(start);
    try {
      // An abort that landed as the slot was handed over still counts: nothing is sent for a stopped call.
      if (call.stopped !== undefined) throw call.stopped;
      let value: unknown;
      try {
        value = await this.next.run(call);
      } catch (first) {
        const recovery = call.recovery;
        if (recovery === undefined) throw first;
        value = await recovery(call, first); // the retry step's loop
      }
      // The success path reads no clock: the winning attempt's end time is on record.
      target.metrics.callSucceeded(start);
      if (target.routeStats !== undefined) target.routeStats.outcomes[OUTCOME.success]!++;
      call.end(value);
      return value;
    } catch (error) {
      let result;
      try {
        result = failedResult(call, error);
      } catch (final) {
        shared.callFailures++;
        ended(target, callOutcomeOf(final, signal), env.clock.now() - start);
        call.release();
        throw final;
      }
      shared.callFailures++;
      // A fault's synthetic Response is counted apart from the backends' own failures.
      ended(target, error instanceof FaultInjectedError ? OUTCOME.fault : OUTCOME.failure, env.clock.now() - start);
      call.end(result.value);
      return result.value;
    } finally {
      if (shared.queue === undefined || !shared.queue.handOver()) shared.active--;
    }
  }
}

/** Records how a call that did not succeed ended: for the service, and for its route's backend. */
function ended(target: CallTarget, outcome: number, durationMs?: number): void {
  target.metrics.callEnded(outcome, durationMs);
  const routed = target.routeStats;
  if (routed !== undefined) routed.outcomes[outcome]!++;
}
