/**
 * The dashboard script's part for the configuration in force (dashboard-page.ts holds the rest): per service, each
 * route with its match, its backends' configured weight and share next to the share of calls each got over the
 * last poll, its fault and mirror; and the config version in the header. Plain JavaScript in a string, as the rest
 * of the page's script; values go in through `textContent` only.
 */
export const DASHBOARD_ROUTES_SCRIPT = `
// Routes: the configuration in force against what the calls did. A backend's label is the snapshot's:
// 'v2' (a subset), 'service:x', 'service:x/v2', or '*' (the whole service).
function given(v) { return v !== undefined && v !== null; }
function labelOf(ref) {
  if (!given(ref.service)) return given(ref.subset) ? String(ref.subset) : '*';
  return given(ref.subset) ? 'service:' + ref.service + '/' + ref.subset : 'service:' + ref.service;
}
function clip(text, n) { text = String(text); return text.length > n ? text.slice(0, n - 1) + '\u2026' : text; }
function describeMatch(match) {
  if (!match || !match.length) return 'every request';
  return match.map(function (m) {
    var parts = [];
    if (m.path) {
      if (given(m.path.exact)) parts.push('path = ' + m.path.exact);
      else if (given(m.path.prefix)) parts.push('path prefix ' + m.path.prefix);
      else if (given(m.path.regex)) parts.push('path ~ ' + m.path.regex);
    }
    if (m.method) parts.push('method ' + m.method);
    if (m.headers) Object.keys(m.headers).forEach(function (h) {
      var v = m.headers[h];
      parts.push('header ' + h + (typeof v === 'string' ? ' = ' + v : ' ~ ' + (v && v.regex)));
    });
    if (m.query) Object.keys(m.query).forEach(function (k) { parts.push('query ' + k + ' = ' + m.query[k]); });
    return parts.length ? parts.join(' and ') : 'every request';
  }).join(' or ');
}
function describeFault(f) {
  var parts = [];
  if (f.delay) parts.push('delay ' + f.delay.ms + ' ms on ' + f.delay.percent + '%');
  if (f.abort) parts.push('abort ' + f.abort.status + ' on ' + f.abort.percent + '%');
  return parts.length ? parts.join(', ') : 'none';
}
function rate(now, before, dt) { return before === undefined ? '\u2014' : (Math.max(0, now - before) / dt).toFixed(0) + '/s'; }

function renderRoutes(service, specs, stats, dt) {
  specs = Array.isArray(specs) ? specs : [];
  var byName = new Map();
  stats.forEach(function (r) { byName.set(r.name, r); });
  var names = specs.map(function (r) { return r.name; });
  byName.forEach(function (_r, n) { if (names.indexOf(n) < 0) names.push(n); });
  if (!names.length) return null;
  var box = el('div', 'routes');
  box.appendChild(el('h3', '', 'routes'));
  names.forEach(function (n) {
    var spec = specs.filter(function (r) { return r.name === n; })[0];
    box.appendChild(renderRoute(service, n, spec, byName.get(n), dt));
  });
  return box;
}

function renderRoute(service, name, spec, st, dt) {
  var wrap = el('div', 'route');
  wrap.setAttribute('data-route', name);
  var head = el('div', 'route-head');
  head.appendChild(el('h4', '', name));
  if (spec) head.appendChild(kv('match', clip(describeMatch(spec.match), 300), 'match'));
  else head.appendChild(el('span', 'badge off', 'no longer configured'));
  if (spec && spec.stickyHeader) head.appendChild(kv('sticky header', spec.stickyHeader, 'sticky'));
  wrap.appendChild(head);

  // The configured weights, by label; a route without backends sends everything to the whole service.
  var configured = new Map();
  var refs = spec ? (Array.isArray(spec.backends) && spec.backends.length ? spec.backends : [{}]) : [];
  refs.forEach(function (b) {
    var label = labelOf(b);
    var c = configured.get(label) || { weight: 0, priority: given(b.priority) ? b.priority : 0 };
    c.weight += given(b.weight) ? b.weight : 1;
    configured.set(label, c);
  });
  // A backend's configured share is of its priority level; a higher level is a failover (Envoy's priorities).
  var levels = new Map();
  configured.forEach(function (c) { levels.set(c.priority, (levels.get(c.priority) || 0) + c.weight); });
  var lowest = Infinity;
  levels.forEach(function (_t, p) { if (p < lowest) lowest = p; });
  var failover = levels.size > 1;

  var labels = [];
  configured.forEach(function (_c, l) { labels.push(l); });
  var counted = new Map();
  (st ? st.backends : []).forEach(function (b) { counted.set(b.backend, b); if (labels.indexOf(b.backend) < 0) labels.push(b.backend); });
  var key = JSON.stringify(['route', service, name]);
  var q = prev.get(key);
  var now = { backends: new Map(), faults: st ? st.faults : { delay: 0, abort: 0 }, mirrors: st ? st.mirrors : { sent: 0, succeeded: 0, failed: 0 } };
  var total = 0;
  labels.forEach(function (l) {
    var b = counted.get(l);
    var calls = b ? b.calls : 0;
    var ok = b && b.outcomes ? b.outcomes.success || 0 : 0;
    var before = q ? q.backends.get(l) : undefined;
    var d = q ? Math.max(0, calls - (before ? before.calls : 0)) : null;
    var dOk = q ? Math.max(0, ok - (before ? before.ok : 0)) : null;
    now.backends.set(l, { calls: calls, ok: ok, d: d, dOk: dOk });
    if (d !== null) total += d;
  });
  prev.set(key, now);

  var table = el('table');
  var hr = el('tr');
  ['backend'].concat(failover ? ['priority'] : [], ['weight', 'configured share', 'observed share, 1 s', 'calls/s', 'success, 1 s', 'calls']).forEach(function (h) { hr.appendChild(el('th', '', h)); });
  table.appendChild(hr);
  labels.forEach(function (l) {
    var c = configured.get(l);
    var n = now.backends.get(l);
    var share = c && levels.get(c.priority) > 0 ? c.weight / levels.get(c.priority) : (c ? 0 : null);
    var observed = q && total > 0 ? n.d / total : null;
    var ok = n.d ? n.dOk / n.d : null;
    var okLevel = ok === null ? '' : ok < 0.9 ? 'bad' : ok < 0.99 ? 'warn' : '';
    // Off by more than 10 points over enough calls: traffic does not go where the weights say.
    var off = observed !== null && share !== null && c.priority === lowest && total >= 50 && Math.abs(observed - share) > 0.1 ? 'warn' : '';
    var tr = el('tr', okLevel === 'bad' ? 'bad' : okLevel || off);
    tr.setAttribute('data-backend', l);
    tr.appendChild(td(l, 'id', 'backend'));
    if (failover) tr.appendChild(td(c ? (c.priority === lowest ? String(c.priority) : c.priority + ' (failover)') : '\u2014', '', 'priority'));
    tr.appendChild(td(c ? c.weight : 'not configured', '', 'weight'));
    tr.appendChild(td(share === null ? '\u2014' : cell(pct(share), bar(share, 'cfg')), '', 'share-configured'));
    tr.appendChild(td(cell(pct(observed), bar(observed === null ? 0 : observed, off)), '', 'share-observed'));
    tr.appendChild(td(n.d === null ? '\u2014' : (n.d / dt).toFixed(0), '', 'rps'));
    tr.appendChild(td(cell(pct(ok), bar(ok === null ? 0 : ok, okLevel)), '', 'success'));
    tr.appendChild(td(n.calls, '', 'calls'));
    table.appendChild(tr);
  });
  wrap.appendChild(table);

  var f = now.faults;
  if ((spec && spec.fault) || f.delay || f.abort) {
    var fl = el('div', 'route-extra');
    fl.setAttribute('data-field', 'faults');
    fl.textContent = 'fault: ' + (spec && spec.fault ? describeFault(spec.fault) : 'none configured') +
      ' \u00b7 injected: delay ' + f.delay + ' (' + rate(f.delay, q && q.faults.delay, dt) + '), abort ' + f.abort + ' (' + rate(f.abort, q && q.faults.abort, dt) + ')';
    wrap.appendChild(fl);
  }
  var m = now.mirrors;
  if ((spec && spec.mirror) || m.sent) {
    var ml = el('div', 'route-extra');
    ml.setAttribute('data-field', 'mirrors');
    var to = spec && spec.mirror ? labelOf(spec.mirror) + ', ' + (given(spec.mirror.percent) ? spec.mirror.percent : 100) + '%' : 'none configured';
    ml.textContent = 'mirror: ' + to + ' \u00b7 sent ' + m.sent + ' (' + rate(m.sent, q && q.mirrors.sent, dt) + '), succeeded ' + m.succeeded + ', failed ' + m.failed;
    wrap.appendChild(ml);
  }
  return wrap;
}

var seenVersion = null;
var versionChangedAt = 0;
function renderConfig(config) {
  var box = document.getElementById('config');
  var version = config && given(config.version) ? config.version : null;
  if (version !== seenVersion) {
    if (seenVersion !== null) versionChangedAt = performance.now();
    seenVersion = version;
  }
  var frag = document.createDocumentFragment();
  frag.appendChild(kv('config version', version === null ? '\u2014' : version, 'config-version'));
  if (versionChangedAt) frag.appendChild(kv('changed', ((performance.now() - versionChangedAt) / 1000).toFixed(0) + ' s ago', 'config-changed'));
  box.replaceChildren(frag);
}
`;
