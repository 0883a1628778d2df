import { goDuration, type ConsulConnection } from '../discovery/consul-config.js';
import { consulFetch, ConsulError, redact } from '../discovery/consul-http.js';
import type { BlockingQuery } from '../discovery/consul-watch.js';
import { isObject } from './consul-chain-json.js';
import { mapDiscoveryChain, type ChainMapping, type ConsulSubset } from './consul-chain.js';

/** What both queries share: the datacenter and the blocking wait. */
export interface QuerySettings {
  readonly dc: string | undefined;
  readonly waitMs: number;
}

/**
 * `GET /v1/discovery-chain/:service`, mapped. A body that is not JSON, or not a compiled chain, fails the query
 * (so the loop backs off and starts again from index 0, and nothing is pushed), as a malformed health answer
 * fails consulRegistry's.
 */
export function chainQuery(conn: ConsulConnection, s: QuerySettings, service: string): BlockingQuery<ChainMapping> {
  const path = `/v1/discovery-chain/${encodeURIComponent(service)}`;
  return async (index, signal) => {
    const { text, index: at } = await blockingGet(conn, s, path, new URLSearchParams(), index, signal, service);
    const body = parse(text, service, path);
    try {
      return { index: at, value: mapDiscoveryChain(service, body) };
    } catch (error) {
      const why = redact(error instanceof Error ? error.message : String(error), conn.token);
      throw new ConsulError(service, `${why} (Consul's answer to GET ${path})`, { status: 200 });
    }
  };
}

/**
 * The ids of the instances of `service` in a resolver subset: `GET /v1/health/service/:service?filter=` (plus
 * `passing` for `OnlyPassing`), so that Consul evaluates the go-bexpr filter itself. An id is
 * `Service.ID@Node.Node`, the endpoint id consulRegistry gives (src/discovery/consul.ts parseHealth), so the
 * mesh can match the subset against the endpoints it discovers. Sorted, without repeats: comparable as JSON.
 */
export function subsetQuery(conn: ConsulConnection, s: QuerySettings, service: string, subset: ConsulSubset): BlockingQuery<readonly string[]> {
  const path = `/v1/health/service/${encodeURIComponent(service)}`;
  const fixed = new URLSearchParams({ filter: subset.filter });
  if (subset.onlyPassing) fixed.set('passing', 'true');
  return async (index, signal) => {
    const { text, index: at } = await blockingGet(conn, s, path, fixed, index, signal, service);
    const entries = parse(text, service, path);
    const bad = (problem: string): ConsulError => new ConsulError(service, `Consul's answer to GET ${path} is not a list of health entries: ${problem}`, { status: 200 });
    if (!Array.isArray(entries)) throw bad('expected a JSON array');
    const ids = new Set<string>();
    entries.forEach((entry: unknown, i) => {
      const node = isObject(entry) ? entry.Node : undefined;
      const svc = isObject(entry) ? entry.Service : undefined;
      if (!isObject(node) || typeof node.Node !== 'string') throw bad(`[${i}].Node.Node must be a string`);
      if (!isObject(svc) || typeof svc.ID !== 'string' || svc.ID === '') throw bad(`[${i}].Service.ID must be a non-empty string`);
      ids.add(`${svc.ID}@${node.Node}`);
    });
    return { index: at, value: [...ids].sort() };
  };
}

/** One GET, blocking from `index` when it is past 0, as consulRegistry asks (the same timeout margin). */
async function blockingGet(
  conn: ConsulConnection,
  s: QuerySettings,
  path: string,
  fixed: URLSearchParams,
  index: bigint,
  signal: AbortSignal,
  service: string,
): Promise<{ text: string; index: bigint }> {
  const query = new URLSearchParams(fixed);
  if (s.dc !== undefined) query.set('dc', s.dc);
  const blocking = index > 0n;
  if (blocking) {
    query.set('index', index.toString());
    query.set('wait', goDuration(s.waitMs));
  }
  // A blocking query may be held for wait + wait/16 (Consul's jitter); the connection timeout covers the rest.
  const timeoutMs = blocking ? s.waitMs + s.waitMs / 16 + conn.timeoutMs : conn.timeoutMs;
  const { text, headers } = await consulFetch(conn, { method: 'GET', path, query, signal, timeoutMs, service });
  return { text, index: parseIndex(headers.get('X-Consul-Index')) };
}

/** `X-Consul-Index`; missing or unparsable reads as 0, which the loop's sanity check turns into 1 (as in consul.ts). */
function parseIndex(raw: string | null): bigint {
  return raw !== null && /^\d{1,20}$/.test(raw.trim()) ? BigInt(raw.trim()) : 0n;
}

/** JSON, or a ConsulError that shows neither the body nor the parser's message (either may hold part of a token). */
function parse(text: string, service: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ConsulError(service, `Consul's answer to GET ${path} is not valid JSON (${Buffer.byteLength(text)} bytes)`, { status: 200 });
  }
}
