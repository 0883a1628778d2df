/**
 * GET requests to the API server over node:http / node:https (no dependency: fetch cannot take a CA without
 * undici, which the core does not import). A list is read whole, bounded in size and time; a watch is read as
 * newline-delimited JSON, line by line. An error answer's body is read as a metav1.Status
 * (apimachinery pkg/apis/meta/v1/types.go, `Status`: kind, status, message, reason, code) and only its
 * `message`, token redacted, is shown; any other body is described, not quoted.
 */
import http from 'node:http';
import https from 'node:https';
import { MeshError } from '../../errors.js';
import { CachedFile, redact, type TokenSource } from './credentials.js';
import { LineSplitter, linked, readAll } from './io.js';
import type { KubernetesSettings } from './options.js';
import { clip, parseStatus } from './status.js';

/**
 * What went wrong, for the loop to decide: `gone` (410: relist), `broken` (a watch stream dropped or stalled:
 * resume from the last resourceVersion), `status` / `unreachable` / `timeout` / `credentials` (retry the same
 * request), `garbage` / `too-large` / `watch-error` (the stream cannot be trusted: relist).
 */
export type KubernetesErrorKind = 'status' | 'unreachable' | 'timeout' | 'broken' | 'garbage' | 'too-large' | 'credentials' | 'gone' | 'watch-error';

/**
 * The API server answered with an error status, could not be reached, or sent something unusable.
 * `status` is the HTTP status (or a watch ERROR event's Status `code`), `reason` the Status `reason`.
 * Discovery wraps it in a `DiscoveryError`. Its message never holds a token.
 */
export class KubernetesError extends MeshError {
  /** Always `'EKUBERNETES'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'EKUBERNETES';
  readonly kind: KubernetesErrorKind;
  readonly status: number | undefined;
  readonly reason: string | undefined;

  constructor(service: string, kind: KubernetesErrorKind, message: string, options?: { status?: number | undefined; reason?: string | undefined; cause?: unknown }) {
    super('EKUBERNETES', service, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.status = options?.status;
    this.reason = options?.reason;
  }
}

/** How much of an error answer is read. */
const ERROR_BODY_BYTES = 64 * 1024;

export interface WatchLines {
  /** Bytes arrived (or the headers did): the stream is alive. */
  activity(): void;
  /** The complete lines of one chunk (without their '\n'); may throw to break the stream. */
  lines(lines: readonly string[]): void;
}

/** One API server, its credentials and its connections (a keep-alive agent, destroyed by `close()`). */
export class KubernetesClient {
  private readonly agent: http.Agent;

  constructor(
    private readonly settings: KubernetesSettings,
    private readonly tokens: TokenSource,
    private readonly ca: CachedFile | undefined,
  ) {
    const options = { keepAlive: true, keepAliveMsecs: 1_000, maxFreeSockets: 4 };
    this.agent = settings.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
  }

  /** GETs `path` and parses its JSON body (at most `maxBodyBytes`, within `timeoutMs`). */
  async getJson(service: string, path: string, signal: AbortSignal): Promise<unknown> {
    const what = `GET ${path}`;
    const request = linked(signal, this.settings.timeoutMs);
    try {
      const res = await this.open(service, path, request.signal);
      const body = await readAll(res, this.settings.maxBodyBytes, request.signal);
      if (body === undefined) {
        throw new KubernetesError(service, 'too-large', `${this.describe(what)} sent more than maxBodyBytes (${this.settings.maxBodyBytes} bytes)`);
      }
      try {
        return JSON.parse(body.toString('utf8'));
      } catch {
        // Neither the text nor V8's message (which quotes it) is shown: either could hold anything.
        throw new KubernetesError(service, 'garbage', `${this.describe(what)} answered with invalid JSON (${body.length} bytes)`);
      }
    } catch (error) {
      throw this.settle(service, what, error, signal, request.timedOut());
    } finally {
      request.dispose();
    }
  }

