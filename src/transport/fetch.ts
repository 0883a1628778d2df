import type { AttemptFn } from '../attempt.js';
import { authority } from '../endpoint/endpoint.js';
import { InvalidServiceNameError } from '../errors.js';
import type { CallOptions } from '../options.js';
import { serviceNameProblem } from '../validate.js';

/** fetch's `init` plus the mesh's per-call options. */
export interface MeshRequestInit extends RequestInit, Omit<CallOptions, 'signal'> {}

/** Methods that RFC 9110 §9.2.2 calls idempotent: these may be retried after any retryable failure. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** A fetch request taken apart once per call, so each attempt only swaps the authority. */
export interface FetchPlan {
  readonly service: string;
  readonly idempotent: boolean;
  /** False for a stream body (or a `Request` carrying one): it can be read once only. */
  readonly replayable: boolean;
  readonly attempt: AttemptFn<Response>;
}

/**
 * Plans a `mesh.fetch`: the URL's hostname is the logical service name; each attempt rewrites the URL to
 * the chosen endpoint's `host:port` and keeps path and query. The `Host` header therefore names the
 * endpoint, as with a direct call; set it yourself if a backend routes by virtual host.
 */
export function planFetch(
  fetchImpl: typeof globalThis.fetch,
  input: string | URL | Request,
  init: MeshRequestInit | undefined,
): FetchPlan {
  const request = typeof input === 'object' && !(input instanceof URL) ? input : undefined;
  const { scheme, service, rest } = parseServiceUrl(request ? request.url : String(input));
  const prefix = `${scheme}//`;
  const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
  const body = init?.body ?? undefined;
  const replayable = !isStreamBody(body) && !(body === undefined && request?.body);
  const idempotent = init?.idempotent ?? IDEMPOTENT_METHODS.has(method);
  const fetchInit = stripMeshOptions(init);
  const callerSignal = init?.signal ?? request?.signal ?? undefined;

  const attempt: AttemptFn<Response> = (endpoint, ctx) => {
    const target = prefix + authority(endpoint.host, endpoint.port) + rest;
    // The attempt signal stops at headers; linking the caller's too keeps its abort working on the body.
    const signal = callerSignal ? AbortSignal.any([ctx.signal, callerSignal]) : ctx.signal;
    if (request) return fetchImpl(new Request(target, request), { ...fetchInit, signal });
    return fetchImpl(target, { ...fetchInit, signal });
  };
  return { service, idempotent, replayable, attempt };
}

/** A mesh URL taken apart: `http://users:8080/v1/me?x=1#top` → `http:`, `users`, `/v1/me?x=1`. */
export interface ServiceUrl {
  readonly scheme: 'http:' | 'https:';
  readonly service: string;
  /** Path and query, kept verbatim (the fragment never goes on the wire). */
  readonly rest: string;
}

const SERVICE_URL = /^(https?):\/\/([^/?#]*)([^#]*)/i;

/**
 * Parses a mesh URL with one regular expression instead of `new URL()` (about a microsecond a call), and
 * checks its host as a service name. The raw text is checked, not a parsed form: the URL parser silently
 * drops tabs and line breaks, and a hostile name must be refused, not repaired. A port in the URL is
 * ignored (the endpoint's port is used); credentials in it are refused, as fetch refuses them.
 */
export function parseServiceUrl(raw: string): ServiceUrl {
  const m = SERVICE_URL.exec(raw);
  if (m === null) {
    throw new TypeError(`mesh.fetch needs an absolute http(s) URL like http://service/path, got ${JSON.stringify(raw.slice(0, 80))}`);
  }
  const authorityPart = m[2] as string;
  if (/[\s\u0000-\u001f%]/.test(authorityPart)) {
    throw new InvalidServiceNameError(authorityPart, 'it contains whitespace, a control character or %');
  }
  if (authorityPart.includes('@')) throw new TypeError('mesh.fetch URLs must not carry credentials');
  const colon = authorityPart.lastIndexOf(':');
  const host = (colon >= 0 && /^\d*$/.test(authorityPart.slice(colon + 1)) ? authorityPart.slice(0, colon) : authorityPart).toLowerCase();
  const problem = serviceNameProblem(host);
  if (problem) throw new InvalidServiceNameError(host, problem);
  const path = m[3] as string;
  return {
    scheme: `${(m[1] as string).toLowerCase()}:` as 'http:' | 'https:',
    service: host,
    rest: path === '' || path[0] === '?' ? `/${path}` : path,
  };
}

/**
 * The value of header `name` (lower case) on a mesh.fetch request, as fetch would send it: `init.headers` when
 * given (they replace a Request's own), else the Request's headers. Used for the policy's `hashHeader`.
 *
 * @example headerValue('http://users/v1/me', { headers: { 'X-User-Id': '42' } }, 'x-user-id') // '42'
 */
export function headerValue(input: string | URL | Request, init: RequestInit | undefined, name: string): string | undefined {
  const headers = init?.headers ?? (input instanceof Request ? input.headers : undefined);
  if (headers === undefined) return undefined;
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  if (Array.isArray(headers)) {
    const values = headers.filter((pair) => String(pair[0]).toLowerCase() === name).map((pair) => String(pair[1]));
    return values.length === 0 ? undefined : values.join(', ');
  }
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name) return String((headers as Record<string, string>)[key]);
  }
  return undefined;
}

function isStreamBody(body: unknown): boolean {
  if (body === null || body === undefined) return false;
  if (typeof body === 'string' || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return false;
  if (body instanceof URLSearchParams || body instanceof Blob || body instanceof FormData) return false;
  return true; // ReadableStream, async iterables, Node streams: readable once
}

function stripMeshOptions(init: MeshRequestInit | undefined): RequestInit {
  if (init === undefined) return {};
  const { hashKey: _h, idempotent: _i, timeout: _t, retry: _r, hedge: _g, signal: _s, ...rest } = init;
  return rest;
}
