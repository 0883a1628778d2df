/**
 * The admin dashboard: one self-contained HTML page (no CDN, no build step, no external request other than
 * its own `snapshot`). It polls `snapshot` next to its own URL every second and draws, per service and
 * endpoint (named by its id, the name in the metrics and events too, with host:port under it when different): state, EWMA latency, in-flight, success rate and request rate of the last second, weight and
 * zone, with bars and 60-second sparklines so a slow or failing endpoint stands out. It also shows the
 * configuration in force (`snapshot.config`): its version (and how long ago it changed) and, per service with
 * routes, each route with its match, its backends' configured weight and share next to the share of calls each
 * backend got over the last poll (from the difference between two snapshots), and its fault and mirror with
 * their counters.
 *
 * Every value goes into the page through `textContent` or SVG attributes, never as HTML: endpoint ids and
 * zones come from a registry, names and match values from configuration (a config source), and are not trusted. The script and style are inline; the admin handler serves
 * them under a Content-Security-Policy that allows exactly these two (by hash) and `connect-src 'self'`.
 * The page's JavaScript avoids template literals so that this file can hold it in one. The part that draws the
 * configuration and its routes is in dashboard-routes.ts.
 */

import { DASHBOARD_ROUTES_SCRIPT } from './dashboard-routes.js';

export const DASHBOARD_STYLE = `
:root { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; background: #f4f6f9; }
body { margin: 0; padding: 16px 24px 32px; }
header { display: flex; align-items: baseline; gap: 16px; margin-bottom: 12px; }
h1 { font-size: 20px; margin: 0; letter-spacing: .02em; }
#status { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #d9dee6; }
#status.live { background: #d3f2dc; color: #145c2a; } #status.error { background: #fbd5d5; color: #8a1c1c; }
#updated { color: #667085; font-size: 12px; }
section.service { background: #fff; border: 1px solid #dde2ea; border-radius: 8px; margin: 14px 0; padding: 12px 16px; overflow-x: auto; }
.svc-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 18px; margin-bottom: 8px; }
.svc-head h2 { font-size: 17px; margin: 0 8px 0 0; }
.kv { color: #667085; font-size: 12px; } .kv b { color: #1d2430; font-size: 14px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: #667085; font-weight: 600;
  border-bottom: 1px solid #dde2ea; padding: 4px 8px; }
td { padding: 5px 8px; border-bottom: 1px solid #eef1f5; vertical-align: middle; white-space: nowrap; }
tr.bad td { background: #fff4f4; } tr.warn td { background: #fffaf0; }
td .addr { color: #667085; font-size: 11px; }
td.id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
.num { text-align: right; min-width: 52px; display: inline-block; }
.bar { display: inline-block; width: 90px; height: 9px; background: #edf0f4; border-radius: 5px; margin-left: 8px; vertical-align: middle; overflow: hidden; }
.bar > i { display: block; height: 100%; border-radius: 5px; background: #3f8f5f; }
.bar.warn > i { background: #d99a1e; } .bar.bad > i { background: #d64545; }
.badge { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 10px; font-weight: 600; }
.badge.ok { background: #d3f2dc; color: #145c2a; } .badge.warn { background: #fdebc8; color: #7a4d00; }
.badge.bad { background: #fbd5d5; color: #8a1c1c; } .badge.off { background: #e4e7ec; color: #475467; }
svg.spark { vertical-align: middle; } svg.spark polyline { fill: none; stroke-width: 1.5; }
.empty { color: #667085; font-style: italic; }
#config { display: inline-flex; gap: 12px; }
.routes { margin-top: 12px; }
.routes h3 { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: #667085; font-weight: 600; margin: 10px 0 2px; }
.route { border-top: 1px solid #eef1f5; padding: 6px 0 2px; }
.route-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; margin-bottom: 4px; }
.route-head h4 { font-size: 14px; margin: 0 6px 0 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.route-head .kv b { font-size: 12px; font-weight: 500; white-space: pre-wrap; word-break: break-all; }
.route-extra { font-size: 12px; color: #475467; margin: 4px 0 0; }
.bar.cfg > i { background: #3867d6; }
`;

