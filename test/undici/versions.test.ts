// The undici path on each undici major it supports, with that major's own request(), fetch() and Agent:
// undici 7 (whose core calls the legacy handler API) and undici 8 (the new API only; it needs Node >= 22.19,
// so it runs on the CI's Node 22 and 24 and is skipped on 20). Real node:http backends on 127.0.0.1.
import * as undici7 from 'undici';
import { describe, expect, it } from 'vitest';
import { CallFailedError, staticRegistry } from '../../src/index.js';
import { makeMeshDispatcher } from '../../src/undici/dispatcher.js';
import { makeMeshInterceptor } from '../../src/undici/interceptor.js';
import type { UndiciModule } from '../../src/undici/module.js';
import { makePki } from '../helpers/certs.js';
import { startTlsBackend } from '../helpers/https-backends.js';
import { until } from '../helpers/process-guard.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();
type Undici = typeof undici7;

const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const v8Runs = major > 22 || (major === 22 && minor >= 19);
const undici8 = v8Runs ? ((await import('undici-v8')) as unknown as Undici) : undefined;

const majors: [string, Undici | undefined][] = [
  ['undici 7', undici7],
  ['undici 8', undici8],
];

const retryOnly = { retry: { minDelayMs: 1, maxDelayMs: 5 }, breaker: false, outlier: false } as const;

// undici 8 needs Node >= 22.19: its cases are skipped on Node 20.
describe.each(majors)('%s', (_name, u) => {
  const runs = u !== undefined;
  const dispatcherOf = (m: Parameters<ReturnType<typeof makeMeshDispatcher>>[0]) => makeMeshDispatcher(u as unknown as UndiciModule)(m);

  it.runIf(runs)('balances, and retries a 503 elsewhere on a kept-alive connection', async () => {
    const bad = await backend((_req, res) => res.writeHead(503).end('no'));
    let badConnections = 0;
    bad.server.on('connection', () => badConnections++);
    const good = await backend((_req, res) => res.end('yes'));
    const m = mesh({ registry: staticRegistry({ users: [bad.address, good.address] }), defaults: { balancer: 'round-robin', ...retryOnly }, random: () => 0 });
    const dispatcher = dispatcherOf(m);
    for (let i = 0; i < 6; i++) {
      const { statusCode, body } = await u!.request('http://users/x', { dispatcher });
      expect([statusCode, await body.text()]).toEqual([200, 'yes']);
    }
    expect(bad.seen.length).toBeGreaterThan(1);
    expect(badConnections).toBe(1);
    expect(good.seen.length).toBe(6);
  });

  it.runIf(runs)('a POST reset after its body was read is not retried; a stream body is not replayed', async () => {
    const reset = await backend((req) => req.socket.destroy());
    const other = await backend();
    const m = mesh({ registry: staticRegistry({ users: [reset.address, other.address] }), defaults: { balancer: 'round-robin', ...retryOnly }, random: () => 0 });
    const dispatcher = dispatcherOf(m);
    await expect(u!.request('http://users/o', { dispatcher, method: 'POST', body: 'once' })).rejects.toBeInstanceOf(CallFailedError);
    expect(reset.seen).toEqual([{ method: 'POST', url: '/o', body: 'once' }]);
    expect(other.seen).toEqual([]);
    // A fresh mesh, so round robin starts at the resetting endpoint again: an idempotent PUT, but a stream body.
    const again = mesh({ registry: staticRegistry({ users: [reset.address, other.address] }), defaults: { balancer: 'round-robin', ...retryOnly }, random: () => 0 });
    const { Readable } = await import('node:stream');
    await expect(
      u!.request('http://users/s', { dispatcher: dispatcherOf(again), method: 'PUT', body: Readable.from([Buffer.from('a'), Buffer.from('b')]) }),
    ).rejects.toBeInstanceOf(CallFailedError);
    expect(reset.seen.map((s) => s.body)).toEqual(['once', 'ab']);
    expect(other.seen).toEqual([]);
  });

  it.runIf(runs)('an abort rejects at once, with no later attempt', async () => {
    const hung = await backend(() => {});
    const m = mesh({ registry: staticRegistry({ users: [hung.address] }), defaults: { ...retryOnly, timeout: { attemptMs: 10_000, totalMs: 20_000 } } });
    const attempts: number[] = [];
    m.on('request', (e) => attempts.push(e.attempt));
    const controller = new AbortController();
    const pending = u!.request('http://users/h', { dispatcher: dispatcherOf(m), signal: controller.signal });
    await until(() => hung.seen.length === 1, 5_000, 'the request to arrive');
    const at = performance.now();
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toThrow(/stop|abort/i);
    expect(performance.now() - at).toBeLessThan(500);
    expect(attempts).toEqual([1]);
  });

  it.runIf(runs)('per-service TLS: users.internal verifies at an IP endpoint; a wrong servername fails', async () => {
    const pki = makePki();
    const b = await startTlsBackend('users', pki.server(['users.internal']));
    try {
      const ok = mesh({ registry: staticRegistry({ users: [`127.0.0.1:${b.port}`] }), services: { users: { tls: { servername: 'users.internal', ca: pki.ca } } } });
      const { statusCode, body } = await u!.request('https://users/', { dispatcher: dispatcherOf(ok) });
      expect([statusCode, await body.text(), b.lastServername]).toEqual([200, 'users', 'users.internal']);
      const wrong = mesh({ registry: staticRegistry({ users: [`127.0.0.1:${b.port}`] }), services: { users: { retry: false, tls: { servername: 'wrong.internal', ca: pki.ca } } } });
      const error = await u!.request('https://users/', { dispatcher: dispatcherOf(wrong) }).catch((e: unknown) => e);
      expect(String((error as { cause?: { code?: string } }).cause?.code)).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      await b.close();
      pki.close();
    }
  });

  it.runIf(runs)("its own fetch, and an Agent composed with the interceptor (services only)", async () => {
    const b = await backend((req, res, body) => res.end(`${req.method}:${body}`));
    const m = mesh({ registry: staticRegistry({ users: [b.address] }) });
    const res = await u!.fetch('http://users/f', { dispatcher: dispatcherOf(m), method: 'POST', body: 'x' });
    expect([res.status, await res.text()]).toEqual([200, 'POST:x']);
    const agent = new u!.Agent();
    try {
      const composed = agent.compose(makeMeshInterceptor(u as unknown as UndiciModule)(m));
      const viaMesh = await u!.request('http://users/i', { dispatcher: composed });
      expect(await viaMesh.body.text()).toBe('GET:');
      const direct = await u!.request(`http://127.0.0.1:${b.port}/d`, { dispatcher: composed });
      expect(await direct.body.text()).toBe('GET:');
      expect(m.snapshot().services.users?.calls).toBe(2);
    } finally {
      await agent.close();
    }
  });
});
