/** One active health check request against real servers on 127.0.0.1: the verdict, its bound, and what it leaves open. */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probe, type ProbeTarget } from '../../src/transport/health-probe.js';
import { tlsConnectOptions } from '../../src/transport/tls.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { startTlsBackend } from '../helpers/https-backends.js';
import { refusedAddress, startBackend, type Backend } from '../helpers/backends.js';
import { waitUntil } from '../helpers/wait-until.js';

const run = (target: ProbeTarget): Promise<boolean> => new Promise((resolve) => probe(target, resolve));

let backend: Backend;
const requests: { url: string; headers: http.IncomingHttpHeaders }[] = [];
beforeAll(async () => {
  backend = await startBackend((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    const path = req.url ?? '';
    if (path === '/ok') res.end('ok');
    else if (path === '/204') res.writeHead(204).end();
    else if (path === '/redirect') res.writeHead(302, { location: '/ok' }).end();
    else if (path === '/fail') res.writeHead(503).end('down');
    else if (path === '/big') res.end('x'.repeat(1 << 20)); // a body the probe never reads
    else if (path === '/hang') return; // never answers
    else res.writeHead(404).end();
  });
});
afterAll(async () => {
  await backend.close();
});

const at = (path: string, timeoutMs = 1_000): ProbeTarget => ({ host: '127.0.0.1', port: backend.port, path, timeoutMs });

async function connections(): Promise<number> {
  return new Promise((resolve, reject) => backend.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
}

describe('probe', () => {
  it('passes on a 2xx, fails on anything else, and never follows a redirect', async () => {
    expect(await run(at('/ok'))).toBe(true);
    expect(await run(at('/204'))).toBe(true);
    expect(await run(at('/fail'))).toBe(false);
    expect(await run(at('/missing'))).toBe(false);
    const before = requests.length;
    expect(await run(at('/redirect'))).toBe(false);
    expect(requests.slice(before).map((r) => r.url)).toEqual(['/redirect']);
  });

  it('sends GET with connection: close and its own user agent; a host header when asked', async () => {
    await run(at('/ok'));
    const last = requests[requests.length - 1]!;
    expect(last.headers.connection).toBe('close');
    expect(last.headers['user-agent']).toBe('proxyless-health-check');
    expect(last.headers.host).toBe(`127.0.0.1:${backend.port}`);
    await run({ ...at('/ok'), hostHeader: 'users' });
    expect(requests[requests.length - 1]!.headers.host).toBe('users');
  });

  it('fails when the connection is refused, and within timeoutMs when the endpoint never answers', async () => {
    const [host, port] = (await refusedAddress()).split(':');
    expect(await run({ host: host!, port: Number(port), path: '/ok', timeoutMs: 1_000 })).toBe(false);
    const started = performance.now();
    expect(await run(at('/hang', 100))).toBe(false);
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(95);
    expect(took).toBeLessThan(1_000);
  });

  it('leaves no connection open: after a pass with a big body, a timeout, or a cancel', async () => {
    expect(await run(at('/big'))).toBe(true);
    expect(await run(at('/hang', 50))).toBe(false);
    let called = false;
    const cancel = probe(at('/hang'), () => (called = true));
    await waitUntil(async () => expect(await connections()).toBeGreaterThan(0));
    cancel();
    await waitUntil(async () => expect(await connections()).toBe(0));
    expect(called).toBe(false); // a cancelled probe has no verdict
  });

  it('does not hold the process up while in flight: its socket is unref\'d, like its timer', async () => {
    // A server that reads but never answers, its own side of each connection unref'd: only the probe's side counts.
    const silent = net.createServer((socket) => socket.unref().resume());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const keepingAlive = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TLSWrap').length;
    const before = keepingAlive();
    let connected = false;
    silent.on('connection', () => (connected = true));
    const cancel = probe({ host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port, path: '/', timeoutMs: 10_000 }, () => {});
    try {
      await waitUntil(() => expect(connected).toBe(true));
      expect(keepingAlive()).toBe(before);
    } finally {
      cancel();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('never throws out of its callback', async () => {
    await new Promise<void>((resolve) => {
      probe(at('/ok'), () => {
        setImmediate(resolve);
        throw new Error('bookkeeping bug');
      });
    });
  });
});

describe('probe over TLS', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makePki();
  });
  afterAll(() => pki.close());

  it("verifies the endpoint against the service's ca and servername", async () => {
    const server = await startTlsBackend('users', pki.server(['users.internal']));
    try {
      const tls = tlsConnectOptions({ ca: pki.ca, servername: 'users.internal' }, 'users', '127.0.0.1');
      expect(await run({ host: '127.0.0.1', port: server.port, path: '/healthz', timeoutMs: 2_000, tls })).toBe(true);
      expect(server.lastServername).toBe('users.internal');
      // Another name, or no CA: the handshake fails, and so does the probe.
      const wrong = tlsConnectOptions({ ca: pki.ca, servername: 'orders.internal' }, 'users', '127.0.0.1');
      expect(await run({ host: '127.0.0.1', port: server.port, path: '/healthz', timeoutMs: 2_000, tls: wrong })).toBe(false);
      const untrusted = tlsConnectOptions({ servername: 'users.internal' }, 'users', '127.0.0.1');
      expect(await run({ host: '127.0.0.1', port: server.port, path: '/healthz', timeoutMs: 2_000, tls: untrusted })).toBe(false);
    } finally {
      await server.close();
    }
  });
});
