import type { FetchLike } from '../consul-config.js';

/** Where and how to reach etcd: the options `etcdRegistry` and `registerEtcd({ etcd })` share. */
export interface EtcdConnectionOptions {
  /**
   * The client URLs of etcd members (`--advertise-client-urls`), tried in order: on a connection error or a
   * timeout the next one is used, and stays in use while it answers. A path after the host is kept (for a
   * proxy in front of the gateway). etcd 3.4 or later: the client speaks the gateway's `/v3/*` paths (3.3
   * served `/v3beta/*`). Default `['http://127.0.0.1:2379']`.
   * @example ['http://10.0.0.11:2379', 'http://10.0.0.12:2379', 'http://10.0.0.13:2379']
   */
  endpoints?: readonly string[] | undefined;
  /**
   * The key prefix: an instance of `users` is the key `<prefix>users/<id>`. It must end with '/', so that a
   * prefix mistyped as '/services' does not silently find nothing. Default `'/services/'`.
   * @example '/prod/services/'
   */
  prefix?: string | undefined;
  /** The fetch to talk to etcd with (undici's with a TLS `Agent` for a private CA or mTLS). Default: `globalThis.fetch`. */
  fetch?: FetchLike | undefined;
  /**
   * With etcd's auth enabled: the user to authenticate as (`POST /v3/auth/authenticate`). The token etcd gives
   * back is sent in the `Authorization` header and fetched again when etcd says it is invalid (simple tokens
   * expire after 5 minutes unused). Neither the password nor the token is ever shown in an error.
   */
  username?: string | undefined;
  /** The password of `username`. */
  password?: string | undefined;
  /** Deadline of one request (for the watch stream: until its first answer), in ms. Default 4000. */
  timeoutMs?: number | undefined;
  /**
   * The largest answer read (one range body, or one line of the watch stream), in bytes; a larger one fails.
   * Default 32 MiB (etcd's own request limit is 1.5 MiB, so only a very large prefix comes near).
   */
  maxBodyBytes?: number | undefined;
}

/** A validated connection. */
export interface EtcdConnection {
  /** Base URLs without a trailing slash. */
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly fetch: FetchLike;
  readonly credentials: { readonly name: string; readonly password: string } | undefined;
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  /** The option path for messages: `etcdRegistry`, `registerEtcd.etcd`. */
  readonly at: string;
}

export const CONNECTION_KEYS = ['endpoints', 'prefix', 'fetch', 'username', 'password', 'timeoutMs', 'maxBodyBytes'] as const;
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:2379';
export const DEFAULT_PREFIX = '/services/';
const MAX_TIMER_MS = 2_147_483_647;
/** V8 cannot hold a longer string (2^29 - 24 characters). */
const MAX_BODY_BYTES = 512 * 1024 * 1024;

/** Throws a TypeError naming the option when `o` is not an object or has a key not in `known`. */
export function checkKeys(o: unknown, known: readonly string[], at: string, objectName = at): void {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`${objectName} must be an object`);
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) throw new TypeError(`${at}.${key} is not a known option (known: ${known.join(', ')})`);
  }
}

