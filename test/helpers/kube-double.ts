/**
 * A Kubernetes API server double for EndpointSlices: a node:http (or, with `tls`, node:https) server on
 * 127.0.0.1, port 0. It speaks the part of the API that kubernetesRegistry uses, with the real shapes:
 * - objects: EndpointSlice and EndpointSliceList as kubernetes/api discovery/v1/types.go defines them (list items
 *   without kind/apiVersion, as the API server writes them; watch objects with them), labelled
 *   `kubernetes.io/service-name`, owned by their Service, `metadata.resourceVersion` from one cluster-wide counter
 *   (etcd's revision); see kube-double-objects.ts;
 * - GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=kubernetes.io/service-name={name}:
 *   the list, with `metadata.resourceVersion`;
 * - the same with `watch=1` (or `true`): newline-delimited metav1.WatchEvent `{ type, object }` (apimachinery
 *   pkg/apis/meta/v1/watch.go), ADDED / MODIFIED / DELETED from `resourceVersion` on (a missing or "0" one starts
 *   with ADDED for what exists), BOOKMARK objects with only `metadata.resourceVersion` when
 *   `allowWatchBookmarks=true` (api-concepts, "Watch bookmarks"), ERROR with a Status 410 Expired "too old resource
 *   version" for a resourceVersion older than the last `expire()` (what the watch cache answers), the stream
 *   ended at `timeoutSeconds`;
 * - errors as metav1.Status bodies;
 * - `Authorization: Bearer <token>` checked against the one accepted token (401 otherwise).
 * Test hooks make it fail, stall, drop, write garbage and rotate its token; see KubeDouble (kube-double-types.ts).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { LABEL, REASONS, statusBody, type Json } from './kube-double-objects.js';
import { SliceStore } from './kube-double-store.js';
import type { KubeDouble, KubeDoubleOptions, KubeRequest, OpenWatch } from './kube-double-types.js';

export { statusBody, splitService, type EndpointSpec, type SetEndpointsOptions } from './kube-double-objects.js';
export type { KubeDouble, KubeDoubleOptions, KubeRequest, OpenWatch } from './kube-double-types.js';
export { settled, waitFor } from './kube-double-wait.js';

interface Watcher extends OpenWatch {
  res: http.ServerResponse;
  stalled: boolean;
  timer: NodeJS.Timeout | undefined;
}

const GROUP_PATH = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices\/?$/;

export async function startKubeDouble(options: KubeDoubleOptions = {}): Promise<KubeDouble> {
  let token = options.token === undefined ? 'kube-double-token' : options.token;
  let compactedRv = 0;
  let expireWithHttp = false;
  let failure: { status: number; message: string; only: 'list' | 'watch' | undefined } | undefined;
  let stallNew = false;
  let bookmarkAndEnd = false;
  const watchers = new Set<Watcher>();
  const sockets = new Set<Socket>();
  const requests: KubeRequest[] = [];

  const send = (w: Watcher, event: Json): boolean => {
    if (w.stalled || w.res.writableEnded || w.res.destroyed) return false;
    w.res.write(`${JSON.stringify(event)}\n`);
    return true;
  };
  const matches = (w: Watcher, namespace: string, object: Json): boolean => w.namespace === namespace && (w.service === undefined || object?.metadata?.labels?.[LABEL] === w.service);
  const withKind = (object: Json): Json => ({ kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', ...object });
  const bookmarkEvent = (): Json => ({ type: 'BOOKMARK', object: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(slices.rv) } } });
  const endWatch = (w: Watcher): void => {
    clearTimeout(w.timer);
    watchers.delete(w);
    if (!w.res.writableEnded && !w.res.destroyed) w.res.end();
  };

  const slices = new SliceStore((type, namespace, object) => {
    for (const w of [...watchers]) if (matches(w, namespace, object)) send(w, { type, object: withKind(object) });
  });

  const answer = (res: http.ServerResponse, code: number, body: Json): void => {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-cache, private' });
    res.end(text);
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://double');
    const query = url.searchParams;
    const isWatch = query.get('watch') === '1' || query.get('watch') === 'true';
    const auth = req.headers.authorization;
    const sent = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const record = (status: number): void => {
      requests.push({ method: req.method ?? '', path: url.pathname, query, watch: isWatch, token: sent, status, at: performance.now() });
    };
    const fail = (code: number, message: string, reason?: string): void => {
      record(code);
      answer(res, code, statusBody(code, message, reason));
    };
    if (token !== null && sent !== token) return fail(401, options.echoTokenOn401 && sent !== undefined ? `Unauthorized: invalid bearer token "${sent}"` : 'Unauthorized');
    if (failure && (failure.only === undefined || (failure.only === 'watch') === isWatch)) return fail(failure.status, failure.message);
    const m = GROUP_PATH.exec(url.pathname);
    if (req.method !== 'GET' || !m) return fail(404, 'the server could not find the requested resource', 'NotFound');
    const namespace = decodeURIComponent(m[1]!);
    const selector = query.get('labelSelector');
    let service: string | undefined;
    if (selector !== null) {
      const sm = /^kubernetes\.io\/service-name(?:==?)([a-z0-9]([-a-z0-9]*[a-z0-9])?)$/.exec(selector);
      if (!sm) return fail(400, `unable to parse requirement: ${JSON.stringify(selector).slice(0, 100)}`, 'BadRequest');
      service = sm[1];
    }
    const current = slices.list(namespace, service);
    if (!isWatch) {
      record(200);
      return answer(res, 200, { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(slices.rv) }, items: current });
    }
    const fromRaw = query.get('resourceVersion');
    const from = fromRaw === null || fromRaw === '' || fromRaw === '0' ? undefined : Number(fromRaw);
    if (from !== undefined && !Number.isSafeInteger(from)) return fail(400, `invalid resource version: ${JSON.stringify(fromRaw).slice(0, 40)}`, 'BadRequest');
    const tooOld = from !== undefined && from < compactedRv;
    if (tooOld && expireWithHttp) return fail(410, `too old resource version: ${from} (${slices.rv})`);
    record(200);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const w: Watcher = { res, namespace, service, resourceVersion: fromRaw ?? undefined, bookmarks: query.get('allowWatchBookmarks') === 'true', stalled: stallNew, timer: undefined };
    if (tooOld) {
      send(w, { type: 'ERROR', object: statusBody(410, `too old resource version: ${from} (${slices.rv})`) });
      return void res.end();
    }
    if (bookmarkAndEnd && !w.stalled) {
      send(w, bookmarkEvent());
      return void res.end();
    }
    watchers.add(w);
    res.on('close', () => endWatch(w));
    const timeout = Number(query.get('timeoutSeconds'));
    // A stalled watch is a dead connection: not even its end arrives.
    if (Number.isFinite(timeout) && timeout > 0) w.timer = setTimeout(() => w.stalled || endWatch(w), timeout * 1000);
    if (from === undefined) {
      for (const object of current) send(w, { type: 'ADDED', object: withKind(object) });
    } else {
      for (const e of slices.history) if (e.rv > from && matches(w, e.namespace, e.object)) send(w, { type: e.type, object: withKind(e.object) });
    }
  };

  const server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handle) : http.createServer(handle);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => {}); // a client refusing our certificate is a test case
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const bookmarkTimer = options.bookmarkEveryMs ? setInterval(() => double.bookmark(), options.bookmarkEveryMs) : undefined;
  bookmarkTimer?.unref();

  const dropAll = (): number => {
    const n = sockets.size;
    for (const s of sockets) s.destroy();
    return n;
  };

  const double: KubeDouble = {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    get token() {
      return token;
    },
    resourceVersion: () => String(slices.rv),
    setEndpoints: (service, endpoints, opts) => slices.setEndpoints(service, endpoints, opts),
    putSlice: (namespace, slice) => slices.put(namespace, slice),
    deleteSlice: (namespace, name) => slices.delete(namespace, name),
    slices: (namespace, service) => slices.list(namespace, service).map((object) => structuredClone(object)),
    bookmark() {
      let n = 0;
      for (const w of watchers) if (w.bookmarks && send(w, bookmarkEvent())) n++;
      return n;
    },
    expire(opts = {}) {
      expireWithHttp = opts.http === true;
      compactedRv = slices.rv + 1; // the current version too: a watch from it must relist
      slices.bump();
      let n = 0;
      for (const w of [...watchers]) {
        if (w.stalled) continue; // a dead connection hears nothing
        if (expireWithHttp) {
          w.res.socket?.destroy();
          endWatch(w);
          n++;
          continue;
        }
        if (send(w, { type: 'ERROR', object: statusBody(410, `too old resource version: ${w.resourceVersion ?? 0} (${slices.rv})`) })) n++;
        endWatch(w);
      }
      return n;
    },
    respondWith(status, message = REASONS[status] === 'InternalError' ? 'Internal error occurred: etcdserver: request timed out' : `${status}`, opts = {}) {
      failure = { status, message, only: opts.only };
    },
    respondNormally() {
      failure = undefined;
    },
    stall() {
      stallNew = true;
      for (const w of watchers) w.stalled = true;
    },
    unstall() {
      stallNew = false;
    },
    endWatchesAfterBookmark(on) {
      bookmarkAndEnd = on;
    },
    dropWatches() {
      let n = 0;
      for (const w of [...watchers]) {
        w.res.socket?.destroy();
        endWatch(w);
        n++;
      }
      return n;
    },
    dropConnections: dropAll,
    writeGarbage(line = 'this is not JSON {') {
      let n = 0;
      for (const w of watchers) {
        if (w.stalled || w.res.writableEnded) continue;
        w.res.write(`${line}\n`);
        n++;
      }
      return n;
    },
    rotateToken(next) {
      token = next;
    },
    connections: () => sockets.size,
    openWatches: () => [...watchers].map(({ namespace, service, resourceVersion, bookmarks, stalled }) => ({ namespace, service, resourceVersion, bookmarks, stalled })),
    pendingWrites: () => [...watchers].reduce((n, w) => n + (w.stalled ? 0 : w.res.writableLength + (w.res.socket?.writableLength ?? 0)), 0),
    async goDown() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const w of [...watchers]) endWatch(w);
        dropAll();
      });
    },
    async comeBack() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    },
    async close() {
      clearInterval(bookmarkTimer);
      for (const w of [...watchers]) endWatch(w);
      dropAll();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return double;
}
