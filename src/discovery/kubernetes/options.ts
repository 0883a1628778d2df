/**
 * The options of `kubernetesRegistry`, checked once at construction (each error names the option:
 * `kubernetesRegistry.port must be ...`; no value of `token` is ever echoed), and the in-cluster defaults that
 * client-go's `rest.InClusterConfig` uses (staging/src/k8s.io/client-go/rest/config.go): `https://` +
 * `KUBERNETES_SERVICE_HOST`:`KUBERNETES_SERVICE_PORT` (joined as Go's net.JoinHostPort does, so an IPv6 host
 * is bracketed), and the service-account files under /var/run/secrets/kubernetes.io/serviceaccount/.
 */
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { systemClock, type Clock } from '../../util/clock.js';
import { defaultRng, type Rng } from '../../util/random.js';
import { serviceNameProblem } from '../../util/service-name.js';
import { dns1123LabelProblem } from './names.js';

/** Where a pod finds its service-account credentials (mounted by the kubelet). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
export const DEFAULT_TOKEN_FILE = `${SERVICE_ACCOUNT_DIR}/token`;
export const DEFAULT_CA_FILE = `${SERVICE_ACCOUNT_DIR}/ca.crt`;
export const DEFAULT_NAMESPACE_FILE = `${SERVICE_ACCOUNT_DIR}/namespace`;

/**
 * A Service port: its name (`'http'`, the Service's `ports[].name`), or a number, which is the port the endpoints
 * listen on (the Service's `targetPort`, `8080`), not the Service's own `port` (`80`): EndpointSlices carry only
 * the target ports.
 */
export type KubernetesPort = string | number;

/** An EndpointSlice address family (discovery/v1 `addressType`; FQDN slices are never used). */
export type KubernetesAddressType = 'IPv4' | 'IPv6';