/** Checks the connection options once, at construction; each error names the option by its full path. */
export function etcdConnection(o: EtcdConnectionOptions, at: string): EtcdConnection {
  const raw = o.endpoints ?? [DEFAULT_ENDPOINT];
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 64) throw new TypeError(`${at}.endpoints must be a non-empty array of URLs (at most 64)`);
  const endpoints = raw.map((url: unknown, i) => endpointUrl(url, `${at}.endpoints[${i}]`));
  const prefix = o.prefix ?? DEFAULT_PREFIX;
  if (typeof prefix !== 'string' || prefix === '' || !prefix.endsWith('/') || /[\x00-\x1f\x7f]/.test(prefix) || prefix.length > 1024) {
    throw new TypeError(`${at}.prefix must be a string ending with '/' (at most 1024 characters, no control characters), e.g. '/services/'`);
  }
  if (o.fetch !== undefined && typeof o.fetch !== 'function') throw new TypeError(`${at}.fetch must be a function`);
  const fetchImpl: FetchLike = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
  if ((o.username === undefined) !== (o.password === undefined)) throw new TypeError(`${at}.username and ${at}.password go together`);
  let credentials: EtcdConnection['credentials'];
  if (o.username !== undefined) {
    if (typeof o.username !== 'string' || o.username === '') throw new TypeError(`${at}.username must be a non-empty string`);
    if (typeof o.password !== 'string') throw new TypeError(`${at}.password must be a string (its value is not shown)`);
    credentials = { name: o.username, password: o.password };
  }
  const timeoutMs = duration(o.timeoutMs, `${at}.timeoutMs`, 4_000);
  const maxBodyBytes = o.maxBodyBytes ?? 32 * 1024 * 1024;
  if (!(Number.isInteger(maxBodyBytes) && maxBodyBytes >= 1 && maxBodyBytes <= MAX_BODY_BYTES)) {
    throw new TypeError(`${at}.maxBodyBytes must be an integer from 1 to ${MAX_BODY_BYTES}`);
  }
  return { endpoints, prefix, fetch: fetchImpl, credentials, timeoutMs, maxBodyBytes, at };
}

function endpointUrl(url: unknown, at: string): string {
  if (typeof url !== 'string' || url.trim() === '') throw new TypeError(`${at} must be an http(s) URL string`);
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new TypeError(`${at} is not a valid URL (expected http://host:port)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`${at} must use http:// or https:// (got ${parsed.protocol}//)`);
  // Credentials in a URL end up in messages; etcd takes a user and password through its auth API instead.
  if (parsed.username !== '' || parsed.password !== '') throw new TypeError(`${at} must not contain credentials (use username and password)`);
  if (parsed.search !== '' || parsed.hash !== '') throw new TypeError(`${at} must not have a query or a fragment`);
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
}

/** A duration option: Node's timers overflow past 2^31 - 1 ms and fire at once, so that is the limit. */
export function duration(v: unknown, at: string, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  if (!(typeof v === 'number' && Number.isFinite(v) && v >= min && v <= MAX_TIMER_MS)) {
    throw new TypeError(`${at} must be a number of ms from ${min} to ${MAX_TIMER_MS}`);
  }
  return v;
}

/** Retry delays of a failing loop: doubling from `initialMs` with ±20 % jitter, up to `maxMs`. */
export interface EtcdBackoffOptions {
  /** First retry delay, in ms. Default 1000. */
  initialMs?: number | undefined;
  /** Longest retry delay, in ms. Default 30000. */
  maxMs?: number | undefined;
}

export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

export function backoffSettings(v: unknown, at: string): Backoff {
  if (v === undefined) return { initialMs: 1_000, maxMs: 30_000 };
  checkKeys(v, ['initialMs', 'maxMs'], `${at}.backoff`);
  const o = v as EtcdBackoffOptions;
  const initialMs = duration(o.initialMs, `${at}.backoff.initialMs`, 1_000);
  const maxMs = duration(o.maxMs, `${at}.backoff.maxMs`, Math.max(30_000, initialMs), initialMs);
  return { initialMs, maxMs };
}

/** The delay before retry number `failures` (1 for the first): initial × 2^(failures − 1), ±20 %, capped. */
export function backoffDelay(b: Backoff, failures: number, random: () => number): number {
  const nominal = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  let r: unknown;
  try {
    r = random();
  } catch {
    r = 0.5; // a user's `random` that throws must not end the watch loop
  }
  const jitter = typeof r === 'number' && r >= 0 && r < 1 ? r : 0.5; // a broken random source must not make NaN timers
  return Math.min(b.maxMs, nominal * (0.8 + 0.4 * jitter));
}
