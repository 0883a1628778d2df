import { afterEach, describe, expect, it } from 'vitest';
import {
  createMesh,
  DiscoveryError,
  InvalidServiceNameError,
  MeshClosedError,
  NoEndpointsError,
  staticRegistry,
  type Endpoint,
  type Mesh,
  type Registry,
} from 'proxyless';

const meshes: Mesh[] = [];
afterEach(async () => {
  for (const m of meshes.splice(0)) await m.close();
});

function mesh(registry: Registry, extra: Partial<Parameters<typeof createMesh>[0]> = {}): Mesh {
  const m = createMesh({ registry, ...extra });
  meshes.push(m);
  return m;
}

/** A registry that counts its resolves and can fail or hang on chosen names. */
function countingRegistry(lists: Record<string, string[]>, failing: ReadonlySet<string> = new Set()) {
  const resolved: string[] = [];
  let release: (() => void) | undefined;
  const hang = new Promise<void>((r) => (release = r));
  const registry: Registry & { hangOn?: string } = {
    async resolve(service): Promise<readonly Endpoint[]> {
      resolved.push(service);
      if (registry.hangOn === service) await hang;
      if (failing.has(service)) throw new Error(`registry down for ${service}`);
      return (lists[service] ?? []).map((a) => {
        const [host, port] = a.split(':');
        return { id: a, host: host!, port: Number(port), weight: 1, tags: [], meta: {} };
      });
    },
  };
  return { registry, resolved, release: () => release?.() };
}

describe('warmup', () => {
  it('resolves the services it is given, once each, before any call', async () => {
    const { registry, resolved } = countingRegistry({ users: ['127.0.0.1:8081'], billing: ['127.0.0.1:8082'] });
    const m = mesh(registry);
    await m.warmup(['users', 'billing', 'users']);
    expect(resolved.sort()).toEqual(['billing', 'users']);
    expect(m.snapshot().services.users?.endpoints).toHaveLength(1);
    expect(m.snapshot().services.billing?.endpoints).toHaveLength(1);
  });

  it("rejects with NoEndpointsError naming a service that resolves to nothing (warmup(['nosuch']) used to resolve)", async () => {
    const m = mesh(staticRegistry({ users: ['127.0.0.1:8081'] }));
    const error = await m.warmup(['nosuch']).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(NoEndpointsError);
    expect(error).toMatchObject({ code: 'ENOENDPOINTS', service: 'nosuch' });
    expect((error as Error).message).toContain("'nosuch'");
  });

  it('tries every name before rejecting: the good ones are warm, the failures come together, in the order given', async () => {
    const { registry, resolved } = countingRegistry({ users: ['127.0.0.1:8081'] }, new Set(['down']));
    const m = mesh(registry);
    const error = await m.warmup(['ghost', 'users', 'down']).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(AggregateError);
    const errors = (error as AggregateError).errors;
    expect(errors).toHaveLength(2);
    expect(errors[0]).toBeInstanceOf(NoEndpointsError);
    expect(errors[0]).toMatchObject({ service: 'ghost' });
    expect(errors[1]).toBeInstanceOf(DiscoveryError);
    expect(errors[1]).toMatchObject({ code: 'EDISCOVERY', service: 'down' });
    expect((error as Error).message).toMatch(/'ghost'.*'down'/);
    expect(resolved).toContain('users');
    expect(m.snapshot().services.users?.endpoints).toHaveLength(1);
  });

  it('a single failing registry rejects with its DiscoveryError, not an AggregateError', async () => {
    const { registry } = countingRegistry({}, new Set(['down']));
    await expect(mesh(registry).warmup(['down'])).rejects.toBeInstanceOf(DiscoveryError);
  });

  it('a bad name rejects (InvalidServiceNameError), and a non-array is a TypeError', async () => {
    const m = mesh(staticRegistry({ users: ['127.0.0.1:8081'] }));
    await expect(m.warmup(['no spaces allowed'])).rejects.toBeInstanceOf(InvalidServiceNameError);
    await expect(m.warmup('users' as unknown as string[])).rejects.toThrow(TypeError);
  });

  it('a service whose routes send elsewhere is warmed through them, and an empty list of its own is no error', async () => {
    const { registry, resolved } = countingRegistry({ users: ['127.0.0.1:8081'] });
    const m = mesh(registry, { routes: { front: [{ name: 'all', backends: [{ service: 'users' }] }] } });
    await m.warmup(['front']);
    expect(resolved.sort()).toEqual(['front', 'users']);
    expect(m.snapshot().services.users?.endpoints).toHaveLength(1);
    // ... but when the service it routes to is empty, that service is named.
    const m2 = mesh(registry, { routes: { front: [{ name: 'all', backends: [{ service: 'nowhere' }] }] } });
    await expect(m2.warmup(['front'])).rejects.toMatchObject({ code: 'ENOENDPOINTS', service: 'nowhere' });
  });

  it('an empty list resolves', async () => {
    await expect(mesh(staticRegistry({})).warmup([])).resolves.toBeUndefined();
  });

  it('rejects with MeshClosedError when close() runs while it waits on the registry', async () => {
    const { registry, release } = countingRegistry({ users: ['127.0.0.1:8081'] });
    (registry as { hangOn?: string }).hangOn = 'users';
    const m = mesh(registry);
    const warming = m.warmup(['users']).then(() => undefined, (e: unknown) => e);
    await m.close();
    release();
    const error = await warming;
    expect(error).toBeInstanceOf(MeshClosedError);
    expect(error).toMatchObject({ code: 'ECLOSED' });
  });
});

