import type { RequestFacts } from '../config/route-match.js';
import { headerValue } from '../transport/fetch.js';

/**
 * The facts a route matches on, for one `mesh.fetch`: the path and query from the planned URL's rest, the
 * method from the planned init, and headers as fetch would send them (read only when a route asks).
 */
export function fetchFacts(input: string | URL | Request, init: RequestInit | undefined, rest: string, method: unknown): RequestFacts {
  const q = rest.indexOf('?');
  const hash = rest.indexOf('#');
  const pathEnd = q >= 0 ? q : hash >= 0 ? hash : rest.length;
  let params: URLSearchParams | undefined;
  return {
    path: rest.slice(0, pathEnd) || '/',
    method: String(method ?? 'GET').toUpperCase(),
    header: (name) => headerValue(input, init, name),
    query(name) {
      if (q < 0) return undefined;
      params ??= new URLSearchParams(rest.slice(q + 1, hash > q ? hash : undefined));
      return params.get(name) ?? undefined;
    },
  };
}
