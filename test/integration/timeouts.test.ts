import { describe, expect, it } from 'vitest';
import { CallFailedError, staticRegistry, TimeoutError } from '../../src/index.js';
import { testScope } from '../helpers/scope.js';

const { backend, mesh } = testScope();

describe('timeouts and cancellation', () => {
  it('an attempt that hangs times out (scope attempt), its fetch is aborted, and a retry elsewhere succeeds', async () => {
    const hang = await backend(() => {
      /* never answers */
    });
    const good = await backend((_req, res) => res.end('good'));
    const m = mesh({
      registry: staticRegistry({ api: [hang.address, good.address] }),
      defaults: { balancer: 'round-robin', timeout: { attemptMs: 100, totalMs: 5_000 }, retry: { minDelayMs: 1 } },
      random: () => 0,
    });
    const failures: string[] = [];
    m.on('failure', (e) => failures.push(`${e.endpoint.id} ${e.error.name}`));
    const res = await m.fetch('http://api/x');
    expect(await res.text()).toBe('good');
    expect(failures).toEqual([`${hang.address} TimeoutError`]);
    expect(hang.seen).toHaveLength(1);
  });

  it('every attempt timing out ends with TimeoutError scope attempt and lists every try', async () => {
    const m = mesh({
      registry: staticRegistry({ api: ['127.0.0.1:9'] }),
      defaults: { timeout: { attemptMs: 20, totalMs: 5_000 }, retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 } },
    });
    const signals: AbortSignal[] = [];
    const err = await m
      .call('api', (_ep, ctx) => {
        signals.push(ctx.signal);
        return new Promise(() => {});
      }, { idempotent: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).scope).toBe('attempt');
    expect((err as TimeoutError).attempts.map((a) => a.outcome)).toEqual(['ETIMEDOUT', 'ETIMEDOUT', 'ETIMEDOUT']);
    expect(signals.every((s) => s.aborted && s.reason instanceof TimeoutError)).toBe(true);
  });

  it('the total deadline ends the call with TimeoutError scope total, retries and backoff included', async () => {
    const m = mesh({
      registry: staticRegistry({ api: ['127.0.0.1:9', '127.0.0.1:10'] }),
      // The service lowers totalMs under the inherited attemptMs (allowed: the deadline caps the attempt); one
      // timeout object with attemptMs > totalMs is refused (test/validation-timeouts.test.ts).
      defaults: { timeout: { attemptMs: 1_000 }, retry: { retries: 10, minDelayMs: 1, maxDelayMs: 1 } },
      services: { api: { timeout: { totalMs: 150 } } },
    });
    let attempts = 0;
    const err = await m
      .call('api', async () => {
        attempts++;
        await new Promise((r) => setTimeout(r, 60));
        throw new Error('slow failure');
      }, { idempotent: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).scope).toBe('total');
    expect(attempts).toBe(3); // 60 ms + 60 ms + the third cut off by the deadline
    expect((err as TimeoutError).attempts).toHaveLength(3);
  });

  it('a retry is not started when its backoff would outlast the deadline: the last failure ends the call', async () => {
    const m = mesh({
      registry: staticRegistry({ api: ['127.0.0.1:9'] }),
      defaults: { timeout: { totalMs: 100 }, retry: { retries: 5, minDelayMs: 500, maxDelayMs: 500 } },
    });
    let attempts = 0;
    const err = await m
      .call('api', async () => {
        attempts++;
        throw new Error('boom');
      }, { idempotent: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallFailedError);
    expect(attempts).toBe(1);
  });

  it('a thrown error of a non-idempotent call is not retried and comes back as cause of CallFailedError', async () => {
    const m = mesh({ registry: staticRegistry({ api: ['127.0.0.1:9', '127.0.0.1:10'] }) });
    let attempts = 0;
    const boom = new Error('boom');
    const err = await m
      .call('api', async () => {
        attempts++;
        throw boom;
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallFailedError);
    expect((err as CallFailedError).cause).toBe(boom);
    expect((err as CallFailedError).code).toBe('ECALLFAILED');
    expect(attempts).toBe(1);
  });

  it('an error that proves the request never left is retried even without idempotent', async () => {
    const m = mesh({ registry: staticRegistry({ api: ['127.0.0.1:9', '127.0.0.1:10'] }), defaults: { retry: { minDelayMs: 1 } } });
    const ports: number[] = [];
    const value = await m.call('api', async (ep) => {
      ports.push(ep.port);
      // As Node's net errors say it: the refused address and port are the endpoint's own.
      if (ports.length === 1) {
        throw Object.assign(new Error(`connect ECONNREFUSED ${ep.host}:${ep.port}`), { code: 'ECONNREFUSED', address: ep.host, port: ep.port });
      }
      return 'ok';
    });
    expect(value).toBe('ok');
    expect(ports).toHaveLength(2);
    expect(ports[0]).not.toBe(ports[1]); // the retry went to the endpoint not tried yet
  });

  it('a Retry-After longer than the time left ends the call with the last response', async () => {
    const a = await backend((_req, res) => res.writeHead(503, { 'retry-after': '60' }).end());
    const m = mesh({ registry: staticRegistry({ api: [a.address] }), defaults: { timeout: { totalMs: 2_000 } } });
    const res = await m.fetch('http://api/x');
    expect(res.status).toBe(503);
    expect(a.seen).toHaveLength(1);
  });

  it('a short Retry-After is waited for before the retry', async () => {
    let n = 0;
    const a = await backend((_req, res) => (++n === 1 ? res.writeHead(429, { 'retry-after': '1' }).end() : res.end('ok')));
    const m = mesh({ registry: staticRegistry({ api: [a.address] }), defaults: { timeout: { totalMs: 5_000 } } });
    const t0 = performance.now();
    const res = await m.fetch('http://api/x');
    expect(await res.text()).toBe('ok');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(950);
  });
});
