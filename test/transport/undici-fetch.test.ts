import { describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh, type MeshOptions } from '../../src/index.js';
import { FETCHES, startServer, type Server } from './loopback.js';

// "HTTP semantics whatever the client": a Response, Request or Headers of npm undici 7 is not an instance of
// the global classes, yet the mesh must treat it exactly as the global ones. Every check runs on both.

const quickRetry = { retries: 2, minDelayMs: 1, maxDelayMs: 2, budget: false } as const;

function meshWith(fetch: typeof globalThis.fetch, options: Omit<MeshOptions, 'fetch'>): Mesh {
  return createMesh({ ...options, fetch });
}

/** The value of one sample in Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe.each(FETCHES)('mesh.fetch over $name', ({ fetch, Request, Headers }) => {
  describe('status handling', () => {
    it('retries a 503: the call resolves with the 200 after 2 attempts', async () => {
      let n = 0;
      const s = await startServer((_req, res) => (++n === 1 ? res.writeHead(503).end('busy') : res.end('fine')));
      const mesh = meshWith(fetch, {
        registry: staticRegistry({ svc: [s.address] }),
        defaults: { retry: quickRetry, breaker: false, outlier: false },
      });
      try {
        let retries = 0;
        mesh.on('retry', () => retries++);
        const res = await mesh.fetch('http://svc/r');
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('fine');
        expect(s.seen.map((r) => r.url)).toEqual(['/r', '/r']);
        expect(retries).toBe(1);
        const ep = mesh.snapshot().services.svc!.endpoints[0]!;
        expect({ failures: ep.failures, successes: ep.successes }).toEqual({ failures: 1, successes: 1 });
        expect(mesh.snapshot().services.svc!.failedCalls).toBe(0);
      } finally {
        await mesh.close();
      }
    });

    it('a call whose every attempt gets 503 resolves with the last 503 and counts as a failure', async () => {
      const a = await startServer((_req, res) => res.writeHead(503).end('busy a'));
      const b = await startServer((_req, res) => res.writeHead(503).end('busy b'));
      const mesh = meshWith(fetch, {
        registry: staticRegistry({ svc: [a.address, b.address] }),
        defaults: { retry: quickRetry, breaker: false, outlier: false },
      });
      try {
        const res = await mesh.fetch('http://svc/all-bad');
        expect(res.status).toBe(503);
        expect(await res.text()).toMatch(/^busy [ab]$/); // the last response, body intact
        expect(a.seen.length + b.seen.length).toBe(3); // first attempt + 2 retries
        expect(a.seen.length).toBeGreaterThan(0); // a retry goes to the endpoint not tried yet
        expect(b.seen.length).toBeGreaterThan(0);

        const svc = mesh.snapshot().services.svc!;
        expect(svc.calls).toBe(1);
        expect(svc.failedCalls).toBe(1);
        const failures = svc.endpoints.reduce((n, e) => n + e.failures, 0);
        const successes = svc.endpoints.reduce((n, e) => n + e.successes, 0);
        expect({ failures, successes }).toEqual({ failures: 3, successes: 0 });

        const text = mesh.metrics();
        expect(sample(text, 'proxyless_requests_total{service="svc",outcome="failure"}')).toBe(1);
        expect(sample(text, 'proxyless_requests_total{service="svc",outcome="success"}') ?? 0).toBe(0);
        const failedAttempts =
          (sample(text, `proxyless_attempts_total{service="svc",endpoint="${a.address}",outcome="failure"}`) ?? 0) +
          (sample(text, `proxyless_attempts_total{service="svc",endpoint="${b.address}",outcome="failure"}`) ?? 0);
        expect(failedAttempts).toBe(3);
      } finally {
        await mesh.close();
      }
    });
  });

  describe('Request inputs', () => {
    it('a POST Request: its method, headers and body reach the backend', async () => {
      const s = await startServer((_req, res, body) => res.end(`got ${body}`));
      const mesh = meshWith(fetch, { registry: staticRegistry({ svc: [s.address] }) });
      try {
        const req = new Request('http://svc/x?q=1', {
          method: 'POST',
          body: 'abc',
          headers: { 'content-type': 'text/plain', 'x-trace': 't-1' },
        });
        const res = await mesh.fetch(req);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('got abc');
        expect(s.seen).toHaveLength(1);
        const seen = s.seen[0]!;
        expect({ method: seen.method, url: seen.url, body: seen.body }).toEqual({ method: 'POST', url: '/x?q=1', body: 'abc' });
        expect(seen.headers['content-type']).toBe('text/plain');
        expect(seen.headers['x-trace']).toBe('t-1');
        expect(seen.headers.host).toBe(s.address); // the endpoint's authority, not the service name
      } finally {
        await mesh.close();
      }
    });

    it('a GET Request: method, headers and path reach the backend, and a 503 to it is retried', async () => {
      let n = 0;
      const s = await startServer((_req, res) => (++n === 1 ? res.writeHead(503).end() : res.end('ok')));
      const mesh = meshWith(fetch, {
        registry: staticRegistry({ svc: [s.address] }),
        defaults: { retry: quickRetry, breaker: false, outlier: false },
      });
      try {
        const res = await mesh.fetch(new Request('http://svc/g/1', { headers: new Headers({ accept: 'text/plain', 'x-a': 'b' }) }));
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('ok');
        expect(s.seen.map((r) => [r.method, r.url, r.headers.accept, r.headers['x-a']])).toEqual([
          ['GET', '/g/1', 'text/plain', 'b'],
          ['GET', '/g/1', 'text/plain', 'b'],
        ]);
      } finally {
        await mesh.close();
      }
    });
    it("init members left undefined keep the Request's own, as fetch reads them", async () => {
      // Wrappers often forward `{ method: opts.method, headers: opts.headers }`: undefined means absent.
      const s = await startServer((_req, res, body) => res.end(`got ${body}`));
      const mesh = meshWith(fetch, { registry: staticRegistry({ svc: [s.address] }) });
      try {
        const req = new Request('http://svc/u', { method: 'POST', body: 'abc', headers: { 'x-a': '1' } });
        const init = { method: undefined, headers: undefined, signal: undefined, idempotent: undefined } as RequestInit;
        const res = await mesh.fetch(req, init);
        expect(await res.text()).toBe('got abc');
        expect(s.seen.map((r) => [r.method, r.url, r.body, r.headers['x-a']])).toEqual([['POST', '/u', 'abc', '1']]);
      } finally {
        await mesh.close();
      }
    });
  });

  describe('hashHeader with ring-hash', () => {
    const BACKENDS = 4;
    const USERS = 16;
    const REPEATS = 8;

    async function ring(): Promise<{ mesh: Mesh; servers: Server[]; whoServed: () => Map<string, Set<number>> }> {
      const servers: Server[] = [];
      for (let i = 0; i < BACKENDS; i++) servers.push(await startServer());
      const mesh = meshWith(fetch, {
        registry: staticRegistry({ svc: servers.map((s) => s.address) }),
        defaults: { balancer: 'ring-hash', hashHeader: 'x-user', retry: false, breaker: false, outlier: false },
      });
      // Which backends each x-user value reached, from what the servers received.
      const whoServed = (): Map<string, Set<number>> => {
        const map = new Map<string, Set<number>>();
        servers.forEach((s, i) => {
          for (const r of s.seen) {
            const user = String(r.headers['x-user']);
            if (!map.has(user)) map.set(user, new Set());
            map.get(user)!.add(i);
          }
        });
        return map;
      };
      return { mesh, servers, whoServed };
    }

    function expectSticky(whoServed: Map<string, Set<number>>): void {
      expect(whoServed.size).toBe(USERS);
      for (const [user, backends] of whoServed) expect([user, backends.size]).toEqual([user, 1]); // same value, same backend
      const used = new Set([...whoServed.values()].map((set) => [...set][0]));
      expect(used.size).toBeGreaterThan(1); // different values spread over the ring
    }

    it('reads a Headers object given as init.headers', async () => {
      const { mesh, whoServed } = await ring();
      try {
        for (let r = 0; r < REPEATS; r++) {
          for (let u = 0; u < USERS; u++) {
            const res = await mesh.fetch('http://svc/h', { headers: new Headers({ 'x-user': `user-${u}` }) });
            await res.text();
          }
        }
        expectSticky(whoServed());
      } finally {
        await mesh.close();
      }
    });

    it("reads a Request's own headers", async () => {
      const { mesh, whoServed } = await ring();
      try {
        for (let r = 0; r < REPEATS; r++) {
          for (let u = 0; u < USERS; u++) {
            const res = await mesh.fetch(new Request('http://svc/h', { headers: { 'X-User': `user-${u}` } }));
            await res.text();
          }
        }
        expectSticky(whoServed());
      } finally {
        await mesh.close();
      }
    });
  });
});

describe('mixed realms', () => {
  // A Request of one implementation handed to the other fetch: read member by member, so it still works.
  it.each([
    ['an undici Request through global fetch', FETCHES[1].Request, FETCHES[0].fetch],
    ['a global Request through undici fetch', FETCHES[0].Request, FETCHES[1].fetch],
  ] as const)('%s keeps method, headers and body', async (_name, Req, fetch) => {
    const s = await startServer((_req, res, body) => res.end(body.toUpperCase()));
    const mesh = meshWith(fetch, { registry: staticRegistry({ svc: [s.address] }) });
    try {
      const res = await mesh.fetch(new Req('http://svc/m', { method: 'PUT', body: 'abc', headers: { 'x-k': 'v' } }));
      expect(await res.text()).toBe('ABC');
      expect(s.seen.map((r) => [r.method, r.url, r.body, r.headers['x-k']])).toEqual([['PUT', '/m', 'abc', 'v']]);
    } finally {
      await mesh.close();
    }
  });
});
