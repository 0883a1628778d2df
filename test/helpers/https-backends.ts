import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** A real node:https server on 127.0.0.1 that records what each request's TLS session and headers carried. */
export interface TlsBackend {
  readonly port: number;
  readonly host: '127.0.0.1';
  /** Requests answered so far. */
  requests: number;
  /** The SNI servername of the last request's connection (`undefined` when the client sent none). */
  lastServername: string | undefined;
  /** The CN of the client certificate of the last request's connection, when one was presented. */
  lastClientCN: string | undefined;
  /** The Host header of the last request. */
  lastHost: string | undefined;
  close(): Promise<void>;
}

/**
 * An https server (node:https) on 127.0.0.1, port 0, answering 200 with body `name` (text/plain). With
 * `requireClientCert`, the handshake demands a client certificate signed by `ca` (mTLS). Keep-alive is on (the
 * node default); `close()` drops every connection, including ones still in their handshake, and resolves when
 * the server is closed.
 */
export async function startTlsBackend(
  name: string,
  opts: { cert: string; key: string; ca?: string; requireClientCert?: boolean },
): Promise<TlsBackend> {
  const sockets = new Set<Socket>();
  const server = https.createServer({
    cert: opts.cert,
    key: opts.key,
    ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
    ...(opts.requireClientCert ? { requestCert: true, rejectUnauthorized: true } : {}),
  });
  server.keepAliveTimeout = 5_000;

  const backend: TlsBackend = {
    port: 0,
    host: '127.0.0.1',
    requests: 0,
    lastServername: undefined,
    lastClientCN: undefined,
    lastHost: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }),
  };

  // Raw TCP sockets, so that connections that never finish their handshake are closed too.
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // A failed handshake (e.g. no or a wrong client certificate) is a test case, not an error of the server.
  server.on('tlsClientError', () => {});

  server.on('request', (req, res) => {
    const socket = req.socket as TLSSocket;
    backend.requests += 1;
    const servername = (socket as TLSSocket & { servername?: string | false }).servername;
    backend.lastServername = typeof servername === 'string' ? servername : undefined;
    backend.lastHost = req.headers.host;
    const peer = socket.getPeerCertificate();
    const cn = peer && peer.subject ? (peer.subject as { CN?: string | string[] }).CN : undefined;
    backend.lastClientCN = Array.isArray(cn) ? cn[0] : cn;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) });
      res.end(name);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  (backend as { port: number }).port = (server.address() as AddressInfo).port;
  return backend;
}
