import type { Endpoint } from '../../endpoint/endpoint.js';
import { DiscoveryError } from '../../errors.js';
import type { Registry } from '../registry.js';
import { CachedFile, checkCa, checkToken, redact, tokenSource } from './credentials.js';
import { KubernetesClient, KubernetesError } from './http.js';
import { LoopHub } from './hub.js';
import { ListWatchLoop, type KubernetesLoopState, type SliceSource } from './loop.js';
import { serviceRef } from './names.js';
import { AT, kubernetesSettings, type KubernetesRegistryOptions, type KubernetesSettings } from './options.js';
import { parseEventLine, parseList, SERVICE_NAME_LABEL, selectEndpoints, ShapeError, type SliceEvent } from './slices.js';

/** A Kubernetes registry; `watchState` is for tests and debugging. */
export interface KubernetesRegistry extends Registry {
  watch: NonNullable<Registry['watch']>;
  /**
   * Called by `mesh.close()`, after the mesh dropped its watches: forgets what `resolve()` listed, and destroys
   * every connection as soon as no watch runs and no `resolve()` is in flight (at once, when that is already so).
   *
   * It does not stop watches still held, on purpose: `mesh.close()` calls `registry.close()` whether or not the
   * registry is shared (src/mesh.ts cannot know), so with two meshes on one registry, the first to close would
   * otherwise cut the other's discovery. The loops are counted by their subscribers instead: the last
   * unsubscribe stops a loop and, after `close()`, closes its sockets. For the same reason `resolve()` and
   * `watch()` keep working after `close()` (a mesh still open may call them); they open connections again, and
   * those too are destroyed once unused. A registry used alone is fully shut once its mesh has closed.
   */
  close(): void;
  /** Where the list+watch loop of `service` is, if one runs. */
  watchState(service: string): KubernetesLoopState | undefined;
}

/**
 * Endpoints from Kubernetes EndpointSlices (`discovery.k8s.io/v1`, label `kubernetes.io/service-name`), listed
 * and then watched: one list+watch loop per watched service, shared by every mesh using this registry, pushing
 * each change as it happens.
 *
 * - `users` is the Service `users` in `namespace` (default: the pod's own), `users.payments` the one in `payments`.
 * - Ready endpoints are used; when none is ready, the serving-and-terminating ones (as kube-proxy does). The
 *   endpoint's `zone` is its zone; its id is `<pod uid>@<ip>:<port>`; `meta` has `pod` and `node` when known.
 * - The port is the one named by `port` (a Service port name), or numbered by it (a number is the endpoints'
 *   targetPort: slices carry no other); by default the only one. A port no slice carries is a `DiscoveryError`
 *   listing the ports seen, not an empty service.
 * - A dual-stack Service is read in one address family (`addressType`; default IPv4 when it has IPv4 endpoints),
 *   so that no pod counts twice.
 * - A 410 Gone relists without publishing an empty set in between; bookmarks keep the resourceVersion fresh; a
 *   watch silent for `idleTimeoutMs` is reopened (quietly: on a quiet Service that is routine). Failures back off
 *   (1 s to 30 s, jittered, growing until a watch stays up for a minute) and reach the mesh as `discovery-error`
 *   while the last good list keeps serving.
 * - In a pod, no option is needed: `KUBERNETES_SERVICE_HOST`/`_PORT`, and the service-account token (re-read,
 *   as bound tokens rotate), CA and namespace files. The service account needs `list` and `watch` on
 *   `endpointslices` in the `discovery.k8s.io` group.
 *
 * @example
 * const mesh = createMesh({ registry: kubernetesRegistry({ port: 'http' }) });
 * await mesh.fetch('http://users.payments/v1/me');
 */
