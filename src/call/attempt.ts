import type { Endpoint } from '../endpoint/endpoint.js';
import type { EndpointState } from '../endpoint/endpoint-state.js';
import { MeshClosedError, TimeoutError } from '../errors.js';
import { LATER, type Abortable, type TransportAttempt } from '../transport/attempt-context.js';
import { formatGrpcTimeout } from '../transport/deadline.js';
import type { Expiring, TimeoutList } from '../util/timeout-list.js';
import type { AttemptEnd, Call, LiveAttempt } from './call.js';
import { settle } from './settle.js';
import type { Step } from './step.js';


/**
 * One attempt on one endpoint: sends the request through the transport, races it against the attempt timer,
 * and reports exactly once to {@link settle}. The call ends attempts from outside (total deadline, caller's
 * abort, close, hedge lost). The transport's promise may settle later; that late result is discarded (a late
 * Response has its body cancelled), as its signal was aborted.
 */
export class Attempt implements TransportAttempt, Expiring, LiveAttempt {
  readonly startedAt: number;
  /** When the attempt timeout fires; its place in the shared timeout list. */
  expiresAt: number;
  prev: Expiring | undefined;
  next: Expiring | undefined;
  private controller: AbortController | undefined;
  /** The transport's own way to stop its work (see {@link TransportAttempt.onAbort}), instead of a signal. */
  private canceller: Abortable | undefined;
  private abortable = false;
  private abortReason: unknown;
  private done = false;
  private timeouts: TimeoutList | undefined;
  private resolve: ((value: unknown) => void) | undefined;
  private reject: ((error: unknown) => void) | undefined;
  /** True when this attempt is a half-open breaker's probe (it then runs through opossum's `fire`). */
  probe = false;

  constructor(
    readonly call: Call,
    readonly state: EndpointState,
    /** 1 for the first attempt, 2 for the first retry or hedge, ... */
    readonly attempt: number,
    startedAt: number,
  ) {
    this.startedAt = startedAt;
    this.expiresAt = startedAt + call.settings.attemptMs;
  }

  get service(): string {
    return this.call.target.name;
  }

  get endpoint(): Endpoint {
    return this.state.endpoint;
  }

  get route(): string | undefined {
    return this.call.target.route;
  }

