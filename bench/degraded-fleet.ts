/**
 * A degraded fleet, after Linkerd's "Making Things Faster by Adding More Steps" (linkerd-examples/add-steps):
 * ten loopback backends (node:http, in a child process), eight that always succeed after 0, 10, 20, 40, 80,
 * 160, 320 and 640 ms, one that answers after 1 s and succeeds 60 % of the time, and one after 2 s that
 * succeeds 40 % (failures are 500, after the same delay, as the add-steps server does).
 *
 * Load as slow_cooker's `-qps 10 -concurrency 50`: 50 workers, each paced to 10 requests/s (500/s in all);
 * a worker whose request outlasts its tick skips the missed ticks, as a Go ticker does. Each configuration
 * runs for `--duration` seconds (default 30), from a cold start:
 *
 * 1. round robin, no retries, breakers and ejection off (a plain load-balanced Service);
 * 2. the mesh's defaults: peak-EWMA P2C, breakers, outlier ejection, retries with the default budget;
 * 3. the defaults plus `timeout.attemptMs` (default 500 ms: above every backend that always answers 200 but
 *    the 640 ms one): a slow attempt is cut and retried elsewhere, within the same budget.
 *
 * It reports success %, p50, p99 (client-side, retries included), throughput, and attempts per request
 * (requests counted by the backends ÷ requests made), and p99(mesh) ÷ p99(round robin) from the same run.
 * With `--runs N` every figure is the median of N runs.
 *
 *   tsx bench/degraded-fleet.ts [--duration 30] [--runs 1] [--attempt-ms 500] [--workers 50] [--qps 10]
 */
import { createMesh, staticRegistry, type Mesh, type Policy } from '../src/index.js';
import { numberFlags } from './lib/args.js';
import { startBackends, type BackendSpec, type Backends } from './lib/servers.js';
import { fmt, machine, markdownTable, median, percentile } from './lib.js';

const flags = numberFlags({ duration: 30, runs: 1, attemptMs: 500, workers: 50, qps: 10 });

const FLEET: BackendSpec[] = [
  ...[0, 10, 20, 40, 80, 160, 320, 640].map((latencyMs) => ({ latencyMs, successRate: 1 })),
  { latencyMs: 1_000, successRate: 0.6, failStatus: 500 },
  { latencyMs: 2_000, successRate: 0.4, failStatus: 500 },
];

interface Config {
  readonly name: string;
  readonly policy: Policy;
}

const CONFIGS: Config[] = [
  { name: 'round robin, no retries', policy: { balancer: 'round-robin', retry: false, breaker: false, outlier: false } },
  { name: 'mesh defaults (peak-EWMA, breakers, ejection, budgeted retries)', policy: {} },
  { name: `mesh defaults + attemptMs ${flags.attemptMs}`, policy: { timeout: { attemptMs: flags.attemptMs } } },
];

interface RunResult {
  readonly requests: number;
  readonly ok: number;
  readonly p50: number;
  readonly p99: number;
  readonly rps: number;
  readonly attemptsPerRequest: number;
  /** Share of all attempts that each backend received, in FLEET order. */
  readonly shares: number[];
}

/** Waits until `at` (performance.now() time); never longer than the run has left. */
const sleepUntil = (at: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())));

async function run(config: Config, backends: Backends): Promise<RunResult> {
  const mesh: Mesh = createMesh({ registry: staticRegistry({ fleet: backends.addresses }), defaults: config.policy });
  await mesh.warmup(['fleet']);
  await backends.reset();
  const durationMs = flags.duration * 1_000;
  const interval = 1_000 / flags.qps;
  const latencies: number[] = [];
  let ok = 0;
  const t0 = performance.now();
  const stopAt = t0 + durationMs;
  const worker = async (w: number): Promise<void> => {
    // Spread the workers' ticks over one interval.
    let tick = t0 + (w * interval) / flags.workers;
    while (tick < stopAt) {
      await sleepUntil(tick);
      const begin = performance.now();
      try {
        const res = await mesh.fetch('http://fleet/');
        await res.arrayBuffer();
        if (res.ok) ok++;
      } catch {
        // a TimeoutError, CallFailedError, ...: a failed request
      }
      const end = performance.now();
      latencies.push(end - begin);
      tick += interval;
      if (tick < end) tick = end; // missed ticks are dropped (Go's time.Ticker)
    }
  };
  try {
    await Promise.all(Array.from({ length: flags.workers }, (_, w) => worker(w)));
    const elapsed = performance.now() - t0;
    const counts = await backends.counts();
    const attempts = counts.reduce((a, b) => a + b, 0);
    const sorted = Float64Array.from(latencies).sort();
    return {
      requests: latencies.length,
      ok,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      rps: (latencies.length * 1_000) / elapsed,
      attemptsPerRequest: attempts / latencies.length,
      shares: counts.map((c) => c / attempts),
    };
  } finally {
    await mesh.close();
  }
}

