import { createHash } from 'node:crypto';
import { DASHBOARD_HTML, DASHBOARD_SCRIPT, DASHBOARD_STYLE } from './dashboard-page.js';
import type { MetricsOptions } from './exposition-sink.js';
import { negotiateMetricsFormat } from './metrics-negotiation.js';
import type { MeshSnapshot } from './snapshot.js';

/**
 * The part of a request the admin handler reads; `node:http`'s `IncomingMessage` has it, and so have Express's
 * request and Fastify's `request.raw`.
 */
export interface AdminRequest {
  /** The HTTP method; GET and HEAD are served. */
  readonly method?: string | undefined;
  /** The request target (path and query), as `node:http` gives it. */
  readonly url?: string | undefined;
  /** Request headers, lower-case names (as `node:http` gives them): `accept` chooses the `/metrics` format. */
  readonly headers?: Readonly<Record<string, string | readonly string[] | undefined>> | undefined;
}

/** The part of a response the admin handler writes; `node:http`'s `ServerResponse` has it, and so has Express's. */
export interface AdminResponse {
  /** Set before `end`. */
  statusCode: number;
  /** Sets one response header. */
  setHeader(name: string, value: string): unknown;
  /** Sends the body (none for HEAD) and ends the response. */
  end(body?: string): unknown;
}

/**
 * A read-only `(req, res)` handler for `node:http` (or Express, Connect, or Fastify's `request.raw` and
 * `reply.raw` after `reply.hijack()`, with `prefix`: Fastify passes the full URL): `GET /metrics` (the text
 * format 0.0.4, or OpenMetrics 1.0 when `Accept` asks for `application/openmetrics-text`), `GET /snapshot`,
 * `GET /` (the dashboard); HEAD too; any other method on those is 405, any other path 404.
 */
export type AdminHandler = (req: AdminRequest, res: AdminResponse) => void;

/**
 * Options of `mesh.adminHandler()`.
 * @example mesh.adminHandler({ prefix: '/admin' }) // serves /admin/, /admin/metrics, /admin/snapshot
 */
export interface AdminHandlerOptions {
  /**
   * A path prefix the handler strips before routing, for a plain `node:http` server that serves other
   * things too, or for Fastify (whose `request.raw.url` keeps the route's path). Leave it out when mounted at
   * the root, or under a router that strips its mount path itself (Express's `app.use('/admin', handler)`).
   * Requests outside the prefix get 404.
   */
  prefix?: string | undefined;
}

/** What the handler serves from (the mesh). */
export interface AdminSource {
  metrics(options?: MetricsOptions): string;
  snapshot(): MeshSnapshot;
}

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Computed on first use, not on import (no side effects on import). */
let dashboardCsp: string | undefined;
const csp = (): string =>
  (dashboardCsp ??=
    `default-src 'none'; script-src ${sha256(DASHBOARD_SCRIPT)}; style-src ${sha256(DASHBOARD_STYLE)}; ` +
    `connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`);

/**
 * Builds the admin handler. It shows no secrets: the snapshot carries no registry tokens or URLs, only
 * service names, endpoint ids, addresses and counters; it has no write action. Mount it on a port or path
 * that only operators reach, as you would Envoy's admin port.
 */
export function createAdminHandler(source: AdminSource, options: AdminHandlerOptions = {}): AdminHandler {
  const prefix = normalisePrefix(options.prefix);
  return (req, res) => {
    const path = routeOf(req.url ?? '/', prefix);
    const route = path === '/' || path === '' ? 'dashboard' : path === '/metrics' ? 'metrics' : path === '/snapshot' ? 'snapshot' : undefined;
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    if (route === undefined) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n', false);
    const method = (req.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed: this handler is read-only\n', false);
    }
    const head = method === 'HEAD';
    try {
      if (route === 'metrics') {
        // What a cache in between must key on, as client_golang's promhttp says too.
        res.setHeader('vary', 'Accept');
        const { format, contentType } = negotiateMetricsFormat(req.headers?.accept);
        return send(res, 200, contentType, source.metrics({ format }), head);
      }
      if (route === 'snapshot') return send(res, 200, 'application/json; charset=utf-8', JSON.stringify(source.snapshot()), head);
      res.setHeader('content-security-policy', csp());
      res.setHeader('referrer-policy', 'no-referrer');
      return send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML, head);
    } catch {
      // No stack or message: it could carry details an operator page should not show.
      return send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', false);
    }
  };
}

function send(res: AdminResponse, status: number, type: string, body: string, head: boolean): void {
  res.statusCode = status;
  res.setHeader('content-type', type);
  res.setHeader('content-length', String(Buffer.byteLength(body)));
  res.end(head ? undefined : body);
}

function normalisePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '' || prefix === '/') return '';
  if (typeof prefix !== 'string' || !prefix.startsWith('/')) {
    throw new TypeError(`adminHandler({ prefix }): prefix must be a path starting with '/', got ${JSON.stringify(prefix)}`);
  }
  return prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

/** The path relative to the prefix, without query or fragment; `undefined` outside the prefix. */
function routeOf(url: string, prefix: string): string | undefined {
  let end = url.length;
  const q = url.indexOf('?');
  if (q >= 0) end = q;
  const h = url.indexOf('#');
  if (h >= 0 && h < end) end = h;
  const path = url.slice(0, end);
  if (prefix === '') return path;
  if (path === prefix) return '/';
  return path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : undefined;
}