export const DASHBOARD_SCRIPT = `
'use strict';
var HISTORY = 60;
var base = location.pathname.slice(-1) === '/' ? location.pathname : location.pathname + '/';
var prev = new Map();
var series = new Map();
var root = document.getElementById('services');

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}
function kv(label, value, field) {
  var s = el('span', 'kv', label + ' ');
  var b = el('b', '', value);
  b.setAttribute('data-field', field);
  s.appendChild(b);
  return s;
}
function bar(fraction, level) {
  var b = el('span', 'bar' + (level ? ' ' + level : ''));
  var i = el('i');
  i.style.width = Math.max(2, Math.min(100, fraction * 100)).toFixed(1) + '%';
  b.appendChild(i);
  return b;
}
function spark(values, max, color) {
  var ns = 'http://www.w3.org/2000/svg';
  var svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', '120');
  svg.setAttribute('height', '22');
  var line = document.createElementNS(ns, 'polyline');
  var pts = [];
  var step = 118 / Math.max(1, values.length - 1);
  for (var i = 0; i < values.length; i++) {
    var v = values[i] === null ? 0 : values[i];
    var x = 1 + i * step;
    pts.push(x.toFixed(1) + ',' + (21 - (max > 0 ? (v / max) * 19 : 0)).toFixed(1));
  }
  line.setAttribute('points', pts.join(' '));
  line.setAttribute('stroke', color);
  svg.appendChild(line);
  return svg;
}
function push(key, name, value) {
  var s = series.get(key);
  if (!s) { s = { ewma: [], ok: [], rps: [] }; series.set(key, s); }
  s[name].push(value);
  if (s[name].length > HISTORY) s[name].shift();
  return s;
}
function pct(x) { return x === null ? '\\u2014' : (x * 100).toFixed(x >= 0.999 || x === 0 ? 0 : 1) + '%'; }
function td(child, cls, field) {
  var c = el('td', cls);
  if (field) c.setAttribute('data-field', field);
  if (child instanceof Node) c.appendChild(child); else c.textContent = String(child);
  return c;
}
function cell(text, b) {
  var w = document.createDocumentFragment();
  w.appendChild(el('span', 'num', text));
  if (b) w.appendChild(b);
  return w;
}
function stateOf(e) {
  if (e.breaker === 'open') return ['breaker open', 'bad'];
  if (e.ejected) return ['ejected', 'bad'];
  if (e.breaker === 'half-open') return ['half-open', 'warn'];
  if (e.breaker === 'off') return ['in service', 'off'];
  return ['healthy', 'ok'];
}

function renderService(name, s, routeSpecs, source, dt) {
  var sec = el('section', 'service');
  sec.setAttribute('data-service', name);
  if (s === null) {
    var only = el('div', 'svc-head');
    only.appendChild(el('h2', '', name));
    if (source) only.appendChild(kv('config from', source, 'source'));
    sec.appendChild(only);
    sec.appendChild(el('div', 'empty', 'not called yet'));
    var configured = renderRoutes(name, routeSpecs, [], dt);
    if (configured) sec.appendChild(configured);
    return sec;
  }
  var p = prev.get('svc|' + name);
  var calls = p ? Math.max(0, s.calls - p.calls) : 0;
  var failed = p ? Math.max(0, s.failedCalls - p.failedCalls) : 0;
  prev.set('svc|' + name, { calls: s.calls, failedCalls: s.failedCalls });
  var head = el('div', 'svc-head');
  head.appendChild(el('h2', '', name));
  head.appendChild(kv('calls/s', p ? (calls / dt).toFixed(0) : '\\u2014', 'rps'));
  head.appendChild(kv('failed', calls ? pct(failed / calls) : '\\u2014', 'failed'));
  head.appendChild(kv('in flight', s.activeCalls, 'active'));
  head.appendChild(kv('calls', s.calls, 'calls'));
  head.appendChild(kv('retry budget', s.retryBudget === null ? 'off' : s.retryBudget, 'budget'));
  if (s.adaptiveConcurrency) head.appendChild(kv('concurrency limit', s.adaptiveConcurrency.limit, 'limit'));
  head.appendChild(kv('discovery age', s.discoveryAgeMs === null ? '\\u2014' : (s.discoveryAgeMs / 1000).toFixed(0) + ' s', 'age'));
  head.appendChild(kv('balancer', s.balancer, 'balancer'));
  if (source) head.appendChild(kv('config from', source, 'source'));
  if (s.panic) head.appendChild(el('span', 'badge bad', 'PANIC'));
  sec.appendChild(head);
  var routes = renderRoutes(name, routeSpecs, s.routes || [], dt);
  if (!s.endpoints.length) {
    sec.appendChild(el('div', 'empty', s.ready ? 'no endpoints' : 'not resolved yet'));
    if (routes) sec.appendChild(routes);
    return sec;
  }

  var table = el('table');
  var hr = el('tr');
  ['endpoint', 'zone', 'weight', 'state', 'EWMA latency', 'EWMA, 60 s', 'in flight', 'success, 1 s', 'success, 60 s', 'req/s', 'attempts'].forEach(function (h) { hr.appendChild(el('th', '', h)); });
  table.appendChild(hr);
  var ewmas = s.endpoints.map(function (e) { return e.ewmaMs; });
  var maxEwma = Math.max.apply(null, ewmas.concat([1]));
  // Slow is judged against the fastest endpoint in service: the best alternative the balancer has.
  var inService = s.endpoints.filter(function (e) { return !e.ejected && e.breaker !== 'open'; });
  var best = Math.min.apply(null, (inService.length ? inService : s.endpoints).map(function (e) { return e.ewmaMs; }));
  var maxInflight = Math.max.apply(null, s.endpoints.map(function (e) { return e.inflight; }).concat([1]));
  s.endpoints.forEach(function (e) {
    var key = name + '|' + e.id;
    var q = prev.get(key);
    var ds = q ? Math.max(0, e.successes - q.successes) : 0;
    var df = q ? Math.max(0, e.failures - q.failures) : 0;
    var dr = q ? Math.max(0, e.requests - q.requests) : 0;
    prev.set(key, { successes: e.successes, failures: e.failures, requests: e.requests });
    var total = e.successes + e.failures;
    var ok = ds + df > 0 ? ds / (ds + df) : (q ? null : (total ? e.successes / total : null));
    push(key, 'ewma', e.ewmaMs);
    push(key, 'ok', ok === null ? 1 : ok);
    var h = push(key, 'rps', dr / dt);
    var st = stateOf(e);
    var slow = best > 0 && e.ewmaMs > 4 * best ? 'bad' : best > 0 && e.ewmaMs > 2 * best ? 'warn' : '';
    var okLevel = ok === null ? '' : ok < 0.9 ? 'bad' : ok < 0.99 ? 'warn' : '';
    var tr = el('tr', st[1] === 'bad' || okLevel === 'bad' ? 'bad' : (slow || okLevel || st[1] === 'warn') ? 'warn' : '');
    tr.setAttribute('data-endpoint', e.id);
    var idCell = td(e.id, 'id', 'id');
    var addr = e.host.indexOf(':') >= 0 ? '[' + e.host + ']:' + e.port : e.host + ':' + e.port;
    if (addr !== e.id) idCell.appendChild(el('div', 'addr', addr));
    tr.appendChild(idCell);
    tr.appendChild(td(e.zone === null ? '\\u2014' : e.zone, '', 'zone'));
    tr.appendChild(td(e.weight, '', 'weight'));
    tr.appendChild(td(el('span', 'badge ' + st[1], st[0]), '', 'state'));
    tr.appendChild(td(cell(e.ewmaMs.toFixed(1) + ' ms', bar(e.ewmaMs / maxEwma, slow)), '', 'ewma'));
    tr.appendChild(td(spark(h.ewma, Math.max.apply(null, h.ewma.concat([1])), slow === 'bad' ? '#d64545' : '#3867d6'), '', 'ewma-spark'));
    tr.appendChild(td(cell(e.inflight, bar(e.inflight / maxInflight, '')), '', 'inflight'));
    tr.appendChild(td(cell(pct(ok), bar(ok === null ? 0 : ok, okLevel)), '', 'success'));
    var worst = Math.min.apply(null, h.ok);
    tr.appendChild(td(spark(h.ok, 1, worst < 0.9 ? '#d64545' : worst < 0.99 ? '#d99a1e' : '#3f8f5f'), '', 'success-spark'));
    tr.appendChild(td(q ? (dr / dt).toFixed(0) : '\\u2014', '', 'rps'));
    tr.appendChild(td(e.requests, '', 'requests'));
    table.appendChild(tr);
  });
  sec.appendChild(table);
  if (routes) sec.appendChild(routes);
  return sec;
}

${DASHBOARD_ROUTES_SCRIPT}
function own(o, k) { return o !== null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, k); }

var lastAt = 0;
function render(snap) {
  var now = performance.now();
  var dt = lastAt ? Math.max(0.001, (now - lastAt) / 1000) : 1;
  lastAt = now;
  var config = snap.config || null;
  renderConfig(config);
  var routes = config && config.routes ? config.routes : {};
  var sources = config && config.sources ? config.sources : {};
  var names = Object.keys(snap.services);
  // A service with routes in the configuration has a section before its first call too.
  Object.keys(routes).forEach(function (n) { if (!own(snap.services, n) && Array.isArray(routes[n]) && routes[n].length) names.push(n); });
  names.sort();
  var frag = document.createDocumentFragment();
  if (!names.length) frag.appendChild(el('p', 'empty', 'No service called yet.'));
  names.forEach(function (n) {
    frag.appendChild(renderService(n, own(snap.services, n) ? snap.services[n] : null, own(routes, n) ? routes[n] : undefined, own(sources, n) ? sources[n] : undefined, dt));
  });
  root.replaceChildren(frag);
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}
function status(text, cls) { var s = document.getElementById('status'); s.textContent = text; s.className = cls; }

function tick() {
  fetch(base + 'snapshot', { cache: 'no-store' })
    .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
    .then(function (snap) { render(snap); status('live', 'live'); }, function (err) { status('error: ' + err.message, 'error'); })
    .then(function () { setTimeout(tick, 1000); });
}
tick();
`;

/** The dashboard page. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>proxyless mesh</title>
<link rel="icon" href="data:,">
<style>${DASHBOARD_STYLE}</style>
</head>
<body>
<header><h1>proxyless mesh</h1><span id="status">connecting</span><span id="config"></span><span id="updated"></span></header>
<main id="services"></main>
<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`;
