import { toEndpoint, authority, type Endpoint } from '../endpoint/endpoint.js';
import { DiscoveryError, InvalidServiceNameError, NoEndpointsError } from '../errors.js';
import { DnsQuery, lookupError, type Failure } from './dns-query.js';
import type { Rng } from '../util/random.js';
import { serviceNameProblem } from '../util/service-name.js';
import { effectiveWeights, isDecidedlyUnavailable, isRootTarget, orderSrv, priorityGroups, type SrvRecord } from './srv.js';

/** Which records name a service: see `DnsRegistryOptions.mode`. */
export type DnsMode = 'srv' | 'a' | 'auto';

/** What one lookup needs, fixed by `dnsRegistry` from its validated options. */
export interface LookupConfig {
  readonly servers: readonly string[] | undefined;
  readonly mode: DnsMode;
  readonly nameFor: ((service: string, type: 'srv' | 'a') => string) | undefined;
  readonly port: number | undefined;
  readonly minTtlMs: number;
  readonly maxTtlMs: number;
  readonly timeoutMs: number;
  readonly random: Rng;
}

/** The result of one lookup. */
export interface DnsAnswer {
  /** In RFC 2782 order (lowest priority, then weighted random); balancers use the weights, not the order. */
  readonly endpoints: readonly Endpoint[];
  /** When to look again: the smallest TTL of the addresses used, clamped to [minTtlMs, maxTtlMs]. */
  readonly ttlMs: number;
  /** The endpoints (id, weight, target) in a canonical order: two answers with equal keys list the same endpoints. */
  readonly key: string;
}

/**
 * When part of an answer failed for a reason that may pass (a SERVFAIL or a timeout on one target, or on the
 * AAAA query while A answered), look again within this time, even if the TTLs are longer.
 */
export const PARTIAL_REFRESH_MS = 5_000;

/** How many failed targets an error message lists. */
const LISTED_FAILURES = 5;

/** Resolves `service` once: validates the name, queries, orders SRV records, resolves targets, builds endpoints. */
export async function lookupService(config: LookupConfig, service: string, signal: AbortSignal): Promise<DnsAnswer> {
  const problem = serviceNameProblem(service);
  if (problem) throw new InvalidServiceNameError(service, problem);
  const query = new DnsQuery(config.servers, config.timeoutMs, signal);
  try {
    if (config.mode === 'a') return await viaAddresses(config, query, service, dnsName(config, service, 'a'), '');
    return await viaSrv(config, query, service, dnsName(config, service, 'srv'));
  } finally {
    query.finish();
  }
}

