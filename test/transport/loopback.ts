import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach } from 'vitest';
import { fetch as undiciFetch, Headers as UndiciHeaders, Request as UndiciRequest } from 'undici';

/** One request as the server received it: what reached the wire, headers included. */
export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/**
 * A node:http server on a loopback address that records requests and counts TCP connections: `connections`
 * counts every 'connection' event, `open` the sockets not yet closed, `maxOpen` the most open at once.
 */
export interface Server {
  readonly host: string;
  readonly port: number;
  /** `host:port`, `[::1]:port` for IPv6. */
  readonly address: string;
  readonly seen: Seen[];
  readonly connections: number;
  readonly open: number;
  readonly maxOpen: number;
  close(): Promise<void>;
}

const servers: Server[] = [];

// Every server a test starts is closed after it, even when an assertion failed.
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

export async function startServer(handler: Handler = (_req, res) => res.end('ok'), host = '127.0.0.1'): Promise<Server> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  let maxOpen = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    maxOpen = Math.max(maxOpen, sockets.size);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const s: Server = {
    host,
    port,
    address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    seen,
    get connections() {
      return connections;
    },
    get open() {
      return sockets.size;
    },
    get maxOpen() {
      return maxOpen;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

/** A loopback port where nothing listens: a server is started, its port noted, and it is closed. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * The two fetch implementations the mesh must treat alike: Node's global fetch (its bundled undici) and npm
 * undici 7, whose Response, Request and Headers are other classes than the global ones.
 */
export const FETCHES = [
  { name: 'global fetch', fetch: globalThis.fetch, Request: globalThis.Request, Headers: globalThis.Headers },
  {
    name: 'undici fetch',
    fetch: undiciFetch as unknown as typeof globalThis.fetch,
    Request: UndiciRequest as unknown as typeof globalThis.Request,
    Headers: UndiciHeaders as unknown as typeof globalThis.Headers,
  },
] as const;

/** Polls `check` until it holds, failing after `ms` (a bounded wait, never a fixed sleep). */
export async function until(check: () => boolean, ms = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
