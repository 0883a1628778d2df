import type { Dispatcher } from 'undici';
import { authority } from '../endpoint/endpoint.js';
import { meshCore } from '../mesh-core.js';
import { LATER } from '../transport/attempt-context.js';
import { servernameFor } from '../transport/tls.js';
import type { Mesh } from '../mesh.js';
import { dispatchThroughMesh, type DispatchOptions, type SendAttempt } from './mesh-dispatch.js';
import { responseFactory, RouteCache, type Route, type UndiciModule } from './module.js';
import { sinkFor, type AnyHandler, type CallerSink } from './sink.js';

/** How long "not a service" is believed before discovery is asked again. */
const UNKNOWN_TTL_MS = 30_000;
const MAX_NAMES = 10_000;

/** Whether a host name is a service of the mesh, asked of discovery once and remembered. */
class KnownServices {
  private readonly names = new Map<string, true | number | Promise<boolean>>();

  constructor(private readonly knows: (name: string) => Promise<boolean>) {}

  /** `true`/`false` when known now, else a promise of the answer. */
  check(name: string): boolean | Promise<boolean> {
    const entry = this.names.get(name);
    if (entry === true) return true;
    if (typeof entry === 'number') {
      if (Date.now() < entry) return false;
    } else if (entry !== undefined) {
      return entry;
    }
    if (this.names.size >= MAX_NAMES) this.names.clear();
    const asking = this.knows(name).then(
      (known) => {
        this.names.set(name, known ? true : Date.now() + UNKNOWN_TTL_MS);
        return known;
      },
      () => {
        this.names.set(name, Date.now() + UNKNOWN_TTL_MS);
        return false;
      },
    );
    this.names.set(name, asking);
    return asking;
  }
}

/**
 * Builds `meshInterceptor` over the application's undici module. The interceptor goes on an undici Agent
 * (`new Agent().compose(meshInterceptor(mesh))`): a request whose origin's hostname is a service of the mesh
 * runs as a mesh call, each attempt dispatched through the Agent to the chosen endpoint's `host:port` (the
 * Agent's own pool per origin carries it); any other origin (an IP address, a name discovery does not list)
 * goes straight through, untouched. Whether a name is a service is asked of discovery on its first request
 * and remembered (a "no" for 30 s).
 *
 * Through the interceptor, connections are the Agent's: an `https:` attempt names the service's SNI (its
 * `tls.servername`, or the service name for an IP endpoint), but CAs and client certificates are the Agent's
 * `connect` options. The whole per-service `tls` needs the pools of {@link meshDispatcher}.
 */
export function makeMeshInterceptor(undici: UndiciModule): (mesh: Mesh) => Dispatcher.DispatcherComposeInterceptor {
  const makeResponse = responseFactory(undici);
  return (mesh) => {
    const core = meshCore(mesh, 'meshInterceptor(mesh)');
    const routes = new RouteCache();
    const known = new KnownServices((name) => core.knows(name));
    return (dispatch) => {
      const send: Record<'http:' | 'https:', SendAttempt> = {
        'http:': (endpoint, attempt) => {
          const response = makeResponse(attempt);
          const opts = { ...((attempt.request as CallerSink).optionsFor(attempt) as Dispatcher.DispatchOptions), origin: `http://${authority(endpoint.host, endpoint.port)}` };
          dispatch(opts, response as unknown as Dispatcher.DispatchHandler);
          return LATER;
        },
        // The SNI is the service's (its `tls.servername`, or the service name for an IP endpoint), so the
        // certificate is checked against it; CAs and client certificates are the Agent's.
        'https:': (endpoint, attempt) => {
          const response = makeResponse(attempt);
          const opts = {
            ...((attempt.request as CallerSink).optionsFor(attempt) as Dispatcher.DispatchOptions),
            origin: `https://${authority(endpoint.host, endpoint.port)}`,
            servername: servernameFor(core.service(attempt.service).policy.tls, attempt.service, endpoint.host),
          } as Dispatcher.DispatchOptions;
          dispatch(opts, response as unknown as Dispatcher.DispatchHandler);
          return LATER;
        },
      };
      const viaMesh = (route: Route, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean =>
        dispatchThroughMesh(core, route.service, opts as unknown as DispatchOptions, handler as unknown as AnyHandler, send[route.scheme]);

      return (opts, handler) => {
        const route = routes.read(opts.origin);
        if (route === undefined || route.ip) return dispatch(opts, handler);
        const answer = known.check(route.service);
        if (answer === true) return viaMesh(route, opts, handler);
        if (answer === false) return dispatch(opts, handler);
        // First request for this name: decide once discovery has answered. A throw from there (the next
        // dispatcher, the handler's own callbacks) reaches the handler, not an unhandled rejection.
        answer
          .then((yes) => (yes ? viaMesh(route, opts, handler) : dispatch(opts, handler)))
          .catch((error: unknown) => sinkFor(handler as unknown as AnyHandler).refuse(error));
        return true;
      };
    };
  };
}
