import type { Dispatcher, Pool } from 'undici';
import { authority, type Endpoint } from '../endpoint/endpoint.js';
import { meshCore, type MeshCore } from '../mesh-core.js';
import type { Mesh } from '../mesh.js';
import type { TransportAttempt } from '../transport/attempt-context.js';
import { parseServiceUrl } from '../transport/service-url.js';
import { tlsConnectOptions } from '../transport/tls.js';
import { dispatchThroughMesh, type DispatchOptions, type SendAttempt } from './mesh-dispatch.js';
import { responseFactory, RouteCache, type ResponseFactory, type UndiciModule } from './module.js';
import type { AnyHandler } from './sink.js';
import { sinkFor } from './sink.js';
import { EndpointGoneError } from './transport.js';

/** Options of {@link meshDispatcher}: passed to the `Pool` of each endpoint. */
export interface MeshDispatcherOptions {
  /** Connections per endpoint (undici `Pool`'s `connections`). Default: undici's (no limit). */
  connections?: number;
  /** Requests pipelined per connection (undici's `pipelining`). Default: undici's (1). */
  pipelining?: number;
  /** Negotiate HTTP/2 over TLS (undici's `allowH2`). Default: undici's (`false`). */
  allowH2?: boolean;
}

const OPTION_KEYS: ReadonlySet<string> = new Set(['connections', 'pipelining', 'allowH2']);

function checkOptions(options: unknown): MeshDispatcherOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw new TypeError('meshDispatcher(mesh, options): options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new TypeError(`meshDispatcher options.${key} is not a known option (known: ${[...OPTION_KEYS].join(', ')})`);
  }
  const o = options as MeshDispatcherOptions;
  if (o.connections !== undefined && !(Number.isInteger(o.connections) && o.connections >= 1)) {
    throw new TypeError('meshDispatcher options.connections must be an integer >= 1');
  }
  if (o.pipelining !== undefined && !(Number.isInteger(o.pipelining) && o.pipelining >= 0)) {
    throw new TypeError('meshDispatcher options.pipelining must be an integer >= 0');
  }
  if (o.allowH2 !== undefined && typeof o.allowH2 !== 'boolean') throw new TypeError('meshDispatcher options.allowH2 must be a boolean');
  return { ...o };
}

/** An endpoint's pool, and the SNI its requests must name (only when a `Host` header would decide it). */
interface EndpointPool {
  readonly pool: Pool;
  readonly servername: string | undefined;
}

/**
 * The pools of one dispatcher: one undici `Pool` per (service, scheme, endpoint), made on the first attempt
 * there, closed when discovery removes the endpoint (in-flight requests finish first), destroyed when the mesh
 * closes. A pool is made only for an endpoint the service still lists, so a late attempt cannot leak one.
 */
class PoolSet {
  private readonly pools = new Map<string, EndpointPool>();

  constructor(
    private readonly undici: UndiciModule,
    private readonly core: MeshCore,
    private readonly options: MeshDispatcherOptions,
  ) {}

  get(service: string, scheme: 'http:' | 'https:', endpoint: Endpoint): EndpointPool {
    const key = `${service}\n${scheme}\n${endpoint.id}`;
    let entry = this.pools.get(key);
    if (entry !== undefined) return entry;
    const svc = this.core.service(service);
    if (svc.endpoints.get(endpoint.id) === undefined) throw new EndpointGoneError(endpoint);
    const options: Pool.Options = { ...this.options };
    let servername: string | undefined;
    if (scheme === 'https:') {
      const tls = tlsConnectOptions(svc.policy.tls, service, endpoint.host);
      options.connect = tls as Pool.Options['connect'];
      // undici takes a request's SNI from its Host header over the pool's: with `host: 'service'` the
      // request names the servername itself, so the certificate is still checked against the policy's.
      if (svc.policy.host === 'service') servername = tls.servername;
    }
    entry = { pool: new this.undici.Pool(`${scheme}//${authority(endpoint.host, endpoint.port)}`, options), servername };
    this.pools.set(key, entry);
    return entry;
  }

  /** Discovery removed these endpoints: their pools close once their requests are done. */
  removed(service: string, endpoints: readonly Endpoint[]): void {
    for (const endpoint of endpoints) {
      for (const scheme of ['http:', 'https:']) {
        const key = `${service}\n${scheme}\n${endpoint.id}`;
        const entry = this.pools.get(key);
        if (entry === undefined) continue;
        this.pools.delete(key);
        entry.pool.close().catch(noop);
      }
    }
  }

