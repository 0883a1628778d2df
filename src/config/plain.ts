import { define } from '../util/own.js';

/**
 * Copies of configurations, for keeping and for showing. Plain objects and arrays are copied; anything else
 * (functions, a balancer object, a Buffer of a CA) is kept as it is.
 */

const SECRET_KEYS = new Set(['key', 'cert', 'ca', 'passphrase', 'pfx']);

/**
 * A deep, frozen copy of a configuration as given: what the store keeps, so a caller that changes its object
 * after `configure` changes nothing in force. Own enumerable keys only, defined (a `__proto__` key stays a key).
 */
export function snapshotInput<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return Object.freeze(value.map(snapshotInput)) as T;
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
  // A balancer of yours (an object literal with pick()) is yours: kept, never copied or frozen.
  if (typeof (value as { pick?: unknown }).pick === 'function') return value;
  const out: Record<string, unknown> = {};
  // A key set to `undefined` is a key not set (exactOptionalPropertyTypes users write `zone: process.env.ZONE`):
  // dropped here, so no merge over defaults downstream ever sees it.
  for (const [k, v] of Object.entries(value)) if (v !== undefined) define(out, k, snapshotInput(v));
  return Object.freeze(out) as T;
}

/**
 * Plain JSON of a configuration, to show (`mesh.config()`, the snapshot, the admin handler): functions as
 * `"[function]"`, a balancer object as its name, Sets as arrays, bytes as `"[n bytes]"`, and a `tls` policy's
 * `key`, `cert`, `ca`, `passphrase` and `pfx` as `"[redacted]"`: the admin handler serves this, and a private key
 * must never leave the process that way. Frozen.
 */
export function plainConfig(value: unknown, parentKey?: string): unknown {
  if (typeof value === 'function') return '[function]';
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
  if (value instanceof Set) return Object.freeze([...value].map((v) => plainConfig(v)));
  if (Array.isArray(value)) return Object.freeze(value.map((v) => plainConfig(v)));
  const v = value as Record<string, unknown>;
  if (typeof v.pick === 'function' && typeof v.name === 'string') return v.name;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue;
    define(out, k, parentKey === 'tls' && SECRET_KEYS.has(k) ? '[redacted]' : plainConfig(x, k));
  }
  return Object.freeze(out);
}
