/** The interface of the Kubernetes API double (kube-double.ts): its options, its record of requests, its test hooks. */
import type { EndpointSpec, Json, SetEndpointsOptions } from './kube-double-objects.js';

export interface KubeDoubleOptions {
  /** The bearer token accepted; `null` accepts any request. Default 'kube-double-token'. */
  token?: string | null;
  /** Serve https with this certificate (from test/helpers/certs.ts). */
  tls?: { cert: string; key: string };
  /** Send a BOOKMARK to every watch that asked for them this often (as the API server does, about every minute). */
  bookmarkEveryMs?: number;
  /**
   * Quote the bearer token sent in the message of a 401 Status (`Unauthorized: invalid bearer token "…"`), as some
   * API servers' authenticating proxies and webhook authenticators do: the registry must redact it.
   */
  echoTokenOn401?: boolean;
}

export interface KubeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly watch: boolean;
  /** The bearer token sent, if any. */
  readonly token: string | undefined;
  readonly status: number;
  readonly at: number;
}

export interface OpenWatch {
  readonly namespace: string;
  readonly service: string | undefined;
  readonly resourceVersion: string | undefined;
  readonly bookmarks: boolean;
  readonly stalled: boolean;
}

/** The double. Every method that changes slices emits the watch events at once (synchronously written). */
export interface KubeDouble {
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** Every request, in order. */
  readonly requests: KubeRequest[];
  /** The accepted token (null: any). */
  readonly token: string | null;
  /** The cluster's current resourceVersion. */
  resourceVersion(): string;
  /** Makes `service` ('users' or 'users.payments') have exactly these endpoints: slices created, updated or deleted as needed. */
  setEndpoints(service: string, endpoints: readonly EndpointSpec[], options?: SetEndpointsOptions): void;
  /** Creates or replaces a raw slice object (any JSON: hostile data welcome) in `namespace`; returns the event type sent. */
  putSlice(namespace: string, slice: Json): 'ADDED' | 'MODIFIED';
  /** Deletes a slice by name; false when there is none. */
  deleteSlice(namespace: string, name: string): boolean;
  /** The stored slices of a namespace (and of a service, if given). */
  slices(namespace: string, service?: string): Json[];
  /** Sends a BOOKMARK at the current resourceVersion to every watch that asked for them; returns how many got it. */
  bookmark(): number;
  /**
   * Compacts history: every resourceVersion up to now is too old. Open watches get an ERROR event with a
   * Status 410 Expired and end; a new watch from an older resourceVersion gets the same. With `http: true`,
   * open watches are dropped instead (an API server restart), and a new watch from an older resourceVersion
   * gets an HTTP 410 Status answer.
   */
  expire(options?: { http?: boolean }): number;
  /** Answers every request (or only lists, or only watches) with `status` and a Status body, until `respondNormally()`. */
  respondWith(status: number, message?: string, options?: { only?: 'list' | 'watch' }): void;
  respondNormally(): void;
  /** Every open watch, and every new one, goes silent (headers sent, then nothing) until `unstall()` (stalled ones stay dead). */
  stall(): void;
  unstall(): void;
  /** While on, every new watch is answered with one BOOKMARK and ended at once (a misbehaving server or proxy). */
  endWatchesAfterBookmark(on: boolean): void;
  /** Destroys the sockets of open watches; returns how many. */
  dropWatches(): number;
  /** Destroys every open socket; returns how many. */
  dropConnections(): number;
  /** Writes `line` (default: not JSON) and a newline to every open, non-stalled watch, in one write; returns how many. */
  writeGarbage(line?: string): number;
  /** Accepts only `token` from now on (open watches stay open, as an API server checks a token once per request). */
  rotateToken(token: string): void;
  /** The watches open now. */
  openWatches(): OpenWatch[];
  /** Bytes written to open watches that the socket has not taken yet (0: everything is on its way). */
  pendingWrites(): number;
  /** TCP connections open now (keep-alive ones included). */
  connections(): number;
  /** Stops listening and drops every connection (connections are refused), until `comeBack()`. */
  goDown(): Promise<void>;
  comeBack(): Promise<void>;
  close(): Promise<void>;
}
