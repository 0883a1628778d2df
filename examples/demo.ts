/**
 * `npm run demo [-- --duration <seconds>] [-- --keep] [-- --admin-port <port>]`: four local backends behind one logical service, `api`, and a
 * mesh with the default policy (peak-EWMA, retries with a budget, breakers, outlier ejection) in front.
 *
 * fast-1, fast-2 answer in 2-5 ms; slow is 80 ms slower; flaky fails 30% of calls with 503 and dies a third
 * of the way in (at 5 s of the default 15 s). Watch the shares: traffic leaves `slow`, retries hide flaky's
 * 503s, and flaky is ejected (or, once dead, its refused connections are retried elsewhere).
 *
 * The mesh's admin handler serves the live dashboard (and /metrics, /snapshot) on 127.0.0.1 while the demo
 * runs; its URL is printed first. `--keep` keeps the demo (mesh, backends, dashboard) alive after the load ends,
 * until Ctrl-C. `--admin-port` picks the port (default: any free one).
 */
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createMesh, staticRegistry, type Endpoint, type MeshError } from 'proxyless';
import { startBackends } from './backends.js';

const WORKERS = 16;
const MAX_CALLS = 1_000_000; // bounds the loop whatever the duration
const MIN_SUCCESS_PERCENT = 90; // below this, something is broken: exit 1

type Tally = Record<'attempts' | 'successes' | 'failures', number>;

interface DemoOptions {
  readonly durationS: number;
  /** Keep serving the dashboard after the load ends, until SIGINT or SIGTERM. */
  readonly keep: boolean;
  readonly adminPort: number;
}

function demoOptions(): DemoOptions {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '15' },
      keep: { type: 'boolean', default: false },
      'admin-port': { type: 'string', default: '0' },
    },
  });
  const seconds = Number(values.duration);
  if (!(seconds > 0 && seconds <= 50)) throw new TypeError(`--duration must be seconds in (0, 50], got ${values.duration}`);
  const adminPort = Number(values['admin-port']);
  if (!(Number.isInteger(adminPort) && adminPort >= 0 && adminPort <= 65535)) {
    throw new TypeError(`--admin-port must be a port number (0 for any free one), got ${values['admin-port']}`);
  }
  return { durationS: seconds, keep: values.keep, adminPort };
}

