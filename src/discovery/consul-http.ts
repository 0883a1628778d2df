import { MeshError } from '../errors.js';
import type { ConsulConnection } from './consul-config.js';

/**
 * Consul answered with an error status, did not answer, or answered something unusable. `status` and
 * `body` (Consul's plain-text error, truncated, with the token redacted) are set for HTTP errors.
 * Discovery wraps it in a `DiscoveryError`; `registerService` rejects with it.
 */
export class ConsulError extends MeshError {
  /** Always `'ECONSUL'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'ECONSUL';
  /** Consul's HTTP status, for an error answer. */
  readonly status: number | undefined;
  /** Consul's error text (truncated, token redacted), for an error answer. */
  readonly body: string | undefined;

  constructor(service: string, message: string, options?: { status?: number | undefined; body?: string | undefined; cause?: unknown }) {
    super('ECONSUL', service, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status;
    this.body = options?.body;
  }
}

export interface ConsulRequest {
  readonly method: 'GET' | 'PUT';
  /** Path under the base URL, already encoded: `/v1/health/service/users`. */
  readonly path: string;
  readonly query?: URLSearchParams;
  /** JSON body (PUT). */
  readonly body?: unknown;
  /** Overrides the connection's timeout (blocking queries wait longer). */
  readonly timeoutMs?: number;
  /** The caller's abort: the request rejects with its reason, untouched. */
  readonly signal?: AbortSignal;
  /** For the error's `service` field. */
  readonly service: string;
}

export interface ConsulResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** How much of an error body goes into a message. */
const MAX_BODY_CHARS = 300;
/** How much of an error answer is read for its message (the rest is dropped with its connection). */
const ERROR_BODY_BYTES = 64 * 1024;

/**
 * One request to Consul, bounded by a deadline. The token travels only in `X-Consul-Token`. A non-2xx
 * answer rejects with a {@link ConsulError} that quotes the status and Consul's plain-text body (errors
 * are `text/plain`: agent/http.go handleErr writes `err.Error()`); a network failure or timeout rejects
 * with a ConsulError whose cause chain has the token redacted. The caller's own abort rejects with its reason.
 */
export async function consulFetch(conn: ConsulConnection, request: ConsulRequest): Promise<ConsulResponse> {
  const { method, path, service } = request;
  const query = request.query?.toString() ?? '';
  const target = `${path}${query === '' ? '' : `?${query}`}`;
  const what = `${method} ${target}`;
  const timeoutMs = request.timeoutMs ?? conn.timeoutMs;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (conn.token !== undefined) headers['X-Consul-Token'] = conn.token;
  if (request.body !== undefined) headers['content-type'] = 'application/json';

  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), Math.min(timeoutMs, 2_147_483_647));
  const signal = request.signal ? AbortSignal.any([request.signal, deadline.signal]) : deadline.signal;
  try {
    const response = await conn.fetch(`${conn.baseUrl}${target}`, {
      method,
      headers,
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
      signal,
    });
    if (response.status >= 200 && response.status <= 299) {
      const text = await readCapped(response, conn.maxBodyBytes, (size) => {
        return new ConsulError(service, `Consul's answer to ${what} is larger than ${conn.maxBodyOption} (${conn.maxBodyBytes} bytes): ${size}`, {
          status: response.status,
        });
      });
      return { status: response.status, headers: response.headers, text };
    }
    let cut = false;
    let text = await readCapped(response, Math.min(ERROR_BODY_BYTES, conn.maxBodyBytes), () => ((cut = true), undefined));
    // Redact before cutting. A body read only in part may end in part of the token, which no redaction finds
    // (and whitespace may collapse it into the part shown): drop a token's length from its end.
    text = redact(text, conn.token);
    if (cut && conn.token) text = text.slice(0, Math.max(0, text.length - encodeURIComponent(conn.token).length));
    const body = text.trim().replace(/\s+/g, ' ');
    const shown = body.length > MAX_BODY_CHARS ? `${body.slice(0, MAX_BODY_CHARS)}…` : body;
    // Like the Go client's "Unexpected response code: 500 (No cluster leader)", naming the request too.
    throw new ConsulError(service, `Consul answered ${response.status} to ${what}: ${shown || '(empty body)'}`, {
      status: response.status,
      body: shown,
    });
  } catch (error) {
    if (request.signal?.aborted) throw request.signal.reason;
    if (error instanceof ConsulError) throw error;
    if (deadline.signal.aborted) {
      throw new ConsulError(service, `Consul at ${conn.origin} did not answer ${what} within ${Math.round(timeoutMs)} ms`);
    }
    const cause = redactError(error, conn.token);
    const reason = redact(describe(cause), conn.token);
    throw new ConsulError(service, `Consul at ${conn.origin} could not be reached for ${what}: ${reason}`, { cause });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The body as UTF-8 text (as `Response.text()` reads it), but never more than `limit` bytes: a `Content-Length`
 * over it is refused before reading, and a body that grows past it is cancelled at once, so that its
 * connection is dropped instead of drained. Over the limit, `tooLarge` says what to throw; when it returns
 * nothing, what was read up to the limit is returned.
 */
async function readCapped(response: Response, limit: number, tooLarge: (size: string) => Error | undefined): Promise<string> {
  const body = response.body;
  const declared = response.headers.get('content-length')?.trim();
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > limit) {
    const error = tooLarge(`it declares Content-Length ${declared}`);
    if (error) {
      body?.cancel().catch(() => {});
      throw error;
    }
  }
  if (body === null || body === undefined) return '';
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let read = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      if (read + value.byteLength > limit) {
        const error = tooLarge(`more than ${limit} bytes arrived`);
        if (error) throw error;
        return text + decoder.decode(value.subarray(0, limit - read));
      }
      read += value.byteLength;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.cancel().catch(() => {}); // a no-op once the body has ended; else it stops the transfer
  }
}

/** `fetch failed: connect ECONNREFUSED 127.0.0.1:8500`: undici hides the useful part in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const inner = error.cause instanceof Error ? error.cause.message : undefined;
  return inner && inner !== error.message ? `${error.message}: ${inner}` : error.message;
}

/** Replaces every occurrence of the token (raw and URL-encoded) in `text`. */
export function redact(text: string, token: string | undefined): string {
  if (!token) return text;
  let out = text.split(token).join('[redacted]');
  const encoded = encodeURIComponent(token);
  if (encoded !== token) out = out.split(encoded).join('[redacted]');
  return out;
}

/**
 * A copy of `error` and its cause chain with the token redacted from every message and stack, when any of
 * them contains it (a custom fetch may quote its request); otherwise `error` itself.
 */
export function redactError(error: unknown, token: string | undefined, depth = 0): unknown {
  if (!token || depth > 8 || !(error instanceof Error)) return error;
  const cause = redactError(error.cause, token, depth + 1);
  const leaks = error.message.includes(token) || (error.stack ?? '').includes(token) || cause !== error.cause;
  if (!leaks) return error;
  const copy = new Error(redact(error.message, token), cause === undefined ? undefined : { cause });
  copy.name = error.name;
  copy.stack = redact(error.stack ?? '', token);
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) (copy as { code?: unknown }).code = code;
  return copy;
}
