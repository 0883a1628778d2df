/**
 * Pick cost of every built-in balancer at 10, 100, 1,000 and 10,000 endpoints, in nanoseconds per `pick()`, and the
 * cost of the `update()` that (re)builds its tables. Goals: P2C (least-request, peak-ewma) flat within 1.5× from 10
 * to 10,000 endpoints; ring-hash and maglev O(1) or O(log n).
 *
 *   npx tsx bench/pick.ts [--runs 25] [--ms 40]
 *
 * Each contender runs in a child process of its own (so one balancer's JIT feedback does not slow another's), with
 * one balancer per size built up front. A round times a loop of about `ms` milliseconds at every size, in a rotating
 * order, so a busy machine slows all sizes of a round alike. The table shows the fastest round (the cost without
 * interference from other processes, the steadiest figure on a shared machine); the log lines show the medians too.
 *
 * Endpoints all weigh 1 and are idle. The clock advances 0.01 ms per pick (a service doing 100k picks/s), so
 * peak-EWMA reads a decayed cost and the zone-aware wrapper re-reads health every 10,000 picks. Hash balancers get a
 * different key on every pick, cycled from 4,096 precomputed strings, so the key's hash is part of the cost;
 * `(no key)` rows pick a random key instead. `locality(peak-ewma)` is peak-ewma inside the zone-aware wrapper with
 * every endpoint local. `update()` is timed once per size on a fresh balancer.
 */
import { spawnSync } from 'node:child_process';
import type { Balancer, PickRequest } from '../src/balancer/balancer.js';
import { createBalancer, type BalancerName } from '../src/balancer/create.js';
import { LocalityBalancer } from '../src/balancer/locality.js';
import { DEFAULT_RTT_MS, EWMA_DECAY_MS } from '../src/defaults.js';
import { toEndpoint } from '../src/endpoint/endpoint.js';
import { EndpointState } from '../src/endpoint/endpoint-state.js';
import { seededRng } from '../src/util/random.js';
import { fmt, machine, markdownTable, median } from './lib.js';

const SIZES = [10, 100, 1_000, 10_000] as const;

interface Contender {
  readonly label: string;
  readonly make: () => Balancer;
  readonly keyed: boolean;
}

const rng = seededRng(1);
const named = (name: BalancerName, keyed = false, label: string = name): Contender => ({
  label,
  make: () => createBalancer(name, { rng }),
  keyed,
});

const CONTENDERS: readonly Contender[] = [
  named('round-robin'),
  named('random'),
  named('least-request'),
  named('peak-ewma'),
  named('ring-hash', true),
  named('ring-hash', false, 'ring-hash (no key)'),
  named('maglev', true),
  named('maglev', false, 'maglev (no key)'),
  {
    label: 'locality(peak-ewma)',
    make: () => new LocalityBalancer(() => createBalancer('peak-ewma', { rng }), { zone: 'a', overprovisioningFactor: 1.4, rng }),
    keyed: false,
  },
];

const KEYS = Array.from({ length: 4_096 }, (_, i) => `user-${(i * 2_654_435_761) >>> 0}`);

function args(): { runs: number; ms: number; child: number } {
  const get = (name: string, def: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    const v = i >= 0 ? Number(process.argv[i + 1]) : def;
    if (!Number.isFinite(v) || v < 1) throw new Error(`--${name} must be a number >= 1`);
    return v;
  };
  const child = process.argv.indexOf('--child');
  return { runs: get('runs', 25), ms: get('ms', 40), child: child >= 0 ? Number(process.argv[child + 1]) : -1 };
}

function states(n: number): EndpointState[] {
  return Array.from(
    { length: n },
    (_, i) =>
      new EndpointState(
        toEndpoint({ host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080, zone: 'a' }, 'bench'),
        { decayMs: EWMA_DECAY_MS, defaultRttMs: DEFAULT_RTT_MS },
        0,
      ),
  );
}

let sink = 0;

/** ns per pick over `iterations` picks. */
function loop(b: Balancer, set: readonly EndpointState[], keyed: boolean, iterations: number, clock: { now: number }): number {
  const request = { attempt: 1, tried: [] as readonly EndpointState[], now: 0, panic: false, hashKey: undefined as string | undefined };
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    request.now = clock.now += 0.01;
    if (keyed) request.hashKey = KEYS[i & 4_095];
    const s = b.pick(set, request as PickRequest);
    if (s !== undefined) sink += s.inflight;
  }
  return ((performance.now() - t0) * 1e6) / iterations;
}

