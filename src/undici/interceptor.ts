import type { Dispatcher } from 'undici';
import { authority } from '../endpoint/endpoint.js';
import { meshCore } from '../mesh-core.js';
import { LATER } from '../transport/attempt-context.js';
import type { Mesh } from '../mesh.js';
import { dispatchThroughMesh, type DispatchOptions, type SendAttempt } from './mesh-dispatch.js';
import { responseFactory, RouteCache, type Route, type UndiciModule } from './module.js';
import type { AnyHandler, CallerSink } from './sink.js';

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
 * Per-service `tls` needs connections of the mesh's own, so it applies to {@link meshDispatcher}, not here:
 * through the interceptor, TLS is the Agent's `connect` options.
 */
export function makeMeshInterceptor(undici: UndiciModule): (mesh: Mesh) => Dispatcher.DispatcherComposeInterceptor {
  const makeResponse = responseFactory(undici);
  return (mesh) => {
    const core = meshCore(mesh, 'meshInterceptor(mesh)');
    const routes = new RouteCache();
    const known = new KnownServices((name) => core.knows(name));
    return (dispatch) => {
      const sendVia =
        (scheme: 'http:' | 'https:'): SendAttempt =>
        (endpoint, attempt) => {
          const response = makeResponse(attempt);
          const origin = `${scheme}//${authority(endpoint.host, endpoint.port)}`;
          dispatch({ ...((attempt.request as CallerSink).opts as Dispatcher.DispatchOptions), origin }, response as unknown as Dispatcher.DispatchHandler);
          return LATER;
        };
      const send = { 'http:': sendVia('http:'), 'https:': sendVia('https:') };
      const viaMesh = (route: Route, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean =>
        dispatchThroughMesh(core, route.service, opts as unknown as DispatchOptions, handler as unknown as AnyHandler, send[route.scheme]);

      return (opts, handler) => {
        const route = routes.read(opts.origin);
        if (route === undefined || route.ip) return dispatch(opts, handler);
        const answer = known.check(route.service);
        if (answer === true) return viaMesh(route, opts, handler);
        if (answer === false) return dispatch(opts, handler);
        // First request for this name: decide once discovery has answered.
        answer.then(
          (yes) => (yes ? viaMesh(route, opts, handler) : dispatch(opts, handler)),
          () => dispatch(opts, handler),
        );
        return true;
      };
    };
  };
}
