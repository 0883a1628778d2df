/**
 * The summary of bench/sidecar.ts: per-row medians over the rounds, and the goals, each a median of ratios
 * (or differences) taken within one round, so that a slow moment of a shared machine hits both sides.
 */
import { fmt, markdownTable, median } from '../lib.js';
import type { Result, RowName } from './client.js';

export interface RowSpec {
  readonly key: RowName;
  readonly label: string;
  readonly proxy?: 'nginx' | 'haproxy';
}

/** One client run, plus the sidecar's CPU time over its measured phase. */
export interface Sample extends Result {
  readonly proxyCpuS?: number;
}

/** samples.get(row)[round]: undefined when the row was skipped that round. */
export type Samples = Map<RowName, (Sample | undefined)[]>;

const per10k = (seconds: number, requests: number): number => (seconds * 10_000) / requests;
const usPerReq = (seconds: number, requests: number): number => (seconds * 1e6) / requests;

/** Median over the rounds in which every row named has a sample, of f(those samples). */
function perRound(samples: Samples, keys: readonly RowName[], f: (s: Sample[]) => number): number {
  const rounds = samples.get(keys[0]!)!.length;
  const values: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const row = keys.map((k) => samples.get(k)![r]);
    if (row.every((s): s is Sample => s !== undefined)) values.push(f(row));
  }
  return median(values);
}

export function report(rows: readonly RowSpec[], samples: Samples, skipped: Map<RowName, string>): void {
  const table = rows.map((row) => {
    const got = samples.get(row.key)!.filter((s): s is Sample => s !== undefined);
    if (got.length === 0) return [row.label, 'skipped (below)'];
    const m = (f: (s: Sample) => number): number => median(got.map(f));
    const client = m((s) => per10k(s.cpuS, s.requests));
    const proxy = row.proxy === undefined ? NaN : m((s) => per10k(s.proxyCpuS ?? NaN, s.requests));
    const total = m((s) => per10k(s.cpuS + (s.proxyCpuS ?? 0), s.requests));
    return [
      row.label,
      fmt(m((s) => s.rps)),
      fmt(m((s) => s.p50Ms), 2),
      fmt(m((s) => s.p99Ms), 2),
      fmt(client, 3),
      fmt(proxy, 3),
      fmt(total, 3),
      String(got.reduce((n, s) => n + s.errors, 0)),
      `${got.length}`,
    ];
  });
  console.log(
    markdownTable(
      ['client', 'req/s', 'p50 ms', 'p99 ms', 'client CPU s/10k', 'proxy CPU s/10k', 'client+proxy CPU s/10k', 'errors', 'rounds'],
      table,
    ),
  );
  for (const row of rows) {
    const why = skipped.get(row.key);
    if (why !== undefined) console.log(`${row.label}: skipped ${samples.get(row.key)!.some((s) => s !== undefined) ? 'in some rounds' : 'in every round'}: ${why}`);
  }

  const have = (k: RowName): boolean => samples.get(k)!.some((s) => s !== undefined);
  const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  console.log('\ngoals (each a median over rounds of a figure computed within the round):');
  if (!have('mesh-dispatcher')) {
    console.log(`  meshDispatcher row skipped (${skipped.get('mesh-dispatcher') ?? 'no sample'}); no goal can be checked`);
    return;
  }
  const rps = (k: RowName, f: (s: Sample[]) => number = (s) => s[0]!.rps / s[1]!.rps): number =>
    perRound(samples, ['mesh-dispatcher', k], f);
  if (have('pools')) {
    const r = rps('pools');
    console.log(`  meshDispatcher ÷ bare Pools, req/s: ${r.toFixed(3)} (goal >= 0.90: ${verdict(r >= 0.9)})`);
  }
  for (const side of rows.filter((row) => row.proxy !== undefined)) {
    if (!have(side.key)) {
      console.log(`  meshDispatcher ÷ ${side.proxy}: skipped (${skipped.get(side.key) ?? 'no sample'})`);
      continue;
    }
    const r = rps(side.key);
    console.log(`  meshDispatcher ÷ ${side.proxy} sidecar, req/s: ${r.toFixed(3)} (goal >= 1.25: ${verdict(r >= 1.25)})`);
  }
  if (!have('pools')) return;
  // What the mesh adds to the client, against half of what a sidecar adds (its client's extra CPU plus its own).
  for (const side of rows.filter((row) => row.proxy !== undefined && have(row.key))) {
    const keys: RowName[] = ['mesh-dispatcher', 'pools', side.key];
    const meshExtra = (s: Sample[]): number => usPerReq(s[0]!.cpuS, s[0]!.requests) - usPerReq(s[1]!.cpuS, s[1]!.requests);
    const halfSidecar = (s: Sample[]): number =>
      (usPerReq(s[2]!.cpuS + (s[2]!.proxyCpuS ?? NaN), s[2]!.requests) - usPerReq(s[1]!.cpuS, s[1]!.requests)) / 2;
    const mesh = perRound(samples, keys, meshExtra);
    const half = perRound(samples, keys, halfSidecar);
    const margin = perRound(samples, keys, (s) => halfSidecar(s) - meshExtra(s));
    console.log(
      `  CPU budget vs ${side.proxy}: meshDispatcher adds ${fmt(mesh, 2)} µs/req of client CPU over bare Pools; ` +
        `half of what the ${side.proxy} sidecar adds (client + proxy − bare Pools) is ${fmt(half, 2)} µs/req; ` +
        `margin ${fmt(margin, 2)} µs/req (goal: mesh <= half: ${verdict(margin >= 0)})`,
    );
  }
}

/** One line per round, as the rounds finish, so a long run shows progress. */
export function roundLine(round: number, rows: readonly RowSpec[], samples: Samples): string {
  const cells = rows.map((row) => {
    const s = samples.get(row.key)![round];
    if (s === undefined) return `${row.key} -`;
    const proxy = s.proxyCpuS === undefined ? '' : ` +proxy ${fmt(per10k(s.proxyCpuS, s.requests), 2)}`;
    return `${row.key} ${fmt(s.rps)}/s cpu ${fmt(per10k(s.cpuS, s.requests), 2)}${proxy}`;
  });
  return `round ${round + 1}: ${cells.join(' | ')}`;
}
