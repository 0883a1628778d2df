import { readFileSync } from 'node:fs';

/** `fetch`'s shape, as the caller may pass it (undici's `fetch` with a TLS `Agent`, or a wrapper). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Where and how to reach a Consul agent. Every field falls back to the `CONSUL_HTTP_*` environment variables. */
export interface ConsulConnectionOptions {
  /**
   * The agent's HTTP address, with or without a scheme, and with an optional path prefix (for a proxy).
   * Default: `CONSUL_HTTP_ADDR`, else `http://127.0.0.1:8500`. Without a scheme, `CONSUL_HTTP_SSL=true` picks https.
   * @example 'https://consul.internal:8501'
   */
  url?: string | undefined;
  /**
   * ACL token. Sent only in the `X-Consul-Token` header, never in a URL, error, event or log.
   * Default: the content of `CONSUL_HTTP_TOKEN_FILE`, else `CONSUL_HTTP_TOKEN` (the Go client's order). `''` sends none.
   * @example process.env.MY_CONSUL_TOKEN
   */
  token?: string | undefined;
  /**
   * A file holding the token (read once, trimmed), e.g. one a Vault agent writes. Used when `token` is not given.
   * @example '/run/secrets/consul-token'
   */
  tokenFile?: string | undefined;
  /**
   * The fetch to talk to Consul with. For TLS with a private CA or mTLS, pass a fetch that uses an undici `Agent`
   * with `connect: { ca, cert, key }` (Node's global fetch takes undici's `dispatcher`, which the DOM's
   * `RequestInit` type does not name). Default: `globalThis.fetch`.
   * @example (url, init) => fetch(url, { ...init, dispatcher: new Agent({ connect: { ca, cert, key } }) } as RequestInit)
   */
  fetch?: FetchLike | undefined;
  /**
   * Deadline of one non-blocking request, and the margin added to a blocking query's `wait` (plus `wait / 16`,
   * Consul's own jitter). Default 4000: below the mesh's `discovery.resolveTimeoutMs` (5 s), so that a slow
   * agent's error says which request it did not answer.
   * @example 2_000
   */
  timeoutMs?: number | undefined;
  /** Where `CONSUL_HTTP_*` are read from. Default `process.env`. @example { CONSUL_HTTP_ADDR: '127.0.0.1:8500' } */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /**
   * The largest answer read from Consul, in bytes; a larger one fails (a `DiscoveryError` for discovery) as soon
   * as its `Content-Length` or the bytes read so far pass it, and its connection is dropped. Default 32 MiB: a
   * health entry is 1 to 3 KB of JSON, so that is room for over 10 000 instances of one service, while one
   * misbehaving agent or proxy cannot make this process buffer gigabytes. At most 512 MiB (V8's longest string).
   * @example 64 * 1024 * 1024
   */
  maxBodyBytes?: number | undefined;
}

/** A validated connection: the base URL (no trailing slash), the token, and the fetch. */
export interface ConsulConnection {
  readonly baseUrl: string;
  /** The origin alone, for messages. */
  readonly origin: string;
  readonly token: string | undefined;
  readonly fetch: FetchLike;
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  /** The option's full name, for messages: `consulRegistry.maxBodyBytes`. */
  readonly maxBodyOption: string;
}

export const CONNECTION_KEYS = ['url', 'token', 'tokenFile', 'fetch', 'timeoutMs', 'env', 'maxBodyBytes'] as const;
const DEFAULT_ADDRESS = '127.0.0.1:8500';
const DEFAULT_TIMEOUT_MS = 4_000;
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;
/** V8 cannot hold a longer string (2^29 - 24 characters), so a larger body could not be parsed anyway. */
const MAX_MAX_BODY_BYTES = 512 * 1024 * 1024;

/**
 * Reads and validates the connection options and the environment once, at construction, and throws a
 * `TypeError` naming the option (`${at}.url ...`). A token or a URL with credentials is never echoed.
 */
export function consulConnection(options: ConsulConnectionOptions, at: string): ConsulConnection {
  const env = options.env ?? process.env;
  if (env === null || typeof env !== 'object') throw new TypeError(`${at}.env must be an object`);

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // Node's timers overflow past 2^31 - 1 ms and fire at once: refused, as every duration option is.
  if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= 2_147_483_647)) {
    throw new TypeError(`${at}.timeoutMs must be a finite number > 0 and at most 2147483647 ms (setTimeout's limit)`);
  }
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw new TypeError(`${at}.fetch must be a function`);
  const fetchImpl: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const maxBodyOption = `${at}.maxBodyBytes`;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!(Number.isInteger(maxBodyBytes) && maxBodyBytes >= 1 && maxBodyBytes <= MAX_MAX_BODY_BYTES)) {
    throw new TypeError(`${maxBodyOption} must be an integer from 1 to ${MAX_MAX_BODY_BYTES}`);
  }

  const { baseUrl, origin } = parseAddress(options.url, env, at);
  const token = readToken(options, env, at);
  return { baseUrl, origin, token, fetch: fetchImpl, timeoutMs, maxBodyBytes, maxBodyOption };
}

