/**
 * Virtual-time load-balancing simulation after Buoyant's "Beyond Round Robin: Load Balancing for Latency" (2016),
 * driving the library's own balancers through a simulated clock; see bench/lb-sim/sim.ts for the model.
 *
 *   npx tsx bench/lb-sim.ts [--seeds 5] [--seed 1]
 *
 * Prints every seed, then medians: p50, p99, p99.9, the share of requests over 1 s and the share backend 11 got
 * while slow, per balancer; then the ratios p99(peak-ewma) ÷ p99(round-robin) and p99.9(peak-ewma) ÷
 * p99.9(least-request) against the goal (≤ 0.12), for the median and the worst seed.
 */
import type { BalancerName } from '../src/balancer/create.js';
import { fmt, machine, markdownTable, median } from './lib.js';
import {
  ANCHORS,
  BACKENDS,
  BALANCERS,
  DURATION_MS,
  MEAN_MS,
  RATE_PER_S,
  SD_MS,
  SLOW,
  SLOW_FACTOR,
  SLOW_FROM_MS,
  SLOW_UNTIL_MS,
  simulate,
  type Result,
} from './lb-sim/sim.js';

function args(): { seeds: number; seed: number } {
  const get = (name: string, def: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    const v = i >= 0 ? Number(process.argv[i + 1]) : def;
    if (!Number.isFinite(v) || v < 1) throw new Error(`--${name} must be a number >= 1`);
    return v;
  };
  return { seeds: get('seeds', 5), seed: get('seed', 1) };
}

const ms = (v: number): string => `${fmt(v, 0)} ms`;
const pct = (v: number): string => `${fmt(v * 100, 2)} %`;

async function main(): Promise<void> {
  const { seeds, seed } = args();
  console.log(`lb-sim: ${BACKENDS} backends, N(${MEAN_MS} ms, ${SD_MS} ms) pure delay, ${RATE_PER_S} req/s open loop (Poisson) for`);
  console.log(`${DURATION_MS / 1_000} s, backend ${SLOW + 1} ×${SLOW_FACTOR} slower from ${SLOW_FROM_MS / 1_000} s to ${SLOW_UNTIL_MS / 1_000} s; seeds ${seed}..${seed + seeds - 1}`);
  console.log(await machine());
  const results = new Map<BalancerName, Result[]>(BALANCERS.map((b) => [b, []]));
  const started = performance.now();
  for (let s = seed; s < seed + seeds; s++) {
    const row: string[] = [];
    for (const name of BALANCERS) {
      const r = simulate(name, s);
      results.get(name)?.push(r);
      row.push(`${name} p99 ${ms(r.p99)} p99.9 ${ms(r.p999)}`);
    }
    console.log(`seed ${s}: ${row.join(' | ')}`);
  }
  const med = (name: BalancerName, key: keyof Result): number => median((results.get(name) ?? []).map((r) => r[key]));
  console.log(`\n(${fmt(performance.now() - started, 0)} ms of real time for ${seeds} × ${BALANCERS.length} simulated minutes)\n`);
  console.log(`Medians over ${seeds} seeds (${fmt(med('round-robin', 'requests'), 0)} requests per run):\n`);
  console.log(
    markdownTable(
      ['balancer', 'p50', 'p99', 'p99.9', 'over 1 s', 'to backend 11 while slow', 'published p99 / p99.9'],
      BALANCERS.map((name) => {
        const a = ANCHORS[name] ?? {};
        return [
          name,
          ms(med(name, 'p50')),
          ms(med(name, 'p99')),
          ms(med(name, 'p999')),
          pct(med(name, 'over1s')),
          pct(med(name, 'slowShare')),
          `${a.p99 !== undefined ? `≈ ${fmt(a.p99 / 1_000, 2)} s` : '-'} / ${a.p999 !== undefined ? `≈ ${fmt(a.p999 / 1_000, 2)} s` : '-'}`,
        ];
      }),
    ),
  );
  const ratio1 = median(
    (results.get('peak-ewma') ?? []).map((r, i) => r.p99 / ((results.get('round-robin') ?? [])[i] as Result).p99),
  );
  const ratio2 = median(
    (results.get('peak-ewma') ?? []).map((r, i) => r.p999 / ((results.get('least-request') ?? [])[i] as Result).p999),
  );
  const worst1 = Math.max(...(results.get('peak-ewma') ?? []).map((r, i) => r.p99 / ((results.get('round-robin') ?? [])[i] as Result).p99));
  const worst2 = Math.max(...(results.get('peak-ewma') ?? []).map((r, i) => r.p999 / ((results.get('least-request') ?? [])[i] as Result).p999));
  console.log('');
  console.log(
    markdownTable(
      ['ratio (goal ≤ 0.12)', 'median', 'worst seed', 'met'],
      [
        ['p99(peak-ewma) ÷ p99(round-robin)', fmt(ratio1, 3), fmt(worst1, 3), worst1 <= 0.12 ? 'yes' : 'no'],
        ['p99.9(peak-ewma) ÷ p99.9(least-request)', fmt(ratio2, 3), fmt(worst2, 3), worst2 <= 0.12 ? 'yes' : 'no'],
      ],
    ),
  );
}

await main();
