import { MeshError } from '../../errors.js';
import { raceAbort } from '../../util/race-abort.js';
import type { EtcdConnection } from './options.js';
import { isObject, WireError } from './wire.js';

/**
 * etcd did not answer, answered with an error, or answered something unusable. `status` is the HTTP status
 * and `grpcCode` the gRPC code of an error answer (the gateway's body is `{"error", "message", "code"}`:
 * 5 NotFound for a lease etcd does not have, 16 Unauthenticated for an expired token, 11 OutOfRange for a
 * compacted revision; rpctypes/error.go). Discovery wraps it in a `DiscoveryError`; `registerEtcd` rejects with it.
 */
export class EtcdError extends MeshError {
  /** Always `'EETCD'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'EETCD';
  readonly status: number | undefined;
  readonly grpcCode: number | undefined;

  constructor(service: string, message: string, options?: { status?: number | undefined; grpcCode?: number | undefined; cause?: unknown }) {
    super('EETCD', service, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status;
    this.grpcCode = options?.grpcCode;
  }
}

/** gRPC codes the client acts on. */
export const GRPC = { NOT_FOUND: 5, UNAUTHENTICATED: 16, UNAVAILABLE: 14 } as const;

export interface GatewayRequest {
  /** `/v3/kv/range`, `/v3/lease/grant`, ... */
  readonly path: string;
  readonly body: unknown;
  /** For the error's `service` field. */
  readonly service: string;
  /** The caller's abort: the request rejects with its reason, untouched. */
  readonly signal?: AbortSignal | undefined;
  /** More request headers (`/v3/watch` sends `Grpc-Metadata-Hasleader`). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A watch stream's response, and the token it was opened with (to drop it if etcd calls it invalid later). */
export interface GatewayStream {
  readonly response: Response;
  readonly token: string | undefined;
}

/** How much of an error answer is read for its message. */
const ERROR_BODY_BYTES = 16 * 1024;

/**
 * The HTTP side of etcd's gateway: POSTs of JSON with a deadline, over the configured members in turn. The
 * member that answered last is tried first next time; one that does not answer (connection refused or reset,
 * timeout, a 500/502/503/504 or any 5xx that is not etcd's JSON error, as a proxy in front of a dead member
 * answers) hands the request to the next, each tried once per request. Speaks etcd 3.4+'s `/v3/*` paths (3.3
 * served them as `/v3beta/*` and is not supported).
 */
export class EtcdGateway {
  private current = 0;
  private token: string | undefined;
  private authenticating: Promise<string> | undefined;

  constructor(readonly conn: EtcdConnection) {}

  /** A unary call: the parsed JSON object of a 200 answer. */
  async call(request: GatewayRequest): Promise<Record<string, unknown>> {
    return this.authorized(request, async (headers) => {
      const text = await this.send(request, headers, async (response, what) => {
        const body = await readCapped(response, this.conn.maxBodyBytes, what, request.service, this.conn.at);
        if (response.status !== 200) throw errorAnswer(request.service, what, response.status, body);
        return body;
      });
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new EtcdError(request.service, `etcd's answer to POST ${request.path} is not JSON (${Buffer.byteLength(text)} bytes)`);
      }
      if (!isObject(parsed)) throw new EtcdError(request.service, `etcd's answer to POST ${request.path} is not a JSON object`);
      return parsed;
    });
  }

  /**
   * A streaming call (`/v3/watch`): the 200 response, whose body the caller reads. The deadline covers the
   * wait for the response (the gateway sends its headers with the first message, `created`), not the stream.
   */
  async stream(request: GatewayRequest): Promise<GatewayStream> {
    return this.authorized(request, async (headers) => ({
      token: headers.authorization,
      response: await this.send(request, headers, async (response, what) => {
        if (response.status === 200 && response.body) return response;
        const body = await readCapped(response, ERROR_BODY_BYTES, what, request.service, this.conn.at).catch(() => '');
        throw errorAnswer(request.service, what, response.status, body);
      }),
    }));
  }

  /**
   * Forgets `token` (if it is still the one in use): etcd called it invalid in a watch stream's cancel reason,
   * which comes as a 200 line, not as an error answer `authorized` would see.
   */
  dropToken(token: string | undefined): void {
    if (token !== undefined && this.token === token) this.token = undefined;
  }

  /** Runs `attempt` with the auth header; a token etcd calls invalid (expired) is fetched again, once. */
  private async authorized<T>(request: GatewayRequest, attempt: (headers: Record<string, string>) => Promise<T>): Promise<T> {
    if (this.conn.credentials === undefined) return attempt({});
    const token = await this.authToken(request);
    try {
      return await attempt({ authorization: token });
    } catch (error) {
      if (!(error instanceof EtcdError && error.grpcCode === GRPC.UNAUTHENTICATED)) throw error;
      if (this.token === token) this.token = undefined;
      return attempt({ authorization: await this.authToken(request) });
    }
  }

  /**
   * etcd's auth token (`POST /v3/auth/authenticate {name, password}` → `{token}`), one request at a time. The
   * shared request runs under the gateway's own deadline only, so one caller's abort fails no other caller:
   * each races its own signal against it.
   */
  private authToken(request: GatewayRequest): Promise<string> {
    if (this.token !== undefined) return Promise.resolve(this.token);
    this.authenticating ??= (async () => {
      try {
        const creds = this.conn.credentials!;
        const auth: GatewayRequest = { path: '/v3/auth/authenticate', body: { name: creds.name, password: creds.password }, service: request.service };
        const text = await this.send(auth, {}, async (response, what) => {
          const body = await readCapped(response, ERROR_BODY_BYTES, what, request.service, this.conn.at);
          if (response.status !== 200) throw errorAnswer(request.service, what, response.status, body);
          return body;
        });
        let token: unknown;
        try {
          token = (JSON.parse(text) as { token?: unknown }).token;
        } catch {
          // the shape check below says it
        }
        if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) throw new EtcdError(request.service, "etcd's authenticate answer has no usable token");
        this.token = token;
        return token;
      } finally {
        this.authenticating = undefined;
      }
    })();
    return raceAbort(this.authenticating, request.signal);
  }

