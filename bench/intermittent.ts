/**
 * An intermittent endpoint: what consecutive-failure ejection misses and success-rate ejection catches.
 *
 * Ten loopback backends (node:http on 127.0.0.1, in a child process, see lib/servers.ts) answer after 1 ms; one
 * of them answers 500 to 30 % of its requests, drawn at random but never 5 in a row, so Envoy's `consecutive_5xx`
 * rule (5 in a row) never fires on it. Closed-loop load: `--workers` (16) workers call `mesh.fetch` back to back,
 * until `--max-requests` (400,000) in all or `--duration` (6) seconds per configuration, whichever comes first.
 *
 * `outlier.intervalMs` is `--interval-ms` (1,000), not Envoy's 10 s, so that six intervals fit in six seconds;
 * every other outlier setting is the default (success rate: minHosts 5, requestVolume 100, stdevFactor 1.9;
 * `maxEjectionPercent` 10, so one endpoint of ten; `baseEjectionMs` 30 s, longer than a run: once out, it stays
 * out). Six configurations, each from a cold mesh, consecutive-only (`successRate: false`) against success rate
 * (the default) in each pair:
 *
 * 1. and 2. round robin, retries and breakers off: the balancer does not steer away from failures, so ejection
 *    alone decides the endpoint's share, and every failure reaches the caller;
 * 3. and 4. round robin with the default retries (budgeted) and breakers: retries hide most failures from the
 *    caller, so these rows show what the detector saves in attempts rather than in failed calls;
 * 5. and 6. the default balancer (peak-EWMA P2C), retries and breakers off: its fading failure penalty already
 *    steers most traffic away from a failing endpoint, so the endpoint rarely reaches success rate's
 *    `requestVolume` (100 attempts an interval) and the two rules end up alike.
 *
 * It reports, per interval of the run, the intermittent endpoint's share of attempts (counted from the mesh's
 * `request` events), and over the run the callers' success rate, attempts per call, and when the endpoint was
 * ejected (and by which rule).
 *
 *   tsx bench/intermittent.ts [--duration 6] [--interval-ms 1000] [--workers 16] [--max-requests 400000]
 */
import { createMesh, staticRegistry, type Policy } from '../src/index.js';
import { numberFlags } from './lib/args.js';
import { startBackends, type BackendSpec, type Backends } from './lib/servers.js';
import { fmt, machine, markdownTable } from './lib.js';

const flags = numberFlags({ duration: 6, intervalMs: 1_000, workers: 16, maxRequests: 400_000 });

const BAD = 3; // its index in the fleet
const FLEET: BackendSpec[] = Array.from({ length: 10 }, (_, i) =>
  i === BAD ? { latencyMs: 1, successRate: 0.7, failStatus: 500, maxFailuresInARow: 4 } : { latencyMs: 1, successRate: 1 },
);

interface Config {
  readonly name: string;
  readonly policy: Policy;
}

const off = { retry: false, breaker: false } as const;
const consecutive = { intervalMs: flags.intervalMs, successRate: false } as const;
const successRate = { intervalMs: flags.intervalMs } as const;
const CONFIGS: Config[] = [
  { name: 'round robin, consecutive only', policy: { ...off, balancer: 'round-robin', outlier: consecutive } },
  { name: 'round robin, success rate', policy: { ...off, balancer: 'round-robin', outlier: successRate } },
  { name: 'round robin, consecutive only, retries + breakers', policy: { balancer: 'round-robin', outlier: consecutive } },
  { name: 'round robin, success rate, retries + breakers', policy: { balancer: 'round-robin', outlier: successRate } },
  { name: 'peak-EWMA (default), consecutive only', policy: { ...off, outlier: consecutive } },
  { name: 'peak-EWMA (default), success rate', policy: { ...off, outlier: successRate } },
];

interface RunResult {
  readonly calls: number;
  readonly ok: number;
  readonly attempts: number;
  /** The intermittent endpoint's share of attempts, per interval of the run. */
  readonly shares: number[];
  /** Its share of all the run's attempts. */
  readonly share: number;
  /** Its failure ratio as the mesh saw it (the backend's draw, capped at 4 in a row). */
  readonly badFailureRatio: number;
  /** Seconds from the start to its first ejection, and the rule; undefined when never ejected. */
  readonly ejectedAt: { s: number; reason: string } | undefined;
}

