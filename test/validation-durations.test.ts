/**
 * Durations past Node's timer limit (issue "Hardening", defect 5). setTimeout and setInterval hold a signed
 * 32-bit delay: 2^31 ms or more overflows and fires after 1 ms, so `totalMs: 2 ** 31` timed every call out at
 * once and `resetTimeoutMs: 2 ** 31` half-opened a breaker straight away. Such a value is refused with an
 * error naming the option, rather than clamped: a configuration that cannot mean what it says is a mistake
 * to report, not to reinterpret.
 */
import { describe, expect, it } from 'vitest';
import { consulRegistry, createMesh, dnsRegistry, registerService, staticRegistry, type MeshOptions } from '../src/index.js';

const LIMIT = 2_147_483_647;
const TOO_LONG = 2 ** 31;
const registry = staticRegistry({ api: ['127.0.0.1:9'] });

function refusal(options: unknown): string {
  try {
    createMesh(options as MeshOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
    return (error as Error).message;
  }
  throw new Error('createMesh accepted it');
}

/** [option path, the defaults (or options) that set it to `value`]. */
const families: [string, string, (v: number) => unknown][] = [
  // With totalMs at the limit too: an attemptMs above the total in force is refused (test/validation-timeouts.test.ts).
  ['timeout', 'defaults.timeout.attemptMs', (v) => ({ registry, defaults: { timeout: { attemptMs: v, totalMs: LIMIT } } })],
  ['timeout', 'defaults.timeout.totalMs', (v) => ({ registry, defaults: { timeout: { totalMs: v } } })],
  ['retry', 'defaults.retry.minDelayMs', (v) => ({ registry, defaults: { retry: { minDelayMs: v, maxDelayMs: v } } })],
  ['retry', 'defaults.retry.maxDelayMs', (v) => ({ registry, defaults: { retry: { maxDelayMs: v } } })],
  ['breaker', 'defaults.breaker.resetTimeoutMs', (v) => ({ registry, defaults: { breaker: { resetTimeoutMs: v } } })],
  ['breaker', 'defaults.breaker.rollingWindowMs', (v) => ({ registry, defaults: { breaker: { rollingWindowMs: v } } })],
  ['outlier', 'services.api.outlier.baseEjectionMs', (v) => ({ registry, services: { api: { outlier: { baseEjectionMs: v } } } })],
  ['outlier', 'defaults.outlier.maxEjectionMs', (v) => ({ registry, defaults: { outlier: { maxEjectionMs: v } } })],
  ['hedge', 'defaults.hedge.delayMs', (v) => ({ registry, defaults: { hedge: { delayMs: v } } })],
  ['slowStart', 'defaults.slowStart.windowMs', (v) => ({ registry, defaults: { slowStart: { windowMs: v } } })],
  ['discovery', 'discovery.refreshMs', (v) => ({ registry, discovery: { refreshMs: v } })],
  ['discovery', 'discovery.resolveTimeoutMs', (v) => ({ registry, discovery: { resolveTimeoutMs: v } })],
];

describe('defect 5: durations of 2^31 ms or more are refused, naming the option', () => {
  it.each(families)('%s: %s = 2 ** 31 is refused, 2147483647 accepted', async (_family, path, options) => {
    expect(refusal(options(TOO_LONG))).toContain(`${path} must be a finite number`);
    expect(refusal(options(TOO_LONG))).toContain(`at most ${LIMIT} ms (setTimeout's limit)`);
    expect(refusal(options(Number.POSITIVE_INFINITY))).toContain(path);
    await createMesh(options(LIMIT) as MeshOptions).close();
  });

  it('timeout: totalMs 2 ** 31 is refused by createMesh and by a per-call timeout', async () => {
    expect(refusal({ registry, defaults: { timeout: { totalMs: TOO_LONG } } })).toBe(
      `defaults.timeout.totalMs must be a finite number > 0 and at most ${LIMIT} ms (setTimeout's limit)`,
    );
    const mesh = createMesh({ registry, defaults: { retry: false } });
    try {
      // Refused before any attempt starts: the endpoint is never called.
      let called = 0;
      const error = await mesh.call('api', () => ++called, { timeout: { totalMs: TOO_LONG } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain('options.timeout.totalMs must be a finite number > 0 and at most');
      expect(called).toBe(0);
      await expect(mesh.call('api', () => 1, { retry: { maxDelayMs: TOO_LONG } })).rejects.toThrow('options.retry.maxDelayMs');
      await expect(mesh.call('api', () => 1, { hedge: { delayMs: TOO_LONG } })).rejects.toThrow('options.hedge.delayMs');
      // The largest timer Node can hold still works.
      await expect(mesh.call('api', () => 'ok', { timeout: { attemptMs: LIMIT, totalMs: LIMIT } })).resolves.toBe('ok');
    } finally {
      await mesh.close();
    }
  });

  it('discovery: dnsRegistry refuses minTtlMs, maxTtlMs and timeoutMs past the limit', () => {
    for (const key of ['minTtlMs', 'maxTtlMs', 'timeoutMs']) {
      expect(() => dnsRegistry({ port: 80, mode: 'a', [key]: TOO_LONG })).toThrow(`dnsRegistry: ${key} must be`);
    }
  });

  it('discovery: consulRegistry refuses timeoutMs and waitMs past the limit', () => {
    const consul = { url: 'http://127.0.0.1:9', env: {} };
    expect(() => consulRegistry({ ...consul, timeoutMs: TOO_LONG })).toThrow(
      `consulRegistry.timeoutMs must be a finite number > 0 and at most ${LIMIT} ms`,
    );
    expect(() => consulRegistry({ ...consul, waitMs: TOO_LONG })).toThrow('consulRegistry.waitMs');
    consulRegistry({ ...consul, timeoutMs: LIMIT }).close?.();
  });

  it('discovery: registerService refuses check and deregistration durations past the limit', async () => {
    const base = { consul: { url: 'http://127.0.0.1:9', env: {} }, service: { name: 'users', address: '127.0.0.1', port: 8080 } };
    const http = { http: 'http://127.0.0.1:8080/health', intervalMs: 1_000 };
    const cases: [string, object][] = [
      ['check.ttlMs', { check: { ttlMs: TOO_LONG } }],
      ['check.intervalMs', { check: { ...http, intervalMs: TOO_LONG } }],
      ['check.timeoutMs', { check: { ...http, timeoutMs: TOO_LONG } }],
      ['deregisterCriticalAfterMs', { check: http, deregisterCriticalAfterMs: TOO_LONG }],
      ['consul.timeoutMs', { consul: { ...base.consul, timeoutMs: TOO_LONG } }],
    ];
    for (const [path, extra] of cases) {
      const error = await registerService({ ...base, ...extra } as never).catch((e: unknown) => e);
      expect(error, path).toBeInstanceOf(TypeError);
      expect((error as Error).message, path).toContain(`registerService.${path} must be a finite number > 0 and at most ${LIMIT} ms`);
    }
  });
});