async function main(): Promise<void> {
  const backends = await startBackends(FLEET);
  try {
    console.log(
      `bench/degraded-fleet: 10 backends on 127.0.0.1 (0–640 ms; 1 s at 60 %; 2 s at 40 %), ${flags.workers} workers × ` +
        `${flags.qps} req/s, ${flags.duration} s per configuration, ${flags.runs} run(s), cold start`,
    );
    console.log(`${await machine()}\n`);
    const results = new Map<Config, RunResult[]>(CONFIGS.map((c) => [c, []]));
    for (let round = 0; round < flags.runs; round++) {
      for (const c of CONFIGS) {
        const r = await run(c, backends);
        results.get(c)!.push(r);
        console.log(
          `run ${round + 1}, ${c.name}: ${fmt(r.requests)} requests, ${((100 * r.ok) / r.requests).toFixed(2)} % ok, ` +
            `p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, ${r.attemptsPerRequest.toFixed(3)} attempts/request; ` +
            `share by backend: ${r.shares.map((s) => `${(100 * s).toFixed(1)}`).join(' ')} %`,
        );
      }
    }
    const med = (c: Config, f: (r: RunResult) => number): number => median(results.get(c)!.map(f));
    const rr = CONFIGS[0]!;
    /** Median over runs of this config's p99 ÷ round robin's p99 in the same round. */
    const p99Ratio = (c: Config): number => median(results.get(c)!.map((r, i) => r.p99 / results.get(rr)![i]!.p99));
    const rows = CONFIGS.map((c) => [
      c.name,
      `${med(c, (r) => (100 * r.ok) / r.requests).toFixed(2)} %`,
      fmt(med(c, (r) => r.p50)),
      fmt(med(c, (r) => r.p99)),
      c === rr ? '1' : p99Ratio(c).toFixed(3),
      fmt(med(c, (r) => r.rps)),
      med(c, (r) => r.attemptsPerRequest).toFixed(3),
      `${(100 * med(c, (r) => r.shares.slice(7).reduce((a, b) => a + b, 0))).toFixed(1)} %`,
    ]);
    console.log(`\n${flags.runs > 1 ? `medians of ${flags.runs} runs` : 'one run'}; latency is per request, retries included (ms)\n`);
    console.log(
      markdownTable(
        ['configuration', 'success', 'p50', 'p99', 'p99 ÷ round robin', 'req/s', 'attempts / request', 'attempts to ≥ 640 ms backends'],
        rows,
      ),
    );
    console.log('\nGoals (success >= 99.9 %, p99 <= 0.30 × round robin, attempts/request <= 1.2), as measured:');
    for (const c of CONFIGS.slice(1)) {
      const success = med(c, (r) => (100 * r.ok) / r.requests);
      const ratio = p99Ratio(c);
      const amp = med(c, (r) => r.attemptsPerRequest);
      const verdict = (okay: boolean): string => (okay ? 'met' : 'NOT met');
      console.log(
        `- ${c.name}: success ${success.toFixed(2)} % (${verdict(success >= 99.9)}), p99 ratio ${ratio.toFixed(3)} ` +
          `(${verdict(ratio <= 0.3)}), attempts/request ${amp.toFixed(3)} (${verdict(amp <= 1.2)})`,
      );
    }
  } finally {
    await backends.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