  /** Sends to each member in turn until one answers; `read` turns the answer into the result (or throws). */
  private async send<T>(request: GatewayRequest, headers: Record<string, string>, read: (response: Response, what: string) => Promise<T>): Promise<T> {
    const { endpoints, timeoutMs } = this.conn;
    const failures: string[] = [];
    for (let i = 0; i < endpoints.length; i++) {
      const index = (this.current + i) % endpoints.length;
      const base = endpoints[index]!;
      const what = `POST ${request.path} on ${base}`;
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), timeoutMs);
      const signal = request.signal ? AbortSignal.any([request.signal, deadline.signal]) : deadline.signal;
      try {
        const response = await this.conn.fetch(`${base}${request.path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', ...request.headers, ...headers },
          body: JSON.stringify(request.body),
          signal,
        });
        const result = await read(response, what);
        this.current = index;
        return result;
      } catch (error) {
        if (request.signal?.aborted) throw request.signal.reason;
        const unavailable = error instanceof EtcdError && isUnavailable(error);
        if (error instanceof EtcdError && !unavailable) {
          this.current = index; // it answered: a refusal from one member is every member's
          throw error;
        }
        if (error instanceof WireError) throw new EtcdError(request.service, `${error.message} (${what})`);
        failures.push(deadline.signal.aborted ? `${base}: no answer within ${Math.round(timeoutMs)} ms` : `${base}: ${describe(error)}`);
        if (unavailable && i === endpoints.length - 1) {
          this.current = (this.current + 1) % endpoints.length; // start the next request elsewhere
          throw error;
        }
      } finally {
        clearTimeout(timer);
      }
    }
    this.current = (this.current + 1) % endpoints.length; // start the next request elsewhere
    throw new EtcdError(request.service, `etcd could not be reached for POST ${request.path}: ${failures.join('; ')}`);
  }
}

/**
 * An answer that says "this member cannot serve now", so the next one is tried: 503 (etcd: no leader), 500,
 * 502 and 504 (a proxy or load balancer in front of a dead member), and any other 5xx that is not etcd's own
 * JSON error (which has a gRPC code).
 */
function isUnavailable(error: EtcdError): boolean {
  const status = error.status;
  if (status === undefined || status < 500) return false;
  return status === 500 || status === 502 || status === 503 || status === 504 || error.grpcCode === undefined;
}

/** An error answer as an EtcdError quoting etcd's message (the gateway's `{"error","message","code"}`). */
function errorAnswer(service: string, what: string, status: number, body: string): EtcdError {
  let message = body.trim().replace(/\s+/g, ' ');
  let grpcCode: number | undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (isObject(parsed)) {
      if (typeof parsed.message === 'string') message = parsed.message;
      else if (typeof parsed.error === 'string') message = parsed.error;
      if (Number.isInteger(parsed.code)) grpcCode = parsed.code as number;
    }
  } catch {
    // not JSON: the text itself is shown
  }
  const shown = message.length > 300 ? `${message.slice(0, 300)}…` : message;
  return new EtcdError(service, `etcd answered ${status} to ${what}: ${shown || '(empty body)'}`, { status, ...(grpcCode === undefined ? {} : { grpcCode }) });
}

/** The body as text, never more than `limit` bytes (a larger one is cancelled, which drops its connection). */
async function readCapped(response: Response, limit: number, what: string, service: string, at: string): Promise<string> {
  const body = response.body;
  if (body === null) return '';
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let read = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      read += value.byteLength;
      if (read > limit) throw new EtcdError(service, `etcd's answer to ${what} is larger than ${at}.maxBodyBytes (${limit} bytes)`);
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** `fetch failed: connect ECONNREFUSED 127.0.0.1:2379`: undici hides the useful part in `cause`. */
export function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const inner = error.cause instanceof Error ? error.cause.message : undefined;
  return inner && inner !== error.message ? `${error.message}: ${inner}` : error.message;
}

/**
 * The lines of a newline-delimited stream (grpc-gateway writes one JSON message and a '\n' per message),
 * decoded as UTF-8. `onData` hears every chunk (the idle timer). A line longer than `maxLineBytes` throws, so
 * a stream without newlines cannot make this process buffer without end. Ends when the stream ends; throws
 * `signal`'s reason once it aborts, even with a fetch that does not tie its body to the signal (the reader is
 * cancelled then). The reader is released in every case, which closes the response.
 */
export async function* lines(body: ReadableStream<Uint8Array>, maxLineBytes: number, signal: AbortSignal, onData: () => void): AsyncGenerator<string> {
  const reader = body.getReader();
  const onAbort = (): void => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) {
        const rest = pending + decoder.decode();
        if (rest.trim() !== '') yield rest;
        return;
      }
      onData();
      pending += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim() !== '') yield line;
      }
      // Characters, not bytes: a UTF-8 byte count would cost a pass over the text per chunk; a line of
      // multi-byte text is allowed up to 4 times the bytes, which is still bounded.
      if (pending.length > maxLineBytes) throw new WireError(`a watch stream line is longer than maxBodyBytes (${maxLineBytes} bytes)`);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    reader.cancel().catch(() => {});
  }
}
