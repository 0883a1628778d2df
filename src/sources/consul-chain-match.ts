import type { PathMatch, RouteMatch, StringMatch } from '../config/types.js';
import { HEADER_NAME } from '../validate.js';
import { define } from '../util/own.js';
import { optArray, optBool, optObject, optString, own, type Json } from './consul-chain-json.js';

/** What a service-router route's `Match` becomes: match entries (undefined: every request), or why it cannot be. */
export type MatchTranslation =
  | { readonly ok: true; readonly match: RouteMatch[] | undefined; readonly notes: readonly string[] }
  | { readonly ok: false; readonly reason: string };

/** The config validator's bound on a regex (src/config/validate-config.ts). */
const MAX_REGEX_LENGTH = 1_000;

/**
 * Translates a `ServiceRouteMatch` (`{ HTTP: { PathExact, PathPrefix, PathRegex, Header[], QueryParam[], Methods } }`)
 * as Consul's Envoy generator does (agent/xds/routes.go makeRouteMatchForDiscoveryRoute):
 *
 * - no match, or an empty one, matches every request (Envoy's `prefix: "/"`); so does `PathPrefix: "/"` alone;
 * - path: Exact wins over Prefix over Regex, as there. `PathExact` → `{ exact }`. `PathPrefix` → `{ regex: '^' +
 *   escaped }`, not `{ prefix }`: Envoy's prefix is a plain string prefix (`/admin` matches `/administrator` and
 *   `/admin-ui`), ours stops at `/` segment boundaries, and a trailing `/` does not make them agree either
 *   (Envoy's `/admin/` does not match `/admin`, a segment prefix does). The anchored regex routes exactly the paths
 *   a Consul sidecar routes. `PathRegex` → `{ regex: '^(?:r)$' }`: Envoy's `safe_regex` must match the whole path,
 *   ours is unanchored.
 * - headers (names lower-cased): `Exact` → the value; `Regex` → the anchored regex; `Prefix` → `^escaped`;
 *   `Suffix` → `escaped$`; `Present` → `{ regex: '' }` (matches any value, and a missing header never matches a
 *   regex). A header with none of them is dropped, as Envoy's generator drops it.
 * - query parameters: `Exact` → the value. `Regex` and `Present` have no equivalent (our query match is exact).
 * - `Methods`: our match entry has one method, so each method gets an entry of its own with the same conditions
 *   (entries are OR-ed, as Envoy's `:method` regex `GET|POST` is).
 *
 * Cannot be expressed, so the caller leaves the route out and says so: `Invert`, query `Regex`/`Present`, two
 * conditions on one header or parameter, and a regex that is not valid JavaScript (Consul's are RE2: `(?i)`,
 * `(?P<name>)` and `\z` are not JavaScript) or is longer than the validator allows.
 */
