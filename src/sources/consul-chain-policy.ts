import type { BalancerName } from '../balancer/create.js';
import { DEFAULT_RING_HASH } from '../balancer/ring-hash.js';
import type { RetryPolicy, RingHashPolicy } from '../options.js';
import { HEADER_NAME } from '../validate.js';
import { optArray, optBool, optNumber, optObject, optString, type Json } from './consul-chain-json.js';

/** The balancing part of a policy that a chain node's `LoadBalancer` gives. */
export interface BalancerSettings {
  balancer?: BalancerName;
  hashHeader?: string;
  ringHash?: RingHashPolicy;
}

/** Envoy's policy names (agent/structs/config_entry_discoverychain.go LBPolicy*) and ours. */
const POLICIES: Readonly<Record<string, BalancerName>> = Object.assign(Object.create(null) as Record<string, BalancerName>, {
  least_request: 'least-request',
  round_robin: 'round-robin',
  random: 'random',
  ring_hash: 'ring-hash',
  maglev: 'maglev',
});

/**
 * A node's `LoadBalancer` (`{ Policy, RingHashConfig, LeastRequestConfig, HashPolicies }`) as policy fields:
 * - `Policy` → `balancer` (`''`, Consul's "not set", leaves ours unset);
 * - for `ring_hash` and `maglev`, the first `HashPolicies` entry with `Field: "header"` → `hashHeader`
 *   (lower-cased). A hash on a cookie, a query parameter or the source IP has no equivalent, nor does combining
 *   several policies (Envoy hashes them together): warned; a call without a key then gets a random one, as Envoy
 *   picks a random host when no policy yields a hash;
 * - `RingHashConfig` → `ringHash.minRingSize` / `maxRingSize` (0 is Consul's "not set"), within our bounds;
 * - `LeastRequestConfig.ChoiceCount` has no equivalent (our least-request compares two) and is ignored.
 * Warnings are neutral sentences, so that the same LoadBalancer met twice on a walk says it once.
 */
export function balancerOf(lb: Json | undefined, warnings: string[]): BalancerSettings {
  if (lb === undefined) return {};
  const out: BalancerSettings = {};
  const name = optString(lb.Policy, 'LoadBalancer.Policy');
  if (name !== '') {
    const ours = POLICIES[name];
    if (ours === undefined) warnings.push(`LoadBalancer.Policy ${name} is unknown; the mesh's default balancer is used`);
    else out.balancer = ours;
  }
  if (name !== 'ring_hash' && name !== 'maglev') return out;

  const policies = optArray(lb.HashPolicies, 'LoadBalancer.HashPolicies');
  policies.forEach((raw, i) => {
    const at = `LoadBalancer.HashPolicies[${i}]`;
    const p = optObject(raw, at) ?? {};
    const field = optString(p.Field, `${at}.Field`);
    const value = optString(p.FieldValue, `${at}.FieldValue`).toLowerCase();
    if (field === 'header' && HEADER_NAME.test(value) && out.hashHeader === undefined) {
      out.hashHeader = value;
      return;
    }
    const what = optBool(p.SourceIP, `${at}.SourceIP`) ? 'the source IP' : field === 'header' ? 'a second header' : `a ${field || 'missing'} field`;
    warnings.push(`LoadBalancer hashes on ${what}, which has no equivalent (only one request header is hashed); ignored`);
  });

  const ring = optObject(lb.RingHashConfig, 'LoadBalancer.RingHashConfig');
  if (ring !== undefined && name === 'ring_hash') {
    const cap = DEFAULT_RING_HASH.maxRingSize;
    const min = optNumber(ring.MinimumRingSize, 'LoadBalancer.RingHashConfig.MinimumRingSize');
    const max = optNumber(ring.MaximumRingSize, 'LoadBalancer.RingHashConfig.MaximumRingSize');
    const ringHash: RingHashPolicy = {};
    if (min > 0) ringHash.minRingSize = Math.min(cap, Math.max(1, Math.floor(min)));
    if (max > 0) ringHash.maxRingSize = Math.min(cap, Math.max(1, Math.floor(max)));
    if ((ringHash.minRingSize ?? DEFAULT_RING_HASH.minRingSize) > (ringHash.maxRingSize ?? cap)) {
      warnings.push('LoadBalancer.RingHashConfig has a minimum ring size above its maximum; ignored');
    } else if (Object.keys(ringHash).length > 0) {
      out.ringHash = ringHash;
    }
  }
  return out;
}

/**
 * A router route's Destination retries, or undefined when it sets none: `NumRetries` → `retries`;
 * `RetryOnStatusCodes`, and the status classes of `RetryOn` (Envoy's x-envoy-retry-on: `5xx` → 500-599,
 * `gateway-error` → 502-504, `retriable-4xx` → 409), → `retryOn` (set, possibly empty, whenever either is given:
 * Envoy then retries those and nothing else). `reset`, `connect-failure`, `refused-stream` and
 * `RetryOnConnectFailure` are failures without a response, which the mesh retries by its own rules; the gRPC and
 * rate-limit conditions have no equivalent (warned). Without `NumRetries` the service's `retries` applies
 * (Envoy's default is 1).
 */
export function retryOf(d: Json, at: string, warnings: string[], route: string): RetryPolicy | undefined {
  const retry: RetryPolicy & Record<string, unknown> = {};
  const n = optNumber(d.NumRetries, `${at}.NumRetries`);
  if (n > 0) retry.retries = Math.floor(n);
  const codes = new Set<number>();
  const raw = optArray(d.RetryOnStatusCodes, `${at}.RetryOnStatusCodes`);
  for (const [i, c] of raw.entries()) {
    const code = optNumber(c, `${at}.RetryOnStatusCodes[${i}]`);
    if (Number.isInteger(code) && code >= 100 && code <= 599) codes.add(code);
    else warnings.push(`${route}: RetryOnStatusCodes[${i}] is not an HTTP status; ignored`);
  }
  const on = optArray(d.RetryOn, `${at}.RetryOn`).map((c, i) => optString(c, `${at}.RetryOn[${i}]`));
  for (const condition of on) {
    const statuses = RETRY_CLASSES[condition];
    if (statuses) statuses.forEach((s) => codes.add(s));
    else if (!NETWORK_CONDITIONS.has(condition)) warnings.push(`${route}: RetryOn condition ${condition} has no equivalent; ignored`);
  }
  if (raw.length > 0 || on.length > 0) retry.retryOn = [...codes].sort((a, b) => a - b);
  return Object.keys(retry).length > 0 ? retry : undefined;
}

/** Envoy's x-envoy-retry-on classes of statuses. */
const RETRY_CLASSES: Readonly<Record<string, readonly number[]>> = Object.assign(Object.create(null) as Record<string, readonly number[]>, {
  '5xx': Array.from({ length: 100 }, (_, i) => 500 + i),
  'gateway-error': [502, 503, 504],
  'retriable-4xx': [409],
});
/** Failures before or without a response: the mesh retries those by its own rules. */
const NETWORK_CONDITIONS = new Set(['reset', 'connect-failure', 'refused-stream']);
