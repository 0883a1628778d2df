/**
 * EndpointSlices (discovery.k8s.io/v1) to endpoints. The shapes follow kubernetes/api discovery/v1/types.go
 * (EndpointSlice, Endpoint, EndpointConditions, EndpointPort, EndpointSliceList) and apimachinery's metav1
 * WatchEvent (pkg/apis/meta/v1/watch.go: `{ type, object }`, sent as newline-delimited JSON) and Status.
 *
 * Which endpoints are used follows kube-proxy (pkg/proxy/endpointslicecache.go and topology.go,
 * CategorizeEndpoints, KEP-1669): ready ones, and only when none of the service is ready, the ones that are
 * serving and terminating, so that a rollout's last pods still answer instead of the service going dark.
 * `ready` and `serving` read nil (absent or null) as true, `terminating` nil as false (types.go); a condition
 * that is there but not a boolean (`"false"`, 1) is garbage, read as the value that trusts the endpoint least:
 * not ready, not serving, terminating. Only the first address of an endpoint counts (kube-proxy ignores the
 * others), and an endpoint in several slices (while the controller moves it) counts once, its readiest copy.
 *
 * One address family per Service: a dual-stack Service has IPv4 and IPv6 slices naming the same pods, and
 * counting both would call every pod twice as often. As kube-proxy runs one proxier per family, the IPv4 slices
 * are used when any of them carries an endpoint, else the IPv6 ones (or the family the caller chose). FQDN
 * slices have no defined semantics and are left out. IPv6 addresses are canonicalized (`FD00:0::5` is
 * `fd00::5`) before two copies of an endpoint are compared.
 *
 * The envelope of a list or an event must be right, or the whole answer is refused; inside a slice, anything
 * unusable (a bad address, a port of 0 or 70000, a UDP port) is left out, and the rest is used.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { authority, toEndpoint, type Endpoint } from '../../endpoint/endpoint.js';
import { statusOf } from './status.js';
import type { KubernetesAddressType, KubernetesPort } from './options.js';

/** The label that ties an EndpointSlice to its Service (discovery/v1 well_known_labels.go, LabelServiceName). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** One endpoint of a slice, as much of it as is used. */
export interface SliceEndpoint {
  readonly address: string | undefined;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly zone: string | undefined;
  /** targetRef.uid (the pod's), when it is a plausible one. */
  readonly uid: string | undefined;
  /** targetRef.name, for a Pod. */
  readonly pod: string | undefined;
  readonly node: string | undefined;
}

/** A slice port; `port` is undefined when absent or outside 1 to 65535. */
export interface SlicePort {
  readonly name: string;
  readonly port: number | undefined;
  readonly tcp: boolean;
}

/** An EndpointSlice reduced to what selection reads. */
export interface StoredSlice {
  readonly name: string;
  /** The `kubernetes.io/service-name` label, undefined when missing. */
  readonly service: string | undefined;
  readonly addressType: string | undefined;
  readonly ports: readonly SlicePort[];
  readonly endpoints: readonly SliceEndpoint[];
}

/** A parsed watch event. */
export type SliceEvent =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly resourceVersion: string; readonly slice: StoredSlice }
  | { readonly type: 'BOOKMARK'; readonly resourceVersion: string }
  | { readonly type: 'ERROR'; readonly code: number | undefined; readonly reason: string | undefined; readonly message: string | undefined };

/** Thrown for an answer or line of the wrong shape; its message names the field, never the content. */
export class ShapeError extends Error {}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const MAX_SLICE_ENDPOINTS = 1_000;
const MAX_SLICE_PORTS = 100;
/** A UID is a UUID in practice; anything long or odd is not used in an id. */
const UID = /^[A-Za-z0-9-]{1,64}$/;
const LABEL_VALUE = /^[A-Za-z0-9._-]{1,253}$/;

/** An EndpointSliceList: its resourceVersion and its slices. */
export function parseList(value: unknown): { resourceVersion: string; slices: StoredSlice[] } {
  if (!isObject(value)) throw new ShapeError('the list is not a JSON object');
  const resourceVersion = isObject(value.metadata) ? value.metadata.resourceVersion : undefined;
  if (typeof resourceVersion !== 'string' || resourceVersion === '') throw new ShapeError('the list has no metadata.resourceVersion');
  if (value.items !== null && !Array.isArray(value.items)) throw new ShapeError('the list has no items array');
  const items = (value.items ?? []) as unknown[];
  const slices: StoredSlice[] = [];
  items.forEach((item, i) => {
    const slice = parseSlice(item);
    if (slice === undefined) throw new ShapeError(`items[${i}] is not an object with metadata.name`);
    slices.push(slice);
  });
  return { resourceVersion, slices };
}

