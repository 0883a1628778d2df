import { authority } from '../endpoint/endpoint.js';
import type { Endpoint } from '../endpoint/endpoint.js';

/** What an attempt span and `http.client.request.duration` say of an HTTP request. */
export interface HttpRequestFacts {
  /** The method as sent (upper case for a mesh.fetch; an undici dispatch's as given). */
  readonly method: string;
  readonly scheme: 'http:' | 'https:';
  /** Path and query, as sent. */
  readonly rest: string;
}

/**
 * The HTTP request of a call, from what its transport planned (`call.request`): a mesh.fetch plan (`prefix`,
 * `rest`, `base.method`) or the undici path's caller sink (`opts`: `method`, `path`, `origin`). Anything else (a
 * `mesh.call`) is no HTTP request: its attempt spans carry the `server.*` attributes only.
 */
export function httpRequestOf(request: unknown): HttpRequestFacts | undefined {
  if (request === null || typeof request !== 'object') return undefined;
  const plan = request as { prefix?: unknown; rest?: unknown; base?: { method?: unknown } };
  if (typeof plan.prefix === 'string' && typeof plan.rest === 'string' && typeof plan.base === 'object') {
    return {
      method: String(plan.base.method ?? 'GET').toUpperCase(),
      scheme: plan.prefix.startsWith('https') ? 'https:' : 'http:',
      rest: plan.rest,
    };
  }
  const opts = (request as { opts?: { method?: unknown; path?: unknown; origin?: unknown } }).opts;
  if (opts !== null && typeof opts === 'object' && typeof opts.path === 'string') {
    return {
      method: typeof opts.method === 'string' ? opts.method : 'GET',
      scheme: String(opts.origin ?? '').startsWith('https') ? 'https:' : 'http:',
      rest: opts.path,
    };
  }
  return undefined;
}

/** The methods the HTTP semantic conventions know; any other is reported as `_OTHER`. */
const KNOWN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);

/**
 * `http.request.method` as the semantic conventions want it: a known method as is, anything else `_OTHER` (with
 * `http.request.method_original`), which keeps the attribute's cardinality bounded.
 */
export function methodAttribute(method: string): { readonly method: string; readonly original: string | undefined } {
  return KNOWN_METHODS.has(method) ? { method, original: undefined } : { method: '_OTHER', original: method };
}

/**
 * Query parameters whose values the semantic conventions say to redact from `url.full` (signed URLs carry their
 * credentials there); userinfo never reaches it, as mesh URLs with credentials are refused.
 */
const SENSITIVE_QUERY = /([?&](?:AWSAccessKeyId|Signature|sig|X-Goog-Signature)=)[^&#]*/g;

/** `url.full` of one attempt: the endpoint's address, with the call's path and query (signatures redacted). */
export function urlFull(http: HttpRequestFacts, endpoint: Endpoint): string {
  const rest = http.rest.includes('?') ? http.rest.replace(SENSITIVE_QUERY, '$1REDACTED') : http.rest;
  return `${http.scheme}//${authority(endpoint.host, endpoint.port)}${rest}`;
}
