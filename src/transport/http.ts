import type { DrainOwner, Verdict } from './transport.js';

/**
 * HTTP by shape, not by realm: undici's own `fetch` returns undici's `Response`, which is not an instance
 * of this realm's `Response`, and a test like `instanceof Response` would silently count every 503 as a
 * success. These helpers recognise responses, requests and headers by the members the mesh uses.
 */

/** The members of a fetch `Response` the mesh reads. */
export interface ResponseLike {
  readonly status: number;
  readonly headers: HeadersLike;
  readonly body?: { cancel?(reason?: unknown): Promise<void> } | null;
}

/** The members of a fetch `Headers` the mesh reads. */
export interface HeadersLike {
  get(name: string): string | null;
}

/** The members of a fetch `Request` the mesh reads (any realm: global, undici). */
export interface RequestLike {
  readonly url: string;
  readonly method: string;
  readonly headers: HeadersLike;
  readonly body: unknown;
  readonly signal?: AbortSignal | null;
}

export function isHeadersLike(value: unknown): value is HeadersLike {
  return typeof value === 'object' && value !== null && typeof (value as HeadersLike).get === 'function';
}

/** A numeric `status` and a `headers` object with `get`: a response of any fetch implementation. */
export function isResponseLike(value: unknown): value is ResponseLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ResponseLike).status === 'number' &&
    isHeadersLike((value as ResponseLike).headers)
  );
}

/** A string `url` and `method` and a `headers` object with `get`: a request of any fetch implementation. */
export function isRequestLike(value: unknown): value is RequestLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as RequestLike).url === 'string' &&
    typeof (value as RequestLike).method === 'string' &&
    isHeadersLike((value as RequestLike).headers)
  );
}

/** Statuses retried by default: 429 and the 5xx that mean "try elsewhere" (Envoy's `retriable-status-codes` + 5xx). */
export const DEFAULT_RETRY_ON: readonly number[] = Object.freeze([429, 500, 502, 503, 504]);

/**
 * The default classification of an HTTP status: a status in `retryOn` (default 429, 500, 502, 503, 504) is a
 * retryable failure, any other 5xx a failure, everything else (4xx included: the caller's fault, not the
 * endpoint's) a success.
 */
export function classifyStatus(status: number, retryOn: ReadonlySet<number>): Verdict {
  if (retryOn.has(status)) return 'retryable-failure';
  return status >= 500 ? 'failure' : 'success';
}

/** Methods that RFC 9110 §9.2.2 calls idempotent: these may be retried after any retryable failure. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

const HTTP_DATE_START = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6},? /;

/**
 * Parses an HTTP `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
 * Returns milliseconds from `nowEpochMs`, or `undefined` when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, nowEpochMs: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date in any of its three forms starts with a day name (RFC 9110 §5.6.7); Date.parse alone would
  // read `-1` or `12-5` as dates in the past (a 0 ms wait) rather than refuse them.
  if (!HTTP_DATE_START.test(v)) return undefined;
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowEpochMs);
}

/**
 * Load biasing (Linkerd's, in its HTTP balancer): what a 429 without `Retry-After` charges its endpoint's latency
 * estimate, and the most a `Retry-After` can charge (a longer ask is read as this: the charge only has to outlast
 * the EWMA's memory, and a hostile header must not bury an endpoint for days).
 */
export const LOAD_PENALTY_MS = 5_000;
export const LOAD_PENALTY_MAX_MS = 300_000;

/**
 * The latency charge of a response (see {@link LOAD_PENALTY_MS}), or `undefined` for none: a status of 400 or
 * more with `Retry-After` charges its delay (capped), a 429 without one 5 s. 2xx and 3xx charge nothing: callers
 * check `status >= 400` before they read the header, so a plain 200 reads none (RFC 9110 §10.2.3 gives
 * Retry-After on a 3xx another meaning: when to follow the redirect). An unreadable Retry-After counts as absent.
 */
export function loadPenaltyMs(status: number, retryAfter: string | null): number | undefined {
  const asked = retryAfter === null ? undefined : parseRetryAfter(retryAfter, Date.now());
  if (asked === undefined) return status === 429 ? LOAD_PENALTY_MS : undefined;
  return asked > LOAD_PENALTY_MAX_MS ? LOAD_PENALTY_MAX_MS : asked;
}

/** A discarded body is read to its end (so its connection can be reused) up to this many bytes... */
export const DRAIN_MAX_BYTES = 8 * 1024 * 1024;
/** ... and for this long; past either bound it is cancelled, which closes its connection. */
export const DRAIN_MAX_MS = 5_000;

/**
 * Frees a response body nobody will read. HTTP/1.1 can reuse a connection only once the body has been read to
 * its end: a cancelled body closes the socket, and the next request opens a new one (a hedge loser per call
 * then means a connection per call). So the body is drained in the background, as undici's `body.dump()` does,
 * with larger bounds (a new connection costs more than a few MB read on a local network): up to
 * {@link DRAIN_MAX_BYTES} and {@link DRAIN_MAX_MS}, else it is cancelled; its `owner` (the call's mesh) may
 * cancel it sooner, on close(), as the drain holds a socket open. A body already being read (locked) is left
 * to its reader.
 */
export function cancelBody(response: ResponseLike, owner?: DrainOwner): void {
  const body = response.body as ReadableStream<Uint8Array> | null | undefined;
  if (body === null || body === undefined) return;
  try {
    if (body.locked) return;
    const declared = Number(response.headers.get('content-length'));
    if (declared > DRAIN_MAX_BYTES || typeof body.getReader !== 'function') {
      body.cancel().catch(noop);
      return;
    }
    drain(body.getReader(), owner);
  } catch {
    // a foreign or broken body: nothing more to free
  }
}

function drain(reader: ReadableStreamDefaultReader<Uint8Array>, owner: DrainOwner | undefined): void {
  let read = 0;
  let over = false;
  let release: (() => void) | undefined;
  const finish = (): void => {
    if (over) return;
    over = true;
    clearTimeout(timer);
    release?.();
  };
  const stop = (): void => {
    finish();
    reader.cancel().catch(noop);
  };
  const timer = setTimeout(stop, DRAIN_MAX_MS);
  timer.unref?.();
  release = owner?.holdDrain(stop); // may stop it at once (the mesh is closed)
  if (over) return release?.();
  const pump = (): void => {
    reader.read().then(
      (chunk) => {
        if (over) return;
        if (chunk.done) return finish();
        read += chunk.value?.byteLength ?? 0;
        if (read > DRAIN_MAX_BYTES) return stop();
        pump();
      },
      finish,
    );
  };
  pump();
}

const noop = (): void => {};
