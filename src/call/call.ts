import { setMaxListeners } from 'node:events';
import type { PickRequest } from '../balancer/balancer.js';
import type { EndpointState } from '../endpoint/endpoint-state.js';
import { TimeoutError } from '../errors.js';
import type { AttemptFn } from '../transport/attempt-context.js';
import { DRAIN_MAX_MS } from '../transport/http.js';
import type { DrainOwner, Transport } from '../transport/transport.js';
import type { Expiring, TimeoutList } from '../util/timeout-list.js';
import type { CallEnv } from './env.js';
import type { AttemptFailure, ResultSource } from './failure.js';
import type { CallSettings } from './settings.js';
import type { CallTarget } from './target.js';

/** A fault a route drew for one call: a delay, an abort, or both (the delay first), as Envoy's filter does. */
export interface InjectedFault {
  readonly route: string;
  readonly delayMs: number;
  /** The status to abort with, or undefined for no abort. */
  readonly abortStatus: number | undefined;
}

/** What a route drew for one call. */
export interface RouteDraw {
  readonly fault: InjectedFault | undefined;
  readonly mirror: { fire(): void } | undefined;
}

/** How an attempt ended, before classification. */
export type AttemptEnd = 'value' | 'error' | 'aborted';

/**
 * What the call and the verdict see of an attempt in flight (the class is in attempt.ts). An interface of its
 * own so that the call, its attempts and their verdicts depend on it, not on each other.
 */
export interface LiveAttempt extends ResultSource {
  readonly call: Call;
  readonly state: EndpointState;
  /** 1 for the first attempt, 2 for the first retry or hedge, ... */
  readonly attempt: number;
  readonly startedAt: number;
  /** True when this attempt is a half-open breaker's probe. */
  readonly probe: boolean;
  /** Ends the attempt from outside (hedge lost, caller abort, mesh closed). */
  cancel(reason: unknown): void;
  /** Ends the attempt with a TimeoutError of this scope. */
  timedOut(scope: 'attempt' | 'total'): void;
  /** Settle the attempt's promise (called once, by the verdict). */
  resolveWith(value: unknown): void;
  rejectWith(error: unknown): void;
}

const NO_TRIES: readonly EndpointState[] = Object.freeze([]);

/**
 * Streaming results whose call is still under its deadline: once the caller drops the Response, its call
 * leaves the deadline list and the caller's signal (else both would hold it until the deadline).
 */
const streaming = new FinalizationRegistry<Call>((call) => call.release());

/**
 * One call's state, the single context every step reads: its settings, its transport and request, its
 * deadline, the endpoints it tried, its failures, and the attempts in flight.
 *
 * It is also the call's one stop mechanism. A call stops for three reasons: the caller's signal aborts, the
 * total deadline passes, or the mesh closes. The call listens to the caller's signal once (not once per
 * attempt), sits in one shared deadline list (one timer for all calls of a duration), and on a stop ends
 * whatever it is doing: attempts in flight, a wait (discovery, backoff), or a response body still streaming.
 * That is how `totalMs` and `close()` bound a body, as fetch's own signal does, without an
 * `AbortSignal.any` per attempt (each one is kept alive by a long-lived caller signal on Node 20).
 *
 * It doubles as the balancer's {@link PickRequest} (no allocation per pick); a balancer must not keep it.
 */
export class Call implements Expiring, PickRequest, EventListenerObject, DrainOwner {
  // PickRequest: set by the pick step before each pick.
  attempt = 1;
  tried: readonly EndpointState[] = NO_TRIES;
  readonly hashKey: string | undefined;
  now = 0;
  panic = false;
  // Expiring: the total deadline's place in the shared list.
  expiresAt = Infinity;
  prev: Expiring | undefined;
  next: Expiring | undefined;

