import http from 'node:http';
import https from 'node:https';
import type { TlsConnectOptions } from './tls.js';

/** One active health check request: `GET path` on one endpoint. */
export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  /** An origin-form path (validated: one leading '/', no host). */
  readonly path: string;
  /** The whole probe's bound, from the first byte of the connection to the response head. */
  readonly timeoutMs: number;
  /** Probe over TLS with these options (the service's `tls` policy); plain HTTP when absent. */
  readonly tls?: TlsConnectOptions | undefined;
  /** A `Host` header in place of Node's `host:port` (the policy's `host: 'service'`). */
  readonly hostHeader?: string | undefined;
}

const USER_AGENT = 'proxyless-health-check';

/**
 * Sends one probe and calls `done(passed)` exactly once: a 2xx passes, anything else fails (a 3xx too: a
 * redirect is never followed, as Envoy's HTTP health checker expects a status from the endpoint itself), and
 * so do a network error and `timeoutMs` passing. Returns a function that cancels the probe without calling
 * `done` (close, reconfigure).
 *
 * It uses node:http/node:https directly, with no agent: one connection per probe, `connection: close`, and
 * destroyed as soon as the verdict is known, so a probe never holds a pooled socket, never waits for a body,
 * and leaves nothing open once it settled or was cancelled. The mesh's own fetch or undici are not used: a probe
 * must not count as a call (metrics, breakers, ejection), and the core does not import undici. Callers probe at
 * most once per endpoint per interval, so the handshake per probe costs little.
 */
export function probe(target: ProbeTarget, done: (passed: boolean) => void): () => void {
  let settled = false;
  const headers: Record<string, string> = { connection: 'close', 'user-agent': USER_AGENT, accept: '*/*' };
  if (target.hostHeader !== undefined) headers.host = target.hostHeader;
  const options: https.RequestOptions = { host: target.host, port: target.port, path: target.path, method: 'GET', agent: false, headers };
  if (target.tls !== undefined) Object.assign(options, target.tls);
  let req: http.ClientRequest | undefined;
  const finish = (passed: boolean | undefined): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    req?.destroy();
    if (passed === undefined) return; // cancelled
    try {
      done(passed);
    } catch {
      // The caller's bookkeeping; a socket callback must never crash the host process.
    }
  };
  const timer = setTimeout(() => finish(false), target.timeoutMs);
  timer.unref?.();
  try {
    req = (target.tls !== undefined ? https : http).request(options, (res) => {
      res.on('error', () => {}); // destroyed below, before its end: an 'aborted' error must not be unhandled
      const status = res.statusCode ?? 0;
      finish(status >= 200 && status < 300);
    });
    req.on('error', () => finish(false));
    // Unref'd like the checker's timers: a probe in flight must not hold the host process up for `timeoutMs` once
    // nothing else keeps it alive.
    req.on('socket', (socket) => socket.unref());
    req.end();
  } catch {
    // A synchronous throw (a bad option Node refuses): a failed probe, never an exception in a timer.
    finish(false);
  }
  return () => finish(undefined);
}
