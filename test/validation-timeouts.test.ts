/**
 * `timeout.attemptMs` against `timeout.totalMs`, checked on the merged policy as each service and route resolves
 * it (issue 14, "Rough edges"). A layer that sets attemptMs above the totalMs in force for it is refused, naming
 * both; a layer that lowers totalMs below an inherited attemptMs is accepted (the deadline caps the attempt).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMesh, staticRegistry, type ConfigSource, type Mesh, type MeshConfigInput, type MeshOptions } from 'proxyless';

const registry = staticRegistry({ api: ['127.0.0.1:9'], billing: ['127.0.0.1:10'] });
const meshes: Mesh[] = [];
afterEach(async () => {
  for (const m of meshes.splice(0)) await m.close();
});
const track = (m: Mesh): Mesh => (meshes.push(m), m);

function refusal(options: Omit<MeshOptions, 'registry'>): string {
  try {
    track(createMesh({ registry, ...options }));
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
    return (error as Error).message;
  }
  throw new Error('createMesh accepted it');
}

describe('attemptMs > totalMs is refused where a layer sets the attempt bound above the total in force', () => {
  it.each<[string, Omit<MeshOptions, 'registry'>, string]>([
    ['both in defaults', { defaults: { timeout: { attemptMs: 5_000, totalMs: 1_000 } } }, 'defaults.timeout: attemptMs (5000) must be <= totalMs (1000)'],
    [
      'a lone attemptMs above the built-in 30 s total',
      { defaults: { timeout: { attemptMs: 60_000 } } },
      'defaults.timeout: attemptMs (60000) must be <= totalMs (30000, from the built-in default): an attempt cannot outlive its call; set defaults.timeout.totalMs too',
    ],
    [
      "a service's attemptMs over the defaults' totalMs",
      { defaults: { timeout: { totalMs: 2_000 } }, services: { api: { timeout: { attemptMs: 3_000 } } } },
      'services.api.timeout: attemptMs (3000) must be <= totalMs (2000, from defaults.timeout)',
    ],
    [
      "a route's attemptMs over its service's totalMs",
      { services: { api: { timeout: { totalMs: 1_000 } } }, routes: { api: [{ name: 'slow', timeout: { attemptMs: 1_500 } }] } },
      'routes.api[0].timeout: attemptMs (1500) must be <= totalMs (1000, from services.api.timeout)',
    ],
    [
      "a route's attemptMs over the totalMs of the other service it sends to",
      { services: { billing: { timeout: { totalMs: 500 } } }, routes: { api: [{ name: 'pay', backends: [{ service: 'billing' }], timeout: { attemptMs: 800 } }] } },
      'routes.api[0].timeout: attemptMs (800) must be <= totalMs (500, from services.billing.timeout)',
    ],
  ])('%s', (_name, options, message) => {
    expect(refusal(options)).toContain(message);
  });

  it.each<[string, Omit<MeshOptions, 'registry'>]>([
    ['equal bounds', { defaults: { timeout: { attemptMs: 1_000, totalMs: 1_000 } } }],
    ['a route lowers totalMs under the default 10 s attempt (the API example)', { routes: { api: [{ name: 'split', timeout: { totalMs: 2_000 } }] } }],
    ['a service lowers totalMs under the defaults\' attemptMs', { defaults: { timeout: { attemptMs: 5_000 } }, services: { api: { timeout: { totalMs: 1_000 } } } }],
    ['a lone totalMs far below the default attempt', { defaults: { timeout: { totalMs: 150 } } }],
    ['undefined counts as not set', { defaults: { timeout: { attemptMs: undefined, totalMs: 1_000 } }, services: { api: { timeout: { attemptMs: undefined } } } }],
  ])('accepted: %s', (_name, options) => {
    expect(() => track(createMesh({ registry, ...options }))).not.toThrow();
  });
});

describe('the same check on configure() and on config sources', () => {
  it('configure() refuses it and keeps the configuration in force', () => {
    const mesh = track(createMesh({ registry, services: { api: { timeout: { attemptMs: 500, totalMs: 1_000 } } } }));
    const before = mesh.config();
    expect(() => mesh.configure({ defaults: { timeout: { totalMs: 400 } }, services: { api: { timeout: { attemptMs: 900 } } } })).toThrow(
      'services.api.timeout: attemptMs (900) must be <= totalMs (400, from defaults.timeout)',
    );
    expect(mesh.config()).toEqual(before);
  });

  it("a source's layer that raises attemptMs above the API's defaults.totalMs is a config-error; the last good stays", async () => {
    let push!: (config: MeshConfigInput) => void;
    const source: ConfigSource = {
      watch(onUpdate) {
        push = onUpdate;
        return () => {};
      },
    };
    const mesh = track(createMesh({ registry, defaults: { timeout: { totalMs: 1_000 } }, config: source }));
    const errors: Error[] = [];
    mesh.on('config-error', ({ error }) => errors.push(error));
    await new Promise<void>((r) => queueMicrotask(r)); // sources start in a microtask
    push({ services: { api: { timeout: { attemptMs: 2_000 } } } });
    expect(errors.map((e) => e.message).join('\n')).toContain('services.api.timeout: attemptMs (2000) must be <= totalMs (1000, from defaults.timeout)');
    expect(mesh.config().services.api).toBeUndefined();
    push({ services: { api: { timeout: { attemptMs: 800 } } } });
    expect(errors).toHaveLength(1);
    expect((mesh.config().services.api as { timeout?: unknown } | undefined)?.timeout).toEqual({ attemptMs: 800 });
  });
});

describe('per-call timeouts are capped, not refused', () => {
  it('a per-call attemptMs above the total in force ends at the total deadline', async () => {
    vi.useFakeTimers();
    try {
      const mesh = track(createMesh({ registry, defaults: { timeout: { totalMs: 50 }, retry: false } }));
      const settled = mesh.call('api', () => new Promise(() => {}), { timeout: { attemptMs: 5_000 } }).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(60);
      expect(await settled).toMatchObject({ code: 'ETIMEDOUT', scope: 'total', timeoutMs: 50 });
    } finally {
      vi.useRealTimers();
    }
  });
});
