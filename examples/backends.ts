/**
 * Local HTTP backends for the demo and the benches. Every server listens on 127.0.0.1, port 0.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** How a backend behaves. */
export interface BackendOptions {
  /** Shown in the demo's tables; the demo also makes it the endpoint's id, so the dashboard shows it. */
  readonly name: string;
  /** Response delay, drawn uniformly from [minMs, maxMs]. 0/0 answers at once. */
  readonly minMs?: number;
  readonly maxMs?: number;
  /**
   * Share of requests answered with 503, from 0 to 1. The failures are spread evenly, not drawn at random (at 0.3: 3
   * responses in 10, never two in a row), so a run's story does not hang on a streak: a random 30 % gives five
   * 503s in a row often enough (0.3^5 per attempt) that consecutive-failure ejection takes the backend out while it
   * is alive in roughly one demo run in fifteen.
   */
  readonly failRate?: number;
  /** The response body. */
  readonly body?: string;
}

/** A running backend. */
export interface Backend {
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:port`: the endpoint id a plain address list gives it (the demo gives `name` as the id instead). */
  readonly address: string;
  /** Requests the server saw. */
  readonly handled: () => number;
  /** Stops at once: refuses new connections and drops the open ones (a crash, seen from outside). */
  kill(): void;
  /** Stops and waits until the server is closed. Safe after `kill`. */
  close(): Promise<void>;
}

/** Starts one backend on 127.0.0.1:0. */
export async function startBackend(options: BackendOptions): Promise<Backend> {
  const { name, minMs = 0, maxMs = minMs, failRate = 0, body = `hello from ${options.name}\n` } = options;
  let handled = 0;
  // The n-th response fails when floor(n × failRate) steps up (1e-9 absorbs float error: 10 × 0.3 is 2.9999...).
  let responded = 0;
  let failed = 0;
  const server: Server = createServer((req, res) => {
    handled++;
    const delay = minMs + Math.random() * (maxMs - minMs);
    const respond = (): void => {
      responded++;
      if (Math.floor(responded * failRate + 1e-9) > failed) {
        failed++;
        res.writeHead(503, { 'content-type': 'text/plain' }).end('unavailable\n');
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
      }
    };
    req.resume();
    if (delay <= 0) respond();
    else sleep(delay).then(respond, () => res.destroy());
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }));
  return {
    name,
    port,
    address: `127.0.0.1:${port}`,
    handled: () => handled,
    kill: () => void close(),
    close,
  };
}

/** Starts several backends; closes the ones started if one fails. */
export async function startBackends(list: readonly BackendOptions[]): Promise<Backend[]> {
  const settled = await Promise.allSettled(list.map(startBackend));
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.map((b) => b.close()));
    throw failed.reason;
  }
  return started;
}
