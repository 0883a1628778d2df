import type { DrainOwner } from '../transport/transport.js';
import type { TransportAttempt } from '../transport/attempt-context.js';
import { objectHeader, rawHeader, type HeaderObject, type RawHeaders } from './headers.js';

/** What a response becomes once it is the call's result: the caller's handler, in whichever API it speaks. */
export interface Sink {
  /** The head; `false` asks to pause. */
  start(response: AttemptResponse): boolean;
  /** A body chunk; `false` asks to pause. */
  data(chunk: Buffer): boolean;
  end(response: AttemptResponse): void;
  error(error: unknown): void;
}

/** Before the call has decided, a response buffers up to this much body, then pauses its connection. */
const HOLD_MAX_BYTES = 64 * 1024;
/** A discarded body (a 503 that is retried, a hedge that lost) is read to its end up to this much, then aborted. */
const DISCARD_MAX_BYTES = 1024 * 1024;

const enum Phase {
  Head,
  Body,
  Done,
  Failed,
}

/**
 * One attempt's request on an endpoint's pool, and the handler undici drives for it. It is the value the mesh
 * sees: the attempt is answered when the head arrives (as fetch resolves with a Response; no promise), the status is
 * classified, and the call decides. Meanwhile the body is held (up to {@link HOLD_MAX_BYTES}, then the
 * connection pauses); the call's result is then {@link commit}ted to the caller's handler, and every other
 * response {@link discard}ed: read to its end so its connection is reused, or aborted past a bound.
 *
 * Stops come from the attempt (`onAbort`: attempt timeout, hedge lost, the caller's abort, the total deadline,
 * close()) and go to undici's own abort of this request: no AbortSignal per attempt.
 *
 * Two subclasses speak undici's two handler APIs; each version's core gets the one it calls natively (7: the
 * legacy `onHeaders`/`onData`, 8: `onResponseStart`/`onResponseData`), so no adapter stands in between.
 */
export abstract class AttemptResponse {
  statusCode = 0;
  statusMessage: string | undefined;
  /** The head and trailers as the pool gave them: raw arrays (legacy API) or objects (new API). */
  rawHeaders: RawHeaders | undefined;
  headersObject: HeaderObject | undefined;
  rawTrailers: RawHeaders | undefined;
  trailersObject: HeaderObject | undefined;
  protected abortReason: unknown = undefined;
  private phase = Phase.Head;
  private failure: unknown;
  /**
   * Body chunks not yet delivered: held before the call decided, or (after the commit) waiting for a caller that
   * paused. `next` is the first one not delivered. Order is kept: while any wait, new chunks queue behind them.
   */
  private backlog: Buffer[] | undefined;
  private next = 0;
  private held = 0;
  /** We told undici to pause this request (its connection stops reading). */
  private upstreamPaused = false;
  /** The caller's handler asked to pause (`false` from a callback, or its controller's `pause()`). */
  private callerPaused = false;
  private sink: Sink | undefined;
  private discarded = false;
  private releaseDrain: (() => void) | undefined;

  constructor(private readonly attempt: TransportAttempt) {
    attempt.onAbort(this);
  }