async function viaSrv(config: LookupConfig, query: DnsQuery, service: string, srvName: string): Promise<DnsAnswer> {
  const { servers } = query;
  const where = `DNS SRV query for ${srvName} to ${servers}`;
  const answer = await query.run((r) => r.resolveSrv(srvName), 'SRV');
  let records: readonly SrvRecord[] = answer.ok ? answer.value : [];
  const absent: Failure | undefined = !answer.ok
    ? answer.failure
    : records.length === 0
      ? { absent: true, text: 'no SRV record (NODATA)', cause: undefined }
      : undefined;
  if (absent) {
    // 'auto' falls back to A/AAAA only when the SRV name or record is absent, never after a failure.
    if (absent.absent && config.mode === 'auto') {
      return viaAddresses(config, query, service, dnsName(config, service, 'a'), `${where}: ${absent.text}; then `);
    }
    throw lookupError(service, `${where}: ${absent.text}`, [absent]);
  }
  if (isDecidedlyUnavailable(records)) {
    throw new NoEndpointsError(service, `${where}: the only target is "." (RFC 2782: decidedly not available)`);
  }
  records = records.filter((r) => !isRootTarget(r.name) && r.port >= 1);
  if (records.length === 0) throw new NoEndpointsError(service, `${where}: no record has a target and a port`);

  // Priority groups in order: the first group in which any target has an address is the endpoint list; the
  // groups after it are failover, used only when every target before them failed or is absent. A failover
  // because of a failure that may pass (SERVFAIL, timeout) is looked at again soon (PARTIAL_REFRESH_MS).
  const failed: { target: string; failure: Failure }[] = [];
  for (const group of priorityGroups(orderSrv(records, config.random))) {
    if (query.timedOut) break;
    const targets = [...new Set(group.map((r) => r.name))];
    const results = await Promise.all(targets.map((t) => addressesOf(query, t)));
    const byTarget = new Map(targets.map((t, i) => [t, results[i]!]));
    const built = build(config, group, byTarget, failed.some((f) => !f.failure.absent));
    for (const [target, result] of byTarget) if (result.failure) failed.push({ target, failure: result.failure });
    if (built) return built;
  }
  if (query.timedOut && failed.length === 0) {
    const failure = query.deadlineFailure();
    throw lookupError(service, `${where}: ${failure.text}`, [failure]);
  }
  const n = new Set(records.map((r) => r.name)).size;
  const listed = failed.slice(0, LISTED_FAILURES).map((f) => `${f.target}: ${f.failure.text}`);
  if (failed.length > LISTED_FAILURES) listed.push(`and ${failed.length - LISTED_FAILURES} more`);
  const detail = `${where}: none of its ${n} target${n === 1 ? '' : 's'} has an address (${listed.join('; ')})`;
  throw lookupError(service, detail, failed.map((f) => f.failure));
}

async function viaAddresses(config: LookupConfig, query: DnsQuery, service: string, name: string, before: string): Promise<DnsAnswer> {
  const result = await addressesOf(query, name);
  const port = config.port!; // validated: 'a' and 'auto' require it
  // One pseudo-record whose weight is the address count, so that each address gets weight 1.
  const only: SrvRecord = { name, port, priority: 0, weight: Math.max(1, result.addresses.length) };
  const built = build(config, [only], new Map([[name, result]]), false);
  if (built) return built;
  const failure = result.failure!;
  throw lookupError(service, `${before}DNS A/AAAA query for ${name} to ${query.servers}: ${failure.text}`, [failure]);
}

interface Address {
  readonly address: string;
  readonly ttl: number;
}

/** A target's A and AAAA answers. `failure` when it has no address; `flaky` when a family failed, but not for absence. */
interface TargetResult {
  readonly addresses: readonly Address[];
  readonly failure: Failure | undefined;
  readonly flaky: boolean;
}

async function addressesOf(query: DnsQuery, name: string): Promise<TargetResult> {
  const [v4, v6] = await Promise.all([
    query.run((r) => r.resolve4(name, { ttl: true }), 'A'),
    query.run((r) => r.resolve6(name, { ttl: true }), 'AAAA'),
  ]);
  const addresses = [...(v4.ok ? v4.value : []), ...(v6.ok ? v6.value : [])];
  const failures = [v4.ok ? undefined : v4.failure, v6.ok ? undefined : v6.failure].filter((f) => f !== undefined);
  const flaky = failures.some((f) => !f.absent);
  if (addresses.length > 0) return { addresses, failure: undefined, flaky };
  const [a, aaaa] = failures as [Failure, Failure];
  const text =
    a.text === aaaa.text ? a.text : a.absent && aaaa.absent && a.text.endsWith('(NODATA)') && aaaa.text.endsWith('(NODATA)')
      ? 'no A or AAAA record (NODATA)'
      : `A: ${a.text}, AAAA: ${aaaa.text}`;
  const hard = failures.find((f) => !f.absent);
  return { addresses, failure: { absent: hard === undefined, text, cause: (hard ?? a).cause }, flaky };
}

/**
 * The endpoints of one priority group, or undefined when no target in it has an address. `failedBefore`: a
 * lower priority failed for a reason that may pass (so this answer's TTL is kept short).
 * Weights: a record's effective weight (srv.ts) is split evenly among its target's addresses, and endpoints
 * that two records share (same address and port) add up. Sums run in a canonical order, so the same records
 * always give the same weights, whatever the random order.
 */
