import type { Endpoint } from '../../endpoint/endpoint.js';
import { DiscoveryError, InvalidServiceNameError } from '../../errors.js';
import { serviceNameProblem } from '../../util/service-name.js';
import type { Registry } from '../registry.js';
import { deliver, publishError, publishList, type Subscriber } from '../subscribers.js';
import { describe, EtcdGateway } from './gateway.js';
import { backoffSettings, checkKeys, CONNECTION_KEYS, duration, etcdConnection, type EtcdBackoffOptions, type EtcdConnectionOptions } from './options.js';
import { parseRecord, serviceRange, type ServiceRange } from './records.js';
import { WatchLoop, type EtcdLoopState } from './watch-loop.js';
import { parseRange, type KeyValue } from './wire.js';

/** A key of the prefix that describes no endpoint, as {@link EtcdRegistryOptions.onInvalidKey} hears it. */
export interface EtcdInvalidKey {
  readonly service: string;
  /** The key, as UTF-8 (cut at 200 characters). */
  readonly key: string;
  readonly problem: string;
}

/** Options of {@link etcdRegistry}. */
export interface EtcdRegistryOptions extends EtcdConnectionOptions {
  /** Retry delays of a failing watch: doubling from `initialMs`, ±20 % jitter, up to `maxMs`. Default 1000 / 30000. */
  backoff?: EtcdBackoffOptions | undefined;
  /**
   * A watch stream that sent nothing for this long is dropped and resumed from its revision (no relist), so
   * a silently dead connection is noticed. Default 60000. etcd sends progress notifications on a quiet stream
   * only every 10 minutes, so a quiet healthy stream is resumed too, at the cost of one request per interval.
   * @example 15_000
   */
  idleTimeoutMs?: number | undefined;
  /**
   * Hears each key under the prefix that describes no endpoint (not JSON, no usable host or port, ...), once
   * per key and value. The key is left out; the others keep serving. Default: a process warning
   * (`PROXYLESS_ETCD_INVALID_KEY`), once per key.
   */
  onInvalidKey?: ((info: EtcdInvalidKey) => void) | undefined;
  /** Uniform numbers in [0, 1) for the backoff's jitter. For tests. Default `Math.random`. */
  random?: (() => number) | undefined;
}

/** An etcd registry; `watchState` is for tests and debugging. */
export interface EtcdRegistry extends Registry {
  watch: NonNullable<Registry['watch']>;
  /**
   * Called by `mesh.close()`, after the mesh dropped its watches: a watch loop stops (its stream aborted, its
   * timers cleared) when its last watcher leaves. A watch another mesh sharing this registry still holds
   * keeps running until that mesh drops it too.
   */
  close(): void;
  /** Where the list+watch loop of `service` is, if one runs. */
  watchState(service: string): EtcdLoopState | undefined;
}

const AT = 'etcdRegistry';
const KNOWN = [...CONNECTION_KEYS, 'backoff', 'idleTimeoutMs', 'onInvalidKey', 'random'];
/** How many distinct bad keys are remembered, so that each is reported once (then the memory starts over). */
const MAX_REPORTED = 1_024;

interface Shared {
  readonly subscribers: Set<Subscriber>;
  readonly loop: WatchLoop;
}

/**
 * Endpoints from etcd: an instance of `users` is the key `<prefix>users/<id>` holding JSON
 * `{ host, port, weight?, zone?, tags?, meta? }` (what {@link registerEtcd} writes), read and watched through
 * etcd's v3 HTTP/JSON gateway with fetch (no client library: the `etcd3` package brings gRPC with it).
 *
 * - The endpoint's id is the `<id>` part of the key, so its state survives relists and rewrites.
 * - Each watched service has one list+watch loop (a range, then a watch from the next revision), shared by
 *   every watcher: a change arrives as etcd commits it. A compacted revision relists and delivers only a
 *   list that differs; failures back off (1 s to 30 s, jittered) and reach the mesh as `discovery-error`
 *   while the last good list keeps serving; a stream silent for `idleTimeoutMs` is resumed.
 * - A key whose value is not a usable endpoint is left out (and reported once, see `onInvalidKey`); weight 0
 *   leaves an instance out quietly (draining).
 * - Several `endpoints`: a member that does not answer hands the request to the next.
 *
 * Why one loop per service rather than one over the whole prefix: a mesh calls a few of the services a
 * prefix holds, and a loop per service reads, parses and relists only those (a compaction relists one
 * service, not all). The cost is one HTTP stream per watched service, since the gateway carries one watch
 * per request.
 *
 * @example
 * const mesh = createMesh({ registry: etcdRegistry({ endpoints: ['http://127.0.0.1:2379'] }) });
 * await mesh.fetch('http://users/v1/me');
 */
