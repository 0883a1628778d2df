/**
 * `npm run demo [-- --duration <s>] [-- --keep] [-- --admin-port <port>] [-- --chart <path>]` (`-- --help` lists
 * them with their defaults): four local backends behind one logical service, `api`, and a mesh with the default
 * policy (peak-EWMA, retries with a budget, breakers, outlier ejection) in front.
 *
 * fast-1, fast-2 answer in 2-5 ms; slow in 82-85 ms; flaky in 2-5 ms but fails 3 calls in 10 with 503 (spread
 * evenly, never two in a row, so no random streak gets it ejected while alive), and dies a third of the way in (at
 * 5 s of the default 15 s). The endpoints' ids are those names, so the dashboard, the metrics and the events all
 * say fast-1, not 127.0.0.1:41517.
 *
 * What a viewer sees, and why (the demo prints it, and checks it against its own numbers at the end): each attempt
 * draws two endpoints at random and takes the cheaper (P2C). While flaky is alive, slow gets about 1 attempt in 6:
 * the pair slow+flaky comes up 1 time in 6 (4 endpoints, 6 pairs), and slow wins it, because each of flaky's 503s
 * doubles flaky's cost. Once flaky is dead and ejected, slow loses nearly every pairing (against fast-1 or fast-2)
 * and its share falls to a few percent. Retries hide flaky's 503s: the caller sees ~100% success.
 *
 * The admin handler serves the live dashboard (and /metrics, /snapshot) on 127.0.0.1; its URL is printed first.
 * In a terminal without --duration, or with --keep, it stays up after the load until Ctrl-C; otherwise (tests,
 * CI) the demo exits when the load ends. It writes an SVG chart (shares and latency per second) and prints its path.
 */
import { writeFileSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, staticRegistry, type MeshError } from 'proxyless';
import { startBackends } from './backends.js';
import { chartSvg } from './demo-chart.js';
import { demoOptions, HELP, type DemoOptions } from './demo-options.js';
import { DemoRecorder } from './demo-stats.js';

const WORKERS = 16;
const MAX_CALLS = 1_000_000; // bounds the loop whatever the duration
const MIN_SUCCESS_PERCENT = 90; // below this, something is broken: exit 1

type Tally = Record<'attempts' | 'successes' | 'failures', number>;

