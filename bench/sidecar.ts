/**
 * `npm run bench:sidecar`: the in-process mesh against the sidecar way, side by side on loopback.
 *
 * Three keep-alive node:http backends (a child process each) answer `ok\n` at once. Eight clients keep 64
 * requests in flight against them: global fetch and undici round-robined by hand, undici's BalancedPool,
 * `mesh.fetch`, `mesh.call` wrapping a Pool per endpoint, undici with the mesh's dispatcher, and undici through
 * a local nginx and a local HAProxy.
 * Each client runs in a child process of its own, spawned per row per round (bench/sidecar/client.ts),
 * so its CPU time is its own and the fetch rows never see npm undici. Rounds interleave the rows in an order
 * that rotates each round; the summary is per-row medians and per-round ratios (bench/sidecar/report.ts).
 *
 * CPU is reported per 10k requests: the client's (process.cpuUsage over its measured phase) and, for the
 * sidecar rows, the proxy's (utime + stime from /proc, sampled when the client says it starts measuring
 * and again when it reports, so the proxy's idle time around the run is left out).
 *
 * Env: ROUNDS (default 5); BENCH_NO_INSTALL=1 to never apt-get install nginx-light / haproxy when missing;
 * ROWS=pools,mesh-dispatcher to run only some rows; MESH_POLICY='{"breaker":false}' for the mesh rows' defaults.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startBackend, type Backend } from './lib/ok-server.js';
import type { ClientConfig, Result, RowName } from './sidecar/client.js';
import { ensureProxies, HAPROXY, NGINX, startProxy, type Proxy } from './sidecar/proxies.js';
import { report, roundLine, type RowSpec, type Sample, type Samples } from './sidecar/report.js';
import { fmt, machine } from './lib.js';

const INFLIGHT = 64;
const BACKENDS = 3;
/** Connections per backend for every undici row (64 in flight over 3 backends, rounded up). */
const CONNECTIONS = Math.ceil(INFLIGHT / BACKENDS);
const WARMUP_REQUESTS = 5_000;
const REQUESTS = 30_000;
const RUN_MS = 3_000;
/** A client that has not reported by then is killed, and its row counts as skipped for that round. */
const CLIENT_TIMEOUT_MS = 60_000;
const ROUNDS = Number(process.env.ROUNDS ?? 5);

const ALL_ROWS: readonly RowSpec[] = [
  { key: 'fetch', label: 'global fetch, round-robin by hand' },
  { key: 'mesh-fetch', label: "mesh.fetch('http://users/'), default policy" },
  { key: 'pools', label: `undici request, 3 Pools round-robin by hand (${CONNECTIONS} conns each)` },
  { key: 'balanced', label: `undici BalancedPool (${CONNECTIONS} conns each)` },
  { key: 'mesh-call', label: `mesh.call wrapping Pool.request, a Pool per endpoint by hand (${CONNECTIONS} conns each)` },
  { key: 'mesh-dispatcher', label: `undici request + meshDispatcher (${CONNECTIONS} conns)` },
  { key: 'nginx', label: `undici Pool (${CONNECTIONS * BACKENDS} conns) → nginx sidecar`, proxy: 'nginx' },
  { key: 'haproxy', label: `undici Pool (${CONNECTIONS * BACKENDS} conns) → HAProxy sidecar`, proxy: 'haproxy' },
];
/** `ROWS=pools,mesh-dispatcher` runs only those rows (a quicker look while working on one path). */
const ROWS: readonly RowSpec[] = process.env.ROWS ? ALL_ROWS.filter((r) => process.env.ROWS!.split(',').includes(r.key)) : ALL_ROWS;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLIENT = fileURLToPath(new URL('./sidecar/client.ts', import.meta.url));

/** Everything we started, closed in reverse order by cleanUp(), whatever way we end. */
const closers: (() => Promise<void>)[] = [];
let clientChild: ChildProcess | undefined;
let cleaning: Promise<void> | undefined;

function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    clientChild?.kill('SIGKILL');
    for (const close of closers.reverse()) await close().catch((e: unknown) => console.error('cleanup:', e));
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

type Outcome = { sample: Sample } | { skipped: string };