  startedAt = 0;
  /** Attempts started. */
  started = 0;
  /** Failed attempts, in order (created on the first failure). */
  failures: AttemptFailure[] | undefined;
  /** The endpoint the pick step chose for the attempt step (or the hedge step for a hedge). */
  picked: EndpointState | undefined;
  /** The attempt whose result the call resolved with; its signal keeps covering a streaming body. */
  winner: ResultSource | undefined;
  /** Why the call stopped (the caller's reason, a total TimeoutError, MeshClosedError), once it has. */
  stopped: unknown = undefined;
  /** The first attempt's endpoint (kept apart so a call that needs one attempt allocates no `tried` array). */
  first: EndpointState | undefined;
  /** Attempts in flight: one, or (while hedging) several. */
  private one: LiveAttempt | undefined;
  private many: LiveAttempt[] | undefined;
  /** The deadline list this call is in (kept: one lookup per call, not two). */
  private deadlines: TimeoutList | undefined;
  /**
   * What a step below armed for a failure on the way back up (the retry step's loop): the admission step hands
   * the first failure to it before deciding the result. Arming is a store; a wrapper would cost the success
   * path an async frame.
   */
  recovery: ((call: Call, failure: unknown) => Promise<unknown>) | undefined;
  /** The rest of the stack below the step that armed the recovery. */
  recoveryNext: { run(call: Call): Promise<unknown> } | undefined;
  /** What the transport planned for this call, read by its attempts (the undici path's dispatch options). */
  request: unknown = undefined;
  /**
   * What its route drew for it, applied by the route step: a fault, and a mirrored copy fired once the call is
   * admitted. One field, absent outside routes (a field costs every call 8 bytes).
   */
  drawn: RouteDraw | undefined = undefined;
  private holdsBody = false;
  private wake: ((reason: unknown) => void) | undefined;
  private sleepCtl: AbortController | undefined;

  constructor(
    readonly env: CallEnv,
    readonly target: CallTarget,
    readonly settings: CallSettings,
    readonly transport: Transport,
    readonly send: AttemptFn<unknown>,
  ) {
    this.hashKey = settings.hashKey;
  }

  get service(): string {
    return this.target.name;
  }

  /** Admission: the deadline starts, and the caller's abort is heard from now on. */
  begin(now: number): void {
    this.startedAt = now;
    this.now = now;
    this.expiresAt = now + this.settings.totalMs;
    this.deadlines = this.env.callDeadlines(this.settings.totalMs);
    this.deadlines.add(this);
    const signal = this.settings.signal;
    if (signal !== undefined) listenForAbort(signal, this);
  }

  /** The call is over: it leaves the deadline list and the caller's signal, unless `value` still streams. */
  end(value: unknown): void {
    const winner = this.winner;
    if (value !== undefined && winner !== undefined && winner.hasSignal && this.transport.streams(value)) {
      if (this.stopped !== undefined) {
        // Stopped after its result was decided but before now (a transport may hand a response over as it
        // arrives): the stop found no body to end then, so it ends it here.
        winner.abort(this.stopped);
        this.release();
        return;
      }
      this.holdsBody = true;
      streaming.register(value as object, this, this);
      return;
    }
    this.release();
  }

  /** Leaves the deadline list and the caller's signal (idempotent). */
  release(): void {
    const list = this.deadlines;
    if (list === undefined) return;
    this.deadlines = undefined;
    list.remove(this);
    this.settings.signal?.removeEventListener('abort', this);
    if (this.holdsBody) {
      this.holdsBody = false;
      streaming.unregister(this);
    }
    this.winner = undefined;
  }

  /** The winner's streaming result is over (a transport that knows when, the undici dispatcher, says so). */
  bodyDone(source: ResultSource): void {
    if (this.holdsBody && this.winner === source) this.release();
  }

  /** The caller's signal aborted. */
  handleEvent(): void {
    this.stop(this.settings.signal!.reason);
  }

  /** The total deadline passed (called by the deadline list). */
  expire(): void {
    this.stop(new TimeoutError(this.target.name, 'total', this.settings.totalMs));
    this.release();
  }

  /** Stops the call: ends its attempts, its wait, its backoff sleep, or its streaming body. */
  stop(reason: unknown): void {
    if (this.stopped !== undefined) return;
    this.stopped = reason;
    if (this.holdsBody) {
      this.winner?.abort(reason);
      this.release();
      return;
    }
    if (reason instanceof TimeoutError && reason.scope === 'total') {
      const live = this.many !== undefined ? [...this.many] : this.one !== undefined ? [this.one] : [];
      for (const a of live) a.timedOut('total');
    } else {
      this.cancelLive(reason);
    }
    this.wake?.(reason);
    this.sleepCtl?.abort(reason);
  }