export function etcdRegistry(options: EtcdRegistryOptions = {}): EtcdRegistry {
  checkKeys(options, KNOWN, AT, `${AT}(options)`);
  const conn = etcdConnection(options, AT);
  const backoff = backoffSettings(options.backoff, AT);
  const idleTimeoutMs = duration(options.idleTimeoutMs, `${AT}.idleTimeoutMs`, 60_000, 10);
  if (options.onInvalidKey !== undefined && typeof options.onInvalidKey !== 'function') throw new TypeError(`${AT}.onInvalidKey must be a function`);
  if (options.random !== undefined && typeof options.random !== 'function') throw new TypeError(`${AT}.random must be a function`);
  const random = options.random ?? Math.random;
  const gateway = new EtcdGateway(conn);
  const loops = new Map<string, Shared>();
  const reported = new Set<string>();

  const invalid = (service: string, kv: KeyValue, problem: string): void => {
    const key = kv.key.toString('utf8').slice(0, 200);
    const memo = `${key}\0${kv.modRevision}`;
    if (reported.has(memo)) return;
    if (reported.size >= MAX_REPORTED) reported.clear();
    reported.add(memo);
    try {
      if (options.onInvalidKey) options.onInvalidKey({ service, key, problem });
      else if (!reported.has(`warned\0${key}`)) {
        reported.add(`warned\0${key}`);
        process.emitWarning(`${AT}: the key ${JSON.stringify(key)} is left out: ${problem}`, { code: 'PROXYLESS_ETCD_INVALID_KEY' });
      }
    } catch {
      // a throwing handler must not stop discovery
    }
  };
  const parser = (service: string, range: ServiceRange) => (kv: KeyValue): Endpoint | undefined => {
    const parsed = parseRecord(range, service, kv);
    if ('endpoint' in parsed) return parsed.endpoint;
    if ('problem' in parsed) invalid(service, kv, parsed.problem);
    return undefined;
  };
  const checkService = (service: string): void => {
    const problem = serviceNameProblem(service);
    if (problem) throw new InvalidServiceNameError(String(service), problem);
  };

  const start = (service: string): Shared => {
    const range = serviceRange(conn.prefix, service);
    const subscribers = new Set<Subscriber>();
    const loop = new WatchLoop(
      gateway,
      { backoff, idleTimeoutMs, random, now: () => performance.now() },
      {
        service,
        range,
        parse: parser(service, range),
        update: (list) => publishList(subscribers, list),
        error: (error) => publishError(subscribers, error),
      },
    );
    return { subscribers, loop };
  };

  return {
    async resolve(service, { signal }) {
      checkService(service);
      // A loop that is watching has the current list: no request needed.
      const current = loops.get(service)?.loop.current;
      if (current !== undefined) return current;
      const range = serviceRange(conn.prefix, service);
      try {
        const body = await gateway.call({ path: '/v3/kv/range', body: { key: range.key, range_end: range.rangeEnd }, service, signal });
        const parse = parser(service, range);
        const byId = new Map<string, Endpoint>();
        for (const kv of parseRange(body).kvs) {
          const endpoint = parse(kv);
          if (endpoint) byId.set(endpoint.id, endpoint);
        }
        return Object.freeze([...byId.values()]);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw new DiscoveryError(service, `etcd range of ${range.keyPrefix}: ${describe(error)}`, { cause: error });
      }
    },
    watch(service, onUpdate, onError) {
      checkService(service);
      if (typeof onUpdate !== 'function' || typeof onError !== 'function') {
        throw new TypeError(`${AT}.watch(service, onUpdate, onError): onUpdate and onError must be functions`);
      }
      const subscriber: Subscriber = { onUpdate, onError };
      let shared = loops.get(service);
      if (shared === undefined) {
        shared = start(service);
        loops.set(service, shared);
        shared.subscribers.add(subscriber);
      } else {
        shared.subscribers.add(subscriber);
        // A late watcher hears the list the loop already has (it may have resolved before the loop's last change).
        const last = shared.loop.last;
        const own = shared;
        if (last !== undefined) queueMicrotask(() => own.subscribers.has(subscriber) && deliver(subscriber, last));
      }
      const own = shared;
      return () => {
        if (!own.subscribers.delete(subscriber) || own.subscribers.size > 0) return;
        own.loop.stop();
        if (loops.get(service) === own) loops.delete(service);
      };
    },
    close() {
      for (const [service, shared] of loops) {
        if (shared.subscribers.size > 0) continue;
        shared.loop.stop();
        loops.delete(service);
      }
      reported.clear();
    },
    watchState: (service) => loops.get(service)?.loop.state,
  };
}
