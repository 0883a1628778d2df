import { describe, expect, it } from 'vitest';
import {
  createMesh,
  InvalidServiceNameError,
  NoEndpointsError,
  staticRegistry,
  type MeshOptions,
} from '../src/index.js';

const registry = staticRegistry({ api: ['127.0.0.1:9'] });

// Each row: options that must be refused, and the option path the TypeError must name.
const invalid: [string, unknown, string][] = [
  ['no registry', {}, 'registry'],
  ['registry without resolve', { registry: { watch() {} } }, 'registry'],
  ['registry.watch not a function', { registry: { resolve: async () => [], watch: 1 } }, 'registry.watch'],
  ['negative retries', { registry, defaults: { retry: { retries: -1 } } }, 'defaults.retry.retries must be an integer >= 0'],
  ['fractional retries', { registry, defaults: { retry: { retries: 1.5 } } }, 'defaults.retry.retries'],
  ['maxDelay below minDelay', { registry, defaults: { retry: { minDelayMs: 100, maxDelayMs: 10 } } }, 'defaults.retry.maxDelayMs'],
  ['factor below 1', { registry, defaults: { retry: { factor: 0.5 } } }, 'defaults.retry.factor'],
  ['jitter not boolean', { registry, defaults: { retry: { jitter: 'yes' } } }, 'defaults.retry.jitter'],
  ['retryOn not statuses', { registry, defaults: { retry: { retryOn: [503, 'x'] } } }, 'defaults.retry.retryOn'],
  ['budget ratio negative', { registry, defaults: { retry: { budget: { ratio: -0.1 } } } }, 'defaults.retry.budget.ratio'],
  ['budget ttl too short', { registry, defaults: { retry: { budget: { ttlMs: 10 } } } }, 'defaults.retry.budget.ttlMs'],
  ['zero attempt timeout', { registry, defaults: { timeout: { attemptMs: 0 } } }, 'defaults.timeout.attemptMs'],
  ['NaN total timeout', { registry, defaults: { timeout: { totalMs: Number.NaN } } }, 'defaults.timeout.totalMs'],
  ['unknown balancer', { registry, defaults: { balancer: 'fastest' } }, 'defaults.balancer'],
  ['balancer object without pick', { registry, services: { api: { balancer: {} } } }, 'services.api.balancer'],
  ['breaker threshold over 100', { registry, defaults: { breaker: { errorThresholdPercentage: 150 } } }, 'defaults.breaker.errorThresholdPercentage'],
  ['outlier failures 0', { registry, defaults: { outlier: { consecutiveFailures: 0 } } }, 'defaults.outlier.consecutiveFailures'],
  ['panic threshold negative', { registry, defaults: { panicThresholdPercent: -5 } }, 'defaults.panicThresholdPercent'],
  ['hedge delay negative', { registry, defaults: { hedge: { delayMs: -1 } } }, 'defaults.hedge.delayMs'],
  ['hedge maxAttempts 1', { registry, defaults: { hedge: { delayMs: 10, maxAttempts: 1 } } }, 'defaults.hedge.maxAttempts'],
  ['maxConcurrent 0', { registry, services: { api: { maxConcurrent: 0 } } }, 'services.api.maxConcurrent'],
  ['classify not a function', { registry, defaults: { classify: 'strict' } }, 'defaults.classify'],
  ['misspelt policy key', { registry, defaults: { retires: 2 } }, 'defaults.retires is not a known option'],
  ['misspelt mesh key', { registry, default: {} }, 'options.default is not a known option'],
  ['hostile service name in services', { registry, services: { '../admin': {} } }, 'services["../admin"]'],
  ['empty zone', { registry, zone: '' }, 'zone'],
  ['fetch not a function', { registry, fetch: 'undici' }, 'fetch must be a function'],
  ['discovery.refreshMs 0', { registry, discovery: { refreshMs: 0 } }, 'discovery.refreshMs'],
  ['discovery.maxServices 0', { registry, discovery: { maxServices: 0 } }, 'discovery.maxServices'],
];

describe('createMesh validates every option at once', () => {
  it.each(invalid)('%s', (_label, options, path) => {
    let error: unknown;
    try {
      createMesh(options as MeshOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toContain(path);
  });

  it('accepts a static registry, defaults and a per-service override', () => {
    const mesh = createMesh({
      registry: staticRegistry({
        users: ['127.0.0.1:8081', '127.0.0.1:8082', { host: '127.0.0.1', port: 8083, weight: 3, zone: 'b' }],
      }),
      defaults: { balancer: 'peak-ewma', retry: { retries: 2 }, timeout: { attemptMs: 2_000, totalMs: 5_000 } },
      services: { users: { balancer: 'round-robin' } },
    });
    expect(typeof mesh.fetch).toBe('function');
    return mesh.close();
  });
});

describe('service names', () => {
  const mesh = createMesh({ registry });

  it('an unknown service gives NoEndpointsError', async () => {
    await expect(mesh.call('nobody', () => 1)).rejects.toBeInstanceOf(NoEndpointsError);
    await expect(mesh.fetch('http://nobody/x')).rejects.toMatchObject({ code: 'ENOENDPOINTS', service: 'nobody' });
  });

  const hostile = ['a/b', '..', 'a..b', 'us%65rs', 'users admin', 'users\r\nX-Injected: 1', 'users\n', '\tusers', ''];
  it.each(hostile)('mesh.call rejects %j with a clear error', async (name) => {
    const err = await mesh.call(name, () => 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidServiceNameError);
    expect((err as Error).message).toMatch(/invalid service name/);
  });

  it.each(['http://us%65rs/x', 'http://users admin/x', 'http://us\r\ners/x', 'http://us\ters/x'])(
    'mesh.fetch rejects %j with a clear error',
    async (url) => {
      const err = await mesh.fetch(url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidServiceNameError);
    },
  );

  it('mesh.service rejects a hostile name at once', () => {
    expect(() => mesh.service('a/../b')).toThrow(InvalidServiceNameError);
  });

  it('per-call options are checked and name the option', async () => {
    await expect(mesh.call('api', () => 1, { retry: { retries: -2 } })).rejects.toThrow('options.retry.retries');
    await expect(mesh.call('api', () => 1, { timeout: { attemptMs: -1 } })).rejects.toThrow('options.timeout.attemptMs');
  });
});
