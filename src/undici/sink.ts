import { withHeader, type RequestHeaders } from '../transport/request-headers.js';
import { objectToRaw, rawToObject } from './headers.js';
import type { AttemptResponse, Sink, UndiciController } from './response.js';

/** A handler of undici's legacy API (what `request()` and `fetch` hand a dispatcher on undici 7). */
export interface LegacyHandler {
  onConnect?(abort: (reason?: unknown) => void, context?: object): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusMessage?: string): boolean | void;
  onData?(chunk: Buffer): boolean | void;
  onComplete?(trailers: Buffer[]): void;
  onError?(error: unknown): void;
}

/** A handler of undici's new API (undici 8, and what an interceptor gets on 7). */
export interface ModernHandler {
  onRequestStart?(controller: UndiciController & MeshControllerState, context: object): void;
  onResponseStart?(controller: UndiciController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void;
  onResponseData?(controller: UndiciController, chunk: Buffer): void;
  onResponseEnd?(controller: UndiciController, trailers: Record<string, string | string[] | undefined>): void;
  onResponseError?(controller: UndiciController, error: unknown): void;
}

export type AnyHandler = LegacyHandler & ModernHandler;

interface MeshControllerState {
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: unknown;
}

/**
 * The caller's side of one dispatch, in the caller's handler API: it starts the request (hands the caller
 * its abort), and takes the call's result or its error. A handler that throws aborts its request, as undici's
 * core does; exactly one of end or error reaches it.
 */
export abstract class CallerSink implements Sink {
  protected response: AttemptResponse | undefined;
  /** What each attempt dispatches (the caller's options, with `Host` set for `host: 'service'`). */
  opts: object | undefined;
  /**
   * With the `deadline` policy on, its header (lower case): each attempt adds the time left to `opts`' headers
   * (from which the caller's header of that name was dropped). Undefined otherwise, and then `opts` goes as is.
   */
  deadlineHeader: string | undefined;
  /**
   * Telemetry (`withTelemetry`) was on when the call was planned: each attempt adds its span's propagation headers
   * (`traceparent`, ...), never over a header of that name the caller set.
   */
  traced = false;
  /** The mesh call this dispatch runs as; the caller's abort stops it (before it started, nothing is sent). */
  call: { stop(reason: unknown): void } | undefined;
  /** The caller has heard its end or its error: nothing more reaches it. */
  private over = false;

  /**
   * The caller aborted (its signal, or fetch's own): the call stops, and a response it already has is aborted
   * here too, since the call may not hold it yet (it was handed over inside undici's callback, before the call's
   * promise settled). The caller hears only `onError(reason)` from now on.
   */
  protected abortRequested(reason: unknown): void {
    if (this.over) return;
    const why = reason ?? new Error('request aborted');
    this.call?.stop(why);
    const response = this.response;
    if (response !== undefined) {
      if (response.streaming) response.abort(why);
      this.error(why);
    }
  }

  /**
   * What an attempt dispatches: `opts`, plus (with the `deadline` policy on) the time the call has left as the
   * attempt starts, so each retry or hedge carries less. One field check when the policy is off.
   */
  optionsFor(attempt: { readonly timeLeftMs: number; readonly traceHeaders?: Readonly<Record<string, string>> | undefined }): object {
    const header = this.deadlineHeader;
    const opts = this.opts as { readonly headers?: object };
    if (!this.traced) {
      if (header === undefined) return opts;
      return { ...opts, headers: { ...opts.headers, [header]: String(attempt.timeLeftMs) } };
    }
    let headers = (header === undefined ? opts.headers : { ...opts.headers, [header]: String(attempt.timeLeftMs) }) as RequestHeaders;
    const trace = attempt.traceHeaders;
    // Lower-cased for withHeader, so a propagator's `X-Trace-Id` never joins the caller's `x-trace-id`.
    if (trace !== undefined) for (const name of Object.keys(trace)) headers = withHeader(headers, name.toLowerCase(), trace[name]!);
    return { ...opts, headers };
  }

