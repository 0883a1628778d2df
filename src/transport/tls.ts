import { isIP } from 'node:net';
import { serviceNameProblem } from '../util/service-name.js';

/** PEM text or its bytes. */
export type Pem = string | Uint8Array;

/**
 * Per-service TLS for `https://service/...` (the undici dispatcher, and mesh.fetch through a dispatcher per
 * service). The certificate is verified against `servername`, so a certificate for `users.internal` verifies
 * against an endpoint at `10.0.1.21`, as a sidecar with an upstream SNI does.
 */
export interface TlsPolicy {
  /**
   * Sent as SNI and checked against the certificate. Default: the service name when the endpoint is an IP
   * address, else the endpoint's host name.
   */
  servername?: string | undefined;
  /** CA certificates to trust instead of Node's bundled roots (PEM; one or several). */
  ca?: Pem | readonly Pem[] | undefined;
  /** Client certificate (PEM) for mutual TLS; needs `key`. */
  cert?: Pem | undefined;
  /** Client private key (PEM) for mutual TLS; needs `cert`. */
  key?: Pem | undefined;
  /** Default `true`. `false` turns verification off (a test rig, never production). */
  rejectUnauthorized?: boolean | undefined;
}

/** The options of `tls.connect` for one endpoint (what undici's `connect` option passes on). */
export interface TlsConnectOptions {
  servername: string | undefined;
  ca?: Pem | Pem[];
  cert?: Pem;
  key?: Pem;
  rejectUnauthorized: boolean;
}

const TLS_KEYS: ReadonlySet<string> = new Set(['servername', 'ca', 'cert', 'key', 'rejectUnauthorized']);

const isPem = (v: unknown): v is Pem => (typeof v === 'string' && v.length > 0) || v instanceof Uint8Array;

/**
 * Checks a `tls` policy. The messages name the option but never show a value: a key must not end up in a log.
 */
export function validateTls(value: unknown, at: string): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError(`${at} must be an object`);
  for (const key of Object.keys(value)) {
    if (!TLS_KEYS.has(key)) throw new TypeError(`${at}.${key} is not a known option (known: ${[...TLS_KEYS].join(', ')})`);
  }
  const t = value as TlsPolicy;
  if (t.servername !== undefined) {
    if (typeof t.servername !== 'string' || isIP(t.servername) !== 0 || serviceNameProblem(t.servername.toLowerCase()) !== undefined) {
      throw new TypeError(`${at}.servername must be a DNS name (SNI carries no IP address)`);
    }
  }
  if (t.ca !== undefined && !(isPem(t.ca) || (Array.isArray(t.ca) && t.ca.length > 0 && t.ca.every(isPem)))) {
    throw new TypeError(`${at}.ca must be PEM text or bytes, or a non-empty array of them`);
  }
  if (t.cert !== undefined && !isPem(t.cert)) throw new TypeError(`${at}.cert must be PEM text or bytes`);
  if (t.key !== undefined && !isPem(t.key)) throw new TypeError(`${at}.key must be PEM text or bytes`);
  if ((t.cert === undefined) !== (t.key === undefined)) throw new TypeError(`${at}.cert and ${at}.key go together`);
  if (t.rejectUnauthorized !== undefined && typeof t.rejectUnauthorized !== 'boolean') {
    throw new TypeError(`${at}.rejectUnauthorized must be a boolean`);
  }
}

/** A resolved copy, frozen: later changes to the caller's object do not reach the mesh. */
export function resolveTls(t: TlsPolicy | undefined): Readonly<TlsPolicy> | undefined {
  if (t === undefined) return undefined;
  const copy: TlsPolicy = {};
  if (t.servername !== undefined) copy.servername = t.servername.toLowerCase();
  if (t.ca !== undefined) copy.ca = Array.isArray(t.ca) ? Object.freeze([...(t.ca as Pem[])]) : t.ca;
  if (t.cert !== undefined) copy.cert = t.cert;
  if (t.key !== undefined) copy.key = t.key;
  if (t.rejectUnauthorized !== undefined) copy.rejectUnauthorized = t.rejectUnauthorized;
  return Object.freeze(copy);
}

/**
 * The SNI for one endpoint of `service`: the policy's `servername`, else the service name when the endpoint is
 * an IP address (an IP is no SNI, and the certificate names the service), else the endpoint's own host name.
 */
export function servernameFor(tls: Readonly<TlsPolicy> | undefined, service: string, endpointHost: string): string {
  return tls?.servername ?? (isIP(endpointHost) !== 0 ? service : endpointHost);
}

/** What to connect with to one endpoint of `service` (its SNI by {@link servernameFor}). */
export function tlsConnectOptions(tls: Readonly<TlsPolicy> | undefined, service: string, endpointHost: string): TlsConnectOptions {
  const options: TlsConnectOptions = { servername: servernameFor(tls, service, endpointHost), rejectUnauthorized: tls?.rejectUnauthorized ?? true };
  if (tls?.ca !== undefined) options.ca = Array.isArray(tls.ca) ? [...(tls.ca as Pem[])] : (tls.ca as Pem);
  if (tls?.cert !== undefined) options.cert = tls.cert;
  if (tls?.key !== undefined) options.key = tls.key;
  return options;
}