  get backend(): { readonly subset?: string; readonly service?: string } | undefined {
    return this.call.target.backend;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** Whether the transport took this attempt's signal or canceller (only then can a streaming result be aborted). */
  get hasSignal(): boolean {
    return this.abortable || this.controller !== undefined;
  }

  get request(): unknown {
    return this.call.request;
  }

  onAbort(target: Abortable): void {
    this.abortable = true;
    if (this.abortReason !== undefined) target.abort(this.abortReason);
    else this.canceller = target;
  }

  answer(value: unknown): void {
    this.end('value', value);
  }

  get won(): boolean {
    return this.call.winner === this;
  }

  fail(error: unknown): void {
    this.end('error', error);
  }

  finished(): void {
    this.canceller = undefined;
    this.call.bodyDone(this);
  }

  get deadline(): number {
    return Date.now() + (this.call.expiresAt - this.call.env.clock.now());
  }

  get timeLeftMs(): number {
    const left = this.call.expiresAt - this.call.env.clock.now();
    return left > 0 ? Math.floor(left) : 0;
  }

  /**
   * The propagation headers of this attempt's span (`traceparent`, ...) while telemetry is on, else undefined;
   * read only by a transport that sends them (mesh.fetch's traced sender), as it sends.
   */
  get traceHeaders(): Readonly<Record<string, string>> | undefined {
    return this.call.env.instrument?.headers(this);
  }

  /** Read only by a function that wants it: nothing is computed per attempt otherwise. */
  get grpcTimeout(): string | undefined {
    const call = this.call;
    return call.target.policy.deadline === false ? undefined : formatGrpcTimeout(call.expiresAt - call.env.clock.now());
  }

  /**
   * Starts the attempt; the promise settles with whatever {@link settle} decides. The `request` event is
   * emitted here, after a half-open breaker's probe slot is taken (opossum runs this inside `fire()`), so a
   * call made from a listener cannot take the probe from under this one; and the mesh and the call are
   * checked again after it, so a listener that closes the mesh or aborts the call stops this attempt.
   */
  run(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      const call = this.call;
      const env = call.env;
      this.state.begin();
      this.timeouts = env.attemptTimeouts(call.settings.attemptMs);
      this.timeouts.add(this);
      call.enter(this);
      if (env.events.has('request')) {
        env.events.emit('request', { service: call.target.name, endpoint: this.state.endpoint, attempt: this.attempt, route: call.target.route, backend: call.target.backend });
      }
      if (call.stopped !== undefined) return this.end('aborted', call.stopped);
      if (env.isClosed()) return this.end('aborted', new MeshClosedError(call.target.name));
      let result: unknown;
      try {
        result = call.send(this.state.endpoint, this);
      } catch (error) {
        return this.end('error', error);
      }
      if (result === LATER) return; // the transport answers through answer() or fail()
      if (result !== null && typeof (result as Promise<unknown>)?.then === 'function') {
        (result as Promise<unknown>).then(
          (value) => this.end('value', value),
          (error: unknown) => this.end('error', error),
        );
      } else {
        this.end('value', result);
      }
    });
  }

  /** Ends the attempt from outside (hedge lost, caller abort, mesh closed), aborting its signal with `reason`. */
  cancel(reason: unknown): void {
    this.end('aborted', reason);
  }

  /** Aborts the signal of a finished attempt whose result still streams (the call stopped). */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
    const cancel = this.canceller;
    this.canceller = undefined;
    cancel?.abort(reason);
  }

  /** The attempt timeout (called by the timeout list). */
  expire(): void {
    this.timedOut('attempt');
  }

  timedOut(scope: 'attempt' | 'total'): void {
    const call = this.call;
    const ms = scope === 'total' ? call.settings.totalMs : call.settings.attemptMs;
    this.end('error', new TimeoutError(call.target.name, scope, Math.round(ms), { endpoint: this.state.endpoint }));
  }

  /** Settles the promise returned by `run`; called once by {@link settle}. */
  resolveWith(value: unknown): void {
    const resolve = this.resolve;
    this.resolve = this.reject = undefined; // a streaming call keeps this attempt: it must not keep the value
    resolve?.(value);
  }

  rejectWith(error: unknown): void {
    const reject = this.reject;
    this.resolve = this.reject = undefined;
    reject?.(error);
  }

  private end(end: AttemptEnd, result: unknown): void {
    if (this.done) {
      if (end === 'value') this.call.transport.discard(result, this.call); // too late: nobody will read it
      return;
    }
    this.done = true;
    this.timeouts?.remove(this);
    this.call.leave(this);
    if (end === 'aborted' || (end === 'error' && result instanceof TimeoutError)) {
      // Stop the transport's work: on timeout, abort or cancel (a signal read later is born aborted).
      this.abort(result ?? new Error('attempt aborted'));
    }
    settle(this, end, result);
  }
}

/**
 * The attempt step, the bottom of the stack: one attempt on the endpoint the pick (or hedge) step chose.
 * A closed breaker is fed the verdict directly (see EndpointBreaker); only a half-open probe runs through
 * opossum's `fire()`, which lets exactly one through and closes or reopens on its outcome.
 */
export class AttemptStep implements Step {
  readonly name = 'attempt';

  run(call: Call): Promise<unknown> {
    const state = call.picked as EndpointState;
    call.picked = undefined;
    const attempt = new Attempt(call, state, call.started + 1, call.now);
    call.tryOn(state);
    // Telemetry (`withTelemetry`) runs the attempt under its own span; undefined while it is off: one check.
    const instrument = call.env.instrument;
    const breaker = state.breaker;
    if (breaker === undefined || !breaker.halfOpen) return instrument === undefined ? attempt.run() : instrument.attempt(attempt);
    attempt.probe = true;
    return breaker.probe(() => (instrument === undefined ? attempt.run() : instrument.attempt(attempt)));
  }
}