/** Options of {@link kubernetesRegistry}. In a pod, none is needed. */
export interface KubernetesRegistryOptions {
  /**
   * The API server. Default: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` (an IPv6 host in
   * brackets), as client-go's in-cluster config builds it; outside a pod, without those, this option is required.
   * A path prefix (a proxy's) is kept. @example 'http://127.0.0.1:8001' // kubectl proxy
   */
  apiUrl?: string | undefined;
  /** A bearer token, used as it is (never re-read, never shown). Give this or `tokenFile`, not both. */
  token?: string | undefined;
  /**
   * A file holding the bearer token, re-read every `tokenRefreshMs` and at once when the API server answers 401,
   * as bound service-account tokens rotate (client-go does the same). Default: the pod's service-account token;
   * when that default file does not exist, requests carry no token (kubectl proxy needs none).
   * @example '/var/run/secrets/tokens/api-token'
   */
  tokenFile?: string | undefined;
  /** The CA bundle (PEM) that signed the API server's certificate, for https. Default: the pod's `ca.crt`, when it exists; else the system's CAs. Re-read with the token. */
  caFile?: string | undefined;
  /**
   * The namespace of a service named without one (`users`); `users.payments` is in `payments` whatever this says.
   * Default: the pod's own namespace (the content of `namespaceFile`), else `'default'`.
   */
  namespace?: string | undefined;
  /** Where the pod's namespace is read from (once, at construction). Default: the service-account `namespace` file. */
  namespaceFile?: string | undefined;
  /**
   * Which port of the Service to call: a port name (`'http'`, the Service's `ports[].name`), or a number, which is
   * the port the endpoints listen on (the Service's `targetPort`, say 8080 behind a Service port 80): EndpointSlices
   * carry only the target ports, so the Service's own `port` matches nothing. Default: the only port; a service
   * with several fails discovery with an error saying to choose one. A name or number that no slice with
   * endpoints carries fails discovery too (a `DiscoveryError` listing the ports seen), rather than reading as a
   * service with no endpoints.
   * @example 'grpc'
   */
  port?: KubernetesPort | undefined;
  /**
   * A port per service (keyed by the service name as the mesh calls it), over `port`; numbers are target ports,
   * as for `port`. @example { users: 'http', 'billing.payments': 9090 }
   */
  ports?: Readonly<Record<string, KubernetesPort>> | undefined;
  /**
   * Which address family to call, for a dual-stack Service (which has IPv4 and IPv6 slices naming the same pods:
   * only one family is used, so that no pod counts twice). Default: IPv4 when any IPv4 slice of the service has
   * an endpoint, else IPv6 (kube-proxy likewise runs one proxier per family). A single-stack Service of the other
   * family then has no endpoints.
   */
  addressType?: KubernetesAddressType | undefined;
  /**
   * The name the API server's certificate is checked against (and sent as SNI), when it differs from `apiUrl`'s
   * host: kubeconfig's `tls-server-name`. @example 'kubernetes.default.svc'
   */
  tlsServerName?: string | undefined;
  /** Where `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` are read. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** How old a token (and CA) read from a file may get before it is read again, in ms. Default 60000 (client-go's period). */
  tokenRefreshMs?: number | undefined;
  /** Deadline of a list request, and of a watch request's headers, in ms. Default 4000 (below the mesh's 5 s `resolveTimeoutMs`). */
  timeoutMs?: number | undefined;
  /**
   * How long a watch may stay silent (no byte, not even a bookmark) before it is taken for stalled, dropped and
   * started again from the last resourceVersion, in ms. API servers send a bookmark about every minute to a
   * watch that asks for them; a half-open connection otherwise goes unnoticed for good
   * (kubernetes-client/javascript#596). Default 150000: two missed bookmarks, and some margin. Bookmarks are
   * best-effort, so on a quiet Service this drop is routine: it is a plain reconnect (no `discovery-error`, no
   * backoff); only a reconnect that fails is reported.
   */
  idleTimeoutMs?: number | undefined;
  /** `timeoutSeconds` of a watch request; each watch asks for a random value from this to twice this, as client-go's reflector does. Default 300. */
  watchTimeoutSeconds?: number | undefined;
  /**
   * Retry delays after a failure: doubling from `initialMs`, ±20 % jitter, up to `maxMs`. Default 1000 / 30000.
   * A failure is a list or watch request that fails, a watch stream that cannot be trusted (garbage, an ERROR
   * event), a watch that ends or drops within a second of starting, and a 410 Gone for the resourceVersion a list
   * has just returned. The delays grow until a watch has stayed open for a minute (a good list alone does not
   * reset them).
   */
  backoff?: {
    /** First retry delay, in ms. */
    initialMs?: number | undefined;
    /** Longest retry delay, in ms. */
    maxMs?: number | undefined;
  } | undefined;
  /** The largest list answer, or watch event line, read, in bytes. Default 32 MiB. */
  maxBodyBytes?: number | undefined;
  /** The clock for token age and backoff (tests). Default `performance.now()`. */
  clock?: Clock | undefined;
  /** Uniform numbers in [0, 1), for jitter (tests). Default `Math.random`. */
  random?: Rng | undefined;
}

/** The options resolved. */
export interface KubernetesSettings {
  /** `https://10.96.0.1:443`, no trailing slash; `prefix` is its path, `''` or `/proxy`. */
  readonly origin: string;
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  readonly port: number;
  readonly prefix: string;
  readonly token: string | undefined;
  readonly tokenFile: { readonly path: string; readonly required: boolean } | undefined;
  readonly caFile: { readonly path: string; readonly required: boolean } | undefined;
  readonly tlsServerName: string | undefined;
  readonly namespace: string;
  readonly defaultPort: KubernetesPort | undefined;
  readonly ports: ReadonlyMap<string, KubernetesPort>;
  readonly addressType: KubernetesAddressType | undefined;
  readonly tokenRefreshMs: number;
  readonly timeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly watchTimeoutSeconds: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly maxBodyBytes: number;
  readonly clock: Clock;
  readonly random: Rng;
}

