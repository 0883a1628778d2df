// The admin handler under Fastify 5 and Express 5, as examples/admin-*.ts mount it at /admin: each app on
// 127.0.0.1:0, every documented path, HEAD, 405, 404, and OpenMetrics by Accept.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminApp as expressApp } from '../../examples/admin-express.js';
import { adminApp as fastifyApp } from '../../examples/admin-fastify.js';
import { createMesh, staticRegistry, type Mesh } from '../../src/index.js';
import { parseExposition, value } from './exposition.js';

let mesh: Mesh;
const bases: Record<'fastify' | 'express', string> = { fastify: '', express: '' };
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  mesh = createMesh({ registry: staticRegistry({ users: ['127.0.0.1:1'] }), name: 'edge' });
  await mesh.call('users', async () => 'ok');
  const f = fastifyApp(mesh);
  bases.fastify = await f.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => f.close());
  const server: Server = await new Promise((resolve) => {
    const s = expressApp(mesh).listen(0, '127.0.0.1', () => resolve(s));
  });
  bases.express = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closers.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
});
afterAll(async () => {
  await Promise.all(closers.map((close) => close()));
  await mesh.close();
});

describe.each(['fastify', 'express'] as const)('adminHandler under %s at /admin', (framework) => {
  const url = (path: string) => `${bases[framework]}${path}`;

  it('GET /admin/metrics: the text format, with the mesh label', async () => {
    const res = await fetch(url('/admin/metrics'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.headers.get('vary')).toBe('Accept');
    const families = parseExposition(await res.text());
    expect(value(families, 'proxyless_requests_total', { mesh: 'edge', service: 'users', outcome: 'success' })).toBe(1);
  });

  it('GET /admin/metrics with Prometheus\'s Accept: OpenMetrics', async () => {
    const res = await fetch(url('/admin/metrics'), {
      headers: { accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' },
    });
    expect(res.headers.get('content-type')).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    const text = await res.text();
    expect(text.endsWith('# EOF\n')).toBe(true);
    expect(text).toContain('# TYPE proxyless_requests counter\n');
  });

  it('GET /admin/snapshot: JSON', async () => {
    const res = await fetch(url('/admin/snapshot'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Object.keys(((await res.json()) as { services: object }).services)).toEqual(['users']);
  });

  it('GET /admin/ and /admin: the dashboard, with its CSP', async () => {
    for (const path of ['/admin/', '/admin']) {
      const res = await fetch(url(path));
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await res.text()).toContain('<html');
    }
  });

  it('HEAD: headers without a body', async () => {
    const res = await fetch(url('/admin/metrics'), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(100);
    expect(await res.text()).toBe('');
  });

  it('POST: 405 with Allow', async () => {
    const res = await fetch(url('/admin/metrics'), { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    await res.arrayBuffer();
  });

  it('an unknown admin path: 404 from the handler; the app\'s own routes still answer', async () => {
    const res = await fetch(url('/admin/nope'));
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('not found\n');
    const app = await fetch(url('/'));
    expect(await app.text()).toBe('the app itself\n');
  });
});

describe('Fastify without prefix (what the README used to hint)', () => {
  it('404s every admin path, because request.raw.url keeps /admin: the reason for prefix', async () => {
    const { default: Fastify } = await import('fastify');
    const app = Fastify();
    const admin = mesh.adminHandler();
    app.get('/admin/*', (request, reply) => {
      reply.hijack();
      admin(request.raw, reply.raw);
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${base}/admin/metrics`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();
    } finally {
      await app.close();
    }
  });
});