function build(
  config: LookupConfig,
  group: readonly SrvRecord[],
  byTarget: ReadonlyMap<string, TargetResult>,
  failedBefore: boolean,
): DnsAnswer | undefined {
  const weights = effectiveWeights(group);
  const records = group.map((record, i) => ({ record, weight: weights[i]!, result: byTarget.get(record.name)! }));
  const canonical = [...records].sort((a, b) => compare(a.record, b.record));
  const merged = new Map<string, { host: string; port: number; weight: number; target: string }>();
  let ttl = Infinity;
  let flaky = failedBefore;
  for (const { record, weight, result } of canonical) {
    flaky ||= result.flaky || (result.failure !== undefined && !result.failure.absent);
    if (result.addresses.length === 0) continue;
    const share = weight / result.addresses.length;
    for (const { address, ttl: seconds } of [...result.addresses].sort((a, b) => (a.address < b.address ? -1 : 1))) {
      ttl = Math.min(ttl, seconds * 1000);
      const id = authority(address, record.port);
      const m = merged.get(id);
      if (m) m.weight += share; // `target` stays the first in canonical order
      else merged.set(id, { host: address, port: record.port, weight: share, target: record.name });
    }
  }
  if (merged.size === 0) return undefined;
  const endpoints: Endpoint[] = [];
  const seen = new Set<string>();
  for (const { record, result } of records) {
    for (const { address } of result.addresses) {
      const id = authority(address, record.port);
      if (seen.has(id)) continue;
      seen.add(id);
      const m = merged.get(id)!;
      endpoints.push(toEndpoint({ id, host: m.host, port: m.port, weight: m.weight, meta: { target: m.target } }, `DNS answer ${id}`));
    }
  }
  if (flaky) ttl = Math.min(ttl, PARTIAL_REFRESH_MS);
  const key = [...merged].map(([id, m]) => `${id} ${m.weight} ${m.target}`).sort().join('\n');
  return { endpoints: Object.freeze(endpoints), ttlMs: clamp(ttl, config.minTtlMs, config.maxTtlMs), key };
}

function compare(a: SrvRecord, b: SrvRecord): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.port - b.port || a.weight - b.weight;
}

function clamp(ms: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, ms));
}

/** The DNS name to query for `service`: `nameFor`'s, or `_http._tcp.<service>` (SRV) and `<service>` (A/AAAA). */
function dnsName(config: LookupConfig, service: string, type: 'srv' | 'a'): string {
  if (config.nameFor === undefined) {
    const name = type === 'srv' ? `_http._tcp.${service}` : service;
    const problem = dnsNameProblem(name);
    if (problem) throw new InvalidServiceNameError(service, `${name} is not a DNS name: ${problem}`);
    return name;
  }
  let name: unknown;
  try {
    name = config.nameFor(service, type);
  } catch (cause) {
    throw new DiscoveryError(service, `nameFor('${service}', '${type}') threw: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  const problem = dnsNameProblem(name);
  if (problem) throw new DiscoveryError(service, `nameFor('${service}', '${type}') returned ${JSON.stringify(name)}: ${problem}`);
  return name as string;
}

/** Why `name` is not a DNS name we may query (RFC 1035 lengths; letters, digits, '-' and '_'), or undefined. */
export function dnsNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'it must be a string';
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  if (bare.length === 0) return 'it is empty';
  if (bare.length > 253) return 'it is longer than 253 characters';
  for (const label of bare.split('.')) {
    if (label.length === 0) return 'it has an empty label';
    if (label.length > 63) return `its label ${label.slice(0, 16)}... is longer than 63 characters`;
    if (!/^[A-Za-z0-9_-]+$/.test(label)) return 'only letters, digits, "-" and "_" may form a label';
  }
  return undefined;
}
