import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { createMesh, type Endpoint, type Registry } from '../../src/index.js';
import { startServer } from './loopback.js';

// The attempt URL is the endpoint's own authority, whatever the registry: a custom registry hands raw
// Endpoint objects (no `toEndpoint` normalisation), and an IPv6 host comes without brackets.

/** A registry of plain objects, as a custom adapter would return them. */
function rawRegistry(endpoints: readonly Endpoint[]): Registry {
  return { resolve: async () => endpoints };
}

function raw(host: string, port: number): Endpoint {
  return { id: `raw-${host}-${port}`, host, port, weight: 1, tags: [], meta: {} };
}

/** Whether this machine can listen on IPv6 loopback at all. */
async function ipv6Loopback(): Promise<boolean> {
  const server = http.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => server.close(() => resolve()));
  return ok;
}

const cases = [
  { name: 'IPv4', host: '127.0.0.1', available: async () => true, authority: (p: number) => `127.0.0.1:${p}` },
  { name: 'IPv6', host: '::1', available: ipv6Loopback, authority: (p: number) => `[::1]:${p}` },
];

describe.each(cases)('a raw $name endpoint from a custom registry', ({ host, available, authority }) => {
  it('gets the request at exactly its host and port, with Host naming it', async (ctx) => {
    if (!(await available())) ctx.skip(); // only when binding this loopback address fails here
    const s = await startServer((req, res) => res.end(`${req.method} ${req.url}`), host);
    const urls: string[] = [];
    const mesh = createMesh({
      registry: rawRegistry([raw(host, s.port)]),
      // Records each attempt's URL, then sends it for real.
      fetch: ((input: string, init?: RequestInit) => {
        urls.push(String(input));
        return globalThis.fetch(input, init);
      }) as typeof globalThis.fetch,
    });
    try {
      // A port in the mesh URL is not the endpoint's: it is ignored.
      const res = await mesh.fetch('http://svc:1234/a/b?x=1&y=2');
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('GET /a/b?x=1&y=2');
      expect(urls).toEqual([`http://${authority(s.port)}/a/b?x=1&y=2`]);
      expect(s.seen).toHaveLength(1);
      expect(s.seen[0]!.headers.host).toBe(authority(s.port));
    } finally {
      await mesh.close();
    }
  });
});
