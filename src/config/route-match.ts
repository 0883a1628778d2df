import type { PathMatch, RouteMatch, StringMatch } from './types.js';

/**
 * What a route match reads of one request. A transport builds it lazily: a header is looked up only when a
 * route asks for it, the query is parsed only when a route matches on it.
 */
export interface RequestFacts {
  /** The path, without the query. */
  readonly path: string | undefined;
  /** Upper case. */
  readonly method: string | undefined;
  header(name: string): string | undefined;
  query(name: string): string | undefined;
}

/** A compiled match: true when the request matches. */
export type Matcher = (facts: RequestFacts) => boolean;

const always: Matcher = () => true;

/**
 * A regex is never run over a longer value (it does not match): with nested quantifiers refused at validation,
 * what is left is at most polynomial, and this bounds it.
 */
export const MAX_REGEX_INPUT = 8_192;

/**
 * Compiles a route's `match` entries, once per configuration. Gateway API HTTPRoute semantics: entries are
 * OR-ed and the fields of one entry AND-ed; an empty or missing list matches every request. A path prefix
 * matches on `/` segment boundaries (`/v1` matches `/v1` and `/v1/x`, not `/v10`; a trailing `/` in the prefix
 * is ignored). Regexes are JavaScript's, tested unanchored (`RegExp.test`), as `{ regex }` everywhere here:
 * anchor them (`^/v[0-9]+$`) for a full match. A header or query field never matches a request without it.
 */
export function compileMatch(entries: readonly RouteMatch[] | undefined): Matcher {
  if (entries === undefined || entries.length === 0) return always;
  const compiled = entries.map(compileEntry);
  if (compiled.length === 1) return compiled[0]!;
  return (facts) => {
    for (const m of compiled) if (m(facts)) return true;
    return false;
  };
}

function compileEntry(entry: RouteMatch): Matcher {
  const tests: Matcher[] = [];
  if (entry.path !== undefined) tests.push(pathTest(entry.path));
  if (entry.method !== undefined) {
    const method = entry.method.toUpperCase();
    tests.push((f) => f.method === method);
  }
  for (const [name, match] of Object.entries(entry.headers ?? {})) {
    const lower = name.toLowerCase();
    const test = valueTest(match);
    tests.push((f) => {
      const value = f.header(lower);
      return value !== undefined && test(value);
    });
  }
  for (const [name, expected] of Object.entries(entry.query ?? {})) {
    tests.push((f) => f.query(name) === expected);
  }
  if (tests.length === 0) return always;
  return (facts) => {
    for (const t of tests) if (!t(facts)) return false;
    return true;
  };
}

function pathTest(match: PathMatch): Matcher {
  if ('exact' in match) {
    const exact = match.exact;
    return (f) => f.path === exact;
  }
  if ('prefix' in match) {
    const prefix = match.prefix.length > 1 && match.prefix.endsWith('/') ? match.prefix.slice(0, -1) : match.prefix;
    if (prefix === '/') return (f) => f.path !== undefined;
    const withSlash = `${prefix}/`;
    return (f) => f.path !== undefined && (f.path === prefix || f.path.startsWith(withSlash));
  }
  const re = new RegExp(match.regex);
  return (f) => f.path !== undefined && f.path.length <= MAX_REGEX_INPUT && re.test(f.path);
}

function valueTest(match: StringMatch): (value: string) => boolean {
  if (typeof match === 'string') return (value) => value === match;
  const re = new RegExp(match.regex);
  return (value) => value.length <= MAX_REGEX_INPUT && re.test(value);
}

/**
 * The facts of one request from its request target (path, `?query`, `#fragment`), its method and a header lookup:
 * the query is parsed only when a route matches on it. Every transport builds its facts here.
 */
export function requestFacts(target: string | undefined, method: string | undefined, header: (name: string) => string | undefined): RequestFacts {
  const hash = target === undefined ? -1 : target.indexOf('#');
  const raw = hash < 0 ? target : target!.slice(0, hash);
  const q = raw === undefined ? -1 : raw.indexOf('?');
  let params: URLSearchParams | undefined;
  return {
    path: q < 0 ? raw : raw!.slice(0, q),
    method: method?.toUpperCase(),
    header,
    query(name) {
      if (q < 0) return undefined;
      params ??= new URLSearchParams(raw!.slice(q + 1));
      return params.get(name) ?? undefined;
    },
  };
}

/** Facts from `mesh.call`'s `route` option: `{ path, method, headers }` (a `?query` in `path` is read too). */
export function callFacts(route: { path?: string; method?: string; headers?: Readonly<Record<string, string>> } | undefined): RequestFacts {
  if (route === undefined) return NO_FACTS;
  let headers: Map<string, string> | undefined;
  return requestFacts(route.path, route.method, (name) => {
    if (route.headers === undefined) return undefined;
    headers ??= new Map(Object.entries(route.headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    return headers.get(name);
  });
}

const NO_FACTS: RequestFacts = Object.freeze({
  path: undefined,
  method: undefined,
  header: () => undefined,
  query: () => undefined,
});