function parseAddress(url: unknown, env: Readonly<Record<string, string | undefined>>, at: string): { baseUrl: string; origin: string } {
  let source = `${at}.url`;
  let address = url;
  if (address === undefined && env.CONSUL_HTTP_ADDR) [address, source] = [env.CONSUL_HTTP_ADDR, 'CONSUL_HTTP_ADDR'];
  address ??= DEFAULT_ADDRESS;
  if (typeof address !== 'string' || address.trim() === '') throw new TypeError(`${source} must be a non-empty string`);
  address = address.trim();

  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(address as string)?.[1]?.toLowerCase();
  if (scheme === 'unix') {
    throw new TypeError(
      `${source}: unix sockets are not supported directly; pass url 'http://localhost' and a fetch whose dispatcher ` +
        `connects to the socket (undici: new Agent({ connect: { socketPath } }))`,
    );
  }
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw new TypeError(`${source} must use http:// or https:// (got ${scheme}://)`);
  }
  const full = scheme === undefined ? `${ssl(env) ? 'https' : 'http'}://${address}` : (address as string);
  let parsed: URL;
  try {
    parsed = new URL(full);
  } catch {
    throw new TypeError(`${source} is not a valid address (expected host:port or http(s)://host:port)`);
  }
  // Basic-auth credentials in the URL would end up in messages and are refused by fetch anyway.
  if (parsed.username !== '' || parsed.password !== '') throw new TypeError(`${source} must not contain credentials`);
  if (parsed.search !== '' || parsed.hash !== '') throw new TypeError(`${source} must not have a query or a fragment`);
  const prefix = parsed.pathname.replace(/\/+$/, '');
  return { baseUrl: `${parsed.origin}${prefix}`, origin: parsed.origin };
}

/** `CONSUL_HTTP_SSL`, parsed as Go's `strconv.ParseBool` does (the Go client reads it so). */
function ssl(env: Readonly<Record<string, string | undefined>>): boolean {
  const raw = env.CONSUL_HTTP_SSL;
  if (raw === undefined || raw === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
  throw new TypeError(`CONSUL_HTTP_SSL must be true or false, got ${JSON.stringify(raw.slice(0, 20))}`);
}

/**
 * The token: the `token` option, else the `tokenFile` option, else `CONSUL_HTTP_TOKEN_FILE`, else
 * `CONSUL_HTTP_TOKEN`. A token file wins over the token variable, as in the Go client (api.NewClient:
 * "If the TokenFile is set, always use that"); an empty file falls back to the variable, as there too.
 */
function readToken(options: ConsulConnectionOptions, env: Readonly<Record<string, string | undefined>>, at: string): string | undefined {
  let token: unknown;
  let source: string;
  if (options.token !== undefined) {
    [token, source] = [options.token, `${at}.token`];
  } else {
    const file = options.tokenFile ?? (env.CONSUL_HTTP_TOKEN_FILE || undefined);
    const fileSource = options.tokenFile !== undefined ? `${at}.tokenFile` : 'CONSUL_HTTP_TOKEN_FILE';
    const fromFile = file === undefined ? undefined : readTokenFile(file, fileSource);
    if (fromFile) [token, source] = [fromFile, fileSource];
    else [token, source] = [env.CONSUL_HTTP_TOKEN, 'CONSUL_HTTP_TOKEN'];
  }
  if (token === undefined || token === '') return undefined;
  if (typeof token !== 'string') throw new TypeError(`${source} must be a string`);
  // A header value with spaces, CR/LF or non-ASCII would be refused by fetch with an error quoting it.
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new TypeError(`${source} must be printable ASCII without spaces (it is sent as X-Consul-Token; the value is not shown)`);
  }
  return token;
}

function readTokenFile(file: unknown, source: string): string {
  if (typeof file !== 'string' || file === '') throw new TypeError(`${source} must be a non-empty path`);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'an error';
    throw new TypeError(`${source}: could not read the token file ${JSON.stringify(file)} (${code})`);
  }
}

/** Milliseconds as a Go duration string, as Consul parses them: `15s`, `1500ms`. */
export function goDuration(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole % 1000 === 0 ? `${whole / 1000}s` : `${whole}ms`;
}