  /** Ends every attempt in flight with `reason` (a hedge was won). */
  cancelLive(reason: unknown): void {
    const live = this.many !== undefined ? [...this.many] : this.one !== undefined ? [this.one] : [];
    for (const a of live) a.cancel(reason);
  }

  /** An attempt started or ended. */
  enter(attempt: LiveAttempt): void {
    if (this.many !== undefined) this.many.push(attempt);
    else if (this.one === undefined) this.one = attempt;
    else {
      this.many = [this.one, attempt];
      this.one = undefined;
    }
  }

  leave(attempt: LiveAttempt): void {
    if (this.one === attempt) this.one = undefined;
    else if (this.many !== undefined) {
      const i = this.many.indexOf(attempt);
      if (i >= 0) this.many.splice(i, 1);
    }
  }

  /**
   * A body this call freed drains in the background (see `cancelBody`) after the call may be over: it waits in
   * the deadline list of the drain's bound, so that `close()` finds it there, as it finds calls, and stops it.
   */
  holdDrain(stop: () => void): () => void {
    if (this.env.isClosed()) {
      stop();
      return noop;
    }
    const list = this.env.callDeadlines(DRAIN_MAX_MS);
    const entry = new Draining(this.target.name, this.env.clock.now() + DRAIN_MAX_MS, stop, list);
    list.add(entry);
    return () => list.remove(entry);
  }

  /** Sets `tried` for a pick: what this call has tried so far (an array only from the second pick on). */
  beforePick(now: number, panic: boolean): void {
    this.now = now;
    this.panic = panic;
    this.attempt = this.started + 1;
    if (this.started === 1 && this.tried === NO_TRIES) this.tried = [this.first as EndpointState];
  }

  /** Records the endpoint of an attempt that starts. */
  tryOn(state: EndpointState): void {
    if (this.started === 0) this.first = state;
    else if (this.tried === NO_TRIES) this.tried = [this.first as EndpointState, state];
    else (this.tried as EndpointState[]).push(state);
    this.started++;
  }

  /** Awaits `promise` unless the call stops first (then rejects with the stop reason). */
  wait<T>(promise: Promise<T>): Promise<T> {
    if (this.stopped !== undefined) return Promise.reject(this.stopped);
    return new Promise<T>((resolve, reject) => {
      this.wake = reject;
      promise.then(
        (value) => {
          this.wake = undefined;
          resolve(value);
        },
        (error: unknown) => {
          this.wake = undefined;
          reject(error);
        },
      );
    });
  }

  /** A signal that aborts when the call stops: for p-retry's backoff sleep (made on the first retry only). */
  sleepSignal(): AbortSignal {
    this.sleepCtl ??= new AbortController();
    if (this.stopped !== undefined && !this.sleepCtl.signal.aborted) this.sleepCtl.abort(this.stopped);
    return this.sleepCtl.signal;
  }
}

const noop = (): void => {};

/**
 * A freed body still draining, in a deadline list: `close()` calls `stop` on every entry (as on a call), and
 * the bound's expiry ends it too (the drain's own timer would as well; ending twice is a no-op).
 */
class Draining implements Expiring {
  prev: Expiring | undefined;
  next: Expiring | undefined;

  constructor(
    readonly service: string,
    public expiresAt: number,
    private readonly end: () => void,
    private readonly list: TimeoutList,
  ) {}

  expire(): void {
    this.end();
  }

  stop(): void {
    this.list.remove(this);
    this.end();
  }
}

const raised = new WeakSet<AbortSignal>();

/**
 * One caller signal is often shared by many calls in flight, so its listener limit is lifted once (as undici
 * does), instead of a MaxListenersExceededWarning at 11.
 */
function listenForAbort(signal: AbortSignal, call: Call): void {
  if (!raised.has(signal)) {
    raised.add(signal);
    setMaxListeners(0, signal);
  }
  signal.addEventListener('abort', call);
}
