// A real Prometheus scrapes a live mesh's /metrics on loopback (OpenMetrics, by its default Accept), and an app
// endpoint served from a prom-client registry holding the app's metric and the mesh's, in OpenMetrics; promtool
// lints the expositions (both formats, two named meshes) and runs the alert rules' unit tests. Skipped when the
// binaries are missing, unless REQUIRE_PROMETHEUS=1 (CI), which fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Registry, type RegistryContentType } from 'prom-client';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary, freePort, required, waitFor } from '../observe/binaries.js';
import { startLiveMesh, type LiveMesh } from '../observe/live-mesh.js';
import { createMesh, registerMeshMetrics, renderMeshMetrics, staticRegistry } from '../../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
// PROMETHEUS_PATH / PROMTOOL_PATH point at other binaries (or at none, to try the skip and REQUIRE_ paths).
const prometheusBin = findBinary('prometheus', process.env.PROMETHEUS_PATH);
const promtoolBin = findBinary('promtool', process.env.PROMTOOL_PATH);
const present = prometheusBin !== undefined && promtoolBin !== undefined;
const JOB = 'proxyless-test';
const APP_JOB = 'app-prom-client';

/**
 * `promtool check metrics`, which reads the text format 0.0.4 only. On OpenMetrics it reports each counter's
 * `<family>_total` samples as "no help text" (in 0.0.4 they would belong to another family than the
 * `# TYPE <family> counter` line): only those lines, for counter families the text declares, are accepted;
 * any parse error or other lint fails.
 */
function promtoolProblems(exposition: string): string[] {
  const r = spawnSync(promtoolBin!, ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 20_000 });
  const lines = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
  const counters = new Set([...exposition.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!));
  const problems = lines.filter((l) => {
    const m = /^(\S+)_total no help text$/.exec(l);
    return !(exposition.endsWith('# EOF\n') && m !== null && counters.has(m[1]!));
  });
  if (r.status !== 0 && (r.status !== 3 || problems.length > 0)) problems.push(`promtool exited ${r.status}`);
  return problems;
}

if (!present && required('REQUIRE_PROMETHEUS')) {
  describe('Prometheus', () => {
    it('is installed (REQUIRE_PROMETHEUS=1)', () => {
      throw new Error('REQUIRE_PROMETHEUS=1 but prometheus or promtool is not on PATH (apt-get install prometheus)');
    });
  });
}

