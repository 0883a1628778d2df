import { requestFacts, type RequestFacts } from '../config/route-match.js';
import { headerValue } from '../transport/fetch.js';

/**
 * The facts a route matches on, for one `mesh.fetch`: the path and query from the planned URL's rest, the
 * method from the planned init, and headers as fetch would send them (read only when a route asks).
 */
export function fetchFacts(input: string | URL | Request, init: RequestInit | undefined, rest: string, method: unknown): RequestFacts {
  return requestFacts(rest || '/', String(method ?? 'GET'), (name) => headerValue(input, init, name));
}