/** Picks that take about `budgetMs` (grown until a loop takes a tenth of it). */
function calibrate(b: Balancer, set: readonly EndpointState[], keyed: boolean, budgetMs: number, clock: { now: number }): number {
  let iterations = 1_000;
  for (;;) {
    const t0 = performance.now();
    loop(b, set, keyed, iterations, clock);
    const took = performance.now() - t0;
    if (took > budgetMs / 10 || iterations >= 1e8) return Math.max(1_000, Math.round((iterations * budgetMs) / Math.max(took, 0.01)));
    iterations *= 4;
  }
}

interface ChildResult {
  readonly pickNs: number[];
  readonly medianNs: number[];
  readonly updateMs: number[];
}

/** Runs in the child: every size of one contender, interleaved. */
function runChild(c: Contender, runs: number, budgetMs: number): ChildResult {
  const setups = SIZES.map((n) => {
    const set = states(n);
    const b = c.make();
    const u0 = performance.now();
    b.update?.(set);
    const updateMs = performance.now() - u0;
    const clock = { now: 1 };
    return { set, b, clock, updateMs, iterations: calibrate(b, set, c.keyed, budgetMs, clock), samples: [] as number[] };
  });
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < setups.length; k++) {
      const s = setups[(k + r) % setups.length] as (typeof setups)[number];
      s.samples.push(loop(s.b, s.set, c.keyed, s.iterations, s.clock));
    }
  }
  return {
    pickNs: setups.map((s) => Math.min(...s.samples)),
    medianNs: setups.map((s) => median(s.samples)),
    updateMs: setups.map((s) => s.updateMs),
  };
}

async function main(): Promise<void> {
  const { runs, ms, child } = args();
  if (child >= 0) {
    const c = CONTENDERS[child];
    if (c === undefined) throw new Error(`no contender ${child}`);
    process.stdout.write(JSON.stringify(runChild(c, runs, ms)));
    if (sink === -1) console.log(sink);
    return;
  }
  console.log(`pick cost, ns per pick (fastest of ${runs} rounds of ~${ms} ms per size; median in brackets); ${await machine()}`);
  const pickRows: string[][] = [];
  const updateRows: string[][] = [];
  for (let i = 0; i < CONTENDERS.length; i++) {
    const c = CONTENDERS[i] as Contender;
    const out = spawnSync(process.execPath, [...process.execArgv, process.argv[1] as string, '--child', String(i), '--runs', String(runs), '--ms', String(ms)], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    if (out.status !== 0) throw new Error(`${c.label}: child failed\n${out.stderr}`);
    const { pickNs, medianNs, updateMs } = JSON.parse(out.stdout) as ChildResult;
    console.log(`${c.label.padEnd(22)} ${pickNs.map((p, k) => `n=${SIZES[k]}: ${fmt(p, 0)} (${fmt(medianNs[k] as number, 0)}) ns`).join('  ')}`);
    const ratio = (pickNs[pickNs.length - 1] as number) / (pickNs[0] as number);
    pickRows.push([c.label, ...pickNs.map((p) => fmt(p, 0)), `${fmt(ratio, 2)}×`]);
    if (!c.label.includes('no key')) updateRows.push([c.label, ...updateMs.map((u) => fmt(u, 2))]);
  }
  console.log('\nns per pick:\n');
  console.log(markdownTable(['balancer', ...SIZES.map((n) => `n = ${fmt(n)}`), '10,000 ÷ 10'], pickRows));
  console.log('\nupdate() (table build) on a fresh balancer, ms, one sample:\n');
  console.log(markdownTable(['balancer', ...SIZES.map((n) => `n = ${fmt(n)}`)], updateRows));
  const p2c = pickRows.filter((r) => r[0] === 'least-request' || r[0] === 'peak-ewma');
  const flat = p2c.every((r) => Number.parseFloat((r[r.length - 1] as string).replace(/,/g, '')) <= 1.5);
  console.log(`\nP2C flat within 1.5× from 10 to 10,000: ${p2c.map((r) => `${r[0]} ${r[r.length - 1]}`).join(', ')} (goal ${flat ? 'met' : 'not met'})`);
}

await main();
