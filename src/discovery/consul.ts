import { toEndpoint, type Endpoint } from '../endpoint/endpoint.js';
import { blockingLoopSettings, optionText, type BlockingLoopOptions } from './consul-options.js';
import { DiscoveryError, InvalidServiceNameError } from '../errors.js';
import { serviceNameProblem } from '../util/service-name.js';
import { CONNECTION_KEYS, consulConnection, goDuration, type ConsulConnectionOptions } from './consul-config.js';
import { consulFetch, ConsulError, redact } from './consul-http.js';
import { WatchHub, type BlockingAnswer, type LoopState } from './consul-watch.js';
import type { Registry } from './registry.js';

/** Options of {@link consulRegistry}. Connection fields fall back to `CONSUL_HTTP_*`. */
export interface ConsulRegistryOptions extends ConsulConnectionOptions, BlockingLoopOptions {
  /** Datacenter to query. Default: the agent's. @example 'dc2' */
  dc?: string | undefined;
  /** Only instances carrying this tag (all of these tags). @example ['v2', 'http'] */
  tag?: string | readonly string[] | undefined;
  /**
   * Only instances whose every check, node checks included, is passing (`?passing`). Default true. With false,
   * instances in `warning` are kept too (at `Weights.Warning`); critical ones are always left out.
   * @example false
   */
  passingOnly?: boolean | undefined;
  /** A Consul filter expression, applied by Consul. @example 'Service.Meta.version == "2"' */
  filter?: string | undefined;
  /** Watch with blocking queries (push). Default true; false polls on the mesh's `discovery.refreshMs`. */
  watch?: boolean | undefined;
  /**
   * A meta key holding the instance's zone (looked up in Service.Meta, then Node.Meta). Default: the zone is
   * `Node.Datacenter`. @example 'availability-zone'
   */
  zoneMetaKey?: string | undefined;
}

/** A Consul registry (`watch` is absent with `watch: false`); `watchState` is for tests and debugging. */
export interface ConsulRegistry extends Registry {
  close(): void;
  /** Where the blocking loop of `service` is, if one runs. */
  watchState(service: string): LoopState | undefined;
}

const KNOWN = new Set<string>([...CONNECTION_KEYS, 'dc', 'tag', 'passingOnly', 'filter', 'watch', 'waitMs', 'minIntervalMs', 'backoff', 'zoneMetaKey']);
const AT = 'consulRegistry';
/** A stock agent refuses HTTP connections past this many per client IP (`limits.http_max_conns_per_client`). */
const AGENT_CONNECTIONS_PER_CLIENT = 200;

/**
 * Endpoints from Consul's health API, `GET /v1/health/service/:name` (passing instances only by default),
 * watched with blocking queries: one long poll per watched service, shared by every mesh using this registry.
 *
 * - `Service.Address`, else `Node.Address`; `Service.Port`; id `Service.ID@Node.Node`; tags and meta;
 *   zone `Node.Datacenter` (or the `zoneMetaKey` meta); weight `Weights.Passing`, or `Weights.Warning` when the
 *   instance's worst check is warning. Instances without a usable address or port, or with weight 0, are left out.
 * - A failure (network, timeout, 403, 500, malformed JSON, wrong shape) rejects `resolve()` / reaches the
 *   watchers as a `DiscoveryError` quoting the status and Consul's text; the mesh keeps the last good list.
 *
 * @example
 * const mesh = createMesh({ registry: consulRegistry({ url: 'http://127.0.0.1:8500', tag: 'v2' }) });
 */