export function translateMatch(raw: unknown, at: string): MatchTranslation {
  const http = optObject(optObject(raw, at)?.HTTP, `${at}.HTTP`);
  if (http === undefined) return { ok: true, match: undefined, notes: [] };
  const notes: string[] = [];
  const entry: RouteMatch & { headers?: Record<string, StringMatch>; query?: Record<string, string> } = {};

  const path = pathOf(http, at);
  if (typeof path === 'string') return { ok: false, reason: path };
  if (path !== undefined) entry.path = path;

  const headers: Record<string, StringMatch> = {};
  const headerList = optArray(http.Header, `${at}.HTTP.Header`);
  for (let i = 0; i < headerList.length; i++) {
    const h = optObject(headerList[i], `${at}.HTTP.Header[${i}]`) ?? {};
    const name = optString(h.Name, `${at}.HTTP.Header[${i}].Name`).toLowerCase();
    if (!HEADER_NAME.test(name)) return { ok: false, reason: `Header[${i}] has no valid header name` };
    const value = headerValue(h, `${at}.HTTP.Header[${i}]`);
    if (value === undefined) {
      notes.push(`Header[${i}] (${name}) has no condition and is ignored, as Consul's Envoy configuration ignores it`);
      continue;
    }
    if (optBool(h.Invert, `${at}.HTTP.Header[${i}].Invert`)) return { ok: false, reason: `Header[${i}] (${name}) is inverted, which has no equivalent` };
    if (typeof value === 'object' && 'invalid' in value) return { ok: false, reason: `Header[${i}] (${name}): ${value.invalid}` };
    if (Object.hasOwn(headers, name)) return { ok: false, reason: `two conditions on header ${name} cannot be expressed` };
    define(headers, name, value); // `__proto__` is a header name like any other
  }
  if (Object.keys(headers).length > 0) entry.headers = headers;

  const query: Record<string, string> = {};
  const queryList = optArray(http.QueryParam, `${at}.HTTP.QueryParam`);
  for (let i = 0; i < queryList.length; i++) {
    const q = optObject(queryList[i], `${at}.HTTP.QueryParam[${i}]`) ?? {};
    const name = optString(q.Name, `${at}.HTTP.QueryParam[${i}].Name`);
    if (name === '') return { ok: false, reason: `QueryParam[${i}] has no name` };
    const exact = optString(q.Exact, `${at}.HTTP.QueryParam[${i}].Exact`);
    const regex = optString(q.Regex, `${at}.HTTP.QueryParam[${i}].Regex`);
    const present = optBool(q.Present, `${at}.HTTP.QueryParam[${i}].Present`);
    if (exact === '' && (regex !== '' || present)) {
      return { ok: false, reason: `QueryParam[${i}] matches by ${regex !== '' ? 'regex' : 'presence'}, which has no equivalent (query values match exactly)` };
    }
    if (exact === '') {
      notes.push(`QueryParam[${i}] has no condition and is ignored, as Consul's Envoy configuration ignores it`);
      continue;
    }
    if (Object.hasOwn(query, name)) return { ok: false, reason: `two conditions on query parameter ${name} cannot be expressed` };
    define(query, name, exact);
  }
  if (Object.keys(query).length > 0) entry.query = query;

  const methods = optArray(http.Methods, `${at}.HTTP.Methods`).map((m, i) => optString(m, `${at}.HTTP.Methods[${i}]`).toUpperCase());
  if (methods.some((m) => !HEADER_NAME.test(m))) return { ok: false, reason: 'Methods holds a value that is not an HTTP method' };
  const unique = [...new Set(methods)];
  if (unique.length > 0) return { ok: true, match: unique.map((method) => ({ ...entry, method })), notes };
  // Only conditions that hold for every request: the route matches everything, as Envoy's default match does.
  return { ok: true, match: Object.keys(entry).length === 0 ? undefined : [entry], notes };
}

/** The path condition, none, or (a string) why it cannot be expressed. */
function pathOf(http: Json, at: string): PathMatch | undefined | string {
  const exact = optString(http.PathExact, `${at}.HTTP.PathExact`);
  const prefix = optString(http.PathPrefix, `${at}.HTTP.PathPrefix`);
  const regex = optString(http.PathRegex, `${at}.HTTP.PathRegex`);
  if (exact !== '') return exact.startsWith('/') ? { exact } : 'PathExact does not start with /';
  if (prefix !== '') {
    if (!prefix.startsWith('/')) return 'PathPrefix does not start with /';
    if (prefix === '/') return undefined; // every path
    const anchored = `^${escapeRegex(prefix)}`;
    return checkRegex(anchored) ?? { regex: anchored };
  }
  if (regex !== '') {
    const anchored = fullMatch(regex);
    const problem = checkRegex(anchored);
    return problem === undefined ? { regex: anchored } : `PathRegex ${problem}`;
  }
  return undefined;
}

/** The header's condition, in Envoy's order (Exact, Regex, Prefix, Suffix, Present); undefined for none. */
function headerValue(h: Json, at: string): StringMatch | { readonly invalid: string } | undefined {
  const exact = optString(own(h, 'Exact'), `${at}.Exact`);
  const regex = optString(own(h, 'Regex'), `${at}.Regex`);
  const prefix = optString(own(h, 'Prefix'), `${at}.Prefix`);
  const suffix = optString(own(h, 'Suffix'), `${at}.Suffix`);
  if (exact !== '') return exact;
  let pattern: string;
  if (regex !== '') pattern = fullMatch(regex);
  else if (prefix !== '') pattern = `^${escapeRegex(prefix)}`;
  else if (suffix !== '') pattern = `${escapeRegex(suffix)}$`;
  else if (optBool(own(h, 'Present'), `${at}.Present`)) return { regex: '' };
  else return undefined;
  const problem = checkRegex(pattern);
  return problem === undefined ? { regex: pattern } : { invalid: problem };
}

/** Envoy's safe_regex matches the whole value; ours searches, so it is anchored (the group keeps `a|b` whole). */
function fullMatch(regex: string): string {
  return `^(?:${regex})$`;
}

export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Why `pattern` would be refused (not JavaScript, too long), or undefined. */
function checkRegex(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) return `is longer than ${MAX_REGEX_LENGTH} characters once anchored`;
  try {
    new RegExp(pattern);
    return undefined;
  } catch {
    return 'is not a valid JavaScript regular expression (Consul uses RE2 syntax)';
  }
}
