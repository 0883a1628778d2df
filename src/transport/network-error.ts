import { isIP } from 'node:net';
import type { Endpoint } from '../endpoint/endpoint.js';

/**
 * Error codes that prove a request never left this process: the connection was never made, so even a
 * POST can be replayed safely (as Envoy's `connect-failure` and grpc-js's transparent retry do).
 */
const UNSENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'EENDPOINTGONE',
]);

/**
 * Raised by the mesh's own adapters (the undici dispatcher's pools, `endpointClients`) for an attempt on an
 * endpoint that discovery removed after the pick: nothing was sent. It names the endpoint's address and port,
 * so that it proves "unsent" for that endpoint like a refused connection does.
 */
export class EndpointGoneError extends Error {
  readonly code = 'EENDPOINTGONE';
  readonly address: string;
  readonly port: number;

  constructor(endpoint: Endpoint) {
    super(`endpoint ${endpoint.id} was removed by discovery before the request was sent`);
    this.name = 'EndpointGoneError';
    this.address = endpoint.host;
    this.port = endpoint.port;
  }
}

/** The first error in a cause chain (undici nests them: `TypeError('fetch failed')` → `{ code, address }`). */
export interface NetworkCause {
  readonly code: string;
  readonly address?: string;
  readonly port?: number;
  readonly hostname?: string;
}

/** The innermost-first error with a string `code` in `error`'s cause chain (or an AggregateError's first member). */
export function networkCause(error: unknown): NetworkCause | undefined {
  for (let e = error, depth = 0; e !== null && typeof e === 'object' && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'ECALLFAILED') {
      const { address, port, hostname, errors } = e as {
        address?: unknown;
        port?: unknown;
        hostname?: unknown;
        errors?: unknown;
      };
      // Happy eyeballs: an AggregateError carries the code, its members the addresses tried.
      const first = Array.isArray(errors) ? (errors[0] as { address?: unknown; port?: unknown } | undefined) : undefined;
      const addr = typeof address === 'string' ? address : typeof first?.address === 'string' ? first.address : undefined;
      const p = typeof port === 'number' ? port : typeof first?.port === 'number' ? first.port : undefined;
      return {
        code,
        ...(addr !== undefined ? { address: addr } : {}),
        ...(p !== undefined ? { port: p } : {}),
        ...(typeof hostname === 'string' ? { hostname } : {}),
      };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** `ECONNREFUSED 127.0.0.1:8081`, `ENOTFOUND users.internal`, or just the code. */
export function describeCause(cause: NetworkCause): string {
  if (cause.address !== undefined) {
    const host = cause.address.includes(':') ? `[${cause.address}]` : cause.address;
    return cause.port !== undefined ? `${cause.code} ${host}:${cause.port}` : `${cause.code} ${host}`;
  }
  return cause.hostname !== undefined ? `${cause.code} ${cause.hostname}` : cause.code;
}

/**
 * Whether `error` proves that the request to `endpoint` never left: an unsent code AND evidence that it is
 * about this endpoint's connection. A function given to `mesh.call` may make other connections (an audit
 * service, a cache) whose refusal says nothing about the endpoint: the address and port must be the
 * endpoint's, or, for a DNS failure, the host name. An error with no address at all proves nothing unless
 * `trustAddressless` (the mesh's own transport raised it for this endpoint).
 */
export function provesUnsent(error: unknown, endpoint: Endpoint, trustAddressless: boolean): boolean {
  const cause = networkCause(error);
  if (cause === undefined || !UNSENT_CODES.has(cause.code)) return false;
  if (cause.address !== undefined) {
    if (cause.port !== undefined && cause.port !== endpoint.port) return false;
    // A host name endpoint resolves to addresses we cannot compare; the port must then match.
    if (isIP(endpoint.host) === 0) return cause.port !== undefined;
    return sameAddress(cause.address, endpoint.host);
  }
  if (cause.hostname !== undefined) return cause.hostname.toLowerCase() === endpoint.host.toLowerCase();
  return trustAddressless;
}

function sameAddress(a: string, b: string): boolean {
  const strip = (s: string): string => s.toLowerCase().replace(/^::ffff:(?=\d+\.)/, '');
  return strip(a) === strip(b);
}
