import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type AdminHandler, type Mesh, type Registry } from '../../src/index.js';
import { parseExposition, value } from './exposition.js';

const SECRET = 'sekret-token-4711';
let mesh: Mesh;
const servers: http.Server[] = [];

/** A registry holding a credential, as Consul's does: none of it may reach the admin pages. */
const registry: Registry & { token: string } = {
  token: SECRET,
  async resolve() {
    return [{ id: 'a', host: '127.0.0.1', port: 1, weight: 1, zone: 'zone-a', tags: [SECRET], meta: { auth: SECRET } }];
  },
};

async function serve(handler: AdminHandler): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let root: string;
let prefixed: string;
beforeAll(async () => {
  mesh = createMesh({ registry });
  await mesh.call('svc', async () => 'ok');
  root = await serve(mesh.adminHandler());
  prefixed = await serve(mesh.adminHandler({ prefix: '/admin/' }));
});
afterAll(async () => {
  await mesh.close();
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('mesh.adminHandler()', () => {
  it('serves /metrics as text exposition 0.0.4', async () => {
    const res = await fetch(`${root}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const families = parseExposition(await res.text());
    expect(value(families, 'proxyless_requests_total', { service: 'svc', outcome: 'success' })).toBe(1);
  });

  it('serves /snapshot as the JSON of mesh.snapshot()', async () => {
    const res = await fetch(`${root}/snapshot?pretty=1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = await res.json();
    const snap = JSON.parse(JSON.stringify(mesh.snapshot()));
    expect(Object.keys(body.services)).toEqual(['svc']);
    expect(body.services.svc.endpoints.map((e: { id: string }) => e.id)).toEqual(['a']);
    expect({ ...body.services.svc, discoveryAgeMs: 0, endpoints: [] }).toEqual({ ...snap.services.svc, discoveryAgeMs: 0, endpoints: [] });
  });

  it('serves a self-contained dashboard at / under a strict CSP', async () => {
    const res = await fetch(`${root}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    expect(html).toContain('<title>proxyless mesh</title>');
    // No CDN, nothing loaded from elsewhere: no src or href to another origin, one inline script and style.
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?(https?:)?\/\//i);
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    const hash = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain(`script-src ${hash(script)}`);
    expect(csp).toContain(`style-src ${hash(style)}`);
    expect(csp).toContain("connect-src 'self'");
    expect(script).toContain("fetch(base + 'snapshot'");
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  });

  it('is read-only: other methods get 405, unknown paths 404, HEAD has no body', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await fetch(`${root}/metrics`, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
      await res.arrayBuffer();
    }
    for (const path of ['/nope', '/metrics/x', '/snapshot.json', '/index.html', '/%6Detrics']) {
      const res = await fetch(`${root}${path}`);
      expect(res.status, path).toBe(404);
      await res.arrayBuffer();
    }
    const head = await fetch(`${root}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(100);
    expect(await head.text()).toBe('');
  });

  it('shows no secrets held by the registry or endpoint metadata', async () => {
    for (const path of ['/', '/metrics', '/snapshot']) {
      const text = await (await fetch(`${root}${path}`)).text();
      expect(text, path).not.toContain(SECRET);
    }
  });

  it('strips a prefix when given one, and answers 404 outside it', async () => {
    for (const [path, status] of [['/admin', 200], ['/admin/', 200], ['/admin/metrics', 200], ['/admin/snapshot', 200], ['/metrics', 404], ['/administrator', 404], ['/', 404]] as const) {
      const res = await fetch(`${prefixed}${path}`);
      expect(res.status, path).toBe(status);
      await res.arrayBuffer();
    }
    expect(() => mesh.adminHandler({ prefix: 'admin' })).toThrow(TypeError);
  });

  it('works with any response object that has statusCode, setHeader and end', () => {
    const headers: Record<string, string> = {};
    const res = { statusCode: 0, body: undefined as string | undefined, setHeader: (k: string, v: string) => void (headers[k] = v), end(b?: string) { this.body = b; } };
    mesh.adminHandler()({ method: 'GET', url: '/snapshot' }, res);
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body!).services.svc.calls).toBe(1);
    expect(headers['content-length']).toBe(String(Buffer.byteLength(res.body!)));
  });
});