const percent = (part: number, whole: number): string => (whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`);
const share = (s: number | null): string => (s === null ? '-' : `${(100 * s).toFixed(1)}%`);
const ms = (v: number | null): string => (v === null ? '-' : v.toFixed(1));
const count = (map: Map<string, number>, key: string): void => void map.set(key, (map.get(key) ?? 0) + 1);
const sum = (values: Iterable<number>): number => [...values].reduce((a, b) => a + b, 0);

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Why a call failed, in a few words: `HTTP 503`, or `ECALLFAILED (last attempt: ECONNREFUSED)`. */
function reason(error: unknown): string {
  const { code, attempts } = error as Partial<MeshError>;
  const last = attempts?.at(-1)?.outcome;
  const name = code ?? (error instanceof Error ? error.name : String(error));
  return last === undefined ? name : `${name} (last attempt: ${last})`;
}

async function main({ durationS, keep, keepReason, adminPort, chart }: DemoOptions): Promise<number> {
  const flakyDiesAtS = Math.min(5, durationS / 3);
  const backends = await startBackends([
    { name: 'fast-1', minMs: 2, maxMs: 5 },
    { name: 'fast-2', minMs: 2, maxMs: 5 },
    { name: 'slow', minMs: 82, maxMs: 85 },
    { name: 'flaky', minMs: 2, maxMs: 5, failRate: 0.3 },
  ]);
  const names = backends.map((b) => b.name);
  // The endpoint id is the name: the dashboard, /metrics and the events show it (host:port stays in the snapshot).
  const mesh = createMesh({ registry: staticRegistry({ api: backends.map((b) => ({ id: b.name, host: '127.0.0.1', port: b.port })) }) });
  // The admin handler: the live dashboard at /, Prometheus text at /metrics, JSON at /snapshot. Loopback only.
  const admin = http.createServer(mesh.adminHandler());
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(adminPort, '127.0.0.1', () => resolve());
  });
  const dashboardUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}/`;
  const shutdown = async (): Promise<void> => {
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
    admin.closeAllConnections();
    await new Promise((resolve) => admin.close(resolve));
  };

  const tty = process.stdout.isTTY === true;
  const started = performance.now();
  const sinceStart = (): number => (performance.now() - started) / 1_000;
  const clock = (): string => `t=${sinceStart().toFixed(1)}s`;
  const note = (message: string): void => void process.stdout.write(`${tty ? '\r\x1b[K' : ''}  ${clock()} ${message}\n`);

  // Attempts per endpoint, from the mesh's events: over the run, in the current second, and timed for p50/p99.
  const recorder = new DemoRecorder(names, sinceStart);
  const tally = new Map<string, Tally>(names.map((n) => [n, { attempts: 0, successes: 0, failures: 0 }]));
  const thisSecond = new Map<string, number>();
  const governance = new Map<string, number>();
  let flakyEjectedAtS: number | undefined;
  mesh.on('request', ({ endpoint }) => {
    tally.get(endpoint.id)!.attempts++;
    count(thisSecond, endpoint.id);
    recorder.attempt(endpoint.id);
  });
  mesh.on('success', ({ endpoint, durationMs }) => {
    tally.get(endpoint.id)!.successes++;
    recorder.attemptEnded(endpoint.id, durationMs);
  });
  mesh.on('failure', ({ endpoint, durationMs }) => {
    tally.get(endpoint.id)!.failures++;
    recorder.attemptEnded(endpoint.id, durationMs);
  });
  mesh.on('retry', () => count(governance, 'retries'));
  mesh.on('budget-exhausted', () => count(governance, 'retry budget exhausted'));
  mesh.on('ejected', ({ endpoint, durationMs }) => {
    count(governance, 'ejections');
    if (endpoint.id === 'flaky') flakyEjectedAtS ??= sinceStart();
    note(`ejected ${endpoint.id} for ${durationMs / 1_000}s`);
  });
  mesh.on('restored', ({ endpoint }) => note(`restored ${endpoint.id}`));
  mesh.on('breaker-open', ({ endpoint }) => {
    count(governance, 'breaker opens');
    note(`breaker open: ${endpoint.id}`);
  });
  mesh.on('breaker-half-open', ({ endpoint }) => note(`breaker half-open: ${endpoint.id}`));
  mesh.on('breaker-close', ({ endpoint }) => note(`breaker closed: ${endpoint.id}`));
  mesh.on('panic', ({ healthy, total }) => note(`panic: ${healthy}/${total} endpoints healthy`));

  // Calls, as the caller sees them.
  const latencies: number[] = [];
  const failures = new Map<string, number>();
  let calls = 0;
  let okCalls = 0;
  let second = { calls: 0, ok: 0 };
  const stopAt = started + durationS * 1_000;
  const hardStop = AbortSignal.timeout(durationS * 1_000 + 5_000); // aborts whatever is still in flight then
  setMaxListeners(4 * WORKERS, hardStop); // every call in flight listens to it

  // Ctrl-C during the load ends it early, with the summary and the chart; a second one (or one after) exits.
  let interrupted = false;
  const interrupt = (): void => {
    interrupted = true;
    note('interrupted: stopping the load');
  };
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);

  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt && calls < MAX_CALLS && !hardStop.aborted && !interrupted) {
      calls++;
      const t0 = performance.now();
      let ok = false;
      try {
        const res = await mesh.fetch('http://api/hello', { signal: hardStop });
        await res.arrayBuffer();
        ok = res.ok;
        if (!ok) count(failures, `HTTP ${res.status}`);
      } catch (error) {
        count(failures, reason(error));
      }
      const took = performance.now() - t0;
      latencies.push(took);
      recorder.call(took);
      second.calls++;
      if (ok) {
        okCalls++;
        second.ok++;
      }
    }
  };

  const progress = setInterval(() => {
    const attempts = sum(thisSecond.values());
    const shares = names.map((n) => `${n} ${percent(thisSecond.get(n) ?? 0, attempts).padStart(6)}`).join('  ');
    const line = `${clock().padEnd(7)} ${String(second.calls).padStart(5)} req/s ${percent(second.ok, second.calls).padStart(7)} ok | attempts: ${shares}`;
    process.stdout.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    thisSecond.clear();
    second = { calls: 0, ok: 0 };
  }, 1_000);
  const killFlaky = setTimeout(() => {
    backends.find((b) => b.name === 'flaky')!.kill();
    note('flaky died (server closed, connections dropped)');
  }, flakyDiesAtS * 1_000);

  const stays = keep ? `stays up after the load until Ctrl-C (${keepReason})` : `closes when the load ends (${keepReason})`;
  console.log(`dashboard: ${dashboardUrl}  (Prometheus metrics: ${dashboardUrl}metrics); it ${stays}`);
  console.log(`proxyless demo: ${WORKERS} workers for ${durationS}s on 'api' = ${backends.map((b) => `${b.name}@${b.address}`).join(', ')}`);
  console.log(
    [
      '',
      'What to watch (each attempt draws 2 endpoints at random and takes the cheaper one: P2C on peak-EWMA):',
      `- until flaky dies at t=${flakyDiesAtS.toFixed(1)}s, slow gets about 1 attempt in 6 although it is 80 ms slower: the pair`,
      '  slow+flaky comes up 1 time in 6, and slow wins it, because each 503 from flaky doubles flaky\'s cost;',
      '- once flaky is dead and ejected, slow loses nearly every pairing (to fast-1 or fast-2): a few percent;',
      '- retries send flaky\'s 503s elsewhere, so the calls succeed.',
      '',
    ].join('\n'),
  );
  try {
    await Promise.all(Array.from({ length: WORKERS }, worker));
  } finally {
    clearInterval(progress);
    clearTimeout(killFlaky);
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
    if (tty) process.stdout.write('\n');
  }
  const elapsedS = sinceStart();
  const endpoints = mesh.snapshot().services['api']?.endpoints ?? [];
  const staying = keep && !interrupted;
  if (!staying) await shutdown();

  const byId = new Map(endpoints.map((e) => [e.id, e]));
  const stateOf = (name: string): string => {
    const e = byId.get(name);
    if (e === undefined) return '-';
    return e.ejected ? 'ejected' : e.breaker === 'closed' || e.breaker === 'off' ? 'in service' : `breaker ${e.breaker}`;
  };
  const attempts = sum([...tally.values()].map((t) => t.attempts));
  console.log('\nPer endpoint: attempts as the mesh sent them, timed by the demo from the mesh\'s success/failure events\n');
  const endpointRows = [...tally].map(([name, t]) => {
    const { p50, p99 } = recorder.latency(name);
    return [name, `${t.attempts}`, `${t.successes}`, `${t.failures}`, percent(t.attempts, attempts), ms(p50), ms(p99), byId.get(name)?.ewmaMs.toFixed(1) ?? '-', stateOf(name)];
  });
  console.log(table(['endpoint', 'attempts', 'successes', 'failures', 'share', 'p50 ms', 'p99 ms', 'EWMA ms', 'state at the end'], endpointRows));
  console.log(
    '\nEWMA ms is the balancer\'s peak-EWMA cost estimate at the end (mesh.snapshot()), not a percentile: it takes any\n' +
      'slower attempt at once (a stall of this busy process, a TCP connect; a failure never lowers it) and forgets it\n' +
      'over ~10 s, so it reads above p50. p50/p99 include this process\'s own event-loop queueing (16 workers and the\n' +
      'four backends share one thread), hence above the backends\' 2-5 ms.',
  );

  // The story, checked with this run's numbers.
  const alive = recorder.share('slow', 0, flakyDiesAtS);
  const after = flakyEjectedAtS === undefined ? undefined : recorder.share('slow', flakyEjectedAtS, elapsedS + 1);
  console.log(
    `\nslow's share of attempts: ${share(alive.share)} while flaky was alive (t < ${flakyDiesAtS.toFixed(1)}s; 1 pairing in 6 = 16.7%), ` +
      (after === undefined ? 'flaky was not ejected before the end' : `${share(after.share)} after flaky was ejected (t >= ${flakyEjectedAtS!.toFixed(1)}s)`),
  );

  latencies.sort((a, b) => a - b);
  const retries = governance.get('retries') ?? 0;
  console.log('\nWhat the mesh did: calls as the caller saw them\n');
  const { p50, p99 } = recorder.callLatency();
  const callRow = [`${calls}`, (calls / elapsedS).toFixed(0), percent(okCalls, calls), `${retries}`, `${calls - okCalls}`, ms(p50), ms(p99)];
  console.log(table(['calls', 'req/s', 'successful', 'retries', 'failed calls', 'p50 ms', 'p99 ms'], [callRow]));
  const other = [...governance].filter(([k]) => k !== 'retries');
  if (other.length > 0) console.log(`\ngovernance: ${other.map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  if (failures.size > 0) console.log(`failed calls: ${[...failures].map(([k, v]) => `${k} ×${v}`).join(', ')}`);

  const markers = [{ atS: flakyDiesAtS, label: 'flaky died' }, ...(flakyEjectedAtS === undefined ? [] : [{ atS: flakyEjectedAtS, label: 'flaky ejected' }])];
  const title = `proxyless demo: ${durationS}s, ${WORKERS} workers, service 'api' (${names.join(', ')})`;
  try {
    const perSecond = recorder.chart(title, interrupted ? elapsedS : durationS, markers);
    const withTotals = perSecond.endpoints.map((e) => {
      const { p50, p99 } = recorder.latency(e.name);
      return { ...e, note: `${percent(tally.get(e.name)!.attempts, attempts)} of attempts; p50 ${ms(p50)} ms, p99 ${ms(p99)} ms` };
    });
    writeFileSync(chart, chartSvg({ ...perSecond, endpoints: withTotals }));
    console.log(`\nchart: ${chart}  (SVG: shares and latency per second; open it in a browser)`);
  } catch (error) {
    console.error(`\ndemo: could not write the chart to ${chart}: ${(error as Error).message}`);
  }

  const successPercent = calls === 0 ? 0 : (100 * okCalls) / calls;
  const code = successPercent >= MIN_SUCCESS_PERCENT ? 0 : 1;
  if (code !== 0) console.error(`\ndemo: only ${successPercent.toFixed(1)}% of calls succeeded (expected >= ${MIN_SUCCESS_PERCENT}%)`);
  if (staying) {
    console.log(`\nThe load has ended; the dashboard stays at ${dashboardUrl} until Ctrl-C`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await shutdown();
  }
  return code;
}

let options: DemoOptions | 'help';
try {
  options = demoOptions(process.argv.slice(2), process.stdout.isTTY === true);
} catch (error) {
  console.error(`demo: ${(error as Error).message}\n\n${HELP}`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(HELP);
} else {
  main(options).then(
    (code) => void (process.exitCode = code),
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
