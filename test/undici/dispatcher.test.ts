// proxyless/undici against real node:http backends on 127.0.0.1: meshDispatcher with undici's request(),
// stream() and fetch(), and Node's global fetch given the dispatcher; what the mesh governs (balancing,
// retries by the idempotency rules, stream bodies, aborts, timeouts over the body, Host, pools per endpoint).
import { Readable } from 'node:stream';
import { fetch as undiciFetch, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { CallFailedError, MeshClosedError, staticRegistry, TimeoutError } from '../../src/index.js';
import { meshDispatcher } from '../../src/undici.js';
import { refusedAddress } from '../helpers/backends.js';
import { until } from '../helpers/process-guard.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();

const quietRetry = { minDelayMs: 1, maxDelayMs: 5 };
// Breakers and ejection are not what these tests measure (CLARIFICATIONS: tests where breakers would get in the way).
const retryOnly = { retry: quietRetry, breaker: false, outlier: false } as const;

describe('meshDispatcher with undici.request', () => {
  it('balances over the endpoints and the mesh counts every request', async () => {
    const [a, b, c] = [await backend(), await backend(), await backend()];
    const m = mesh({ registry: staticRegistry({ users: [a.address, b.address, c.address] }) });
    const dispatcher = meshDispatcher(m, { connections: 4 });
    const requests: string[] = [];
    m.on('request', (e) => requests.push(e.endpoint.id));
    for (let i = 0; i < 60; i++) {
      const { statusCode, body } = await request(`http://users/v1/me?i=${i}`, { dispatcher });
      expect(statusCode).toBe(200);
      expect(await body.text()).toBe('ok');
    }
    for (const server of [a, b, c]) expect(server.seen.length).toBeGreaterThan(0);
    expect(a.seen.length + b.seen.length + c.seen.length).toBe(60);
    expect(a.seen[0]?.url).toMatch(/^\/v1\/me\?i=\d+$/);
    expect(requests).toHaveLength(60);
    expect(m.snapshot().services.users?.calls).toBe(60);
    expect(m.metrics()).toMatch(/proxyless_requests_total\{service="users",outcome="success"\} 60\b/);
    expect(dispatcher.poolCount).toBe(3);
  });

  it('retries a 503 elsewhere; the caller sees only the 200, and the 503 connection is reused', async () => {
    const bad = await backend((_req, res) => res.writeHead(503).end('unavailable'));
    let badConnections = 0;
    bad.server.on('connection', () => badConnections++);
    const good = await backend((_req, res) => res.end('fine'));
    const m = mesh({
      registry: staticRegistry({ users: [bad.address, good.address] }),
      defaults: { balancer: 'round-robin', ...retryOnly },
      random: () => 0,
    });
    const dispatcher = meshDispatcher(m);
    const retries: number[] = [];
    m.on('retry', (e) => retries.push(e.attempt));
    for (let i = 0; i < 6; i++) {
      const { statusCode, body } = await request('http://users/x', { dispatcher });
      expect(statusCode).toBe(200);
      expect(await body.text()).toBe('fine');
    }
    expect(retries.length).toBeGreaterThan(1);
    expect(bad.seen.length).toBe(retries.length);
    // Each discarded 503 was read to its end, so its keep-alive connection served the next one.
    expect(badConnections).toBe(1);
  });

  it('resolves with the last 503 after the retries, body included, as fetch does', async () => {
    const bad = await backend((_req, res) => res.writeHead(503, { 'x-from': 'backend' }).end('unavailable'));
    const m = mesh({ registry: staticRegistry({ users: [bad.address] }), defaults: { retry: { ...quietRetry, retries: 2 }, breaker: false, outlier: false } });
    const { statusCode, headers, body } = await request('http://users/x', { dispatcher: meshDispatcher(m) });
    expect(statusCode).toBe(503);
    expect(headers['x-from']).toBe('backend');
    expect(await body.text()).toBe('unavailable');
    expect(bad.seen).toHaveLength(3);
  });

  it('a POST whose socket is reset after the body was read is seen once and not retried', async () => {
    const reset = await backend((req) => req.socket.destroy());
    const other = await backend();
    const m = mesh({
      registry: staticRegistry({ users: [reset.address, other.address] }),
      defaults: { balancer: 'round-robin', ...retryOnly },
      random: () => 0,
    });
    const failures: string[] = [];
    m.on('failure', (e) => failures.push(e.endpoint.id));
    const error = await request('http://users/orders', { dispatcher: meshDispatcher(m), method: 'POST', body: '{"n":1}' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CallFailedError);
    expect(reset.seen).toEqual([{ method: 'POST', url: '/orders', body: '{"n":1}' }]);
    expect(other.seen).toEqual([]);
    expect(failures).toEqual([reset.address]);
  });

  it('a POST that was refused (never sent) is retried on another endpoint', async () => {
    const live = await backend();
    const refused = await refusedAddress();
    const m = mesh({ registry: staticRegistry({ users: [refused, live.address] }), defaults: { balancer: 'round-robin', ...retryOnly }, random: () => 0 });
    const { statusCode, body } = await request('http://users/orders', { dispatcher: meshDispatcher(m), method: 'POST', body: 'x' });
    expect(statusCode).toBe(200);
    await body.dump();
    expect(live.seen).toEqual([{ method: 'POST', url: '/orders', body: 'x' }]);
  });

  it('a stream body is never replayed, even when idempotent', async () => {
    const bad = await backend((_req, res) => res.writeHead(503).end('no'));
    const good = await backend();
    const m = mesh({ registry: staticRegistry({ users: [bad.address, good.address] }), defaults: { balancer: 'round-robin', ...retryOnly }, random: () => 0 });
    const { statusCode, body } = await request('http://users/upload', {
      dispatcher: meshDispatcher(m),
      method: 'PUT',
      body: Readable.from([Buffer.from('part1,'), Buffer.from('part2')]),
    });
    expect(statusCode).toBe(503);
    await body.dump();
    expect(bad.seen).toEqual([{ method: 'PUT', url: '/upload', body: 'part1,part2' }]);
    expect(good.seen).toEqual([]);
  });

  it("undici's `idempotent: true` lets a POST be retried after a 503", async () => {
    const bad = await backend((_req, res) => res.writeHead(503).end('no'));
    const good = await backend();
    const m = mesh({ registry: staticRegistry({ users: [bad.address, good.address] }), defaults: { balancer: 'round-robin', ...retryOnly }, random: () => 0 });
    const { statusCode, body } = await request('http://users/pay', { dispatcher: meshDispatcher(m), method: 'POST', body: 'p', idempotent: true });
    expect(statusCode).toBe(200);
    await body.dump();
    expect(bad.seen).toHaveLength(1);
    expect(good.seen).toHaveLength(1);
  });

  it('an aborted request rejects at once, and no attempt starts after the abort', async () => {
    const slow = await backend(() => {}); // never answers
    const m = mesh({ registry: staticRegistry({ users: [slow.address] }), defaults: { ...retryOnly, timeout: { attemptMs: 10_000, totalMs: 20_000 } } });
    const attempts: number[] = [];
    m.on('request', (e) => attempts.push(e.attempt));
    const controller = new AbortController();
    const pending = request('http://users/slow', { dispatcher: meshDispatcher(m), signal: controller.signal });
    await until(() => slow.seen.length === 1, 5_000, 'the request to reach the backend');
    const abortedAt = performance.now();
    controller.abort(new Error('caller gave up'));
    const error = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(performance.now() - abortedAt).toBeLessThan(500);
    expect(String((error as Error)?.message)).toMatch(/caller gave up|aborted/i);
    expect(attempts).toEqual([1]);
    // Nothing else starts later either (no retry of an aborted call).
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(attempts).toEqual([1]);
  });

  it('a signal aborted before the request is sent sends nothing', async () => {
    const b = await backend();
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const attempts: number[] = [];
    m.on('request', (e) => attempts.push(e.attempt));
    const error = await request('http://users/x', { dispatcher: meshDispatcher(m), signal: AbortSignal.abort() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeDefined();
    expect(attempts).toEqual([]);
    expect(b.seen).toEqual([]);
  });

  it('the attempt timeout ends a hung attempt and the retry goes elsewhere', async () => {
    const hung = await backend(() => {});
    const good = await backend();
    const m = mesh({
      registry: staticRegistry({ users: [hung.address, good.address] }),
      defaults: { balancer: 'round-robin', ...retryOnly, timeout: { attemptMs: 100, totalMs: 5_000 } },
      random: () => 0,
    });
    const { statusCode, body } = await request('http://users/x', { dispatcher: meshDispatcher(m) });
    expect(statusCode).toBe(200);
    await body.dump();
    expect(hung.seen).toHaveLength(1);
  });

  it("the total deadline covers the body: a body that stalls past it errors the caller's stream", async () => {
    const stalls = await backend((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('first part');
    });
    const m = mesh({ registry: staticRegistry({ users: [stalls.address] }), defaults: { ...retryOnly, timeout: { attemptMs: 1_000 } }, services: { users: { timeout: { totalMs: 300 } } } });
    const { statusCode, body } = await request('http://users/x', { dispatcher: meshDispatcher(m) });
    expect(statusCode).toBe(200);
    const error = await body.text().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TimeoutError);
  });

  it("host: 'service' sends the service name as Host; the default names the endpoint", async () => {
    const hosts: string[] = [];
    const b = await backend((req, res) => {
      hosts.push(String(req.headers.host));
      res.end('ok');
    });
    const m = mesh({ registry: staticRegistry({ users: [b.address], billing: [b.address] }), services: { users: { host: 'service' } } });
    const dispatcher = meshDispatcher(m);
    await (await request('http://users/x', { dispatcher })).body.dump();
    await (await request('http://billing/x', { dispatcher })).body.dump();
    expect(hosts).toEqual(['users', b.address]);
  });

  it('hedges a slow idempotent request; the loser is cancelled and the caller gets the winner', async () => {
    const slow = await backend((_req, res) => setTimeout(() => res.end('slow'), 2_000).unref());
    const fast = await backend((_req, res) => res.end('fast'));
    const m = mesh({
      registry: staticRegistry({ users: [slow.address, fast.address] }),
      defaults: { balancer: 'round-robin', ...retryOnly, hedge: { delayMs: 30, maxAttempts: 2 } },
      random: () => 0,
    });
    const hedges: number[] = [];
    m.on('hedge', (e) => hedges.push(e.attempt));
    const started = performance.now();
    const { statusCode, body } = await request('http://users/x', { dispatcher: meshDispatcher(m) });
    expect(statusCode).toBe(200);
    expect(await body.text()).toBe('fast');
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(hedges).toEqual([2]);
  });

  it('works with undici.fetch, undici.stream and global fetch given the dispatcher', async () => {
    const b = await backend((req, res, body) => res.end(`${req.method} ${body}`));
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const dispatcher = meshDispatcher(m);
    const viaUndici = await undiciFetch('http://users/a', { dispatcher, method: 'POST', body: 'one' });
    expect([viaUndici.status, await viaUndici.text()]).toEqual([200, 'POST one']);
    const viaGlobal = await fetch('http://users/b', { dispatcher, method: 'POST', body: 'two' } as RequestInit);
    expect([viaGlobal.status, await viaGlobal.text()]).toEqual([200, 'POST two']);
    const chunks: Buffer[] = [];
    const { Writable } = await import('node:stream');
    await dispatcher.stream({ origin: 'http://users', path: '/c', method: 'GET' }, () =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          chunks.push(chunk);
          done();
        },
      }),
    );
    expect(Buffer.concat(chunks).toString()).toBe('GET ');
    expect(b.seen.map((s) => s.url)).toEqual(['/a', '/b', '/c']);
  });

  it("closes a removed endpoint's pool; later requests go to the endpoints left", async () => {
    const [a, b] = [await backend(), await backend()];
    const registry = staticRegistry({ users: [a.address, b.address] });
    const m = mesh({ registry, defaults: { balancer: 'round-robin' } });
    const dispatcher = meshDispatcher(m);
    for (let i = 0; i < 4; i++) await (await request('http://users/x', { dispatcher })).body.dump();
    expect(dispatcher.poolCount).toBe(2);
    const open = (): Promise<number> => new Promise((resolve) => b.server.getConnections((_e, n) => resolve(n)));
    expect(await open()).toBeGreaterThan(0); // kept alive
    registry.set('users', [a.address]);
    await until(() => dispatcher.poolCount === 1, 3_000, "the removed endpoint's pool to close");
    // Its sockets go too: the backend sees its connections closed within a few seconds.
    const deadline = Date.now() + 3_000;
    while ((await open()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await open()).toBe(0);
    const before = b.seen.length;
    for (let i = 0; i < 4; i++) await (await request('http://users/x', { dispatcher })).body.dump();
    expect(b.seen.length).toBe(before);
  });

  it('after mesh.close(), requests reject with MeshClosedError and the pools are gone', async () => {
    const b = await backend();
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const dispatcher = meshDispatcher(m);
    await (await request('http://users/x', { dispatcher })).body.dump();
    await m.close();
    expect(dispatcher.poolCount).toBe(0);
    await expect(request('http://users/x', { dispatcher })).rejects.toBeInstanceOf(Error);
    const error = await request('http://users/x', { dispatcher }).catch((e: unknown) => e);
    expect(error instanceof MeshClosedError || (error as { code?: string }).code === 'UND_ERR_CLOSED').toBe(true);
  });

  it('refuses bad options, naming them, and a value that is not a mesh', () => {
    const m = mesh({ registry: staticRegistry({ users: ['127.0.0.1:1'] }) });
    expect(() => meshDispatcher(m, { conections: 4 } as never)).toThrow(/options\.conections is not a known option/);
    expect(() => meshDispatcher(m, { connections: 0 })).toThrow(/connections must be an integer >= 1/);
    expect(() => meshDispatcher({} as never)).toThrow(/mesh must be a mesh made by createMesh/);
  });

  it('refuses upgrade and CONNECT requests with a clear error, sending nothing', async () => {
    const b = await backend();
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const dispatcher = meshDispatcher(m);
    await expect(dispatcher.upgrade({ origin: 'http://users', path: '/ws', protocol: 'websocket' } as Parameters<typeof dispatcher.upgrade>[0])).rejects.toThrow(/upgrade and CONNECT/);
    await expect(dispatcher.connect({ origin: 'http://users', path: '/' })).rejects.toThrow(/upgrade and CONNECT/);
    expect(b.seen).toEqual([]);
  });

  it('refuses an IP origin (no service), leaving no service behind', async () => {
    const b = await backend();
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const error = await request(`http://127.0.0.1:${b.port}/`, { dispatcher: meshDispatcher(m) }).catch((e: unknown) => e);
    expect(String((error as Error).message)).toMatch(/is an IP address, not a service/);
    expect(b.seen).toEqual([]);
    expect(m.snapshot().services).toEqual({});
  });

  it('a hostile origin is refused with a clear error and nothing is sent', async () => {
    const m = mesh({ registry: staticRegistry({ users: ['127.0.0.1:1'] }) });
    const dispatcher = meshDispatcher(m);
    const error = await dispatcher.request({ origin: 'http://us%65rs', path: '/', method: 'GET' }).catch((e: unknown) => e);
    expect(String((error as Error).message)).toMatch(/invalid service name|whitespace|%/);
  });
});
