import type { Endpoint } from './endpoint/endpoint.js';
import { meshCore } from './mesh-core.js';
import { EndpointGoneError } from './transport/network-error.js';
import type { Mesh } from './mesh.js';

/** One client per endpoint of a service, for any protocol (see {@link endpointClients}). */
export interface EndpointClients<C> {
  /** The client of this endpoint, made on first use (by endpoint id: `host:port`). */
  get(endpoint: Endpoint): C;
  /** How many clients are open now. */
  readonly size: number;
  /** Closes every client and stops following discovery (the mesh's close() does this too). */
  close(): Promise<void>;
}

/**
 * One client per endpoint id of `service`, made by `create` on first use, and closed by `close` when
 * discovery removes the endpoint or the mesh closes: the per-endpoint channel that grpc-js keeps in a
 * subchannel, for a client library (gRPC, Redis, a database driver) that dials one address. The mesh still
 * picks the endpoint, and governs the call: pair it with `mesh.call` and the policy's `unsent` hook.
 *
 * A `create` that throws fails that attempt (the mesh counts it as the endpoint's failure). A `close` that
 * throws or rejects is reported on the mesh's `callback-error` event; the client is dropped either way.
 *
 * @example
 * const clients = endpointClients(mesh, 'users', (ep) => new UsersClient(`${ep.host}:${ep.port}`, creds), (c) => c.close());
 * await mesh.call('users', (ep, ctx) => getUser(clients.get(ep), { id }, { deadline: Math.min(ctx.deadline, Date.now() + ATTEMPT_MS) }), { idempotent: true });
 */
export function endpointClients<C>(
  mesh: Mesh,
  service: string,
  create: (endpoint: Endpoint) => C,
  close: (client: C) => void | Promise<void>,
): EndpointClients<C> {
  const core = meshCore(mesh, 'endpointClients(mesh, ...)');
  core.service(service); // validates the name now, not at the first call
  if (typeof create !== 'function') throw new TypeError('endpointClients(mesh, service, create, close): create must be a function');
  if (typeof close !== 'function') throw new TypeError('endpointClients(mesh, service, create, close): close must be a function');
  const clients = new Map<string, C>();
  let open = !core.isClosed();

  const closeOne = async (client: C): Promise<void> => {
    try {
      await close(client);
    } catch (error) {
      const events = core.env.events;
      if (events.has('callback-error')) events.emit('callback-error', { service, callback: 'close', error });
    }
  };
  const closeAll = async (): Promise<void> => {
    open = false;
    stopRemoved();
    stopClose();
    const all = [...clients.values()];
    clients.clear();
    await Promise.all(all.map(closeOne));
  };
  const stopRemoved = core.onRemoved((name, removed) => {
    if (name !== service) return;
    for (const endpoint of removed) {
      const client = clients.get(endpoint.id);
      if (client === undefined) continue;
      clients.delete(endpoint.id);
      void closeOne(client);
    }
  });
  const stopClose = core.onClose(closeAll);

  return {
    get(endpoint) {
      if (!open) throw new Error(`endpointClients('${service}') is closed`);
      let client = clients.get(endpoint.id);
      if (client === undefined) {
        // A late attempt on an endpoint discovery has just removed would make a client nobody closes.
        if (core.service(service).endpoints.get(endpoint.id) === undefined) throw new EndpointGoneError(endpoint);
        client = create(endpoint);
        clients.set(endpoint.id, client);
      }
      return client;
    },
    get size() {
      return clients.size;
    },
    close: closeAll,
  };
}