const percent = (part: number, whole: number): string => (whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`);
const count = (map: Map<string, number>, key: string): void => void map.set(key, (map.get(key) ?? 0) + 1);
const sum = (values: Iterable<number>): number => [...values].reduce((a, b) => a + b, 0);

function quantile(sorted: readonly number[], q: number): string {
  return sorted.length === 0 ? '-' : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1);
}

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

async function main({ durationS, keep, adminPort }: DemoOptions): Promise<number> {
  const flakyDiesAtS = Math.min(5, durationS / 3);
  const backends = await startBackends([
    { name: 'fast-1', minMs: 2, maxMs: 5 },
    { name: 'fast-2', minMs: 2, maxMs: 5 },
    { name: 'slow', minMs: 82, maxMs: 85 },
    { name: 'flaky', minMs: 2, maxMs: 5, failRate: 0.3 },
  ]);
  const names = new Map(backends.map((b) => [b.address, b.name]));
  const nameOf = (endpoint: Endpoint): string => names.get(endpoint.id) ?? endpoint.id;
  const mesh = createMesh({ registry: staticRegistry({ api: backends.map((b) => b.address) }) });
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
  const clock = (): string => `t=${((performance.now() - started) / 1_000).toFixed(1)}s`;
  const note = (message: string): void => void process.stdout.write(`${tty ? '\r\x1b[K' : ''}  ${clock()} ${message}\n`);

  // Attempts per endpoint, from the mesh's events: over the run, and in the current second.
  const tally = new Map<string, Tally>(backends.map((b) => [b.name, { attempts: 0, successes: 0, failures: 0 }]));
  const thisSecond = new Map<string, number>();
  const governance = new Map<string, number>();
  mesh.on('request', ({ endpoint }) => {
    tally.get(nameOf(endpoint))!.attempts++;
    count(thisSecond, nameOf(endpoint));
  });
  mesh.on('success', ({ endpoint }) => void tally.get(nameOf(endpoint))!.successes++);
  mesh.on('failure', ({ endpoint }) => void tally.get(nameOf(endpoint))!.failures++);
  mesh.on('retry', () => count(governance, 'retries'));
  mesh.on('budget-exhausted', () => count(governance, 'retry budget exhausted'));
  mesh.on('ejected', ({ endpoint, durationMs }) => {
    count(governance, 'ejections');
    note(`ejected ${nameOf(endpoint)} for ${durationMs / 1_000}s`);
  });
  mesh.on('restored', ({ endpoint }) => note(`restored ${nameOf(endpoint)}`));
  mesh.on('breaker-open', ({ endpoint }) => {
    count(governance, 'breaker opens');
    note(`breaker open: ${nameOf(endpoint)}`);
  });
  mesh.on('breaker-half-open', ({ endpoint }) => note(`breaker half-open: ${nameOf(endpoint)}`));
  mesh.on('breaker-close', ({ endpoint }) => note(`breaker closed: ${nameOf(endpoint)}`));
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

  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt && calls < MAX_CALLS && !hardStop.aborted) {
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
      latencies.push(performance.now() - t0);
      second.calls++;
      if (ok) {
        okCalls++;
        second.ok++;
      }
    }
  };

  const progress = setInterval(() => {
    const attempts = sum(thisSecond.values());
    const shares = backends.map((b) => `${b.name} ${percent(thisSecond.get(b.name) ?? 0, attempts).padStart(6)}`).join('  ');
    const line = `${clock().padEnd(7)} ${String(second.calls).padStart(5)} req/s ${percent(second.ok, second.calls).padStart(7)} ok | attempts: ${shares}`;
    process.stdout.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    thisSecond.clear();
    second = { calls: 0, ok: 0 };
  }, 1_000);
  const killFlaky = setTimeout(() => {
    backends.find((b) => b.name === 'flaky')!.kill();
    note('flaky died (server closed, connections dropped)');
  }, flakyDiesAtS * 1_000);

  console.log(`dashboard: ${dashboardUrl}  (Prometheus metrics: ${dashboardUrl}metrics)`);
  console.log(`proxyless demo: ${WORKERS} workers for ${durationS}s on 'api' = ${backends.map((b) => `${b.name}@${b.address}`).join(', ')}`);
  try {
    await Promise.all(Array.from({ length: WORKERS }, worker));
  } finally {
    clearInterval(progress);
    clearTimeout(killFlaky);
    if (tty) process.stdout.write('\n');
  }
  const elapsedS = (performance.now() - started) / 1_000;
  const endpoints = mesh.snapshot().services['api']?.endpoints ?? [];
  if (!keep) await shutdown();

  const byName = new Map(endpoints.map((e) => [names.get(e.id) ?? e.id, e]));
  const stateOf = (name: string): string => {
    const e = byName.get(name);
    if (e === undefined) return '-';
    return e.ejected ? 'ejected' : e.breaker === 'closed' || e.breaker === 'off' ? 'in service' : `breaker ${e.breaker}`;
  };
  const attempts = sum([...tally.values()].map((t) => t.attempts));
  console.log('\nPer endpoint: attempts as the mesh sent them; EWMA and state from mesh.snapshot()\n');
  const endpointRows = [...tally].map(([name, t]) =>
    [name, `${t.attempts}`, `${t.successes}`, `${t.failures}`, percent(t.attempts, attempts), byName.get(name)?.ewmaMs.toFixed(2) ?? '-', stateOf(name)],
  );
  console.log(table(['endpoint', 'attempts', 'successes', 'failures', 'share', 'EWMA ms', 'state at the end'], endpointRows));

  latencies.sort((a, b) => a - b);
  const retries = governance.get('retries') ?? 0;
  console.log('\nWhat the mesh did: calls as the caller saw them\n');
  const callRow = [`${calls}`, (calls / elapsedS).toFixed(0), percent(okCalls, calls), `${retries}`, `${calls - okCalls}`, quantile(latencies, 0.5), quantile(latencies, 0.99)];
  console.log(table(['calls', 'req/s', 'successful', 'retries', 'failed calls', 'p50 ms', 'p99 ms'], [callRow]));
  const other = [...governance].filter(([k]) => k !== 'retries');
  if (other.length > 0) console.log(`\ngovernance: ${other.map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  if (failures.size > 0) console.log(`failed calls: ${[...failures].map(([k, v]) => `${k} ×${v}`).join(', ')}`);

  const successPercent = calls === 0 ? 0 : (100 * okCalls) / calls;
  const code = successPercent >= MIN_SUCCESS_PERCENT ? 0 : 1;
  if (code !== 0) console.error(`\ndemo: only ${successPercent.toFixed(1)}% of calls succeeded (expected >= ${MIN_SUCCESS_PERCENT}%)`);
  if (keep) {
    console.log(`\n--keep: the load has ended; the dashboard stays at ${dashboardUrl} until Ctrl-C`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await shutdown();
  }
  return code;
}

let options: DemoOptions;
try {
  options = demoOptions();
} catch (error) {
  console.error(`demo: ${(error as Error).message}`);
  process.exit(2);
}
main(options).then(
  (code) => void (process.exitCode = code),
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
