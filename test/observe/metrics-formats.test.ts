// The mesh `name` label, OpenMetrics output, several meshes in one exposition, and Accept negotiation.
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMesh,
  negotiateMetricsFormat,
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_CONTENT_TYPE,
  renderMeshMetrics,
  staticRegistry,
  type Mesh,
  type MeshOptions,
} from '../../src/index.js';
import { METRIC_FAMILIES } from '../../src/observe/metric-families.js';
import { parseExposition, value } from './exposition.js';

const meshes: Mesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});
function mesh(options: Partial<MeshOptions> = {}): Mesh {
  const m = createMesh({ registry: staticRegistry({ users: ['127.0.0.1:1'] }), ...options });
  meshes.push(m);
  return m;
}
const ok = async (): Promise<string> => 'ok';

/** The OpenMetrics text read back as 0.0.4 (counter families renamed to their sample names, `# EOF` dropped). */
function asText(om: string): string {
  expect(om.endsWith('# EOF\n')).toBe(true);
  const counters = new Set([...om.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!));
  return om
    .slice(0, -'# EOF\n'.length)
    .split('\n')
    .filter((l) => !l.startsWith('# UNIT '))
    .map((l) => l.replace(/^# (TYPE|HELP) (\S+)/, (all, kind: string, name: string) => (counters.has(name) ? `# ${kind} ${name}_total` : all)))
    .map((l) => l.replace(/le="(\d+)\.0"/, 'le="$1"'))
    .join('\n')
    .replace(/^(# TYPE .*)\n(# HELP .*)$/gm, '$2\n$1');
}

describe('createMesh({ name })', () => {
  it('puts mesh="<name>" first on every series', async () => {
    const m = mesh({ name: 'edge "1"' });
    await m.call('users', ok);
    const text = m.metrics();
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines) expect(line).toMatch(/^proxyless_[a-z_]+\{mesh="edge \\"1\\"",service="users"/);
    expect(value(parseExposition(text), 'proxyless_requests_total', { mesh: 'edge "1"', outcome: 'success' })).toBe(1);
  });

  it('leaves an unnamed mesh without a mesh label', async () => {
    const m = mesh();
    await m.call('users', ok);
    expect(m.metrics()).not.toContain('mesh=');
    expect(m.metrics()).toContain('proxyless_requests_total{service="users",outcome="success"} 1\n');
  });

  it('validates the name, naming the option', () => {
    for (const bad of ['', 'x'.repeat(65), 'a\nb', 'tab\t', 42, null]) {
      expect(() => mesh({ name: bad as never })).toThrow(/^name must/);
    }
    expect(() => mesh({ name: 'x'.repeat(64) })).not.toThrow();
    expect(() => mesh({ name: 'édge-1 (eu)' })).not.toThrow();
    expect(() => mesh({ name: undefined })).not.toThrow();
  });
});

describe("mesh.metrics({ format: 'openmetrics' })", () => {
  it('writes OpenMetrics 1.0: TYPE/UNIT/HELP, counters without _total, canonical le, one # EOF last', async () => {
    let t = 1_000;
    const m = mesh({ name: 'edge', clock: { now: () => t } }); // a still clock: both texts read the same gauges
    await m.call('users', async () => {
      t += 3;
      return 'ok';
    });
    const om = m.metrics({ format: 'openmetrics' });
    expect(om.endsWith('\n# EOF\n')).toBe(true);
    expect(om.match(/# EOF/g)).toHaveLength(1);
    expect(om).toContain(`# TYPE proxyless_requests counter\n# HELP proxyless_requests ${METRIC_FAMILIES.requests.help}\n`);
    expect(om).toContain('proxyless_requests_total{mesh="edge",service="users",outcome="success"} 1\n');
    expect(om).toContain('# TYPE proxyless_request_duration_seconds histogram\n# UNIT proxyless_request_duration_seconds seconds\n');
    expect(om).toContain('proxyless_request_duration_seconds_bucket{mesh="edge",service="users",le="1.0"} 1\n');
    expect(om).toContain('le="0.0025"');
    expect(om).toContain('le="10.0"');
    expect(om).toContain('proxyless_request_duration_seconds_count{mesh="edge",service="users"} 1\n');
    expect(om).not.toMatch(/^# TYPE \S+_total counter$/m);
    // Same series and values as the 0.0.4 text, once names and le spellings are mapped back.
    expect(parseExposition(asText(om))).toEqual(parseExposition(m.metrics()));
  });

  it('escapes HELP as OpenMetrics wants (double quotes too)', () => {
    const help = 'a "quoted" \\ back\nslash';
    return import('../../src/observe/exposition-openmetrics.js').then(({ OpenMetricsSink }) => {
      const sink = new OpenMetricsSink();
      sink.family({ ...METRIC_FAMILIES.retries, help });
      expect(sink.text()).toBe('# TYPE proxyless_retries counter\n# HELP proxyless_retries a \\"quoted\\" \\\\ back\\nslash\n# EOF\n');
    });
  });

  it('validates the options, naming the option', () => {
    const m = mesh();
    expect(m.metrics({ format: 'prometheus' })).toBe(m.metrics());
    expect(() => m.metrics({ format: 'json' as never })).toThrow(/format must be 'prometheus' or 'openmetrics'/);
    expect(() => m.metrics({ fromat: 'openmetrics' } as never)).toThrow(/unknown option "fromat"/);
    expect(() => m.metrics('openmetrics' as never)).toThrow(TypeError);
  });
});

describe('renderMeshMetrics(meshes, options)', () => {
  it('renders two named meshes as one valid exposition, each family once', async () => {
    const edge = mesh({ name: 'edge' });
    const internal = mesh({ name: 'internal' });
    await edge.call('users', ok);
    for (let i = 0; i < 3; i++) await internal.call('users', ok);
    // Concatenation declares every family twice: the strict parser refuses it, as Prometheus does.
    expect(() => parseExposition(edge.metrics() + internal.metrics())).toThrow(/declared twice/);
    const families = parseExposition(renderMeshMetrics([edge, internal]));
    expect(value(families, 'proxyless_requests_total', { mesh: 'edge', outcome: 'success' })).toBe(1);
    expect(value(families, 'proxyless_requests_total', { mesh: 'internal', outcome: 'success' })).toBe(3);
    const om = renderMeshMetrics([edge, internal], { format: 'openmetrics' });
    expect(om.match(/# EOF/g)).toHaveLength(1);
    expect(om.match(/^# TYPE proxyless_requests counter$/gm)).toHaveLength(1);
  });

  it('refuses meshes with the same series, and anything but meshes', () => {
    expect(() => renderMeshMetrics([mesh(), mesh()])).toThrow(/two unnamed meshes/);
    expect(() => renderMeshMetrics([mesh({ name: 'a' }), mesh({ name: 'a' })])).toThrow(/two meshes are named "a"/);
    expect(() => renderMeshMetrics([{}])).toThrow(/made by createMesh/);
    expect(() => renderMeshMetrics([mesh({ name: 'b' })], { format: 'xml' as never })).toThrow(/format must be/);
    // No mesh: every family, no sample.
    expect(parseExposition(renderMeshMetrics([])).size).toBe(Object.keys(METRIC_FAMILIES).length);
  });
});

describe('negotiateMetricsFormat(accept)', () => {
  const PROMETHEUS_ACCEPT =
    'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
  it.each([
    [PROMETHEUS_ACCEPT, OPENMETRICS_CONTENT_TYPE],
    ['application/openmetrics-text; version=0.0.1', 'application/openmetrics-text; version=0.0.1; charset=utf-8'],
    ['application/openmetrics-text', OPENMETRICS_CONTENT_TYPE],
    ['text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5', PROMETHEUS_CONTENT_TYPE],
    ['application/openmetrics-text;q=0,text/plain', PROMETHEUS_CONTENT_TYPE],
    ['application/openmetrics-text;version=2.0.0,text/plain;q=0.1', PROMETHEUS_CONTENT_TYPE],
    ['*/*', PROMETHEUS_CONTENT_TYPE],
    ['application/json', PROMETHEUS_CONTENT_TYPE],
    ['', PROMETHEUS_CONTENT_TYPE],
    [undefined, PROMETHEUS_CONTENT_TYPE],
  ])('%s -> %s', (accept, type) => {
    const chosen = negotiateMetricsFormat(accept);
    expect(chosen.contentType).toBe(type);
    expect(chosen.format).toBe(type.startsWith('application/openmetrics-text') ? 'openmetrics' : 'prometheus');
  });
});