  /**
   * GETs a watch `path` and hands its lines to `sink` as they arrive. Resolves when the server ends the stream
   * (its `timeoutSeconds` passed); rejects with a `broken` KubernetesError when the connection drops, and with
   * what `sink.lines` threw. Aborting `signal` ends it (rejecting with the signal's reason).
   */
  async watch(service: string, path: string, signal: AbortSignal, sink: WatchLines): Promise<void> {
    const what = `GET ${path}`;
    // The deadline covers the headers only: the stream itself lasts as long as the server keeps it.
    const request = linked(signal, this.settings.timeoutMs);
    let res: http.IncomingMessage;
    try {
      res = await this.open(service, path, request.signal);
    } catch (error) {
      request.dispose();
      throw this.settle(service, what, error, signal, request.timedOut());
    }
    request.clearTimer();
    sink.activity();
    await new Promise<void>((resolve, reject) => {
      const splitter = new LineSplitter(this.settings.maxBodyBytes);
      let done = false;
      const finish = (error?: unknown): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        request.dispose();
        if (error === undefined) return resolve();
        res.destroy();
        reject(error);
      };
      const onAbort = (): void => finish(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      res.on('data', (chunk: Buffer) => {
        if (done) return;
        sink.activity();
        const { lines, tooLong } = splitter.push(chunk);
        try {
          if (lines.length > 0) sink.lines(lines);
          if (tooLong) {
            throw new KubernetesError(service, 'too-large', `${this.describe(what)} sent a watch event line longer than maxBodyBytes (${this.settings.maxBodyBytes} bytes)`);
          }
        } catch (error) {
          finish(error);
        }
      });
      res.on('end', () => {
        if (done) return;
        const rest = splitter.rest();
        if (rest !== undefined) {
          try {
            sink.lines([rest]);
          } catch (error) {
            return finish(error);
          }
        }
        finish();
      });
      // A socket destroyed mid-stream ends in 'error' (ECONNRESET, "aborted") or in 'close' without 'end'.
      res.on('error', (error) => finish(this.broken(service, what, error)));
      res.on('close', () => finish(this.broken(service, what, new Error('the connection closed before the stream ended'))));
    });
  }

  close(): void {
    this.agent.destroy();
  }

  /** The secrets that no message may show. */
  secrets(): readonly string[] {
    return this.tokens.secrets();
  }

  /** Opens a GET; an error status rejects (after one retry with a re-read token on 401) as a KubernetesError. */
  private async open(service: string, path: string, signal: AbortSignal): Promise<http.IncomingMessage> {
    for (let attempt = 0; ; attempt++) {
      let token: string | undefined;
      let ca: string | undefined;
      try {
        [token, ca] = await Promise.all([this.tokens.get(), this.ca?.get()]);
      } catch (error) {
        throw new KubernetesError(service, 'credentials', (error as Error).message);
      }
      const res = await this.send(path, token, ca, signal);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status <= 299) return res;
      // A 401 may mean the token file was just rewritten: read it again and retry once, as client-go does.
      if (status === 401 && attempt === 0 && this.tokens.invalidate()) {
        res.resume();
        continue;
      }
      throw await this.statusError(service, `GET ${path}`, res, signal);
    }
  }

  private send(path: string, token: string | undefined, ca: string | undefined, signal: AbortSignal): Promise<http.IncomingMessage> {
    const s = this.settings;
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'proxyless' };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const options: https.RequestOptions = { hostname: s.hostname, port: s.port, path: s.prefix + path, method: 'GET', headers, agent: this.agent, signal };
    if (s.protocol === 'https:') {
      if (ca !== undefined) options.ca = ca;
      if (s.tlsServerName !== undefined) options.servername = s.tlsServerName;
    }
    return new Promise((resolve, reject) => {
      const req = (s.protocol === 'https:' ? https : http).request(options);
      req.once('response', resolve);
      req.once('error', reject);
      req.end();
    });
  }

  private async statusError(service: string, what: string, res: http.IncomingMessage, signal: AbortSignal): Promise<KubernetesError> {
    const status = res.statusCode ?? 0;
    const body = await readAll(res, ERROR_BODY_BYTES, signal, true).catch(() => undefined);
    let reason: string | undefined;
    let shown: string;
    const parsed = body === undefined ? undefined : parseStatus(body.toString('utf8'));
    if (parsed !== undefined) {
      reason = parsed.reason;
      shown = parsed.message === undefined ? `${parsed.reason ?? 'no message'}` : clip(redact(parsed.message, this.secrets()));
    } else {
      const type = String(res.headers['content-type'] ?? 'no content type').slice(0, 60);
      shown = `a body that is not a Status (${body?.length ?? 0} bytes, ${clip(redact(type, this.secrets()))})`;
    }
    const kind = status === 410 ? 'gone' : 'status';
    return new KubernetesError(service, kind, `${this.describe(what)} answered ${status}${reason ? ` ${reason}` : ''}: ${shown}`, { status, ...(reason ? { reason } : {}) });
  }

  private broken(service: string, what: string, cause: Error): KubernetesError {
    return new KubernetesError(service, 'broken', `the watch ${this.describe(what)} broke: ${clip(redact(cause.message, this.secrets()))}`);
  }

  /** The error to reject with: the caller's abort reason untouched; a deadline, a network failure, in words. */
  private settle(service: string, what: string, error: unknown, signal: AbortSignal, timedOut: boolean): unknown {
    if (signal.aborted) return signal.reason;
    if (error instanceof KubernetesError) return error;
    if (timedOut) return new KubernetesError(service, 'timeout', `${this.describe(what)} got no answer within ${this.settings.timeoutMs} ms`);
    const message = error instanceof Error ? error.message : String(error);
    return new KubernetesError(service, 'unreachable', `${this.describe(what)} failed: ${clip(redact(message, this.secrets()))}`);
  }

  private describe(what: string): string {
    return `the Kubernetes API at ${this.settings.origin} (${what})`;
  }
}