export const AT = 'kubernetesRegistry';
const KNOWN = new Set([
  'apiUrl', 'token', 'tokenFile', 'caFile', 'namespace', 'namespaceFile', 'port', 'ports', 'addressType', 'tlsServerName', 'env',
  'tokenRefreshMs', 'timeoutMs', 'idleTimeoutMs', 'watchTimeoutSeconds', 'backoff', 'maxBodyBytes', 'clock', 'random',
]);
const MAX_TIMER_MS = 2_147_483_647;

/** Checks every option once and resolves the in-cluster defaults; throws a `TypeError` naming the option. */
export function kubernetesSettings(options: KubernetesRegistryOptions): KubernetesSettings {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new TypeError(`${AT}(options) must be an object`);
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new TypeError(`${AT}.${key} is not a known option (known: ${[...KNOWN].join(', ')})`);
  }
  const o = options;
  const env = o.env ?? process.env;
  if (env === null || typeof env !== 'object') throw new TypeError(`${AT}.env must be an object`);

  const url = apiUrl(o.apiUrl, env);
  if (o.token !== undefined && o.tokenFile !== undefined) throw new TypeError(`${AT}: give token or tokenFile, not both`);
  // Visible ASCII only: the token goes into a header, and the message must not quote it.
  if (o.token !== undefined && (typeof o.token !== 'string' || !/^[\x21-\x7e]+$/.test(o.token))) {
    throw new TypeError(`${AT}.token must be a non-empty string of visible ASCII characters (its value is not shown)`);
  }
  const tokenFile = o.token !== undefined ? undefined : fileOption(o.tokenFile, 'tokenFile', DEFAULT_TOKEN_FILE);
  const caFile = url.protocol === 'https:' ? fileOption(o.caFile, 'caFile', DEFAULT_CA_FILE) : (fileOption(o.caFile, 'caFile', undefined), undefined);
  const tlsServerName = o.tlsServerName === undefined ? undefined : text(o.tlsServerName, 'tlsServerName');

  const random = o.random ?? defaultRng;
  if (typeof random !== 'function') throw new TypeError(`${AT}.random must be a function returning numbers in [0, 1)`);
  const clock = o.clock ?? systemClock;
  if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') throw new TypeError(`${AT}.clock must be an object with now()`);

  if (o.addressType !== undefined && o.addressType !== 'IPv4' && o.addressType !== 'IPv6') throw new TypeError(`${AT}.addressType must be 'IPv4' or 'IPv6'`);

  const backoff = o.backoff ?? {};
  if (backoff === null || typeof backoff !== 'object' || Array.isArray(backoff)) throw new TypeError(`${AT}.backoff must be an object`);
  for (const key of Object.keys(backoff)) {
    if (key !== 'initialMs' && key !== 'maxMs') throw new TypeError(`${AT}.backoff.${key} is not a known option (known: initialMs, maxMs)`);
  }
  const backoffInitialMs = num(backoff.initialMs, 'backoff.initialMs', 1_000, 1, 3_600_000);
  const backoffMaxMs = num(backoff.maxMs, 'backoff.maxMs', Math.max(30_000, backoffInitialMs), backoffInitialMs, 3_600_000);

  return {
    ...url,
    token: o.token,
    tokenFile,
    caFile,
    tlsServerName,
    namespace: namespaceOf(o),
    defaultPort: o.port === undefined ? undefined : portOption(o.port, `${AT}.port`),
    ports: portsOption(o.ports),
    addressType: o.addressType,
    tokenRefreshMs: num(o.tokenRefreshMs, 'tokenRefreshMs', 60_000, 0, MAX_TIMER_MS),
    timeoutMs: num(o.timeoutMs, 'timeoutMs', 4_000, 1, MAX_TIMER_MS),
    idleTimeoutMs: num(o.idleTimeoutMs, 'idleTimeoutMs', 150_000, 1, MAX_TIMER_MS),
    // The server's own cap is minRequestTimeout (1800 s); twice the value must stay under setTimeout's limit.
    watchTimeoutSeconds: num(o.watchTimeoutSeconds, 'watchTimeoutSeconds', 300, 1, 3_600),
    backoffInitialMs,
    backoffMaxMs,
    maxBodyBytes: num(o.maxBodyBytes, 'maxBodyBytes', 32 * 1024 * 1024, 1_024, 512 * 1024 * 1024),
    clock,
    random,
  };
}