  /** Refuses the request before anything is sent: the caller is handed its abort, then hears `error`. */
  refuse(error: unknown): void {
    try {
      this.begin();
    } catch {
      // its onConnect threw: it still hears why the request was refused
    }
    this.error(error);
  }

  /** The call failed: the caller hears it, and a response it may already have stops streaming. */
  fail(error: unknown): void {
    this.error(error);
    if (this.response?.streaming) this.response.abort(error);
  }

  // A handler that throws gets that error at once, and nothing after; its response's connection is aborted.
  // (try/catch in each method, not a shared wrapper: a closure per delivery on the hot path.)

  start(response: AttemptResponse): boolean {
    this.response = response;
    try {
      return this.deliverStart(response);
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  data(chunk: Buffer): boolean {
    if (this.over) return true;
    try {
      return this.deliverData(chunk);
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  end(response: AttemptResponse): void {
    if (this.over) return;
    this.over = true;
    try {
      this.deliverEnd(response);
    } catch {
      // the handler threw on the last callback: nothing is left to tell it
    }
  }

  error(error: unknown): void {
    if (this.over) return;
    this.over = true;
    try {
      this.deliverError(error);
    } catch {
      // the handler's own error path threw: nothing is left to tell it
    }
  }

  /** Hands the caller its way to abort; call first, before anything is sent. */
  abstract begin(): void;
  protected abstract deliverStart(response: AttemptResponse): boolean;
  protected abstract deliverData(chunk: Buffer): boolean;
  protected abstract deliverEnd(response: AttemptResponse): void;
  protected abstract deliverError(error: unknown): void;
}

export class LegacySink extends CallerSink {
  constructor(private readonly handler: LegacyHandler) {
    super();
  }

  begin(): void {
    this.handler.onConnect?.((reason?: unknown) => this.abortRequested(reason));
  }

  protected deliverStart(r: AttemptResponse): boolean {
    const raw = r.rawHeaders ?? objectToRaw(r.headersObject);
    return this.handler.onHeaders?.(r.statusCode, raw, () => r.resume(), r.statusMessage) !== false;
  }

  protected deliverData(chunk: Buffer): boolean {
    return this.handler.onData?.(chunk) !== false;
  }

  protected deliverEnd(r: AttemptResponse): void {
    this.handler.onComplete?.(r.rawTrailers ?? objectToRaw(r.trailersObject));
  }

  protected deliverError(error: unknown): void {
    this.handler.onError?.(error);
  }
}

/** The controller a new-API caller gets: pause and resume reach the response's connection. */
class MeshController implements UndiciController, MeshControllerState {
  paused = false;
  aborted = false;
  reason: unknown = undefined;

  constructor(private readonly sink: ModernSink) {}

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.sink.requestAbort(reason);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.sink.resumeResponse();
  }
}

export class ModernSink extends CallerSink {
  private readonly controller = new MeshController(this);

  constructor(private readonly handler: ModernHandler) {
    super();
  }

  begin(): void {
    this.handler.onRequestStart?.(this.controller, {});
  }

  requestAbort(reason: unknown): void {
    this.abortRequested(reason);
  }

  resumeResponse(): void {
    this.response?.resume();
  }

  protected deliverStart(r: AttemptResponse): boolean {
    this.handler.onResponseStart?.(this.controller, r.statusCode, r.headersObject ?? rawToObject(r.rawHeaders), r.statusMessage);
    return !this.controller.paused;
  }

  protected deliverData(chunk: Buffer): boolean {
    this.handler.onResponseData?.(this.controller, chunk);
    return !this.controller.paused;
  }

  protected deliverEnd(r: AttemptResponse): void {
    this.handler.onResponseEnd?.(this.controller, r.trailersObject ?? rawToObject(r.rawTrailers));
  }

  protected deliverError(error: unknown): void {
    this.handler.onResponseError?.(this.controller, error);
  }
}

/** The sink for `handler`, in the API it speaks (the new one when it has `onRequestStart`, as undici decides). */
export function sinkFor(handler: AnyHandler): CallerSink {
  return typeof handler.onRequestStart === 'function' ? new ModernSink(handler) : new LegacySink(handler);
}
