import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';

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
  readonly zone?: string | undefined;
  /** Labels from the registry (Consul tags, for example). */
  readonly tags: readonly string[];
  /** Key-value metadata from the registry. */
  readonly meta: Readonly<Record<string, string>>;
}

/**
 * What a registry may hand in: `'host:port'`, `'[::1]:port'`, or an object whose optional fields get defaults.
 *
 * @example '127.0.0.1:8081'
 * @example { host: '127.0.0.1', port: 8083, weight: 3, zone: 'b' }
 */
export type EndpointInput =
  | string
  | {
      /** Host name or IP address (`[::1]` or `::1` for IPv6). */
      host: string;
      /** TCP port, 1 to 65535. */
      port: number;
      /** Stable identity; default `host:port`. */
      id?: string | undefined;
      /** Relative share of traffic, > 0. Default 1. */
      weight?: number | undefined;
      /** Locality, for zone-aware balancing. */
      zone?: string | undefined;
      /** Labels. Default none. */
      tags?: readonly string[] | undefined;
      /** Key-value metadata. Default none. */
      meta?: Readonly<Record<string, string>> | undefined;
    };

const EMPTY_TAGS: readonly string[] = Object.freeze([]);

/** A DNS label: letters, digits, '_' (service records, container names) and '-' (not first or last). */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
/** A last label that the WHATWG URL parser reads as an IPv4 number ("ends in a number"): 127.1, 0x7f.1, 1.2.3.4.5. */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/i;

/**
 * Why `host` is not a host an endpoint may have, or undefined when it is one. The one rule for every endpoint
 * that enters the mesh (toEndpoint, custom registries and watches, DNS and Consul answers), so that the host
 * and port dialled are exactly the endpoint's: the URL parser that fetch uses reads `127.0.0.1\` as
 * `127.0.0.1` on port 80, `::1]:8080\` as `[::1]:8080`, `127.1` as `127.0.0.1`, and drops tabs.
 *
 * Accepted: an IPv4 dotted quad (no leading zeros), an IPv6 literal without brackets and without a zone id
 * (`%eth0` cannot be dialled through a URL), or an ASCII DNS name (labels of letters, digits, '-' and '_',
 * 1 to 63 characters, 253 in all, one trailing '.' allowed; IDNs in their `xn--` form). Case is free.
 */
export function hostProblem(host: unknown): string | undefined {
  if (typeof host !== 'string') return 'it must be a string';
  if (host === '') return 'it is empty';
  if (host.includes(':')) {
    if (host.includes('%')) return 'an IPv6 zone id (%) cannot be dialled';
    return isIPv6(host) ? undefined : "only an IPv6 address may contain ':' (give the port apart, IPv6 without brackets)";
  }
  if (isIPv4(host)) return undefined;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0) return 'it has an empty label';
  if (name.length > 253) return 'it is longer than 253 characters';
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length === 0) return 'it has an empty label';
    if (label.length > 63) return 'a label is longer than 63 characters';
    if (!LABEL.test(label)) {
      return "it is not an IP address, and a host name's labels are letters, digits, '-' and '_' (no '-' first or last)";
    }
    // An `xn--` label must be punycode that decodes: Node 20 and 22 refuse `xn--a` in a URL, Node 24 keeps it
    // as it is; refusing it everywhere gives one rule on every Node.
    if (/^xn--/i.test(label)) {
      const decoded = domainToUnicode(label);
      if (decoded === '' || decoded.toLowerCase() === label.toLowerCase()) return 'it is not a valid internationalised (xn--) name';
    }
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1]!)) return 'it ends in a number but is not a dotted-quad IPv4 address';
  // Left: ASCII names, which the URL parser only lowercases, unless an `xn--` label is not valid punycode.
  if (domainToASCII(host) !== host.toLowerCase()) return 'it is not a valid internationalised (xn--) name';
  return undefined;
}
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
  // '[::1]' is accepted as an IPv6 literal; brackets around anything else are not stripped (and then refused).
  const bracketed = typeof host === 'string' && host.startsWith('[') && host.endsWith(']') && host.includes(':');
  const bareHost = bracketed ? host.slice(1, -1) : host;
  const problem = hostProblem(bareHost);
  if (problem) throw new TypeError(`${where}.host must be a host name or IP address: ${problem}, got ${JSON.stringify(String(host).slice(0, 80))}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TypeError(`${where}.port must be an integer from 1 to 65535`);
  }
  if (input.id !== undefined && (typeof input.id !== 'string' || input.id === '')) {
    throw new TypeError(`${where}.id must be a non-empty string`);
  }
  const weight = input.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw new TypeError(`${where}.weight must be a finite number > 0`);
  }
  if (input.zone !== undefined && typeof input.zone !== 'string') {
    throw new TypeError(`${where}.zone must be a string`);
  }
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
