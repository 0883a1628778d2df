/**
 * A key present with the value `undefined` means "not set" (issue 14: exactOptionalPropertyTypes users write
 * `zone: process.env.ZONE`). It must never hide a default or what `defaults` sets. The types side is
 * test/types/examples.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh, type MeshOptions } from 'proxyless';

const meshes: Mesh[] = [];
afterEach(async () => {
  for (const m of meshes.splice(0)) await m.close();
});
const make = (options: Omit<MeshOptions, 'registry'>): Mesh => {
  const m = createMesh({ registry: staticRegistry({ api: ['127.0.0.1:9', '127.0.0.1:10'] }), ...options });
  meshes.push(m);
  return m;
};

describe('undefined is "not set"', () => {
  it('mesh options: zone, fetch, clock, discovery keys', async () => {
    const m = make({ zone: undefined, fetch: undefined, clock: undefined, random: undefined, discovery: { refreshMs: undefined, maxServices: undefined, resolveTimeoutMs: undefined } });
    await expect(m.call('api', () => 'ok', { idempotent: true })).resolves.toBe('ok');
    // A refreshMs of undefined spread over the default would make the list expire at once (NaN TTL).
    expect(m.snapshot().services.api?.endpoints).toHaveLength(2);
  });

  it("a service's key set to undefined keeps what defaults sets (resolvePolicy read `key in override`)", () => {
    const m = make({
      defaults: { balancer: 'round-robin', maxConcurrent: 7, timeout: { attemptMs: 1_000, totalMs: 2_000 }, retry: { retries: 5 } },
      services: { api: { balancer: undefined, maxConcurrent: undefined, timeout: { attemptMs: undefined }, retry: { retries: undefined } } },
    });
    const api = m.snapshot().services.api ?? (m.service('api'), m.snapshot().services.api);
    expect(api?.balancer).toBe('round-robin');
    // What is in force shows no undefined keys: they were never set.
    expect(m.config().services).toEqual({ api: { timeout: {}, retry: {} } });
  });

  it('policy keys set to undefined fall back to the built-in defaults, not to undefined', async () => {
    const m = make({ defaults: { timeout: { attemptMs: undefined, totalMs: undefined }, retry: { retries: undefined, minDelayMs: undefined, maxDelayMs: undefined } } });
    let attempts = 0;
    const error = await m
      .call('api', () => {
        attempts++;
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      }, { idempotent: true })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ECALLFAILED' });
    expect(attempts).toBe(3); // the default 2 retries
  });

  it('per-call retry and hedge keys set to undefined keep their defaults', async () => {
    const m = make({ defaults: { retry: { retries: 1, minDelayMs: 0, maxDelayMs: 0 } } });
    let attempts = 0;
    await m
      .call('api', () => {
        attempts++;
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      }, { idempotent: true, retry: { retries: undefined }, timeout: { attemptMs: undefined }, hashKey: undefined, signal: undefined })
      .catch(() => {});
    expect(attempts).toBe(2); // the service's 1 retry, not NaN or 0
    await expect(m.call('api', () => 'ok', { idempotent: true, hedge: { delayMs: 5, maxAttempts: undefined } })).resolves.toBe('ok');
  });
});
