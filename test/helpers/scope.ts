import { afterEach } from 'vitest';
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.js';
import { startBackend, type Backend } from './backends.js';

/**
 * Backends and meshes that a test file's tests create, closed after each test (a failed assertion
 * leaves no server or mesh behind). Call once at the top of a test file.
 */
export function testScope(): {
  backend: (...args: Parameters<typeof startBackend>) => Promise<Backend>;
  mesh: (options: MeshOptions) => Mesh;
} {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((o) => o.close()));
  });
  return {
    async backend(...args) {
      const b = await startBackend(...args);
      open.push(b);
      return b;
    },
    mesh(options) {
      const m = createMesh(options);
      open.push(m);
      return m;
    },
  };
}