function apiUrl(value: unknown, env: Readonly<Record<string, string | undefined>>): Pick<KubernetesSettings, 'origin' | 'protocol' | 'hostname' | 'port' | 'prefix'> {
  let raw: string;
  let from: string;
  if (value !== undefined) {
    raw = text(value, 'apiUrl');
    from = `${AT}.apiUrl`;
  } else {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) {
      throw new TypeError(`${AT}.apiUrl is required outside a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not both set)`);
    }
    raw = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
    from = 'KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT';
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError(`${from} must make a valid http(s) URL, got ${JSON.stringify(raw.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${from} must be an http: or https: URL`);
  // Credentials would travel where nobody expects them, and a query or fragment would corrupt every path.
  if (url.username || url.password) throw new TypeError(`${from} must not carry credentials (use token or tokenFile)`);
  if (url.search || url.hash) throw new TypeError(`${from} must not have a query or a fragment`);
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const prefix = url.pathname.replace(/\/+$/, '');
  return { origin: url.origin, protocol: url.protocol, hostname, port, prefix };
}

/** An explicit file must be readable when it is used; the in-cluster default may be missing (outside a pod). */
function fileOption(value: unknown, at: string, fallback: string | undefined): { path: string; required: boolean } | undefined {
  if (value === undefined) return fallback === undefined ? undefined : { path: fallback, required: false };
  return { path: text(value, at), required: true };
}

function namespaceOf(o: KubernetesRegistryOptions): string {
  if (o.namespace !== undefined) {
    const problem = dns1123LabelProblem(o.namespace);
    if (problem) throw new TypeError(`${AT}.namespace must be a Kubernetes namespace name: ${problem}`);
    return o.namespace;
  }
  const path = o.namespaceFile === undefined ? DEFAULT_NAMESPACE_FILE : text(o.namespaceFile, 'namespaceFile');
  let content: string;
  try {
    content = readFileSync(path, 'utf8').trim();
  } catch (error) {
    if (o.namespaceFile === undefined) return 'default'; // not in a pod: client-go's clientcmd falls back the same way
    const code = (error as { code?: string }).code ?? 'unreadable';
    throw new TypeError(`${AT}.namespaceFile ${JSON.stringify(path)} cannot be read (${code})`);
  }
  const problem = dns1123LabelProblem(content);
  if (problem) throw new TypeError(`${AT}: the namespace in ${JSON.stringify(path)} is not a namespace name: ${problem}`);
  return content;
}

/** A port name is a DNS label (types.go EndpointPort.Name); a number is 1 to 65535. */
export function portOption(value: unknown, at: string): KubernetesPort {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 65535) throw new TypeError(`${at} must be a port name or an integer from 1 to 65535`);
    return value;
  }
  if (typeof value === 'string' && value !== '' && dns1123LabelProblem(value) === undefined) return value;
  throw new TypeError(`${at} must be a port name (lowercase letters, digits and '-', at most 63) or an integer from 1 to 65535`);
}

function portsOption(value: unknown): ReadonlyMap<string, KubernetesPort> {
  const out = new Map<string, KubernetesPort>();
  if (value === undefined) return out;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`${AT}.ports must map service names to ports`);
  for (const [service, port] of Object.entries(value)) {
    const problem = serviceNameProblem(service);
    if (problem) throw new TypeError(`${AT}.ports has a key that is not a service name: ${problem}`);
    out.set(service, portOption(port, `${AT}.ports[${JSON.stringify(service)}]`));
  }
  return out;
}

function text(value: unknown, at: string): string {
  if (typeof value !== 'string' || value === '' || /[\x00-\x1f\x7f]/.test(value)) {
    throw new TypeError(`${AT}.${at} must be a non-empty string without control characters`);
  }
  return value;
}

function num(value: unknown, at: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!(typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max)) {
    throw new TypeError(`${AT}.${at} must be a number from ${min} to ${max}`);
  }
  return value;
}
