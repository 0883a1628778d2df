import type { ConfigSource, MeshConfigInput } from '../config/types.js';
import { CONNECTION_KEYS, consulConnection, type ConsulConnectionOptions } from '../discovery/consul-config.js';
import { blockingLoopSettings, optionText, type BlockingLoopOptions } from '../discovery/consul-options.js';
import { serviceNameProblem } from '../util/service-name.js';
import { ConfigWatch } from './consul-config-watch.js';

/** Options of {@link consulConfig}. Connection fields fall back to `CONSUL_HTTP_*`, as consulRegistry's do. */
export interface ConsulConfigOptions extends ConsulConnectionOptions, BlockingLoopOptions {
  /** The services whose discovery chains configure the mesh (the services this source governs). @example ['web', 'api'] */
  services: readonly string[];
  /**
   * Datacenter to read the chains and subsets from (`?dc=`): give the same one as to consulRegistry, whose
   * endpoints the routes and subsets select from. Default: the agent's. @example 'dc2'
   */
  dc?: string | undefined;
}

/** The source {@link consulConfig} returns. */
export interface ConsulConfigSource extends ConfigSource {
  readonly name: 'consul';
  watch(onUpdate: (config: MeshConfigInput) => void, onError: (error: Error) => void): () => void;
  /** Stops every watch of this source. */
  close(): void;
}

const AT = 'consulConfig';
const KNOWN = new Set<string>([...CONNECTION_KEYS, 'services', 'dc', 'waitMs', 'minIntervalMs', 'backoff']);

/**
 * A {@link ConfigSource} fed by Consul's compiled discovery chains (`GET /v1/discovery-chain/:service`, the
 * service-router, service-splitter and service-resolver config entries in the form Consul's own proxies read),
 * watched with blocking queries. For each governed service it pushes `services[svc]` (balancer, hash header,
 * a resolver's request timeout), `routes[svc]` (possibly `[]`) and `subsets` (of this service and of the services
 * its routes send to: a resolver subset's filter is applied by Consul, and the subset is pushed as the `ids` of
 * the instances it selected). See `mapDiscoveryChain` (consul-chain.ts) for how each part maps and what cannot.
 *
 * - Each push is the whole configuration of every governed service, sent once every chain (and every filtered
 *   subset they name) answered, and only when it changed.
 * - Errors (HTTP errors, network failures, bodies that are not chains) and what a chain asks for that cannot be
 *   expressed reach `onError` as a `ConsulError`, the token redacted; a failed query is retried with backoff and
 *   nothing is pushed, so the last good configuration stays. The token travels only in `X-Consul-Token`.
 * - Each governed service holds one blocking query open, and each filtered subset one more: an agent's
 *   `limits.http_max_conns_per_client` (200) counts them with consulRegistry's.
 *
 * @example
 * const mesh = createMesh({ registry: consulRegistry(), config: consulConfig({ services: ['web'] }) });
 */
export function consulConfig(options: ConsulConfigOptions): ConsulConfigSource {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`${AT}(options) must be an object`);
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new TypeError(`${AT}.${key} is not a known option (known: ${[...KNOWN].join(', ')})`);
  }
  const services = serviceList(options.services);
  const dc = options.dc === undefined ? undefined : optionText(options.dc, `${AT}.dc`);
  const { waitMs, minIntervalMs, backoffInitialMs, backoffMaxMs } = blockingLoopSettings(options, AT, options.fetch !== undefined);
  const conn = consulConnection(options, AT);
  const timing = { minIntervalMs, burst: 2, backoffInitialMs, backoffMaxMs, now: () => performance.now(), random: Math.random };

  const watches = new Set<ConfigWatch>();
  return {
    name: 'consul',
    watch(onUpdate, onError) {
      if (typeof onUpdate !== 'function' || typeof onError !== 'function') {
        throw new TypeError(`${AT}.watch(onUpdate, onError): onUpdate and onError must be functions`);
      }
      const watch = new ConfigWatch(conn, { dc, waitMs }, timing, services, onUpdate, onError);
      watches.add(watch);
      return () => {
        watch.stop();
        watches.delete(watch);
      };
    },
    close() {
      for (const watch of watches) watch.stop();
      watches.clear();
    },
  };
}

function serviceList(v: unknown): readonly string[] {
  if (!Array.isArray(v) || v.length === 0) throw new TypeError(`${AT}: services must be a non-empty array of service names`);
  const seen = new Set<string>();
  v.forEach((name: unknown, i) => {
    const problem = serviceNameProblem(name as string);
    if (problem) throw new TypeError(`${AT}.services[${i}] is not a valid service name: ${problem}`);
    if (seen.has(name as string)) throw new TypeError(`${AT}.services[${i}]: ${JSON.stringify(name)} is listed twice`);
    seen.add(name as string);
  });
  return Object.freeze([...seen]);
}

