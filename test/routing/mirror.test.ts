import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, seededRng, staticRegistry, type Mesh, type MeshOptions, type RouteSpec } from '../../src/index.js';
import { parseExposition, value } from '../observe/exposition.js';

// Integration: real node:http servers on 127.0.0.1, real time, bounded polls (no fixed sleeps).

interface Seen {
  method: string;
  url: string;
  body: Buffer;
}
interface Server {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}
type Reply = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const servers: Server[] = [];
const meshes: Mesh[] = [];
const timers = new Set<NodeJS.Timeout>();
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  for (const t of timers) clearTimeout(t);
  timers.clear();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A server that records each request's method, url and raw body bytes, then replies. */
async function server(reply: Reply = (_req, res) => res.end('ok')): Promise<Server> {
  const seen: Seen[] = [];
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks) });
      reply(req, res);
    });
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const out: Server = {
    port: (s.address() as AddressInfo).port,
    seen,
    close: () => new Promise<void>((resolve) => (s.closeAllConnections(), s.close(() => resolve()))),
  };
  servers.push(out);
  return out;
}

const after = (ms: number, fn: () => void): void => {
  const t = setTimeout(() => (timers.delete(t), fn()), ms);
  timers.add(t);
};

/** Polls `ok` until it holds or `ms` pass (then fails, saying what it waited for). */
async function until(ok: () => boolean, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const SUBSETS = { api: { live: { tags: ['live'] }, shadow: { tags: ['shadow'] } } };
const ROUTE: RouteSpec = { name: 'main', backends: [{ subset: 'live' }], mirror: { subset: 'shadow' } };

/** A mesh over `api` = the primary (tag live) and the mirror (tag shadow), warmed up. */
async function mesh(primary: Server, shadow: Server, extra: Partial<MeshOptions> = {}, route: RouteSpec = ROUTE): Promise<Mesh> {
  const m = createMesh({
    registry: staticRegistry({
      api: [
        { host: '127.0.0.1', port: primary.port, tags: ['live'] },
        { host: '127.0.0.1', port: shadow.port, tags: ['shadow'] },
      ],
    }),
    routes: { api: [route] },
    subsets: SUBSETS,
    random: seededRng(5),
    ...extra,
  });
  meshes.push(m);
  await m.warmup(['api']);
  return m;
}

const mirrors = (m: Mesh, route = 'main') => m.snapshot().services.api!.routes.find((r) => r.name === route)!.mirrors;

describe('a slow or failing mirror reaches nobody', () => {
  it('a mirror that answers after 2 s changes neither the caller latency nor the outcome', async () => {
    const primary = await server((_req, res) => res.end('primary'));
    const shadow = await server((_req, res) => after(2_000, () => res.end('late')));
    const m = await mesh(primary, shadow);
    const started = performance.now();
    const res = await m.fetch('http://api/slow?q=1');
    const body = await res.text();
    const elapsed = performance.now() - started;
    expect(res.status).toBe(200);
    expect(body).toBe('primary');
    expect(elapsed).toBeLessThan(1_000);
    await until(() => shadow.seen.length === 1, 'the mirror to receive its copy');
    expect(shadow.seen[0]).toMatchObject({ method: 'GET', url: '/slow?q=1' });
    expect(primary.seen).toHaveLength(1);
    expect(mirrors(m).sent).toBe(1);
  });

  for (const [kind, reply] of [
    ['503s', (_req: http.IncomingMessage, res: http.ServerResponse) => ((res.statusCode = 503), res.end('down'))],
    ['resets the socket', (req: http.IncomingMessage) => req.socket.destroy()],
  ] as const) {
    it(`a mirror that ${kind} changes neither the outcome nor anyone's health`, async () => {
      const primary = await server((_req, res) => res.end('primary'));
      const shadow = await server(reply);
      const m = await mesh(primary, shadow, {
        defaults: { breaker: { volumeThreshold: 4, errorThresholdPercentage: 50 }, outlier: { consecutiveFailures: 2 } },
      });
      const failures: unknown[] = [];
      m.on('failure', (e) => failures.push(e));
      const n = 20;
      for (let i = 0; i < n; i++) {
        const res = await m.fetch(`http://api/r${i}`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('primary');
      }
      await until(() => mirrors(m).failed === n, `${n} failed mirrors`);
      expect(mirrors(m)).toEqual({ sent: n, succeeded: 0, failed: n });
      expect(shadow.seen.length).toBe(n);
      expect(failures).toEqual([]);
      const endpoints = m.snapshot().services.api!.endpoints;
      const p = endpoints.find((e) => e.port === primary.port)!;
      const s = endpoints.find((e) => e.port === shadow.port)!;
      expect(p).toMatchObject({ requests: n, successes: n, failures: 0, breaker: 'closed', ejected: false });
      expect(s).toMatchObject({ requests: 0, successes: 0, failures: 0, inflight: 0, breaker: 'closed', ejected: false });
      const families = parseExposition(m.metrics());
      expect(value(families, 'proxyless_requests_total', { service: 'api', outcome: 'success' })).toBe(n);
      expect(value(families, 'proxyless_requests_total', { service: 'api', outcome: 'failure' })).toBe(0);
      expect(value(families, 'proxyless_mirror_requests_total', { service: 'api', route: 'main', outcome: 'failure' })).toBe(n);
    });
  }

  it('mesh.call: the mirrored copy runs with ctx.mirror, and its throw reaches nobody', async () => {
    const primary = await server();
    const shadow = await server();
    const m = await mesh(primary, shadow);
    const runs: { port: number; mirror: boolean | undefined; route: string | undefined }[] = [];
    const fn = (ep: { port: number }, ctx: { mirror?: boolean; route?: string | undefined }) => {
      runs.push({ port: ep.port, mirror: ctx.mirror, route: ctx.route });
      if (ctx.mirror === true) throw new Error('mirror breaks');
      return 'fine';
    };
    for (let i = 0; i < 5; i++) expect(await m.call('api', fn)).toBe('fine');
    await until(() => mirrors(m).failed === 5, '5 failed mirrors');
    expect(runs.filter((r) => r.mirror !== true)).toEqual(Array(5).fill({ port: primary.port, mirror: undefined, route: 'main' }));
    expect(runs.filter((r) => r.mirror === true).map((r) => r.port)).toEqual(Array(5).fill(shadow.port));
  });
});

describe('what the mirror sees', () => {
  it('every request body byte, the method, the path and the query (string and Uint8Array bodies)', async () => {
    const primary = await server();
    const shadow = await server();
    const m = await mesh(primary, shadow);
    const text = 'héllo mirror ✓ '.repeat(100);
    const bytes = new Uint8Array(4_096).map((_v, i) => (i * 31 + 7) & 0xff);
    await (await m.fetch('http://api/items/7?x=1&y=two', { method: 'POST', body: text })).text();
    await (await m.fetch('http://api/blob?z=%20', { method: 'PUT', body: bytes })).text();
    await until(() => shadow.seen.length === 2, 'both mirrored requests');
    const byUrl = (list: Seen[], url: string) => list.find((s) => s.url === url);
    for (const [url, method, body] of [
      ['/items/7?x=1&y=two', 'POST', Buffer.from(text)],
      ['/blob?z=%20', 'PUT', Buffer.from(bytes)],
    ] as const) {
      const p = byUrl(primary.seen, url);
      const s = byUrl(shadow.seen, url);
      expect(p?.method).toBe(method);
      expect(s?.method).toBe(method);
      expect(p?.body.equals(body)).toBe(true);
      expect(s?.body.equals(body)).toBe(true);
    }
    await until(() => mirrors(m).succeeded === 2, 'two mirrors to succeed');
    const families = parseExposition(m.metrics());
    expect(value(families, 'proxyless_mirror_requests_total', { service: 'api', route: 'main', outcome: 'success' })).toBe(2);
    expect(value(families, 'proxyless_mirror_requests_total', { service: 'api', route: 'main', outcome: 'failure' })).toBe(0);
  });

  it('a stream body is not mirrored', async () => {
    const primary = await server();
    const shadow = await server();
    const m = await mesh(primary, shadow);
    const chunks = ['one,', 'two,', 'three'];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const c = chunks.shift();
        if (c === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(c));
      },
    });
    const res = await m.fetch('http://api/stream', { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(200);
    await res.text();
    expect(primary.seen.find((s) => s.url === '/stream')?.body.toString()).toBe('one,two,three');
    expect(mirrors(m).sent).toBe(0);
    // A replayable request after it is mirrored: by then the stream one would have been too.
    await (await m.fetch('http://api/after', { method: 'POST', body: 'x' })).text();
    await until(() => shadow.seen.length >= 1, 'the second request to be mirrored');
    expect(shadow.seen.map((s) => s.url)).toEqual(['/after']);
    expect(mirrors(m).sent).toBe(1);
  });

  it('percent mirrors about that share of the route requests', async () => {
    const primary = await server();
    const shadow = await server();
    const m = await mesh(primary, shadow, {}, { ...ROUTE, mirror: { subset: 'shadow', percent: 30 } });
    const n = 400;
    const half = 3.29 * Math.sqrt(n * 0.3 * 0.7);
    let mirrored = 0;
    for (let i = 0; i < n; i++) await m.call('api', (_ep, ctx) => (ctx.mirror === true ? mirrored++ : 0));
    await until(() => mirrors(m).succeeded === mirrors(m).sent, 'every mirror to settle');
    expect(mirrors(m).sent).toBe(mirrored);
    expect(mirrored).toBeGreaterThanOrEqual(n * 0.3 - half);
    expect(mirrored).toBeLessThanOrEqual(n * 0.3 + half);
  });
});

describe('mirror targets before discovery', () => {
  it('a mirror to another service gets a copy of each request', async () => {
    const primary = await server();
    const other = await server();
    const m = createMesh({
      registry: staticRegistry({ api: [`127.0.0.1:${primary.port}`], shadow: [`127.0.0.1:${other.port}`] }),
      routes: { api: [{ name: 'main', mirror: { service: 'shadow' } }] },
    });
    meshes.push(m);
    await m.warmup(['api']);
    for (let i = 0; i < 3; i++) await (await m.fetch(`http://api/o${i}`)).text();
    await until(() => mirrors(m).succeeded + mirrors(m).failed === 3, 'three mirrors to settle');
    expect(mirrors(m)).toEqual({ sent: 3, succeeded: 3, failed: 0 });
    expect(other.seen.map((s) => s.url)).toEqual(['/o0', '/o1', '/o2']);
  });

  it("the first request of a service not yet resolved is mirrored too (the mirror is in the service's own list)", async () => {
    const primary = await server();
    const shadow = await server();
    const m = createMesh({
      registry: staticRegistry({
        api: [
          { host: '127.0.0.1', port: primary.port, tags: ['live'] },
          { host: '127.0.0.1', port: shadow.port, tags: ['shadow'] },
        ],
      }),
      routes: { api: [ROUTE] },
      subsets: SUBSETS,
    });
    meshes.push(m);
    // No warmup: the first fetch is what resolves `api`.
    await (await m.fetch('http://api/first')).text();
    await until(() => mirrors(m).succeeded + mirrors(m).failed === 1, 'the first mirror to settle');
    expect(mirrors(m)).toEqual({ sent: 1, succeeded: 1, failed: 0 });
    expect(shadow.seen.map((s) => s.url)).toEqual(['/first']);
  });
});