  async end(how: 'close' | 'destroy'): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.map(({ pool }) => (how === 'close' ? pool.close() : pool.destroy())));
  }

  get size(): number {
    return this.pools.size;
  }
}

const noop = (): void => {};

/** A dispatcher of the mesh's, for tests and the snapshot: how many pools are open. */
export interface MeshDispatcher extends Dispatcher {
  /** Pools open now (one per endpoint in use). */
  readonly poolCount: number;
}

/** Builds `meshDispatcher` over the application's undici module. */
export function makeMeshDispatcher(undici: UndiciModule): (mesh: Mesh, options?: MeshDispatcherOptions) => MeshDispatcher {
  const makeResponse: ResponseFactory = responseFactory(undici);

  class MeshDispatcherImpl extends (undici.Dispatcher as unknown as new () => Dispatcher) implements MeshDispatcher {
    readonly #core: MeshCore;
    readonly #pools: PoolSet;
    readonly #routes = new RouteCache();
    readonly #send: Record<'http:' | 'https:', SendAttempt>;
    readonly #unsubscribe: (() => void)[];
    #closed = false;

    constructor(mesh: Mesh, options: MeshDispatcherOptions) {
      super();
      this.#core = meshCore(mesh, 'meshDispatcher(mesh)');
      this.#pools = new PoolSet(undici, this.#core, options);
      const sendVia =
        (scheme: 'http:' | 'https:'): SendAttempt =>
        (endpoint, opts, attempt) => {
          const { pool, servername } = this.#pools.get((attempt as TransportAttempt).service, scheme, endpoint);
          const response = makeResponse(attempt);
          const sent = servername === undefined ? opts : { ...opts, servername };
          pool.dispatch(sent as Dispatcher.DispatchOptions, response as unknown as Dispatcher.DispatchHandler);
          return response.promise;
        };
      this.#send = { 'http:': sendVia('http:'), 'https:': sendVia('https:') };
      this.#unsubscribe = [
        this.#core.onRemoved((service, removed) => this.#pools.removed(service, removed)),
        this.#core.onClose(() => this.#end('destroy')),
      ];
    }

    get poolCount(): number {
      return this.#pools.size;
    }

    override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      const h = handler as unknown as AnyHandler;
      const route = this.#routes.read(opts.origin);
      if (this.#closed || route === undefined) {
        const sink = sinkFor(h, noop);
        sink.begin();
        sink.error(this.#closed ? closedError() : originError(opts.origin));
        return true;
      }
      return dispatchThroughMesh(this.#core, route.service, opts as unknown as DispatchOptions, h, this.#send[route.scheme]);
    }

    override close(): Promise<void>;
    override close(callback: () => void): void;
    override close(callback?: () => void): Promise<void> | void {
      const done = this.#end('close');
      if (typeof callback !== 'function') return done;
      done.then(() => callback(), () => callback());
    }

    override destroy(): Promise<void>;
    override destroy(err: Error | null): Promise<void>;
    override destroy(callback: () => void): void;
    override destroy(err: Error | null, callback: () => void): void;
    override destroy(a?: unknown, b?: unknown): Promise<void> | void {
      const callback = typeof a === 'function' ? a : typeof b === 'function' ? b : undefined;
      const done = this.#end('destroy');
      if (callback === undefined) return done;
      done.then(() => (callback as () => void)(), () => (callback as () => void)());
    }

    #end(how: 'close' | 'destroy'): Promise<void> {
      this.#closed = true;
      for (const unsubscribe of this.#unsubscribe) unsubscribe();
      return this.#pools.end(how);
    }
  }

  return (mesh, options) => new MeshDispatcherImpl(mesh, checkOptions(options));
}

function closedError(): Error {
  return Object.assign(new Error('the mesh dispatcher is closed'), { code: 'UND_ERR_CLOSED', name: 'ClientClosedError' });
}

function originError(origin: unknown): Error {
  try {
    parseServiceUrl(String(origin));
  } catch (error) {
    return error as Error;
  }
  return new TypeError(`proxyless/undici: origin ${JSON.stringify(String(origin))} is not a service URL`);
}