async function run(config: Config, backends: Backends): Promise<RunResult> {
  const mesh = createMesh({ registry: staticRegistry({ fleet: backends.addresses }), defaults: config.policy });
  await mesh.warmup(['fleet']);
  const badAddress = backends.addresses[BAD]!;
  const buckets = Math.ceil((flags.duration * 1_000) / flags.intervalMs);
  const all = new Array<number>(buckets).fill(0);
  const bad = new Array<number>(buckets).fill(0);
  let badAttempts = 0;
  let badFailures = 0;
  let ejectedAt: RunResult['ejectedAt'];
  const t0 = performance.now();
  const bucket = (): number => Math.min(buckets - 1, Math.floor((performance.now() - t0) / flags.intervalMs));
  mesh.on('request', (e) => {
    const b = bucket();
    all[b]!++;
    if (e.endpoint.id === badAddress) {
      bad[b]!++;
      badAttempts++;
    }
  });
  mesh.on('failure', (e) => {
    if (e.endpoint.id === badAddress) badFailures++;
  });
  mesh.on('ejected', (e) => {
    if (e.endpoint.id === badAddress && ejectedAt === undefined) ejectedAt = { s: (performance.now() - t0) / 1_000, reason: e.reason };
  });
  const stopAt = t0 + flags.duration * 1_000;
  let calls = 0;
  let ok = 0;
  const worker = async (): Promise<void> => {
    // Bounded in count and in time.
    while (calls < flags.maxRequests && performance.now() < stopAt) {
      calls++;
      try {
        const res = await mesh.fetch('http://fleet/');
        await res.arrayBuffer();
        if (res.ok) ok++;
      } catch {
        // a failed call (a network error, a CallFailedError): counted as not ok
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: flags.workers }, () => worker()));
    return {
      calls,
      ok,
      attempts: all.reduce((a, b) => a + b, 0),
      shares: all.map((n, i) => (n === 0 ? NaN : bad[i]! / n)),
      share: badAttempts / Math.max(1, all.reduce((a, b) => a + b, 0)),
      badFailureRatio: badAttempts === 0 ? NaN : badFailures / badAttempts,
      ejectedAt,
    };
  } finally {
    await mesh.close();
  }
}

const pct = (x: number, digits = 1): string => (Number.isFinite(x) ? `${(100 * x).toFixed(digits)} %` : '-');

async function main(): Promise<void> {
  const backends = await startBackends(FLEET);
  try {
    console.log(
      `bench/intermittent: 10 backends on 127.0.0.1 (1 ms; one fails 30 % of its requests, never 5 in a row), ` +
        `${flags.workers} closed-loop workers, ${flags.duration} s or ${fmt(flags.maxRequests)} calls per configuration, ` +
        `outlier.intervalMs ${flags.intervalMs} (Envoy's default is 10 s)`,
    );
    console.log(`${await machine()}\n`);
    const results: [Config, RunResult][] = [];
    for (const c of CONFIGS) {
      const r = await run(c, backends);
      results.push([c, r]);
      console.log(
        `${c.name}: ${fmt(r.calls)} calls, ${pct(r.ok / r.calls, 2)} ok, ${(r.attempts / r.calls).toFixed(3)} attempts/call, ` +
          `the endpoint failed ${pct(r.badFailureRatio)} of its attempts; ` +
          (r.ejectedAt ? `ejected at ${r.ejectedAt.s.toFixed(2)} s (${r.ejectedAt.reason})` : 'never ejected'),
      );
    }
    const intervals = results[0]![1].shares.length;
    console.log(`\nThe intermittent endpoint's share of attempts, per ${flags.intervalMs} ms interval (a fair share is 10 %):\n`);
    console.log(
      markdownTable(
        ['configuration', ...Array.from({ length: intervals }, (_, i) => `${i + 1}`)],
        results.map(([c, r]) => [c.name, ...r.shares.map((s) => pct(s))]),
      ),
    );
    console.log('\nOver the whole run:\n');
    console.log(
      markdownTable(
        ['configuration', 'calls', 'callers ok', 'attempts / call', "endpoint's share", 'ejected at'],
        results.map(([c, r]) => [
          c.name,
          fmt(r.calls),
          pct(r.ok / r.calls, 2),
          (r.attempts / r.calls).toFixed(3),
          pct(r.share),
          r.ejectedAt ? `${r.ejectedAt.s.toFixed(2)} s (${r.ejectedAt.reason})` : 'never',
        ]),
      ),
    );
  } finally {
    await backends.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
