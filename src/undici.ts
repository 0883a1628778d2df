/**
 * `proxyless/undici`: the mesh as an undici Dispatcher, for `undici.request`, `undici.fetch`, Node's global
 * `fetch` and every client built on them. `undici` (7 or 8) is an optional peer dependency of proxyless: this
 * entry imports the application's copy; the core never does.
 */
import * as undici from 'undici';
import { makeMeshDispatcher, type MeshDispatcher, type MeshDispatcherOptions } from './undici/dispatcher.js';
import { makeMeshInterceptor } from './undici/interceptor.js';
import type { UndiciModule } from './undici/module.js';

const module = undici as unknown as UndiciModule;

/**
 * An undici `Dispatcher` that runs every request as a mesh call: the origin's hostname is the service, and
 * each attempt goes to the chosen endpoint through a `Pool` of its own (closed when discovery removes the
 * endpoint, destroyed when the mesh closes). Balancing, breakers, ejection, retries (method rule, or undici's
 * `idempotent` option), the budget, timeouts, hedging, events and metrics all apply; a stream body is never
 * replayed; `https:` origins use the service's `tls` policy.
 *
 * @example
 * const dispatcher = meshDispatcher(mesh, { connections: 64 });
 * const { statusCode, body } = await request('http://users/v1/me', { dispatcher });
 */
export const meshDispatcher: (mesh: import('./mesh.js').Mesh, options?: MeshDispatcherOptions) => MeshDispatcher = makeMeshDispatcher(module);

/**
 * An interceptor for `new Agent().compose(meshInterceptor(mesh))`: services go through the mesh, any other
 * origin goes straight through.
 *
 * @example setGlobalDispatcher(new Agent().compose(meshInterceptor(mesh)));
 */
export const meshInterceptor: (mesh: import('./mesh.js').Mesh) => import('undici').Dispatcher.DispatcherComposeInterceptor = makeMeshInterceptor(module);

export type { MeshDispatcher, MeshDispatcherOptions };
