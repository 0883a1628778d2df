import type { Dispatcher, Pool } from 'undici';
import { authority, type Endpoint } from '../endpoint/endpoint.js';
import { meshCore, type MeshCore } from '../mesh-core.js';
import type { Mesh } from '../mesh.js';
import { LATER } from '../transport/attempt-context.js';
import { EndpointGoneError } from '../transport/network-error.js';
import { parseServiceUrl } from '../transport/service-url.js';
import { tlsConnectOptions } from '../transport/tls.js';
import { dispatchThroughMesh, type DispatchOptions, type SendAttempt } from './mesh-dispatch.js';
import { responseFactory, RouteCache, type ResponseFactory, type UndiciModule } from './module.js';
import { sinkFor, type AnyHandler, type CallerSink } from './sink.js';

/** Options of {@link meshDispatcher}: passed to the `Pool` of each endpoint. */
export interface MeshDispatcherOptions {
  /** Connections per endpoint (undici `Pool`'s `connections`). Default: undici's (no limit). */
  connections?: number | undefined;
  /** Requests pipelined per connection (undici's `pipelining`). Default: undici's (1). */
  pipelining?: number | undefined;
  /** Negotiate HTTP/2 over TLS (undici's `allowH2`). Default: undici's (`false`). */
  allowH2?: boolean | undefined;
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
  /** By scheme, service and endpoint id: nested maps on strings that keep their hash, no key built per attempt. */
  private readonly pools: Record<'http:' | 'https:', Map<string, Map<string, EndpointPool>>> = { 'http:': new Map(), 'https:': new Map() };
  private count = 0;
  /** Closed or destroyed: no pool is made any more (a call still retrying sends nothing more). */
  ended = false;

  constructor(
    private readonly undici: UndiciModule,
    private readonly core: MeshCore,
    private readonly options: MeshDispatcherOptions,
  ) {}

  get(service: string, scheme: 'http:' | 'https:', endpoint: Endpoint): EndpointPool {
    let byId = this.pools[scheme].get(service);
    const found = byId?.get(endpoint.id);
    if (found !== undefined) return found;
    // Closed: a call still retrying sends nothing more, and leaves no pool behind.
    if (this.ended) throw closedError();
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
    const entry: EndpointPool = { pool: new this.undici.Pool(`${scheme}//${authority(endpoint.host, endpoint.port)}`, options), servername };
    if (byId === undefined) this.pools[scheme].set(service, (byId = new Map()));
    byId.set(endpoint.id, entry);
    this.count++;
    return entry;
  }

  /** Discovery removed these endpoints: their pools close once their requests are done. */
  removed(service: string, endpoints: readonly Endpoint[]): void {
    for (const scheme of ['http:', 'https:'] as const) {
      const byId = this.pools[scheme].get(service);
      if (byId === undefined) continue;
      for (const endpoint of endpoints) {
        const entry = byId.get(endpoint.id);
        if (entry === undefined) continue;
        byId.delete(endpoint.id);
        this.count--;
        entry.pool.close().catch(noop);
      }
    }
  }

  async end(how: 'close' | 'destroy'): Promise<void> {
    this.ended = true;
    const all: Pool[] = [];
    for (const scheme of ['http:', 'https:'] as const) {
      for (const byId of this.pools[scheme].values()) for (const entry of byId.values()) all.push(entry.pool);
      this.pools[scheme].clear();
    }
    this.count = 0;
    await Promise.allSettled(all.map((pool) => (how === 'close' ? pool.close() : pool.destroy())));
  }

  get size(): number {
    return this.count;
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

    constructor(mesh: Mesh, options: MeshDispatcherOptions) {
      super();
      this.#core = meshCore(mesh, 'meshDispatcher(mesh)');
      this.#pools = new PoolSet(undici, this.#core, options);
      const sendVia =
        (scheme: 'http:' | 'https:'): SendAttempt =>
        (endpoint, attempt) => {
          const { pool, servername } = this.#pools.get(attempt.service, scheme, endpoint);
          const opts = (attempt.request as CallerSink).optionsFor(attempt) as Dispatcher.DispatchOptions;
          const response = makeResponse(attempt);
          const sent = servername === undefined ? opts : ({ ...opts, servername } as Dispatcher.DispatchOptions);
          pool.dispatch(sent, response as unknown as Dispatcher.DispatchHandler);
          return LATER;
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
      const closed = this.#pools.ended;
      if (closed || route === undefined || route.ip) {
        sinkFor(h).refuse(closed ? closedError() : originError(opts.origin, route !== undefined));
        return true;
      }
      return dispatchThroughMesh(this.#core, route.service, opts as unknown as DispatchOptions, h, this.#send[route.scheme]);
    }

    override close(): Promise<void>;
    override close(callback: () => void): void;
    override close(callback?: () => void): Promise<void> | void {
      return withCallback(this.#end('close'), callback);
    }

    override destroy(): Promise<void>;
    override destroy(err: Error | null): Promise<void>;
    override destroy(callback: () => void): void;
    override destroy(err: Error | null, callback: () => void): void;
    override destroy(a?: unknown, b?: unknown): Promise<void> | void {
      const callback = typeof a === 'function' ? a : typeof b === 'function' ? b : undefined;
      return withCallback(this.#end('destroy'), callback as (() => void) | undefined);
    }

    #end(how: 'close' | 'destroy'): Promise<void> {
      for (const unsubscribe of this.#unsubscribe) unsubscribe();
      return this.#pools.end(how);
    }
  }

  return (mesh, options) => new MeshDispatcherImpl(mesh, checkOptions(options));
}

/** undici's two forms of close() and destroy(): a promise, or a callback when one is given. */
function withCallback(done: Promise<void>, callback: (() => void) | undefined): Promise<void> | void {
  if (typeof callback !== 'function') return done;
  done.then(callback, callback);
}

function closedError(): Error {
  return Object.assign(new Error('the mesh dispatcher is closed'), { code: 'UND_ERR_CLOSED', name: 'ClientClosedError' });
}

function originError(origin: unknown, ip: boolean): Error {
  if (ip) {
    return new TypeError(
      `meshDispatcher: origin ${String(origin)} is an IP address, not a service; meshInterceptor on an Agent lets other origins through`,
    );
  }
  try {
    parseServiceUrl(String(origin));
  } catch (error) {
    return error as Error;
  }
  return new TypeError(`proxyless/undici: origin ${JSON.stringify(String(origin))} is not a service URL`);
}
