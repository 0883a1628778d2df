import { AdmissionRejectedError, BulkheadFullError, FaultInjectedError, MeshClosedError, TimeoutError } from '../errors.js';
import { callOutcomeOf, OUTCOME } from '../observe/service-metrics.js';
import type { OverloadGuard } from '../resilience/overload-guard.js';
import type { Call } from './call.js';
import { fallbackFor, responseFailure, runFallback } from './fallback.js';
import { failedResult } from './result.js';
import { below, type Step } from './step.js';

/**
 * The admission step, the top of the stack; it opens the call and closes it:
 * - refuses a closed mesh and an aborted signal at once, and a spent per-call `deadline` (`TimeoutError`, total, 0)
 *   before anything else: no discovery, no slot, nothing sent;
 * - the service's overload guard, when its policy has one: admission throttling draws (`AdmissionRejectedError`),
 *   then the adaptive concurrency limit (`BulkheadFullError`, source `adaptiveConcurrency`); with both off this
 *   costs one field check, no allocation, no closure;
 * - starts the total deadline and listens to the caller's signal (one listener for the whole call);
 * - takes a bulkhead slot, or waits in its bounded queue, or rejects with `BulkheadFullError`; the bulkhead
 *   counts calls, not attempts, and the retry budget one request per call;
 * - hands out the result: the value, or what {@link failedResult} makes of a failure, and records the call's
 *   outcome and duration. A streaming value keeps the call's deadline and signal until its body is done;
 * - a failed call runs its `fallback` (fallback.ts), once its slot is free, whose value is then the result.
 */
export class AdmissionStep implements Step {
  readonly name = 'admission';
  private readonly next: Step;

  constructor(next: Step | undefined) {
    this.next = below(next, this.name);
  }

  run(call: Call): Promise<unknown> {
    // Telemetry (`withTelemetry`) wraps the whole call in its span; undefined while it is off: one check.
    const instrument = call.env.instrument;
    return instrument === undefined ? this.admit(call) : instrument.call(call, this);
  }