describe('after close()', () => {
  it("warmup rejects with MeshClosedError for a warm service and a new one alike (it used to resolve for 'users')", async () => {
    const m = mesh(staticRegistry({ users: ['127.0.0.1:8081'], other: ['127.0.0.1:8082'] }));
    await m.warmup(['users']);
    await m.close();
    await expect(m.warmup(['users'])).rejects.toMatchObject({ name: 'MeshClosedError', code: 'ECLOSED', service: 'users' });
    await expect(m.warmup(['other'])).rejects.toMatchObject({ name: 'MeshClosedError', code: 'ECLOSED', service: 'other' });
    await expect(m.warmup(['users', 'other'])).rejects.toBeInstanceOf(MeshClosedError);
  });

  it('methods that start work refuse with MeshClosedError; methods that read state still answer', async () => {
    const m = mesh(staticRegistry({ users: ['127.0.0.1:8081'] }));
    const client = m.service('users');
    const listener = (): void => {};
    m.on('request', listener);
    await m.close();

    expect(() => m.on('request', () => {})).toThrow(MeshClosedError);
    expect(() => m.once('success', () => {})).toThrow(MeshClosedError);
    expect(() => m.service('users')).toThrow(MeshClosedError);
    expect(() => m.configure({})).toThrow(MeshClosedError);
    await expect(m.call('users', () => 1)).rejects.toMatchObject({ code: 'ECLOSED' });
    await expect(m.fetch('http://users/')).rejects.toMatchObject({ code: 'ECLOSED' });
    await expect(client.call(() => 1)).rejects.toMatchObject({ code: 'ECLOSED' });

    expect(m.off('request', listener)).toBe(m);
    expect(m.snapshot().services).toBeTypeOf('object');
    expect(m.metrics()).toBeTypeOf('string');
    expect(m.config().version).toBeGreaterThanOrEqual(1);
    await expect(m.close()).resolves.toBeUndefined(); // idempotent
  });

  it('a second close() while the first is under way settles when the first does, not before (as undici Agent.close())', async () => {
    let finish!: () => void;
    const registryClosed = new Promise<void>((r) => (finish = r));
    const order: string[] = [];
    const registry: Registry = {
      resolve: async () => [],
      close: async () => {
        await registryClosed;
        order.push('registry closed');
      },
    };
    const m = mesh(registry);
    const first = m.close().then(() => order.push('first'));
    const second = m.close().then(() => order.push('second'));
    // Let every microtask run: the second close must still wait on the registry.
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(order).toEqual([]);
    finish();
    await Promise.all([first, second]);
    expect(order[0]).toBe('registry closed');
    expect(order.slice(1).sort()).toEqual(['first', 'second']);
    await expect(m.close()).resolves.toBeUndefined(); // and after it, at once
  });
});
