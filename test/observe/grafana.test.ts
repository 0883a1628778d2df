// The shipped Grafana dashboard and alert rules may only use series that a live mesh really exports, with
// labels those series really carry.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh } from '../../src/index.js';
import { parseExposition } from './exposition.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
/** Labels Prometheus adds at scrape time, and the histogram bucket label. */
const SCRAPE_LABELS = new Set(['job', 'instance']);

interface Panel {
  readonly title?: string;
  readonly type: string;
  readonly targets?: readonly { readonly expr: string }[];
  readonly panels?: readonly Panel[];
}

let mesh: Mesh;
/** Series names in the exposition, each with the label names its samples carry. */
const exported = new Map<string, Set<string>>();

beforeAll(async () => {
  // A route with a fault and a mirror, so that the route families have series too.
  mesh = createMesh({
    registry: staticRegistry({ api: ['127.0.0.1:1', '127.0.0.1:2'] }),
    routes: { api: [{ name: 'main', fault: { delay: { ms: 0, percent: 0 } }, mirror: { percent: 100 } }] },
  });
  for (let i = 0; i < 10; i++) await mesh.call('api', async () => 'ok');
  for (const family of parseExposition(mesh.metrics()).values()) {
    for (const s of family.samples) {
      const labels = exported.get(s.name) ?? new Set<string>();
      for (const l of Object.keys(s.labels)) labels.add(l);
      exported.set(s.name, labels);
    }
  }
});
afterAll(() => mesh.close());

/** Problems with the metric names and labels of one PromQL expression. */
function check(expr: string): string[] {
  const problems: string[] = [];
  const names = expr.match(/\bproxyless_[a-z0-9_]+/g) ?? [];
  if (names.length === 0) problems.push(`no proxyless metric in: ${expr}`);
  const known = new Set<string>(SCRAPE_LABELS);
  for (const name of names) {
    const labels = exported.get(name);
    if (labels === undefined) problems.push(`${name} is not exported`);
    else for (const l of labels) known.add(l);
  }
  // Matchers inside a selector must name labels of that very series.
  for (const m of expr.matchAll(/\b(proxyless_[a-z0-9_]+)\{([^}]*)\}/g)) {
    const labels = exported.get(m[1]!) ?? new Set();
    for (const matcher of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
      const label = matcher[1]!;
      if (!labels.has(label) && !SCRAPE_LABELS.has(label)) problems.push(`${m[1]} has no label ${label}`);
    }
  }
  // Grouping labels must exist on some series of the expression.
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of m[1]!.split(',').map((l) => l.trim()).filter(Boolean)) {
      if (!known.has(label)) problems.push(`no series in the expression has the label ${label}: ${expr}`);
    }
  }
  return problems;
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

describe('the checker', () => {
  it('catches unknown names, unknown matcher labels and unknown grouping labels', () => {
    expect(check('rate(proxyless_requests_total{service="a"}[5m])')).toEqual([]);
    expect(check('rate(proxyless_request_total[5m])')).toHaveLength(1);
    expect(check('proxyless_endpoint_in_flight{outcome="x"}')).toHaveLength(1);
    expect(check('sum by (pod) (proxyless_requests_total)')).toHaveLength(1);
  });
});

describe('examples/grafana/proxyless.json', () => {
  const dashboard = JSON.parse(readFileSync(join(root, 'examples/grafana/proxyless.json'), 'utf8')) as {
    panels: Panel[];
    templating: { list: { name: string; query?: unknown; definition?: string }[] };
  };
  const exprs = allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it('queries only series that mesh.metrics() exports, with their real labels', () => {
    expect(exprs.length).toBeGreaterThan(20);
    expect(exprs.flatMap(check)).toEqual([]);
    const variables = dashboard.templating.list.flatMap((v) => (v.definition ? [v.definition] : []));
    expect(variables.length).toBe(2);
    expect(variables.flatMap(check)).toEqual([]);
  });

  it('shows every metric family the library exports', () => {
    const used = new Set(exprs.flatMap((e) => e.match(/\bproxyless_[a-z0-9_]+/g) ?? []).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    const families = [...parseExposition(mesh.metrics()).keys()];
    expect(families.filter((f) => !used.has(f))).toEqual([]);
  });

  it('has a panel title and a data source on every query panel', () => {
    for (const p of allPanels(dashboard.panels).filter((p) => p.type !== 'row')) {
      expect(p.title).toBeTruthy();
      expect((p as { datasource?: { uid?: string } }).datasource?.uid).toBe('${datasource}');
    }
  });
});

describe('examples/prometheus/alerts.yml', () => {
  it('uses only exported series and labels', () => {
    const text = readFileSync(join(root, 'examples/prometheus/alerts.yml'), 'utf8');
    const exprs = [...text.matchAll(/expr:\s*(\|\n((?:\s{10,}.*\n)+)|(.*))/g)].map((m) => (m[2] ?? m[3] ?? '').trim());
    expect(exprs).toHaveLength(6);
    expect(exprs.flatMap(check)).toEqual([]);
  });
});
