import { describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Registry } from '../../src/index.js';

/** A registry that knows every name: `svc-N` has one endpoint (nothing is dialled: the calls below never connect). */
function everyName(): Registry {
  return { resolve: async () => [{ id: 'e', host: '127.0.0.1', port: 9, weight: 1, tags: [], meta: {} }] };
}

describe('services past discovery.maxServices', () => {
  it('defect 14: past maxServices, idle services are retired: snapshot and metrics stay bounded', async () => {
    const mesh = createMesh({ registry: everyName(), discovery: { maxServices: 50 } });
    try {
      for (let i = 0; i < 400; i++) await mesh.call(`svc-${i}`, async () => 'ok');
      const names = Object.keys(mesh.snapshot().services);
      expect(names.length).toBeLessThanOrEqual(50);
      expect(names).toContain('svc-399'); // the newest stays; the idlest went
      expect(names).not.toContain('svc-0');
      const series = mesh.metrics().split('\n').filter((l) => l.startsWith('proxyless_requests_total{'));
      expect(new Set(series.map((l) => /service="([^"]+)"/.exec(l)?.[1])).size).toBeLessThanOrEqual(50);
      // A retired service comes back as a new one on its next call.
      await expect(mesh.call('svc-0', async () => 'again')).resolves.toBe('again');
      expect(mesh.snapshot().services['svc-0']?.calls).toBe(1);
    } finally {
      await mesh.close();
    }
  });

  it('defect 14 (guard): a service with a call in flight is never retired to make room', async () => {
    const mesh = createMesh({ registry: everyName(), discovery: { maxServices: 2 } });
    let release!: () => void;
    const held = mesh.call('busy', () => new Promise<string>((resolve) => (release = () => resolve('done'))));
    try {
      await new Promise<void>((resolve) => {
        const poll = (): void => (mesh.snapshot().services.busy?.activeCalls === 1 ? resolve() : void setImmediate(poll));
        poll();
      });
      for (let i = 0; i < 10; i++) await mesh.call(`other-${i}`, async () => 'ok');
      expect(mesh.snapshot().services.busy?.activeCalls).toBe(1);
      release();
      await expect(held).resolves.toBe('done');
      expect(mesh.snapshot().services.busy?.calls).toBe(1); // the same service object saw the call end
    } finally {
      await mesh.close();
    }
  });

  it('defect 14: a watched service keeps following its registry after others were retired', async () => {
    const registry = staticRegistry({ a: ['127.0.0.1:1'], b: ['127.0.0.1:2'], c: ['127.0.0.1:3'] });
    const mesh = createMesh({ registry, discovery: { maxServices: 2 } });
    try {
      const port = (name: string) => mesh.call(name, async (ep) => ep.port);
      expect(await port('a')).toBe(1);
      expect(await port('b')).toBe(2);
      expect(await port('c')).toBe(3); // a (idlest) is retired
      registry.set('a', ['127.0.0.1:11']);
      expect(await port('a')).toBe(11); // made afresh: loads the current list
    } finally {
      await mesh.close();
    }
  });
});