export function consulRegistry(options: ConsulRegistryOptions = {}): ConsulRegistry {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`${AT}(options) must be an object`);
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new TypeError(`${AT}.${key} is not a known option (known: ${[...KNOWN].join(', ')})`);
  }
  const conn = consulConnection(options, AT);
  const settings = validate(options);
  const query = (index: bigint | undefined): URLSearchParams => {
    const q = new URLSearchParams(settings.fixedQuery);
    if (index !== undefined) {
      q.set('index', index.toString());
      q.set('wait', goDuration(settings.waitMs));
    }
    return q;
  };
  const get = async (service: string, index: bigint | undefined, signal: AbortSignal): Promise<BlockingAnswer<readonly Endpoint[]>> => {
    const problem = serviceNameProblem(service);
    if (problem) throw new InvalidServiceNameError(String(service), problem);
    const path = `/v1/health/service/${encodeURIComponent(service)}`;
    // A blocking query may be held for wait + wait/16 (Consul's jitter); the margin covers the rest.
    const timeoutMs = index === undefined ? conn.timeoutMs : settings.waitMs + settings.waitMs / 16 + conn.timeoutMs;
    let text: string;
    let headers: Headers;
    try {
      ({ text, headers } = await consulFetch(conn, { method: 'GET', path, query: query(index), signal, timeoutMs, service }));
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new DiscoveryError(service, error instanceof Error ? error.message : String(error), { cause: error });
    }
    return { index: parseIndex(headers.get('X-Consul-Index')), value: parseHealth(service, path, text, settings, conn.token) };
  };

  const hub = new WatchHub((service) => (index, signal) => get(service, index, signal), {
    minIntervalMs: settings.minIntervalMs,
    burst: 2,
    backoffInitialMs: settings.backoffInitialMs,
    backoffMaxMs: settings.backoffMaxMs,
    now: () => performance.now(),
    random: Math.random,
  });

  const registry: ConsulRegistry = {
    async resolve(service, { signal }) {
      const answer = await get(service, undefined, signal);
      if (settings.watch) hub.seed(service, answer.index, answer.value);
      return answer.value;
    },
    close() {
      hub.close();
    },
    watchState: (service) => hub.stateOf(service),
  };
  let warned = false; // about the agent's connection limit, once per registry
  // Without watch the registry is pull-only: the mesh then refreshes on its TTL.
  if (settings.watch) {
    registry.watch = (service, onUpdate, onError) => {
      const problem = serviceNameProblem(service);
      if (problem) throw new InvalidServiceNameError(String(service), problem);
      if (typeof onUpdate !== 'function' || typeof onError !== 'function') {
        throw new TypeError(`${AT}.watch(service, onUpdate, onError): onUpdate and onError must be functions`);
      }
      const unsubscribe = hub.subscribe(service, onUpdate, onError);
      // Each watched service holds one blocking query, so one connection, open: past the agent's limit, new
      // connections are refused and watches and reads start failing. Said once, where operators look.
      if (!warned && hub.size >= AGENT_CONNECTIONS_PER_CLIENT) {
        warned = true;
        process.emitWarning(
          `${AT}: ${hub.size} services are watched at once, each holding a blocking query (one HTTP connection) open; ` +
            `a stock Consul agent refuses more than ${AGENT_CONNECTIONS_PER_CLIENT} connections per client ` +
            '(limits.http_max_conns_per_client), so raise that limit on the agent, or watch fewer services',
          { code: 'PROXYLESS_CONSUL_CONNECTION_LIMIT' },
        );
      }
      return unsubscribe;
    };
  }
  return registry;
}

interface Settings {
  readonly fixedQuery: URLSearchParams;
  readonly passingOnly: boolean;
  readonly watch: boolean;
  readonly waitMs: number;
  readonly minIntervalMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly zoneMetaKey: string | undefined;
}

function validate(o: ConsulRegistryOptions): Settings {
  const fixedQuery = new URLSearchParams();
  const passingOnly = bool(o.passingOnly, 'passingOnly', true);
  if (passingOnly) fixedQuery.set('passing', 'true');
  if (o.dc !== undefined) fixedQuery.set('dc', optionText(o.dc, `${AT}.dc`));
  const tags = o.tag === undefined ? [] : typeof o.tag === 'string' ? [o.tag] : o.tag;
  if (!Array.isArray(tags)) throw new TypeError(`${AT}.tag must be a string or an array of strings`);
  tags.forEach((t, i) => fixedQuery.append('tag', optionText(t, `${AT}.tag[${i}]`)));
  if (o.filter !== undefined) fixedQuery.set('filter', optionText(o.filter, `${AT}.filter`));
  const loop = blockingLoopSettings(o, AT, o.fetch !== undefined);
  const zoneMetaKey = o.zoneMetaKey === undefined ? undefined : optionText(o.zoneMetaKey, `${AT}.zoneMetaKey`);
  return { fixedQuery, passingOnly, watch: bool(o.watch, 'watch', true), ...loop, zoneMetaKey };
}

function bool(v: unknown, at: string, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new TypeError(`${AT}.${at} must be a boolean`);
  return v;
}

/** `X-Consul-Index`; missing or unparsable reads as 0, which the loop's sanity check turns into 1. */
function parseIndex(raw: string | null): bigint {
  return raw !== null && /^\d{1,20}$/.test(raw.trim()) ? BigInt(raw.trim()) : 0n;
}

