import { afterEach, describe, expect, it } from 'vitest';
import type { AdminResponse } from '../../src/observe/admin.js';
import { createMesh, seededRng, staticRegistry, type Mesh } from '../../src/index.js';
import { manualClock } from '../discovery/fakes.js';

const meshes: Mesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

/** Serves one GET through the admin handler and returns status and body. */
function get(mesh: Mesh, url: string): { status: number; body: string } {
  let body = '';
  const res: AdminResponse = { statusCode: 0, setHeader: () => res, end: (b?: string) => void (body = b ?? '') };
  mesh.adminHandler()({ method: 'GET', url }, res);
  return { status: res.statusCode, body };
}

describe('service names that are Object.prototype keys', () => {
  it('defect 18: a service named __proto__ is in snapshot(), in /snapshot and in /metrics', async () => {
    // An object literal with `__proto__:` would set the prototype; JSON.parse makes it an own key, as a config file would.
    const registry = staticRegistry(JSON.parse('{"__proto__": ["127.0.0.1:1"], "constructor": ["127.0.0.1:2"], "users": ["127.0.0.1:3"]}'));
    const mesh = createMesh({ registry, clock: manualClock(), random: seededRng(18), defaults: { retry: false } });
    meshes.push(mesh);
    for (const [name, port] of [['__proto__', 1], ['constructor', 2], ['users', 3]] as const) {
      expect(await mesh.call(name, (ep) => ep.port)).toBe(port);
    }

    const services = mesh.snapshot().services;
    expect(Object.keys(services).sort()).toEqual(['__proto__', 'constructor', 'users']);
    expect(Object.hasOwn(services, '__proto__')).toBe(true);
    expect(services['__proto__']!.endpoints.map((e) => e.id)).toEqual(['127.0.0.1:1']);
    expect(services['constructor']!.endpoints.map((e) => e.id)).toEqual(['127.0.0.1:2']);
    expect(services['__proto__']!.calls).toBe(1);

    const snapshot = get(mesh, '/snapshot');
    expect(snapshot.status).toBe(200);
    const parsed = JSON.parse(snapshot.body) as { services: Record<string, { endpoints: { id: string }[] }> };
    expect(Object.keys(parsed.services).sort()).toEqual(['__proto__', 'constructor', 'users']);
    expect(Object.hasOwn(parsed.services, '__proto__')).toBe(true);
    expect(parsed.services['__proto__']!.endpoints.map((e) => e.id)).toEqual(['127.0.0.1:1']);

    expect(get(mesh, '/metrics').body).toContain('proxyless_endpoint_weight{service="__proto__",endpoint="127.0.0.1:1"}');
  });

  it('defect 18: a policy override for a service named __proto__ applies to it, and to no other', async () => {
    const registry = staticRegistry(JSON.parse('{"__proto__": ["127.0.0.1:1"], "users": ["127.0.0.1:3"]}'));
    const services = JSON.parse('{"__proto__": { "balancer": "random" }}');
    const mesh = createMesh({ registry, services, clock: manualClock(), random: seededRng(18), defaults: { balancer: 'round-robin', retry: false } });
    meshes.push(mesh);
    await mesh.call('__proto__', () => 1);
    await mesh.call('users', () => 1);
    const snapshot = mesh.snapshot().services;
    expect(snapshot['__proto__']!.balancer).toBe('random');
    expect(snapshot['users']!.balancer).toBe('round-robin');
  });
});
