/**
 * The objects the Kubernetes API double (kube-double.ts) serves, in the API server's shapes: EndpointSlices as
 * the EndpointSlice controller groups them (kubernetes/api discovery/v1/types.go), and metav1.Status bodies
 * (apimachinery pkg/apis/meta/v1/types.go, and the constructors of pkg/api/errors/errors.go: NewUnauthorized,
 * NewResourceExpired, NewInternalError ...).
 */
import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';

export type Json = Record<string, any>;

/** One endpoint for {@link KubeDouble.setEndpoints}. `null` for a condition leaves the field out (nil). */
export interface EndpointSpec {
  ip: string;
  /** The port the endpoint listens on. Default: `setEndpoints`' `port` option. */
  port?: number;
  /** Default true. */
  ready?: boolean | null;
  /** Default: as `ready`. */
  serving?: boolean | null;
  /** Default false. */
  terminating?: boolean | null;
  zone?: string;
  /** targetRef.uid. Default: a UUID derived from the service, the ip and the port (stable across calls). */
  uid?: string;
  /** targetRef.name (a Pod). Default derived from the service, the ip and the port. */
  pod?: string;
  /** nodeName. Default 'node-1'. */
  node?: string;
}

export interface SetEndpointsOptions {
  /** The Service port's name, on every slice. Default 'http'; '' for an unnamed single port. */
  portName?: string;
  /** The port of endpoints that give none. Default 8080. */
  port?: number;
  /** At most this many endpoints per slice (the controller's default is 100). */
  maxPerSlice?: number;
  /** More ports on every slice (`{ name, port, protocol? }`), beside the main one. */
  extraPorts?: readonly { name: string; port: number; protocol?: string }[];
}

export const LABEL = 'kubernetes.io/service-name';
export const REASONS: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 410: 'Expired', 429: 'TooManyRequests',
  500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};

/** A metav1.Status body, as the API server writes it. */
export function statusBody(code: number, message: string, reason = REASONS[code] ?? ''): Json {
  const status: Json = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (code === 500) status.details = { causes: [{ message }] };
  return status;
}

/** 'users' or 'users.payments' → [namespace, name]. */
export function splitService(service: string): [namespace: string, name: string] {
  const [name, namespace = 'default'] = service.split('.');
  return [namespace, name!];
}

export const digest = (text: string): string => createHash('sha256').update(text).digest('hex');
export const stableUid = (text: string): string => {
  const h = digest(text);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

/** A slice the controller wants, keyed by its group (`IPv4/8080#0`: family, port, chunk), before it is named. */
export interface WantedSlice {
  readonly groupKey: string;
  /** Without `metadata.name`, which the double keeps per group so that updates modify the same slice. */
  readonly slice: Json;
}

/** The controller's grouping: one set of slices per address family and port, at most `maxPerSlice` endpoints each. */
export function wantedSlices(service: string, endpoints: readonly EndpointSpec[], opts: SetEndpointsOptions = {}): WantedSlice[] {
  const [namespace, name] = splitService(service);
  const portName = opts.portName ?? 'http';
  const defaultPort = opts.port ?? 8080;
  const maxPerSlice = opts.maxPerSlice ?? 100;
  const serviceUid = stableUid(`service/${namespace}/${name}`);
  const byGroup = new Map<string, { family: 'IPv4' | 'IPv6'; port: number; items: Json[] }>();
  for (const spec of endpoints) {
    const family = isIPv6(spec.ip) ? 'IPv6' : 'IPv4';
    const port = spec.port ?? defaultPort;
    const key = `${family}/${port}`;
    const group = byGroup.get(key) ?? { family, port, items: [] };
    byGroup.set(key, group);
    const ready = spec.ready === undefined ? true : spec.ready;
    const serving = spec.serving === undefined ? ready : spec.serving;
    const terminating = spec.terminating === undefined ? false : spec.terminating;
    const conditions: Json = {};
    if (ready !== null) conditions.ready = ready;
    if (serving !== null) conditions.serving = serving;
    if (terminating !== null) conditions.terminating = terminating;
    // One pod per address and port: test backends share 127.0.0.1 and differ by port.
    const podKey = `${namespace}/${name}/${spec.ip}:${port}`;
    const item: Json = {
      addresses: [spec.ip],
      conditions,
      targetRef: { kind: 'Pod', namespace, name: spec.pod ?? `${name}-${digest(podKey).slice(0, 10)}`, uid: spec.uid ?? stableUid(`pod/${podKey}`) },
      nodeName: spec.node ?? 'node-1',
    };
    if (spec.zone !== undefined) item.zone = spec.zone;
    group.items.push(item);
  }
  const out: WantedSlice[] = [];
  for (const [groupKey, group] of byGroup) {
    for (let i = 0, chunk = 0; i < group.items.length; i += maxPerSlice, chunk++) {
      const ports: Json[] = [{ name: portName, protocol: 'TCP', port: group.port }];
      for (const extra of opts.extraPorts ?? []) ports.push({ name: extra.name, protocol: extra.protocol ?? 'TCP', port: extra.port });
      out.push({
        groupKey: `${groupKey}#${chunk}`,
        slice: {
          metadata: {
            generateName: `${name}-`,
            labels: { [LABEL]: name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
            ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name, uid: serviceUid, controller: true, blockOwnerDeletion: true }],
          },
          addressType: group.family,
          endpoints: group.items.slice(i, i + maxPerSlice),
          ports,
        },
      });
    }
  }
  return out;
}
