import { setMaxListeners } from 'node:events';
import type { Endpoint } from './endpoint/endpoint.js';
import type { EndpointState } from './endpoint/endpoint-state.js';
import { TimeoutError } from './errors.js';
import type { CallEnv, CallRequest } from './run-attempt.js';
import type { Service } from './service.js';
import type { Expiring } from './util/timeout-list.js';

/** What the user's function (or fetch) gets for one attempt. */
export interface AttemptContext {
  /**
   * Aborts when this attempt times out, is hedged away, the call's total deadline passes, the caller
   * aborts, or the mesh closes. Created on first read, so a function that never reads it costs nothing.
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

/** How an attempt ended, before classification. */
export type AttemptEnd = 'value' | 'error' | 'aborted';

/**
 * One attempt on one endpoint: runs the function, races it against the attempt timer (bounded by the
 * call's deadline) and the caller's signal, and reports exactly once to `onEnd`. The function's own
 * promise may settle later; that late result is ignored, as its signal was aborted.
 */
export class Attempt implements AttemptContext, Expiring {
  readonly startedAt: number;
  /** When the attempt timeout fires; its place in the shared {@link TimeoutList}. */
  expiresAt: number;
  prev: Expiring | undefined;
  next: Expiring | undefined;
  private controller: AbortController | undefined;
  private abortReason: unknown;
  /** Only for an attempt cut short by the call's deadline (it cannot join the fixed-duration list). */
  private timer: ReturnType<typeof setTimeout> | undefined;
  private done = false;
  private resolve!: (value: unknown) => void;
  private reject!: (error: unknown) => void;

  /** True when this attempt is a half-open breaker's probe (it then runs through opossum's `fire`). */
  probe = false;

  readonly service: string;
  private readonly attemptMs: number;
  private readonly callerSignal: AbortSignal | undefined;

  /**
   * @param onEnd a module-level function (not a closure per attempt): gets the attempt, which carries
   *   `env`, `svc` and `req`, and decides the verdict.
   */
  constructor(
    readonly env: CallEnv,
    readonly svc: Service,
    readonly req: CallRequest,
    readonly state: EndpointState,
    readonly attempt: number,
    startedAt: number,
    private readonly deadlineAt: number,
    private readonly onEnd: (attempt: Attempt, end: AttemptEnd, result: unknown) => void,
  ) {
    this.service = svc.name;
    this.attemptMs = req.attemptMs;
    this.callerSignal = req.signal;
    this.startedAt = startedAt;
    this.expiresAt = startedAt + req.attemptMs;
  }

  get endpoint(): Endpoint {
    return this.state.endpoint;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  get deadline(): number {
    return Date.now() + (this.deadlineAt - this.env.clock.now());
  }

  /** Starts the attempt; the promise settles with whatever `onEnd` decides (it calls settle). */
  run<T>(fn: AttemptFn<T>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      if (this.expiresAt <= this.deadlineAt) {
        this.env.timeouts(this.attemptMs).add(this);
      } else {
        this.timer = setTimeout(onDeadline, this.deadlineAt - this.startedAt, this);
        this.timer.unref?.();
        this.env.attempts.add(this); // not in a timeout list: close() must find it here
      }
      if (this.callerSignal !== undefined) listenForAbort(this.callerSignal, this);
      let result: T | Promise<T>;
      try {
        result = fn(this.state.endpoint, this);
      } catch (error) {
        this.end('error', error);
        return;
      }
      if (result !== null && typeof (result as Promise<T>)?.then === 'function') {
        (result as Promise<T>).then(
          (value) => this.end('value', value),
          (error: unknown) => this.end('error', error),
        );
      } else {
        this.end('value', result);
      }
    });
  }

  /** Ends the attempt from outside (hedge lost, mesh closed), aborting its signal with `reason`. */
  cancel(reason: unknown): void {
    this.end('aborted', reason);
  }

  /** Settles the promise returned by `run`; called by `onEnd`. */
  settle(ok: boolean, value: unknown): void {
    if (ok) this.resolve(value);
    else this.reject(value);
  }

  /** The caller's signal aborted (EventListener interface, so no closure per attempt). */
  handleEvent(): void {
    this.end('aborted', this.callerSignal!.reason);
  }

  /** The attempt timeout (called by the {@link TimeoutList}). */
  expire(): void {
    this.timedOut('attempt');
  }

  /** @internal */
  timedOut(scope: 'attempt' | 'total'): void {
    const ms = scope === 'total' ? this.deadlineAt - this.startedAt : this.attemptMs;
    const error = new TimeoutError(this.service, scope, Math.round(ms), { endpoint: this.state.endpoint });
    this.end('error', error);
  }

  private end(end: AttemptEnd, result: unknown): void {
    if (this.done) return;
    this.done = true;
    if (this.timer === undefined) {
      this.env.timeouts(this.attemptMs).remove(this);
    } else {
      clearTimeout(this.timer);
      this.env.attempts.delete(this);
    }
    if (this.callerSignal !== undefined) this.callerSignal.removeEventListener('abort', this);
    if (end === 'aborted' || (end === 'error' && result instanceof TimeoutError)) {
      // Stop the function's work: on timeout, caller abort or cancel (a signal read later is born aborted).
      this.abortReason = result ?? new Error('attempt aborted');
      this.controller?.abort(this.abortReason);
    }
    this.onEnd(this, end, result);
  }
}

function onDeadline(attempt: Attempt): void {
  attempt.timedOut('total');
}

const raised = new WeakSet<AbortSignal>();

/**
 * Listens for the caller's abort. One caller signal is often shared by many calls in flight, so its
 * listener limit is lifted once (as undici does), instead of a MaxListenersExceededWarning at 11.
 */
function listenForAbort(signal: AbortSignal, attempt: Attempt): void {
  if (!raised.has(signal)) {
    raised.add(signal);
    setMaxListeners(0, signal);
  }
  signal.addEventListener('abort', attempt);
}