  /** The step itself: admission, the steps below, the result. */
  async admit(call: Call): Promise<unknown> {
    const { env, target, settings } = call;
    // The counters every configuration of the service shares: plain fields, no accessor on the call path.
    const shared = target.shared;
    if (env.isClosed()) throw new MeshClosedError(target.name);
    const signal = settings.signal;
    if (signal?.aborted) throw signal.reason;
    // A per-call `deadline` that has passed leaves nothing to spend (a policy's totalMs is always > 0).
    if (settings.totalMs <= 0) return spentDeadline(call);
    const start = env.clock.now();
    // The overload guard: undefined while `adaptiveConcurrency` and `admission` are both off.
    const guard = shared.guard;
    if (guard !== undefined) {
      const refusal = overloaded(call, guard, start);
      if (refusal !== undefined) return refuse(call, refusal);
    }
    call.begin(start);
    // When the call leaves for the backend: later than `start` after a wait in the bulkhead queue. The limit's
    // RTT samples are measured from here, so a local wait does not read as backend queueing.
    let sentAt = start;
    if (shared.active >= target.policy.maxConcurrent) {
      // A full bulkhead rejects at once, unless its bounded queue has room (the slot is then handed over).
      // The call's own stop signal when the caller gave none: a transport may stop the call without one (the
      // undici path hands the caller an abort function), and a waiting call must hear that too.
      const waiting = shared.queue?.wait(signal ?? call.sleepSignal(), settings.totalMs, () => new TimeoutError(target.name, 'total', settings.totalMs));
      if (waiting === undefined) {
        call.release();
        return refuse(call, new BulkheadFullError(target.name, target.policy.maxConcurrent));
      }
      try {
        await waiting;
        sentAt = call.now = env.clock.now();
      } catch (error) {
        call.release();
        ended(call, callOutcomeOf(error, signal), env.clock.now() - start, error);
        const fallback = fallbackFor(call, error);
        if (fallback === undefined) throw error;
        return runFallback(call, fallback, error);
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
      if (guard !== undefined) succeeded(guard, start, sentAt, target.metrics.lastEndAt);
      if (target.routeStats !== undefined) target.routeStats.outcomes[OUTCOME.success]!++;
      call.end(value);
      return value;
    } catch (error) {
      let result;
      try {
        result = failedResult(call, error);
      } catch (final) {
        shared.callFailures++;
        const now = env.clock.now();
        ended(call, callOutcomeOf(final, signal), now - start, final);
        call.release();
        // A timeout is latency evidence for the limit (Netflix samples a dropped call's RTT too); other failures are not.
        if (guard?.limiter !== undefined && final instanceof TimeoutError) guard.limiter.timedOut(start, now - sentAt, now);
        const fallback = fallbackFor(call, final);
        if (fallback === undefined) throw final;
        // Returned, not awaited: the `finally` frees the slot first, and a fallback's rejection is not caught here.
        return runFallback(call, fallback, final);
      }
      shared.callFailures++;
      // A fault's synthetic Response is counted apart from the backends' own failures.
      ended(call, error instanceof FaultInjectedError ? OUTCOME.fault : OUTCOME.failure, env.clock.now() - start, error);
      const fallback = fallbackFor(call, error);
      if (fallback !== undefined) {
        // The failing Response is not handed out: its body is cancelled, so its connection goes back to the pool.
        call.transport.discard(result.value, call);
        call.release();
        return runFallback(call, fallback, error instanceof FaultInjectedError ? error : responseFailure(call, result));
      }
      call.end(result.value);
      return result.value;
    } finally {
      if (shared.queue === undefined || !shared.queue.handOver()) shared.active--;
    }
  }
}

/**
 * The guard's verdict on a call about to be admitted (clock reading `now`): throttling first, so a call it
 * refuses takes no place under the limit; then the adaptive limit, which a fixed `maxConcurrent` below caps.
 */
function overloaded(call: Call, guard: OverloadGuard, now: number): AdmissionRejectedError | BulkheadFullError | undefined {
  const name = call.target.name;
  const throttle = guard.throttle;
  if (throttle !== undefined) {
    const p = throttle.draw(now);
    if (p > 0) return new AdmissionRejectedError(name, p);
  }
  const limiter = guard.limiter;
  if (limiter !== undefined) {
    const active = call.target.shared.active;
    // Over the limit: rejected at once, never queued (a queue would add the latency the limit keeps away).
    if (active >= limiter.limit) return new BulkheadFullError(name, limiter.limit, 'adaptiveConcurrency');
    limiter.admitted(active + 1);
  }
  return undefined;
}

/**
 * A call of the guard that succeeded (`end`: the winning attempt's end): an accept, and an RTT sample from when it
 * was sent (`start`, its admission, decides which min RTT measure it belongs to).
 */
function succeeded(guard: OverloadGuard, start: number, sentAt: number, end: number): void {
  guard.throttle?.accept(end);
  guard.limiter?.sample(start, end - sentAt, end);
}

/** Refused locally before the call began: counted as `rejected`, reported, then its fallback or the error. */
function refuse(call: Call, error: AdmissionRejectedError | BulkheadFullError): Promise<unknown> {
  const { target, env } = call;
  ended(call, OUTCOME.rejected, undefined, error);
  let reason: 'admission' | 'adaptive-concurrency' | 'bulkhead';
  if (error instanceof AdmissionRejectedError) {
    target.metrics.admissionRejections++;
    reason = 'admission';
  } else {
    reason = error.source === 'adaptiveConcurrency' ? 'adaptive-concurrency' : 'bulkhead';
  }
  if (env.events.has('rejected')) env.events.emit('rejected', { service: target.name, reason });
  const fallback = fallbackFor(call, error);
  return fallback === undefined ? Promise.reject(error) : runFallback(call, fallback, error);
}

/** The caller's deadline had passed: a failed call (outcome `timeout`), never admitted, nothing touched. */
function spentDeadline(call: Call): Promise<unknown> {
  const error = new TimeoutError(call.target.name, 'total', 0);
  ended(call, OUTCOME.timeout, undefined, error);
  const fallback = fallbackFor(call, error);
  return fallback === undefined ? Promise.reject(error) : runFallback(call, fallback, error);
}

/**
 * Records how a call that did not succeed ended (`error`: why): for the service, for its route's backend, and for
 * telemetry's call span when it is on (off the success path, which records nothing here).
 */
function ended(call: Call, outcome: number, durationMs: number | undefined, error: unknown): void {
  const target = call.target;
  target.metrics.callEnded(outcome, durationMs);
  const routed = target.routeStats;
  if (routed !== undefined) routed.outcomes[outcome]!++;
  const instrument = call.env.instrument;
  if (instrument !== undefined) instrument.failed(call, outcome, error);
}
