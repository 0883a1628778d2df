/**
 * Validation of the health and overload keys (outlier rules, adaptiveConcurrency, admission, deadline,
 * healthCheck, fallback): each bad value is a TypeError naming its option path, and adaptiveConcurrency's
 * min <= initial <= max holds on the policy each service resolves, across `defaults`, services and config layers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type ConfigSource, type Mesh, type MeshConfigInput, type MeshOptions } from '../src/index.js';

const registry = staticRegistry({ api: ['127.0.0.1:9'] });
const meshes: Mesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});
const track = (m: Mesh): Mesh => (meshes.push(m), m);

const invalid: [string, unknown, string][] = [
  ['outlier.intervalMs 0', { outlier: { intervalMs: 0 } }, 'defaults.outlier.intervalMs'],
  ['successRate unknown key', { outlier: { successRate: { stdev: 1 } } }, 'defaults.outlier.successRate.stdev is not a known option'],
  ['successRate.minHosts 0', { outlier: { successRate: { minHosts: 0 } } }, 'defaults.outlier.successRate.minHosts'],
  ['successRate.stdevFactor negative', { outlier: { successRate: { stdevFactor: -1 } } }, 'defaults.outlier.successRate.stdevFactor'],
  ['failurePercent.threshold over 100', { outlier: { failurePercent: { threshold: 101 } } }, 'defaults.outlier.failurePercent.threshold'],
  ['adaptiveConcurrency not an object', { adaptiveConcurrency: true }, 'defaults.adaptiveConcurrency'],
  ['adaptiveConcurrency unknown key', { adaptiveConcurrency: { limit: 5 } }, 'defaults.adaptiveConcurrency.limit is not a known option'],
  ['adaptiveConcurrency.min 0', { adaptiveConcurrency: { min: 0 } }, 'defaults.adaptiveConcurrency.min'],
  ['adaptiveConcurrency.smoothing 0', { adaptiveConcurrency: { smoothing: 0 } }, 'defaults.adaptiveConcurrency.smoothing'],
  ['adaptiveConcurrency lone max below the default min', { adaptiveConcurrency: { max: 10 } }, 'defaults.adaptiveConcurrency: min (20) must be <= max (10)'],
  ['adaptiveConcurrency initial above max', { adaptiveConcurrency: { min: 1, initial: 50, max: 40 } }, 'defaults.adaptiveConcurrency: initial (50) must be from min (1) to max (40)'],
  ['admission.successRatio 0', { admission: { successRatio: 0 } }, 'defaults.admission.successRatio'],
  ['admission.maxRejectPercent 120', { admission: { maxRejectPercent: 120 } }, 'defaults.admission.maxRejectPercent'],
  ['deadline.header not a header name', { deadline: { header: 'x deadline' } }, 'defaults.deadline.header'],
  ['healthCheck.path a full URL', { healthCheck: { path: 'http://evil.example/healthz' } }, 'defaults.healthCheck.path'],
  ['healthCheck.path protocol-relative', { healthCheck: { path: '//evil.example/' } }, 'defaults.healthCheck.path'],
  ['healthCheck.unhealthyThreshold 0', { healthCheck: { unhealthyThreshold: 0 } }, 'defaults.healthCheck.unhealthyThreshold'],
  ['fallback not a function', { fallback: 'cached' }, 'defaults.fallback must be a function'],
];

describe('health and overload options', () => {
  it.each(invalid)('%s', (_label, defaults, path) => {
    expect(() => createMesh({ registry, defaults } as MeshOptions)).toThrow(TypeError);
    expect(() => createMesh({ registry, defaults } as MeshOptions)).toThrow(path);
  });

  it('a service bound is checked merged over defaults: min and initial there, max here is valid', () => {
    const mesh = track(createMesh({ registry, defaults: { adaptiveConcurrency: { min: 4, initial: 4 } }, services: { api: { adaptiveConcurrency: { max: 10 } } } }));
    expect(mesh.config().services.api).toBeDefined();
  });

  it('a service bound that contradicts the merged defaults names the service and says it merged', () => {
    const options = { registry, defaults: { adaptiveConcurrency: { min: 30, initial: 30 } }, services: { api: { adaptiveConcurrency: { max: 25 } } } };
    expect(() => createMesh(options)).toThrow('services.api.adaptiveConcurrency: min (30) must be <= max (25) (merged over defaults.adaptiveConcurrency');
  });

  it('a service that turns adaptiveConcurrency off is not checked against defaults', () => {
    const mesh = track(createMesh({ registry, defaults: { adaptiveConcurrency: { min: 4, initial: 4 } }, services: { api: { adaptiveConcurrency: false } } }));
    expect(mesh.config().services.api).toBeDefined();
  });

  it('configure() checks the merge and keeps the configuration in force on a bad one', () => {
    const mesh = track(createMesh({ registry }));
    mesh.configure({ defaults: { adaptiveConcurrency: { min: 4, initial: 4 } }, services: { api: { adaptiveConcurrency: { max: 10 } } } });
    const version = mesh.config().version;
    expect(() => mesh.configure({ defaults: { adaptiveConcurrency: { min: 12, initial: 12 } }, services: { api: { adaptiveConcurrency: { max: 10 } } } })).toThrow(
      'services.api.adaptiveConcurrency: min (12) must be <= max (10)',
    );
    expect(mesh.config().version).toBe(version);
  });

  it('bounds split across the API and a config source are checked on the merge: a contradiction is a config-error', async () => {
    let push: ((c: MeshConfigInput) => void) | undefined;
    const source: ConfigSource = { name: 'layer', watch: (onUpdate) => ((push = onUpdate), () => {}) };
    const mesh = track(createMesh({ registry, defaults: { adaptiveConcurrency: { min: 4, initial: 4 } }, config: source }));
    const errors: string[] = [];
    mesh.on('config-error', ({ source: name, error }) => errors.push(`${name}: ${error.message}`));
    await Promise.resolve();
    push!({ services: { api: { adaptiveConcurrency: { max: 10 } } } }); // valid only over the API's defaults
    expect(errors).toEqual([]);
    expect(mesh.config().sources.api).toBe('layer');
    push!({ services: { api: { adaptiveConcurrency: { max: 3 } } } });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('layer: services.api.adaptiveConcurrency: min (4) must be <= max (3)');
    expect(mesh.config().services.api).toEqual({ adaptiveConcurrency: { max: 10 } });
  });
});