export function kubernetesRegistry(options: KubernetesRegistryOptions = {}): KubernetesRegistry {
  const settings = kubernetesSettings(options);
  const refreshMs = settings.tokenRefreshMs;
  const tokenFile = settings.tokenFile && new CachedFile(settings.tokenFile.path, settings.tokenFile.required, refreshMs, settings.clock, checkToken(settings.tokenFile.path));
  const caFile = settings.caFile && new CachedFile(settings.caFile.path, settings.caFile.required, refreshMs, settings.clock, checkCa(settings.caFile.path));
  const client = new KubernetesClient(settings, tokenSource(settings.token, tokenFile), caFile);
  let closed = false;
  let resolving = 0;
  /** After close(), the connections go as soon as nothing uses them. */
  const closeIfIdle = (): void => {
    if (closed && resolving === 0 && hub.size === 0) client.close();
  };
  const portOf = (service: string) => settings.ports.get(service) ?? settings.defaultPort;

  const wrap = (service: string, error: unknown): DiscoveryError => {
    if (error instanceof DiscoveryError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new DiscoveryError(service, redact(message, client.secrets()), { cause: error });
  };
  const select = (service: string, name: string) => (slices: Parameters<typeof selectEndpoints>[1]): readonly Endpoint[] => {
    try {
      return selectEndpoints(name, slices, portOf(service), settings.addressType);
    } catch (error) {
      throw new DiscoveryError(service, (error as Error).message);
    }
  };

  const hub = new LoopHub((service, seed, publish) => {
    const ref = serviceRef(service, settings.namespace);
    return new ListWatchLoop(
      sliceSource(client, settings, service),
      {
        backoffInitialMs: settings.backoffInitialMs,
        backoffMaxMs: settings.backoffMaxMs,
        idleTimeoutMs: settings.idleTimeoutMs,
        watchTimeoutSeconds: settings.watchTimeoutSeconds,
        now: () => settings.clock.now(),
        random: settings.random,
      },
      { service, select: select(service, ref.name), update: publish.update, error: (error) => publish.error(wrap(service, error)) },
      seed,
    );
  }, () => settings.clock.now(), () => closeIfIdle());

  return {
    async resolve(service, { signal }) {
      const ref = serviceRef(service, settings.namespace); // an InvalidServiceNameError, as every registry throws
      const current = hub.current(service);
      if (current !== undefined) return current;
      let snapshot;
      resolving++;
      try {
        snapshot = await sliceSource(client, settings, service).list(signal);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw wrap(service, error);
      } finally {
        resolving--;
        closeIfIdle();
      }
      const list = Object.freeze(select(service, ref.name)(snapshot.slices));
      hub.seed(service, snapshot);
      return list;
    },
    watch(service, onUpdate, onError) {
      serviceRef(service, settings.namespace);
      if (typeof onUpdate !== 'function' || typeof onError !== 'function') {
        throw new TypeError(`${AT}.watch(service, onUpdate, onError): onUpdate and onError must be functions`);
      }
      return hub.subscribe(service, onUpdate, onError);
    },
    close() {
      closed = true;
      hub.close();
      closeIfIdle();
    },
    watchState: (service) => hub.stateOf(service),
  };
}

/**
 * The list and watch requests of one service: GET .../namespaces/{ns}/endpointslices with the label selector
 * `kubernetes.io/service-name={name}`, and the same with `watch=1&allowWatchBookmarks=true&resourceVersion=`
 * (api-concepts, "Efficient detection of changes"). A line that is not a WatchEvent breaks the stream.
 */
export function sliceSource(client: KubernetesClient, settings: KubernetesSettings, service: string): SliceSource {
  const ref = serviceRef(service, settings.namespace);
  // Both parts are DNS-1123 labels (serviceRef checked them), so nothing here needs escaping but the selector.
  const base = `/apis/discovery.k8s.io/v1/namespaces/${ref.namespace}/endpointslices`;
  const selector = `labelSelector=${encodeURIComponent(`${SERVICE_NAME_LABEL}=${ref.name}`)}`;
  return {
    async list(signal) {
      const path = `${base}?${selector}`;
      const body = await client.getJson(service, path, signal);
      try {
        return parseList(body);
      } catch (error) {
        throw new KubernetesError(service, 'garbage', `the Kubernetes API at ${settings.origin} (GET ${path}) answered with no EndpointSliceList: ${(error as Error).message}`);
      }
    },
    watch(resourceVersion, timeoutSeconds, signal, sink) {
      const query = `${selector}&watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}&timeoutSeconds=${timeoutSeconds}`;
      const path = `${base}?${query}`;
      return client.watch(service, path, signal, {
        activity: () => sink.activity(),
        lines(lines) {
          const batch: SliceEvent[] = [];
          for (const line of lines) {
            let event: SliceEvent | undefined;
            try {
              event = parseEventLine(line);
            } catch (error) {
              if (!(error instanceof ShapeError)) throw error;
              if (batch.length > 0) sink.events(batch); // what came before the garbage was fine
              throw new KubernetesError(service, 'garbage', `the Kubernetes API at ${settings.origin} (GET ${path}) sent a line that is not a watch event: ${error.message}`);
            }
            if (event === undefined) continue;
            // A Status message is the server's text: it must not carry the token onward, whatever the server is.
            batch.push(event.type === 'ERROR' && event.message !== undefined ? { ...event, message: redact(event.message, client.secrets()) } : event);
          }
          if (batch.length > 0) sink.events(batch);
        },
      });
    },
  };
}
