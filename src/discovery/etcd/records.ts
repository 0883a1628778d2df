import { toEndpoint, type Endpoint } from '../../endpoint/endpoint.js';
import { b64, prefixEnd, type KeyValue } from './wire.js';

/**
 * The registry's data model: an instance of `users` is the key `<prefix>users/<id>` with a JSON value
 * `{ host, port, weight?, zone?, tags?, meta? }`. The id part of the key is the endpoint's id, so an
 * endpoint keeps its state (EWMA, breaker) across relists and across a value rewritten in place.
 *
 * Anyone with write access to the prefix can put anything there, so a key is checked hard and a bad one is
 * left out, alone (the others still serve), and said once: never an exception out of the watch loop.
 */
export interface EndpointValue {
  host: string;
  port: number;
  weight?: number;
  zone?: string;
  tags?: string[];
  meta?: Record<string, string>;
}

/** Where a service's keys are: `<prefix><service>/`, and the end of that range (the prefix plus one). */
export interface ServiceRange {
  readonly keyPrefix: string;
  /** `key` and `range_end` as the gateway wants them (base64). */
  readonly key: string;
  readonly rangeEnd: string;
}

export function serviceRange(prefix: string, service: string): ServiceRange {
  const keyPrefix = `${prefix}${service}/`;
  return { keyPrefix, key: b64(keyPrefix), rangeEnd: prefixEnd(keyPrefix).toString('base64') };
}

/** An endpoint value larger than this is not an endpoint (etcd allows 1.5 MiB per request). */
const MAX_VALUE_BYTES = 64 * 1024;
const MAX_ID_LENGTH = 512;
const MAX_TAGS = 256;
const MAX_META = 256;

/** What a key holds: an endpoint, nothing to route to (weight 0: drained), or a problem to report. */
export type Parsed = { readonly endpoint: Endpoint } | { readonly drained: true } | { readonly problem: string };

/** The id part of a key of this service, or a problem (the key is outside the range, or the id is unusable). */
export function idOf(range: ServiceRange, key: Buffer): { id: string } | { problem: string } {
  const text = key.toString('utf8');
  // A key that is not UTF-8 would decode with U+FFFD in it, and two such keys could get one id.
  if (!Buffer.from(text, 'utf8').equals(key)) return { problem: 'the key is not UTF-8' };
  if (!text.startsWith(range.keyPrefix)) return { problem: `the key is not under ${range.keyPrefix}` };
  const id = text.slice(range.keyPrefix.length);
  if (id === '') return { problem: 'the key has no id after the service name' };
  if (id.length > MAX_ID_LENGTH) return { problem: `the id is longer than ${MAX_ID_LENGTH} characters` };
  if (/[\x00-\x1f\x7f]/.test(id)) return { problem: 'the id contains control characters' };
  return { id };
}

/** Reads one key of `service`: the endpoint it describes, or why it describes none. */
export function parseRecord(range: ServiceRange, service: string, kv: KeyValue): Parsed {
  const idOrProblem = idOf(range, kv.key);
  if ('problem' in idOrProblem) return idOrProblem;
  const { id } = idOrProblem;
  if (kv.value.byteLength > MAX_VALUE_BYTES) return { problem: `the value is larger than ${MAX_VALUE_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(kv.value.toString('utf8'));
  } catch {
    return { problem: 'the value is not JSON' };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { problem: 'the value is not a JSON object' };
  const v = value as Record<string, unknown>;
  if (v.weight === 0) return { drained: true }; // weight 0 means "take no traffic", as in Consul: left out quietly
  if (v.weight !== undefined && !(typeof v.weight === 'number' && Number.isFinite(v.weight) && v.weight > 0)) {
    return { problem: 'weight must be a finite number > 0 (or 0 to drain)' };
  }
  if (v.zone !== undefined && typeof v.zone !== 'string') return { problem: 'zone must be a string' };
  if (v.tags !== undefined && !(Array.isArray(v.tags) && v.tags.length <= MAX_TAGS && v.tags.every((t) => typeof t === 'string'))) {
    return { problem: `tags must be an array of at most ${MAX_TAGS} strings` };
  }
  if (v.meta !== undefined && !isStringRecord(v.meta)) return { problem: `meta must map at most ${MAX_META} keys to strings` };
  try {
    // toEndpoint applies the mesh's one rule for hosts and ports: a host that the URL parser would read as
    // another (`127.1`, `a\`, `::1]:80`) or a port outside 1..65535 is refused here, not dialled.
    const endpoint = toEndpoint(
      {
        id,
        host: v.host as string,
        port: v.port as number,
        ...(v.weight !== undefined ? { weight: v.weight as number } : {}),
        ...(v.zone !== undefined && v.zone !== '' ? { zone: v.zone as string } : {}),
        ...(v.tags !== undefined ? { tags: v.tags as string[] } : {}),
        ...(v.meta !== undefined ? { meta: copyRecord(v.meta as Record<string, string>) } : {}),
      },
      `${service}/${id.slice(0, 80)}`,
    );
    return { endpoint };
  } catch (error) {
    return { problem: error instanceof Error ? error.message : String(error) };
  }
}

function isStringRecord(v: unknown): v is Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const entries = Object.entries(v);
  return entries.length <= MAX_META && entries.every(([, x]) => typeof x === 'string');
}

/** A null-prototype-safe copy: a meta key `__proto__` from JSON.parse is an own key, and stays one. */
function copyRecord(v: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
  return out;
}

/** The JSON value `registerEtcd` writes: only the fields given, in a fixed order. */
export function encodeValue(v: EndpointValue): string {
  const out: EndpointValue = { host: v.host, port: v.port };
  if (v.weight !== undefined) out.weight = v.weight;
  if (v.zone !== undefined) out.zone = v.zone;
  if (v.tags !== undefined) out.tags = [...v.tags];
  if (v.meta !== undefined) out.meta = copyRecord(v.meta);
  return JSON.stringify(out);
}
