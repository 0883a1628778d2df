import { Resolver } from 'node:dns/promises';
import type { Endpoint } from '../endpoint/endpoint.js';
import { DiscoveryError } from '../errors.js';
import type { Rng } from '../util/random.js';
import { lookupService, type DnsAnswer, type DnsMode, type LookupConfig } from './dns-lookup.js';
import { RefreshLoop } from './dns-watch.js';
import type { Registry } from './registry.js';

export type { DnsMode } from './dns-lookup.js';

/** Options of {@link dnsRegistry}. */
export interface DnsRegistryOptions {
  /**
   * DNS servers to ask, as IP addresses with an optional port. Default: the system's (`/etc/resolv.conf`).
   * @example servers: ['127.0.0.1:8600', '[::1]:53']
   */
  servers?: readonly string[] | undefined;
  /**
   * Which records name a service:
   * - `'srv'` (default): SRV records of `_http._tcp.<service>`; their targets' A/AAAA records give the addresses;
   * - `'a'`: A and AAAA records of `<service>`, all on `port`;
   * - `'auto'`: SRV first, then A/AAAA on `port` when the SRV name does not exist (NXDOMAIN) or has no SRV
   *   record (NODATA). A failure (SERVFAIL, timeout ...) is a failure, not a reason to fall back.
   * @example mode: 'auto', port: 8080
   */
  mode?: DnsMode | undefined;
  /**
   * The DNS name to query for a service; `type` says which query it is for. Default: `_http._tcp.<service>`
   * for SRV and `<service>` for A/AAAA.
   * @example nameFor: (service, type) => (type === 'srv' ? `_grpc._tcp.${service}.prod.svc.cluster.local` : `${service}.prod.svc.cluster.local`)
   */
  nameFor?: ((service: string, type: 'srv' | 'a') => string) | undefined;
  /**
   * The port of the endpoints found by A/AAAA records (SRV records carry their own). Required for `'a'` and `'auto'`.
   * @example port: 8080
   */
  port?: number | undefined;
  /**
   * Bounds on how long an answer is trusted: the TTL (the smallest of the addresses used) is clamped to
   * [minTtlMs, maxTtlMs]. Defaults 1 s and 5 min. `minTtlMs` keeps a TTL of 0 from turning into a busy loop.
   * @example minTtlMs: 5_000, maxTtlMs: 60_000
   */
  minTtlMs?: number | undefined;
  /** Upper bound on how long an answer is trusted, in ms (see `minTtlMs`). Default 5 min. */
  maxTtlMs?: number | undefined;
  /**
   * Deadline for one lookup, SRV and targets together (default 3 s). Keep it below the mesh's
   * `discovery.resolveTimeoutMs` (5 s) so that the error names the DNS name and server.
   * @example timeoutMs: 1_000
   */
  timeoutMs?: number | undefined;
  /**
   * The RNG of the RFC 2782 weighted order (tests: `seededRng(42)`).
   * @example random: seededRng(42)
   */
  random?: Rng | undefined;
}

export const DNS_DEFAULTS = { mode: 'srv', minTtlMs: 1_000, maxTtlMs: 300_000, timeoutMs: 3_000 } as const;

/** After the n-th failure in a row, a watch looks again after 1 s, 2 s, 4 s ... up to 60 s (within [minTtlMs, maxTtlMs]). */
const ERROR_RETRY_BASE_MS = 1_000;
const ERROR_RETRY_MAX_MS = 60_000;
/** How many services' last answers are kept for watches to start from. */
const RECENT_LIMIT = 1_000;
const MAX_TIMER_MS = 2_147_483_647;

const KNOWN = new Set(['servers', 'mode', 'nameFor', 'port', 'minTtlMs', 'maxTtlMs', 'timeoutMs', 'random']);

/**
 * A registry on DNS: SRV records (RFC 2782) or A/AAAA records, refreshed on their TTL.
 *
 * - `resolve()` asks the servers each time it is called (the mesh's cache calls it once per service).
 * - `watch()` looks again when the answer's TTL runs out (clamped to [minTtlMs, maxTtlMs]) and pushes the
 *   list only when it changed; so with the mesh, the records' real TTL drives refresh, not `discovery.refreshMs`.
 * - SRV: the lowest priority with a target that has an address is the endpoint list; higher priorities are
 *   failover. An SRV weight becomes the endpoint weight, split evenly among the target's addresses; weight 0
 *   gets 1/1000 of its priority's total (all 0: equal weights). The list comes in RFC 2782 order.
 * - NXDOMAIN, NODATA and a lone "." target reject with `NoEndpointsError`; SERVFAIL, REFUSED, a timeout or a
 *   refused connection with `DiscoveryError`. Either way the mesh keeps serving the last good list. Messages
 *   name the DNS name and the servers.
 * - `close()` (which `mesh.close()` calls) stops its watches and lookups for good: give each mesh its own.
 *
 * @example
 * const mesh = createMesh({ registry: dnsRegistry({ servers: ['127.0.0.1:8600'], nameFor: (s) => `_http._tcp.${s}.service.consul` }) });
 */
