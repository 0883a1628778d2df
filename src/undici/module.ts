import { isIP } from 'node:net';
import type { Dispatcher, Pool } from 'undici';
import { InvalidServiceNameError } from '../errors.js';
import type { TransportAttempt } from '../transport/attempt-context.js';
import { parseServiceUrl } from '../transport/service-url.js';
import { LegacyAttemptResponse, ModernAttemptResponse, type AttemptResponse } from './response.js';

/** What the adapters use of the `undici` module the application installed (7 or 8). */
export interface UndiciModule {
  readonly Dispatcher: abstract new () => Dispatcher;
  readonly Pool: new (origin: string, options?: Pool.Options) => Pool;
}

/** Makes the response handler of one attempt, in the handler API this undici's core calls natively. */
export type ResponseFactory = (attempt: TransportAttempt) => AttemptResponse;

/**
 * undici 8 dropped the legacy handler API from its core (and added `Dispatcher1Wrapper` to bridge old
 * dispatchers); undici 7's core still calls the legacy one and adapts new-API handlers on every response.
 */
export function responseFactory(undici: object): ResponseFactory {
  return 'Dispatcher1Wrapper' in undici
    ? (attempt) => new ModernAttemptResponse(attempt)
    : (attempt) => new LegacyAttemptResponse(attempt);
}

/** A dispatch origin taken apart: `http://users` → `http:`, `users`. */
export interface Route {
  readonly scheme: 'http:' | 'https:';
  readonly service: string;
  /** The hostname is an IP address: no service (the interceptor lets it through, the dispatcher refuses it). */
  readonly ip: boolean;
}

const MAX_ROUTES = 1024;

/**
 * Reads origins as service names, once per origin string: a dispatch costs a map lookup, not a parse. An
 * origin that is no service name (a bad host, another scheme) is `undefined`; the cache is bounded.
 */
export class RouteCache {
  private readonly routes = new Map<string, Route | undefined>();
  /** The last origin read: most dispatchers see one origin over and over. */
  private lastKey: string | undefined;
  private lastRoute: Route | undefined;

  read(origin: unknown): Route | undefined {
    if (origin === this.lastKey && origin !== undefined) return this.lastRoute;
    const key = typeof origin === 'string' ? origin : origin instanceof URL ? origin.origin : undefined;
    if (key === undefined) return undefined;
    if (this.routes.has(key)) return this.remember(key, this.routes.get(key));
    let route: Route | undefined;
    try {
      const { scheme, service } = parseServiceUrl(key);
      route = { scheme, service, ip: isIP(service) !== 0 };
    } catch (error) {
      if (!(error instanceof InvalidServiceNameError) && !(error instanceof TypeError)) throw error;
      route = undefined;
    }
    if (this.routes.size >= MAX_ROUTES) this.routes.clear();
    this.routes.set(key, route);
    return this.remember(key, route);
  }

  private remember(key: string, route: Route | undefined): Route | undefined {
    this.lastKey = key;
    this.lastRoute = route;
    return route;
  }
}
