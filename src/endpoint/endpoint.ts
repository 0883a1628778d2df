/** One address of a logical service, as discovery reports it. Immutable. */
export interface Endpoint {
  /** Stable identity across discovery updates: state (in-flight, EWMA, breaker) is keyed by it. */
  readonly id: string;
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port, 1 to 65535. */
  readonly port: number;
  /** Relative share of traffic; every balancer honours it. Default 1. */
  readonly weight: number;
  /** Locality, for zone-aware balancing. */
  readonly zone?: string;
  /** Labels from the registry (Consul tags, for example). */
  readonly tags: readonly string[];
  /** Key-value metadata from the registry. */
  readonly meta: Readonly<Record<string, string>>;
}

/**
 * What a registry may hand in: `'host:port'`, `'[::1]:port'`, or an object whose optional fields get defaults.
 *
 * @example
 * ['127.0.0.1:8081', { host: '127.0.0.1', port: 8083, weight: 3, zone: 'b' }]
 */
export type EndpointInput =
  | string
  | {
      /** Host name or IP address (`[::1]` or `::1` for IPv6). */
      host: string;
      /** TCP port, 1 to 65535. */
      port: number;
      /** Stable identity; default `host:port`. */
      id?: string;
      /** Relative share of traffic, > 0. Default 1. */
      weight?: number;
      /** Locality, for zone-aware balancing. */
      zone?: string;
      /** Labels. Default none. */
      tags?: readonly string[];
      /** Key-value metadata. Default none. */
      meta?: Readonly<Record<string, string>>;
    };

const EMPTY_TAGS: readonly string[] = Object.freeze([]);
const EMPTY_META: Readonly<Record<string, string>> = Object.freeze({});

/** Formats host and port as a URL authority (`[::1]:80` for IPv6). */
export function authority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Turns an {@link EndpointInput} into a frozen {@link Endpoint}, or throws a `TypeError` naming `where`.
 * The default id is the authority, `host:port`.
 */
export function toEndpoint(input: EndpointInput, where: string): Endpoint {
  if (typeof input === 'string') {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/[\]]+)):(\d{1,5})$/.exec(input);
    if (!m) throw new TypeError(`${where} must be 'host:port' or { host, port }, got ${JSON.stringify(input)}`);
    return toEndpoint({ host: (m[1] ?? m[2]) as string, port: Number(m[3]) }, where);
  }
  if (input === null || typeof input !== 'object') {
    throw new TypeError(`${where} must be 'host:port' or { host, port }`);
  }
  const { host, port } = input;
  if (typeof host !== 'string' || host.length === 0 || /[\s/?#@]/.test(host)) {
    throw new TypeError(`${where}.host must be a host name or IP address`);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`${where}.port must be an integer from 1 to 65535`);
  }
  const weight = input.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw new TypeError(`${where}.weight must be a finite number > 0`);
  }
  if (input.zone !== undefined && typeof input.zone !== 'string') {
    throw new TypeError(`${where}.zone must be a string`);
  }
  const bareHost = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return Object.freeze({
    id: input.id ?? authority(bareHost, port),
    host: bareHost,
    port,
    weight,
    ...(input.zone !== undefined ? { zone: input.zone } : {}),
    tags: input.tags ? Object.freeze([...input.tags]) : EMPTY_TAGS,
    meta: input.meta ? Object.freeze({ ...input.meta }) : EMPTY_META,
  });
}
