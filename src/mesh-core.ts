import type { CallEnv } from './call/env.js';
import type { Endpoint } from './endpoint/endpoint.js';
import type { MeshModel } from './observe/prometheus.js';
import type { Service } from './service.js';

/**
 * What the mesh's own adapters (`proxyless/undici`, `endpointClients`) reach beyond the public {@link Mesh}
 * interface: the call environment and services, to run calls with a transport of their own, and hooks for the
 * resources they keep per endpoint. Not part of the public API: found through {@link meshCore}, so the public
 * object carries no internals.
 */
export interface MeshCore {
  readonly env: CallEnv;
  /** The service of this name (validates the name; created on first use, as by a call). */
  service(name: string): Service;
  /**
   * Whether `name` is a service of this mesh: a `services` policy names it, or discovery lists at least one
   * endpoint for it. An unknown name leaves nothing behind (no service, no cached list, no watch).
   */
  knows(name: string): Promise<boolean>;
  /** `listener` hears the endpoints discovery removed from a service. Returns the unsubscribe. */
  onRemoved(listener: (service: string, removed: readonly Endpoint[]) => void): () => void;
  /**
   * `listener` runs as the mesh closes, after its calls were stopped; `close()` waits for what it returns.
   * Returns the unsubscribe.
   */
  onClose(listener: () => void | Promise<void>): () => void;
  isClosed(): boolean;
  /** The mesh's `name` option: its `mesh` label. */
  readonly name: string | undefined;
  /** The mesh as the metrics renderer reads it now (clock read once), for `registerMeshMetrics` and `renderMeshMetrics`. */
  metricsModel(): MeshModel;
}

const cores = new WeakMap<object, MeshCore>();

/** Ties a mesh to its core (createMesh does, once). */
export function registerCore(mesh: object, core: MeshCore): void {
  cores.set(mesh, core);
}

/** The core of a mesh made by `createMesh`; a `TypeError` naming `at` for anything else. */
export function meshCore(mesh: unknown, at: string): MeshCore {
  const core = typeof mesh === 'object' && mesh !== null ? cores.get(mesh) : undefined;
  if (core === undefined) throw new TypeError(`${at}: mesh must be a mesh made by createMesh()`);
  return core;
}
