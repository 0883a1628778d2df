// A real Prometheus scrapes a live mesh's /metrics on loopback; promtool lints the exposition and runs the
// alert rules' unit tests. Skipped when the binaries are missing, unless REQUIRE_PROMETHEUS=1 (CI), which fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBinary, freePort, required, waitFor } from '../observe/binaries.js';
import { startLiveMesh, type LiveMesh } from '../observe/live-mesh.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
// PROMETHEUS_PATH / PROMTOOL_PATH point at other binaries (or at none, to try the skip and REQUIRE_ paths).
const prometheusBin = findBinary('prometheus', process.env.PROMETHEUS_PATH);
const promtoolBin = findBinary('promtool', process.env.PROMTOOL_PATH);
const present = prometheusBin !== undefined && promtoolBin !== undefined;
const JOB = 'proxyless-test';

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

  const query = async (promql: string): Promise<PromVector[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; data?: { result: PromVector[] }; error?: string };
    if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
    return body.data!.result;
  };

  beforeAll(async () => {
    live = await startLiveMesh();
    live.startTraffic(4, 60_000);
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