interface PromVector {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

describe.skipIf(!present)('a real Prometheus', () => {
  let live: LiveMesh;
  let dir: string;
  let prom: ChildProcess | undefined;
  let promUrl: string;
  let promLog = '';
  let app: http.Server;
  let appRegistry: Registry<RegistryContentType>;
  let lastAppScrape = { accept: '', contentType: '' };

  const query = async (promql: string): Promise<PromVector[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; data?: { result: PromVector[] }; error?: string };
    if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
    return body.data!.result;
  };

  beforeAll(async () => {
    live = await startLiveMesh();
    live.startTraffic(4, 60_000);
    // The app's own endpoint: its prom-client registry, in OpenMetrics, holds its metric and the mesh's.
    appRegistry = new Registry<RegistryContentType>();
    appRegistry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    new Counter({ name: 'app_orders_total', help: 'Orders taken.', registers: [appRegistry] }).inc(5);
    registerMeshMetrics(live.mesh, appRegistry);
    app = http.createServer((req, res) => {
      void appRegistry.metrics().then((text) => {
        lastAppScrape = { accept: req.headers.accept ?? '', contentType: appRegistry.contentType };
        res.writeHead(200, { 'content-type': appRegistry.contentType }).end(text);
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const appTarget = `127.0.0.1:${(app.address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), 'proxyless-prom-'));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const target = new URL(live.adminUrl).host;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(join(root, 'examples/prometheus/alerts.yml'))}`,
        'scrape_configs:',
        `  - job_name: ${JOB}`,
        '    metrics_path: /metrics',
        '    static_configs:',
        `      - targets: ['${target}']`,
        `  - job_name: ${APP_JOB}`,
        '    metrics_path: /metrics',
        '    static_configs:',
        `      - targets: ['${appTarget}']`,
        '',
      ].join('\n'),
    );
    prom = spawn(
      prometheusBin!,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prom.stdout!.on('data', (c: Buffer) => void (promLog += c.toString()));
    prom.stderr!.on('data', (c: Buffer) => void (promLog += c.toString()));
    await waitFor('Prometheus to be ready', 30_000, async () => {
      if (prom!.exitCode !== null) throw new Error(`prometheus exited ${prom!.exitCode}: ${promLog}`);
      const res = await fetch(`${promUrl}/-/ready`);
      await res.arrayBuffer();
      return res.ok ? true : undefined;
    });
  }, 60_000);

  afterAll(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((resolve) => prom!.once('exit', resolve));
      prom.kill('SIGTERM');
      const timer = setTimeout(() => prom!.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    if (app) {
      app.closeAllConnections();
      await new Promise((resolve) => app.close(resolve));
    }
    await live?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('scrapes /metrics: our series appear with the expected labels', async () => {
    const success = await waitFor('proxyless_requests_total in Prometheus', 30_000, async () => {
      const r = await query(`proxyless_requests_total{job="${JOB}",service="api",outcome="success"} > 0`);
      return r.length > 0 ? r : undefined;
    });
    expect(success[0]!.metric).toMatchObject({ job: JOB, service: 'api', outcome: 'success' });

    const attempts = await waitFor('attempts of every endpoint', 20_000, async () => {
      const r = await query(`sum by (endpoint) (proxyless_attempts_total{job="${JOB}",service="api"})`);
      return r.length === 4 ? r : undefined;
    });
    expect(attempts.map((r) => r.metric.endpoint).sort()).toEqual(Object.values(live.ids).sort());

    const outcomes = await query(`proxyless_attempts_total{job="${JOB}",service="api"}`);
    expect(new Set(outcomes.map((r) => r.metric.outcome))).toEqual(new Set(['success', 'failure', 'cancelled']));
    const zones = await query(`proxyless_endpoint_info{job="${JOB}",service="api"}`);
    expect(zones.find((r) => r.metric.endpoint === live.ids.slow)?.metric.zone).toBe('zone-a');
    const breakers = await query(`proxyless_breaker_state{job="${JOB}",service="api"} == 1`);
    expect(breakers.map((r) => r.metric.endpoint).sort()).toEqual(Object.values(live.ids).sort());

    // The slow endpoint is slower in the EWMA gauge, and the histogram gives a quantile.
    // (Waited for: a stall of this busy process raises every EWMA for a while, the fast ones too.)
    await waitFor('the slow endpoint to read slower in the EWMA gauge', 20_000, async () => {
      const ewma = await query(`proxyless_endpoint_latency_ewma_seconds{job="${JOB}",service="api"}`);
      const ewmaOf = (id: string) => Number(ewma.find((r) => r.metric.endpoint === id)?.value[1]);
      return ewmaOf(live.ids.slow!) > ewmaOf(live.ids['fast-2']!) ? true : undefined;
    });
    const p99 = await waitFor('a p99 from the histogram', 20_000, async () => {
      const r = await query(`histogram_quantile(0.99, sum by (le) (rate(proxyless_request_duration_seconds_bucket{job="${JOB}",service="api"}[10s])))`);
      return r.length === 1 && Number.isFinite(Number(r[0]!.value[1])) ? Number(r[0]!.value[1]) : undefined;
    });
    expect(p99).toBeGreaterThan(0);
    expect(p99).toBeLessThanOrEqual(10);

    const targets = (await (await fetch(`${promUrl}/api/v1/targets`)).json()) as {
      data: { activeTargets: { health: string; lastError: string; labels: Record<string, string> }[] };
    };
    const ours = targets.data.activeTargets.find((t) => t.labels.job === JOB)!;
    expect(ours.lastError).toBe('');
    expect(ours.health).toBe('up');
  }, 60_000);

  it('loads and evaluates the shipped alert rules', async () => {
    const groups = await waitFor('rules evaluated', 20_000, async () => {
      const body = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
        data: { groups: { rules: { name: string; health: string; lastEvaluation: string }[] }[] };
      };
      const rules = body.data.groups.flatMap((g) => g.rules);
      return rules.length > 0 && rules.every((r) => r.health === 'ok' && !r.lastEvaluation.startsWith('0001')) ? rules : undefined;
    });
    expect(groups.map((r) => r.name).sort()).toEqual([
      'ProxylessBreakerOpen',
      'ProxylessDiscoveryStale',
      'ProxylessEndpointEjections',
      'ProxylessHighCallFailureRatio',
      'ProxylessPanic',
      'ProxylessRetryBudgetExhausted',
    ]);
  }, 30_000);

  it('ingests the app endpoint (prom-client, OpenMetrics): the app series and the mesh series', async () => {
    const mine = await waitFor('the mesh series from the app job', 30_000, async () => {
      const r = await query(`proxyless_requests_total{job="${APP_JOB}",service="api",outcome="success"} > 0`);
      return r.length > 0 ? r : undefined;
    });
    expect(mine[0]!.metric).toMatchObject({ job: APP_JOB, service: 'api', outcome: 'success' });
    const orders = await query(`app_orders_total{job="${APP_JOB}"}`);
    expect(orders.map((r) => Number(r.value[1]))).toEqual([5]);
    const buckets = await query(`proxyless_request_duration_seconds_bucket{job="${APP_JOB}",service="api",le="+Inf"}`);
    expect(buckets).toHaveLength(1);
    // Prometheus asked for OpenMetrics first, and was answered in it.
    expect(lastAppScrape.accept).toMatch(/^application\/openmetrics-text/);
    expect(lastAppScrape.contentType).toBe(Registry.OPENMETRICS_CONTENT_TYPE);
    const targets = (await (await fetch(`${promUrl}/api/v1/targets`)).json()) as {
      data: { activeTargets: { health: string; lastError: string; labels: Record<string, string> }[] };
    };
    const appTargetState = targets.data.activeTargets.find((t) => t.labels.job === APP_JOB)!;
    expect(appTargetState.lastError).toBe('');
    expect(appTargetState.health).toBe('up');
  }, 60_000);

  it('passes `promtool check metrics` on OpenMetrics output: the mesh, and prom-client in OpenMetrics', async () => {
    const om = live.mesh.metrics({ format: 'openmetrics' });
    expect(om).toContain('# TYPE proxyless_attempts counter');
    expect(promtoolProblems(om)).toEqual([]);
    expect(promtoolProblems(await appRegistry.metrics())).toEqual([]);
    // The filter is not blind: a second declaration of a family is still caught.
    expect(promtoolProblems(om.replace('# EOF\n', '') + om)).not.toEqual([]);
  });

  it('passes `promtool check metrics` on two named meshes in one exposition (both formats)', async () => {
    const registry = staticRegistry({ api: ['127.0.0.1:1'] });
    const edge = createMesh({ registry, name: 'edge' });
    const internal = createMesh({ registry, name: 'internal' });
    try {
      await edge.call('api', async () => 'ok');
      await internal.call('api', async () => 'ok');
      const text = renderMeshMetrics([edge, internal]);
      expect(text).toContain('proxyless_requests_total{mesh="internal",service="api",outcome="success"} 1');
      expect(promtoolProblems(text)).toEqual([]);
      expect(promtoolProblems(renderMeshMetrics([edge, internal], { format: 'openmetrics' }))).toEqual([]);
      // What the helper is for: concatenating the two texts fails promtool.
      expect(promtoolProblems(edge.metrics() + internal.metrics()).join('\n')).toMatch(/second HELP line/);
    } finally {
      await Promise.all([edge.close(), internal.close()]);
    }
  });

  it('passes `promtool check metrics` on a live exposition', () => {
    const exposition = live.mesh.metrics();
    expect(exposition).toContain('proxyless_attempts_total{service="api"');
    const r = spawnSync(promtoolBin!, ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 20_000 });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('passes `promtool test rules` on the alert rules unit tests', () => {
    const r = spawnSync(promtoolBin!, ['test', 'rules', 'alerts.test.yml'], {
      cwd: join(root, 'examples/prometheus'),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.stdout + r.stderr).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });
});