/** One line of a watch stream; '' is undefined (a blank line is no event). Throws a ShapeError for garbage. */
export function parseEventLine(line: string): SliceEvent | undefined {
  if (line.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ShapeError(`a watch line is not JSON (${Buffer.byteLength(line)} bytes)`);
  }
  if (!isObject(value) || typeof value.type !== 'string' || !isObject(value.object)) throw new ShapeError('a watch line is not a WatchEvent { type, object }');
  const { type, object } = value;
  if (type === 'ERROR') {
    const status = statusOf(object) ?? {};
    return { type, code: status.code, reason: status.reason, message: status.message };
  }
  const rv = isObject(object.metadata) ? object.metadata.resourceVersion : undefined;
  if (typeof rv !== 'string' || rv === '') throw new ShapeError(`a ${type.slice(0, 20)} event has no metadata.resourceVersion`);
  // A bookmark's object is the watched kind with only metadata.resourceVersion set (api-concepts, "Watch bookmarks").
  if (type === 'BOOKMARK') return { type, resourceVersion: rv };
  if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') throw new ShapeError('a watch event has an unknown type');
  const slice = parseSlice(object);
  if (slice === undefined) throw new ShapeError(`a ${type} event's object has no metadata.name`);
  return { type, resourceVersion: rv, slice };
}

/** An EndpointSlice, leniently: undefined only without a name (it could not be updated or deleted later). */
export function parseSlice(value: unknown): StoredSlice | undefined {
  if (!isObject(value) || !isObject(value.metadata)) return undefined;
  const { name, labels } = value.metadata;
  if (typeof name !== 'string' || name === '') return undefined;
  const label = isObject(labels) ? labels[SERVICE_NAME_LABEL] : undefined;
  const ports = Array.isArray(value.ports) ? value.ports.slice(0, MAX_SLICE_PORTS).flatMap(parsePort) : [];
  const endpoints = Array.isArray(value.endpoints) ? value.endpoints.slice(0, MAX_SLICE_ENDPOINTS).flatMap(parseEndpoint) : [];
  return {
    name,
    service: typeof label === 'string' ? label : undefined,
    addressType: typeof value.addressType === 'string' ? value.addressType : undefined,
    ports,
    endpoints,
  };
}

function parsePort(value: unknown): SlicePort[] {
  if (!isObject(value)) return [];
  const name = value.name ?? '';
  if (typeof name !== 'string') return [];
  const port = Number.isInteger(value.port) && (value.port as number) >= 1 && (value.port as number) <= 65535 ? (value.port as number) : undefined;
  // Protocol defaults to TCP (types.go EndpointPort.Protocol).
  return [{ name, port, tcp: value.protocol === undefined || value.protocol === null || value.protocol === 'TCP' }];
}

function parseEndpoint(value: unknown): SliceEndpoint[] {
  if (!isObject(value)) return [];
  const address = Array.isArray(value.addresses) && typeof value.addresses[0] === 'string' ? value.addresses[0] : undefined;
  const c = isObject(value.conditions) ? value.conditions : {};
  const ref = isObject(value.targetRef) ? value.targetRef : {};
  const text = (v: unknown): string | undefined => (typeof v === 'string' && LABEL_VALUE.test(v) ? v : undefined);
  return [
    {
      address,
      ready: condition(c.ready, true, false),
      serving: condition(c.serving, true, false),
      terminating: condition(c.terminating, false, true),
      zone: text(value.zone),
      uid: typeof ref.uid === 'string' && UID.test(ref.uid) ? ref.uid : undefined,
      pod: ref.kind === 'Pod' ? text(ref.name) : undefined,
      node: text(value.nodeName),
    },
  ];
}

/** A condition: nil (absent, null) reads as `nil`, a boolean as itself, anything else as `garbage`. */
function condition(value: unknown, nil: boolean, garbage: boolean): boolean {
  if (value === undefined || value === null) return nil;
  return typeof value === 'boolean' ? value : garbage;
}

/** The address family a Service's endpoints are taken from: IPv4 when any IPv4 slice carries an endpoint, else IPv6. */
export function addressFamily(slices: readonly StoredSlice[]): KubernetesAddressType {
  if (slices.some((s) => s.addressType === 'IPv4' && s.endpoints.length > 0)) return 'IPv4';
  return slices.some((s) => s.addressType === 'IPv6' && s.endpoints.length > 0) ? 'IPv6' : 'IPv4';
}