/** Runs one client child for one row; samples the proxy's CPU between the child's `ready` and its result. */
async function runClient(row: RowSpec, backends: readonly Backend[], proxy: Proxy | undefined): Promise<Outcome> {
  const config: ClientConfig = {
    row: row.key,
    backends: backends.map((b) => b.port),
    ...(proxy !== undefined && { proxyPort: proxy.port }),
    inflight: INFLIGHT,
    connections: CONNECTIONS,
    warmupRequests: WARMUP_REQUESTS,
    requests: REQUESTS,
    runMs: RUN_MS,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENT, JSON.stringify(config)], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  clientChild = child;
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.on('error', () => {}); // EPIPE if the client died before `go`; its exit is reported below
  const exited = once(child, 'exit');
  let timedOut = false;
  const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), CLIENT_TIMEOUT_MS);
  let cpu0 = NaN;
  let outcome: Outcome | undefined;
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'ready') {
        if (proxy !== undefined) cpu0 = proxy.cpuSeconds();
        child.stdin.write('go\n');
      } else if (line.startsWith('result ')) {
        const proxyCpu = proxy === undefined ? undefined : proxy.cpuSeconds() - cpu0;
        const parsed = JSON.parse(line.slice('result '.length)) as Result | { skipped: string };
        outcome = 'skipped' in parsed ? parsed : { sample: { ...parsed, ...(proxyCpu !== undefined && { proxyCpuS: proxyCpu }) } };
      }
    }
    const [code, signal] = (await exited) as [number | null, string | null];
    if (outcome === undefined) {
      if (cleaning !== undefined) return { skipped: 'interrupted' };
      const why = timedOut ? `timed out after ${CLIENT_TIMEOUT_MS / 1000} s` : `exited ${code ?? signal}`;
      // The error's message line, not its stack.
      const message = stderr.split('\n').find((l) => /error/i.test(l)) ?? stderr.trim().split('\n')[0] ?? '';
      return { skipped: `client ${why}: ${message.trim()}` };
    }
    return outcome;
  } finally {
    clearTimeout(timer);
    child.stdin.destroy();
    clientChild = undefined;
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`ROUNDS must be a whole number >= 1, got ${process.env.ROUNDS}`);
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-bench-sidecar-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));

  const backends: Backend[] = [];
  for (let i = 0; i < BACKENDS; i++) {
    const b = await startBackend();
    closers.push(() => b.close());
    backends.push(b);
  }

  // Rows that cannot run at all (a proxy missing or not starting) are skipped in every round.
  const skipped = new Map<RowName, string>();
  const missing = ensureProxies();
  const proxies = new Map<RowName, Proxy>();
  for (const row of ROWS.filter((r) => r.proxy !== undefined)) {
    const bin = row.proxy === 'nginx' ? NGINX : HAPROXY;
    const why = missing.get(bin);
    if (why !== undefined) {
      skipped.set(row.key, why);
      continue;
    }
    try {
      const sub = join(dir, row.proxy!);
      mkdirSync(sub);
      const p = await startProxy(row.proxy!, sub, backends.map((b) => b.port));
      closers.push(() => p.close());
      proxies.set(row.key, p);
    } catch (error) {
      skipped.set(row.key, (error as Error).message);
    }
  }

  console.log(
    `bench/sidecar: ${INFLIGHT} in flight, ${BACKENDS} loopback backends, warm-up ${fmt(WARMUP_REQUESTS)} requests, ` +
      `then <= ${fmt(REQUESTS)} requests or ${RUN_MS / 1000} s per run, ${ROUNDS} rounds, rows rotate each round`,
  );
  for (const [key, p] of proxies) console.log(`  ${key}: pid ${p.pid} on 127.0.0.1:${p.port}, 1 worker`);
  for (const [key, why] of skipped) console.log(`  ${key}: skipped: ${why}`);

  const samples: Samples = new Map(ROWS.map((r) => [r.key, []]));
  const agents = new Set<string>();
  for (let round = 0; round < ROUNDS; round++) {
    const order = ROWS.map((_, i) => ROWS[(i + round) % ROWS.length]!);
    for (const row of order) {
      // A proxy row whose proxy is unavailable has no client to run; any other row is tried every round.
      if (row.proxy !== undefined && !proxies.has(row.key)) continue;
      const outcome = await runClient(row, backends, proxies.get(row.key));
      if (cleaning !== undefined) return;
      if ('skipped' in outcome) {
        if (skipped.get(row.key) !== outcome.skipped) console.log(`  ${row.key}: skipped in round ${round + 1}: ${outcome.skipped}`);
        skipped.set(row.key, outcome.skipped);
        samples.get(row.key)![round] = undefined;
      } else {
        samples.get(row.key)![round] = outcome.sample;
        if (outcome.sample.agent !== undefined) agents.add(outcome.sample.agent);
      }
    }
    for (const row of ROWS) samples.get(row.key)!.length = round + 1;
    console.log(roundLine(round, ROWS, samples));
  }

  console.log(`\n${await machine()}; ${ROUNDS} rounds; \`npm run bench:sidecar\``);
  console.log(
    `medians over the rounds; CPU in seconds per 10,000 requests over each measured phase (client: process.cpuUsage; ` +
      `proxy: /proc utime+stime of its one process, sampled at the client's start and end of measuring)`,
  );
  console.log(`fetch rows ran on ${[...agents].join(', ') || '(none ran)'}; npm undici was checked absent from their processes\n`);
  report(ROWS, samples, skipped);
  const errors = [...samples.values()].flat().reduce((n, s) => n + (s?.errors ?? 0), 0);
  if (errors > 0) {
    console.error(`\nbench/sidecar: ${errors} requests failed; the figures are not trustworthy`);
    process.exitCode = 1;
  }
  console.log(`\ntotal wall time ${fmt((performance.now() - t0) / 1000, 1)} s`);
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => cleanUp());
