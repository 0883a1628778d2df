import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a test backend does with one request. */
export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

/** A real node:http server on 127.0.0.1 that records every request it saw. */
export interface Backend {
  readonly port: number;
  readonly address: string;
  /** Requests fully received, in order (method, url, body). */
  readonly seen: { method: string; url: string; body: string }[];
  /** The server itself (to count connections, say). */
  readonly server: http.Server;
  setHandler(handler: Handler): void;
  close(): Promise<void>;
}

export async function startBackend(handler: Handler = (_req, res) => res.end('ok')): Promise<Backend> {
  let current = handler;
  const seen: Backend['seen'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      current(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    seen,
    server,
    setHandler: (h) => {
      current = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port with nothing listening: connections to it are refused. */
export async function refusedAddress(): Promise<string> {
  const b = await startBackend();
  await b.close();
  return b.address;
}