type Json = Record<string, unknown>;
/** Null-prototype: a Status of 'constructor' or 'toString' is unknown (critical), not a function. */
const RANK: Readonly<Record<string, number>> = Object.assign(Object.create(null) as Record<string, number>, { passing: 0, warning: 1, critical: 2 });

/** The health entries of `service` as endpoints; a body of the wrong shape throws a DiscoveryError naming the field. */
function parseHealth(service: string, path: string, body: string, s: Settings, token: string | undefined): readonly Endpoint[] {
  const bad = (problem: string): DiscoveryError => {
    const why = redact(problem, token); // a garbage body may quote anything, even the token
    return new DiscoveryError(service, `Consul's answer to GET ${path} is not a list of health entries: ${why}`, {
      cause: new ConsulError(service, why, { status: 200 }),
    });
  };
  let entries: unknown;
  try {
    entries = JSON.parse(body);
  } catch {
    // Neither the body nor the parser's message (V8 quotes the text around the fault) is shown: either may hold
    // the token in part, where no redaction can find it.
    throw bad(`Consul answered with invalid JSON (${Buffer.byteLength(body)} bytes)`);
  }
  if (!Array.isArray(entries)) throw bad('expected a JSON array');
  const out: Endpoint[] = [];
  entries.forEach((entry: unknown, i) => {
    const at = `[${i}]`;
    if (!isObject(entry) || !isObject(entry.Node) || !isObject(entry.Service)) throw bad(`${at} needs Node and Service objects`);
    const node = entry.Node;
    const svc = entry.Service;
    if (typeof node.Node !== 'string' || typeof node.Address !== 'string') throw bad(`${at}.Node needs Node and Address strings`);
    if (typeof svc.ID !== 'string' || svc.ID === '') throw bad(`${at}.Service.ID must be a non-empty string`);
    if (!Number.isInteger(svc.Port)) throw bad(`${at}.Service.Port must be an integer`);
    if (svc.Address !== undefined && svc.Address !== null && typeof svc.Address !== 'string') throw bad(`${at}.Service.Address must be a string`);
    const tags = svc.Tags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw bad(`${at}.Service.Tags must be strings`);
    const meta = stringRecord(svc.Meta);
    if (meta === undefined) throw bad(`${at}.Service.Meta must map strings to strings`);
    const checks = entry.Checks ?? [];
    if (!Array.isArray(checks) || !checks.every((c) => isObject(c) && typeof c.Status === 'string')) {
      throw bad(`${at}.Checks must be check objects with a Status`);
    }
    // The worst status over every check, node checks (serfHealth) included; an unknown one counts as critical.
    const worst = Math.max(0, ...checks.map((c) => RANK[(c as Json).Status as string] ?? 2));
    if (worst === 2 || (s.passingOnly && worst > 0)) return;
    const weight = weightOf(svc.Weights, worst === 0 ? 'Passing' : 'Warning');
    if (weight === undefined) throw bad(`${at}.Service.Weights must hold numbers`);
    const host = (svc.Address as string | undefined) || node.Address;
    const port = svc.Port as number;
    if (weight <= 0 || host === '' || port < 1 || port > 65535) return; // not routable: leave it out
    const zone = zoneOf(node, meta, s.zoneMetaKey);
    try {
      out.push(toEndpoint({ id: `${svc.ID}@${node.Node}`, host, port, weight, zone, tags, meta }, `${service}${at}`));
    } catch {
      // an address that is not a host name or IP cannot be dialled: leave it out
    }
  });
  return Object.freeze(out);
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function stringRecord(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return {};
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string')) return undefined;
  return v as Record<string, string>;
}

/** Consul's default Weights are { Passing: 1, Warning: 1 }; an absent block (old agents) means that. */
function weightOf(weights: unknown, which: 'Passing' | 'Warning'): number | undefined {
  if (weights === undefined || weights === null) return 1;
  if (!isObject(weights)) return undefined;
  const w = weights[which];
  if (w === undefined) return 1;
  return typeof w === 'number' && Number.isFinite(w) ? w : undefined;
}

function zoneOf(node: Json, meta: Record<string, string>, key: string | undefined): string | undefined {
  if (key !== undefined) {
    // Own keys only: a zoneMetaKey of 'constructor' must not find Object.prototype.constructor.
    const own = (record: unknown): string => (isObject(record) && Object.hasOwn(record, key) && typeof record[key] === 'string' ? record[key] : '');
    const z = own(meta) || own(node.Meta);
    if (z) return z;
  }
  return typeof node.Datacenter === 'string' && node.Datacenter !== '' ? node.Datacenter : undefined;
}