  /** Stops this request: undici aborts it (a queued one is aborted when it would start). */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined || this.phase >= Phase.Done) return;
    this.abortReason = reason;
    this.abortUpstream(reason);
  }

  /** The caller takes more again (its resume, or the commit): what waits is delivered, then the connection reads on. */
  resume(): void {
    this.callerPaused = false;
    this.deliver();
  }

  /** A response header (lower-case name), `null` when absent. */
  header(name: string): string | null {
    return this.rawHeaders !== undefined ? rawHeader(this.rawHeaders, name) : objectHeader(this.headersObject, name);
  }

  /** Whether the body is still coming. */
  get streaming(): boolean {
    return this.phase === Phase.Body;
  }

  /** This response is the call's result: the caller's handler gets the head, what was held, and the rest. */
  commit(sink: Sink): void {
    if (this.sink !== undefined) return; // committed as it arrived (see headArrived)
    this.sink = sink;
    if (!sink.start(this)) this.callerPaused = true;
    this.deliver();
  }

  /** Nobody will read this response: drain it (bounded in bytes, and by `owner` in time), or abort it. */
  discard(owner: DrainOwner | undefined): void {
    if (this.sink !== undefined || this.discarded) return;
    this.discarded = true;
    this.backlog = undefined;
    if (this.phase !== Phase.Body) return;
    if (this.held > DISCARD_MAX_BYTES) return this.abort(new Error('discarded response body too large to drain'));
    this.releaseDrain = owner?.holdDrain(() => this.abort(new Error('discarded response body not drained in time')));
    this.resumeConnection();
  }

  protected abstract abortUpstream(reason: unknown): void;
  protected abstract resumeUpstream(): void;

  /**
   * The head arrived: the attempt is answered, and classified at once. A success that won is the call's result
   * whatever happens next (a later stop only ends its body), so it goes to the caller's handler right here,
   * inside undici's own callback, as with a bare Pool: nothing is held, and nothing waits for the call's
   * promise. Anything else is held until the call decides. An informational (1xx) head decides nothing: the
   * final one follows. Returns `false` to pause.
   */
  protected headArrived(statusCode: number, statusMessage: string | undefined): boolean {
    if (statusCode < 200 || this.phase !== Phase.Head) return true;
    this.statusCode = statusCode;
    this.statusMessage = statusMessage;
    this.phase = Phase.Body;
    const attempt = this.attempt;
    attempt.answer(this);
    if (!attempt.won) return true;
    const sink = attempt.request as Sink;
    this.sink = sink;
    if (sink.start(this)) return true;
    this.callerPaused = this.upstreamPaused = true;
    return false;
  }

  /** A body chunk; `false` pauses the connection. */
  protected dataArrived(chunk: Buffer): boolean {
    if (this.discarded) {
      this.held += chunk.length;
      if (this.held > DISCARD_MAX_BYTES) this.abort(new Error('discarded response body too large to drain'));
      return true;
    }
    const sink = this.sink;
    if (sink !== undefined && this.backlog === undefined && !this.callerPaused) {
      if (sink.data(chunk)) return true;
      this.callerPaused = this.upstreamPaused = true;
      return false;
    }
    (this.backlog ??= []).push(chunk);
    this.held += chunk.length;
    if (sink === undefined && this.held < HOLD_MAX_BYTES) return true;
    this.upstreamPaused = true;
    return false;
  }

  protected ended(): void {
    if (this.phase !== Phase.Body) return;
    this.phase = Phase.Done;
    this.attempt.finished();
    if (this.sink !== undefined) this.deliver();
    else if (this.discarded) this.drained();
  }

  protected failed(error: unknown): void {
    if (this.phase === Phase.Head) {
      this.phase = Phase.Failed;
      this.attempt.fail(error);
      return;
    }
    if (this.phase !== Phase.Body) return;
    this.phase = Phase.Failed;
    this.failure = error;
    this.backlog = undefined;
    this.attempt.finished();
    if (this.sink !== undefined) this.sink.error(error);
    else if (this.discarded) this.drained();
  }

  /**
   * Hands the caller what waits, in order, while it does not pause; then the end (or the error) once nothing
   * waits, or lets the connection read on.
   */
  private deliver(): void {
    const sink = this.sink;
    if (sink === undefined) return;
    const backlog = this.backlog;
    if (backlog !== undefined) {
      while (this.next < backlog.length) {
        if (this.callerPaused) return;
        const chunk = backlog[this.next++] as Buffer;
        if (!sink.data(chunk)) this.callerPaused = true;
      }
      this.backlog = undefined;
      this.next = 0;
    }
    if (this.phase === Phase.Done) sink.end(this);
    else if (this.phase === Phase.Failed) sink.error(this.failure);
    else if (!this.callerPaused) this.resumeConnection();
  }

  private resumeConnection(): void {
    if (!this.upstreamPaused) return;
    this.upstreamPaused = false;
    this.resumeUpstream();
  }

  private drained(): void {
    const release = this.releaseDrain;
    this.releaseDrain = undefined;
    release?.();
  }
}

/** For undici 7, whose core calls the legacy handler API. */
export class LegacyAttemptResponse extends AttemptResponse {
  private abortFn: ((reason?: unknown) => void) | undefined;
  private resumeFn: (() => void) | undefined;

  onConnect(abort: (reason?: unknown) => void): void {
    if (this.abortReason !== undefined) abort(this.abortReason);
    else this.abortFn = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusMessage?: string): boolean {
    this.resumeFn = resume;
    this.rawHeaders = rawHeaders;
    return this.headArrived(statusCode, statusMessage);
  }

  onData(chunk: Buffer): boolean {
    return this.dataArrived(chunk);
  }

  onComplete(trailers: Buffer[] | null): void {
    this.rawTrailers = trailers ?? [];
    this.ended();
  }

  onError(error: Error): void {
    this.failed(error);
  }

  onUpgrade(): void {
    this.failed(new Error('proxyless/undici: upgrade and CONNECT do not go through the mesh'));
  }

  protected abortUpstream(reason: unknown): void {
    this.abortFn?.(reason);
  }

  protected resumeUpstream(): void {
    this.resumeFn?.();
  }
}

/** The controller undici's new handler API hands to a handler (the members the mesh uses). */
export interface UndiciController {
  abort(reason: unknown): void;
  pause(): void;
  resume(): void;
}

/** For undici 8, whose core calls the new handler API. */
export class ModernAttemptResponse extends AttemptResponse {
  private controller: UndiciController | undefined;

  onRequestStart(controller: UndiciController): void {
    this.controller = controller;
    if (this.abortReason !== undefined) controller.abort(this.abortReason);
  }

  onResponseStart(controller: UndiciController, statusCode: number, headers: HeaderObject, statusMessage?: string): void {
    this.headersObject = headers;
    if (!this.headArrived(statusCode, statusMessage)) controller.pause();
  }

  onResponseData(controller: UndiciController, chunk: Buffer): void {
    if (!this.dataArrived(chunk)) controller.pause();
  }

  onResponseEnd(_controller: UndiciController, trailers: HeaderObject | null): void {
    this.trailersObject = trailers ?? {};
    this.ended();
  }

  onResponseError(_controller: UndiciController | null, error: Error): void {
    this.failed(error);
  }

  onRequestUpgrade(): void {
    this.failed(new Error('proxyless/undici: upgrade and CONNECT do not go through the mesh'));
  }

  protected abortUpstream(reason: unknown): void {
    this.controller?.abort(reason);
  }

  protected resumeUpstream(): void {
    this.controller?.resume();
  }
}