export function dnsRegistry(options: DnsRegistryOptions = {}): Registry {
  const config = validate(options);
  let closed = false;
  const loops = new Set<RefreshLoop>();
  /** Lookups of resolve() in flight, with their service, for close() to cancel. */
  const inflight = new Map<AbortController, string>();
  /** The last answer of resolve() per service, so that a watch starting next waits for its TTL, not at once. */
  const recent = new Map<string, { readonly key: string; readonly expiresAt: number }>();
  const now = (): number => performance.now();

  const lookup = async (service: string, signal: AbortSignal): Promise<DnsAnswer> => {
    const answer = await lookupService(config, service, signal);
    recent.delete(service);
    recent.set(service, { key: answer.key, expiresAt: now() + answer.ttlMs });
    if (recent.size > RECENT_LIMIT) recent.delete(recent.keys().next().value!);
    return answer;
  };

  const errorDelayMs = (failures: number): number => {
    const backoff = Math.min(ERROR_RETRY_MAX_MS, ERROR_RETRY_BASE_MS * 2 ** Math.min(failures - 1, 30));
    return Math.min(config.maxTtlMs, Math.max(config.minTtlMs, backoff));
  };

  return {
    async resolve(service: string, ctx: { signal: AbortSignal }): Promise<readonly Endpoint[]> {
      if (closed) throw new DiscoveryError(service, 'the DNS registry is closed');
      // Our own controller, so that close() can cancel the lookup; it follows the caller's signal.
      const controller = new AbortController();
      const signal = ctx?.signal;
      const follow = (): void => controller.abort(signal?.reason);
      if (signal?.aborted) throw signal.reason;
      signal?.addEventListener('abort', follow, { once: true });
      inflight.set(controller, service);
      try {
        return (await lookup(service, controller.signal)).endpoints;
      } finally {
        signal?.removeEventListener('abort', follow);
        inflight.delete(controller);
      }
    },

    watch(service, onUpdate, onError) {
      if (closed) return () => {};
      const loop = new RefreshLoop({
        lookup: (signal) => lookup(service, signal),
        onUpdate,
        onError,
        baseline: recent.get(service),
        errorDelayMs,
        now,
      });
      loops.add(loop);
      return () => {
        loop.stop();
        loops.delete(loop);
      };
    },

    /** Stops every watch and cancels lookups in flight; later calls reject. */
    close() {
      if (closed) return;
      closed = true;
      for (const loop of loops) loop.stop();
      loops.clear();
      for (const [controller, service] of inflight) controller.abort(new DiscoveryError(service, 'the DNS registry was closed'));
      inflight.clear();
      recent.clear();
    },
  };
}

function validate(options: DnsRegistryOptions): LookupConfig {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError('dnsRegistry(options): options must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new TypeError(`dnsRegistry: unknown option ${JSON.stringify(key)} (known: ${[...KNOWN].join(', ')})`);
  }
  const { servers, nameFor, port, random } = options;
  const mode = options.mode ?? DNS_DEFAULTS.mode;
  if (mode !== 'srv' && mode !== 'a' && mode !== 'auto') throw new TypeError(`dnsRegistry: mode must be 'srv', 'a' or 'auto'`);
  if (servers !== undefined) {
    if (!Array.isArray(servers) || servers.length === 0) {
      throw new TypeError(`dnsRegistry: servers must be a non-empty array of addresses, e.g. ['127.0.0.1:5353']`);
    }
    servers.forEach((server: unknown, i) => {
      try {
        if (typeof server !== 'string' || server === '') throw new TypeError('not a string');
        new Resolver().setServers([server]);
      } catch {
        throw new TypeError(
          `dnsRegistry: servers[${i}] must be an IP address with an optional port ('127.0.0.1:5353', '[::1]:53'), got ${JSON.stringify(server)}`,
        );
      }
    });
  }
  if (nameFor !== undefined && typeof nameFor !== 'function') throw new TypeError('dnsRegistry: nameFor must be a function');
  if (random !== undefined && typeof random !== 'function') throw new TypeError('dnsRegistry: random must be a function returning numbers in [0, 1)');
  if (port !== undefined || mode !== 'srv') {
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
      throw new TypeError(`dnsRegistry: port must be an integer from 1 to 65535${mode === 'srv' ? '' : ` (required when mode is '${mode}')`}`);
    }
  }
  const minTtlMs = milliseconds(options.minTtlMs, DNS_DEFAULTS.minTtlMs, 'minTtlMs');
  const maxTtlMs = milliseconds(options.maxTtlMs, Math.max(DNS_DEFAULTS.maxTtlMs, minTtlMs), 'maxTtlMs');
  if (maxTtlMs < minTtlMs) throw new TypeError('dnsRegistry: maxTtlMs must be >= minTtlMs');
  const timeoutMs = milliseconds(options.timeoutMs, DNS_DEFAULTS.timeoutMs, 'timeoutMs');
  return {
    servers: servers === undefined ? undefined : Object.freeze([...servers]),
    mode,
    nameFor,
    port,
    minTtlMs,
    maxTtlMs,
    timeoutMs,
    random: random ?? Math.random,
  };
}

function milliseconds(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1 || value > MAX_TIMER_MS) {
    throw new TypeError(`dnsRegistry: ${name} must be a number of milliseconds from 1 to ${MAX_TIMER_MS}`);
  }
  return value;
}