/** An address of `family` in its canonical form (IPv6 lowercased and compressed), or undefined when it is not one. */
function canonical(address: string | undefined, family: KubernetesAddressType): string | undefined {
  if (address === undefined) return undefined;
  if (family === 'IPv4') return isIPv4(address) ? address : undefined;
  if (!isIPv6(address)) return undefined;
  try {
    return new URL(`http://[${address}]`).hostname.slice(1, -1); // WHATWG's IPv6 serializer (RFC 5952)
  } catch {
    return undefined; // a zone id (fe80::1%eth0): not dialable from another pod
  }
}

const showPort = (p: SlicePort): string => `${p.name === '' ? "''" : p.name} (${p.port ?? 'no valid number'}${p.tcp ? '' : ', not TCP'})`;

/**
 * The endpoints to call for Service `name`, from its slices, on the port `choice` (a port name; or a number,
 * which is the endpoints' own port, the Service's targetPort, since slices carry no other; or undefined for
 * the only one), in one address family (`addressType`, or the default of {@link addressFamily}).
 * Throws a plain Error when no port is chosen and the slices carry several, and when endpoints exist but no
 * slice carries the chosen port (a typo must not read as "no endpoints"); each error lists the ports seen.
 * Ids are `<targetRef.uid>@<ip>:<port>` (the address alone without a uid), so they survive a relist.
 */
export function selectEndpoints(name: string, slices: Iterable<StoredSlice>, choice: KubernetesPort | undefined, addressType?: KubernetesAddressType): Endpoint[] {
  const mine = [...slices].filter((s) => s.service === name);
  const family = addressType ?? addressFamily(mine);
  const own = mine.filter((s) => s.addressType === family);
  // A Service without endpoints keeps a placeholder slice without ports: only slices with endpoints have a say.
  const populated = own.filter((s) => s.endpoints.length > 0);
  let wanted = choice;
  if (wanted === undefined) {
    const names = new Set(populated.flatMap((s) => s.ports.filter((p) => p.tcp).map((p) => p.name)));
    if (names.size > 1) {
      const shown = [...names].sort().map((n) => (n === '' ? "''" : n)).join(', ');
      throw new Error(`its EndpointSlices carry several ports (${shown}): choose one with kubernetesRegistry.port or .ports`);
    }
    wanted = names.values().next().value;
    if (wanted === undefined) return [];
  }
  const matches = (p: SlicePort): boolean => p.tcp && p.port !== undefined && (typeof wanted === 'number' ? p.port === wanted : p.name === wanted);
  if (populated.length > 0 && !populated.some((s) => s.ports.some(matches))) {
    const seen = [...new Set(populated.flatMap((s) => s.ports.map(showPort)))].sort();
    const what = typeof wanted === 'number' ? `endpoint port ${wanted} (a number is the pods' targetPort, not the Service's port)` : `port named '${wanted}'`;
    throw new Error(`its ${family} EndpointSlices carry no TCP ${what}; the ports they carry: ${seen.length > 0 ? seen.join(', ') : 'none'}`);
  }
  const byAddress = new Map<string, { e: SliceEndpoint; address: string; port: number }>();
  for (const slice of own) {
    const port = slice.ports.find(matches)?.port;
    if (port === undefined) continue;
    for (const e of slice.endpoints) {
      const address = canonical(e.address, family);
      if (address === undefined) continue;
      const key = authority(address, port);
      const seen = byAddress.get(key);
      if (seen === undefined || rank(e) > rank(seen.e)) byAddress.set(key, { e, address, port });
    }
  }
  const all = [...byAddress.values()];
  const ready = all.filter(({ e }) => e.ready);
  const chosen = ready.length > 0 ? ready : all.filter(({ e }) => e.serving && e.terminating);
  const out: Endpoint[] = [];
  for (const { e, address, port } of chosen) {
    const meta: Record<string, string> = {};
    if (e.pod !== undefined) meta.pod = e.pod;
    if (e.node !== undefined) meta.node = e.node;
    if (e.terminating) meta.terminating = 'true';
    try {
      out.push(
        toEndpoint(
          { id: e.uid === undefined ? authority(address, port) : `${e.uid}@${authority(address, port)}`, host: address, port, zone: e.zone, meta },
          `${name} endpoint ${authority(address, port)}`,
        ),
      );
    } catch {
      // not dialable after all (an IPv6 zone id, say): left out, as every unusable endpoint is
    }
  }
  return out;
}

/** Ready beats serving beats neither (kube-proxy keeps the ready copy of a duplicate). */
function rank(e: SliceEndpoint): number {
  return e.ready ? 2 : e.serving ? 1 : 0;
}
