/**
 * Overload: a backend with a fixed capacity and a queue, under an open-loop ramp past that capacity. Does a
 * concurrency limit in the client keep goodput up and the latency of the calls it lets through down?
 *
 * The backend (bench/lib/capacity-server.ts, a child process on 127.0.0.1) serves `--slots` (8) requests at a time
 * for `--service-ms` (20) each and queues the rest, first in first out: its capacity is slots × 1000 ÷ serviceMs
 * = 400 req/s. The client issues `mesh.fetch` calls open loop (on a schedule, whatever is in flight) at 0.5×, 1×,
 * 1.5× and 2× that capacity, `--step-seconds` (5) each, then holds 2× for `--hold-seconds` (10) more. Retries,
 * breakers and ejection are off, so the limits alone are measured; every call has a total deadline of
 * `--total-ms` (1000). The contenders:
 * - no limit (the mesh's default `maxConcurrent: Infinity`): the queue grows, calls wait in it;
 * - `maxConcurrent` 8 (= the slots) and 12: a fixed limit, which has to be known and right;
 * - `adaptiveConcurrency` with `min` `--min` (4), `initial` 8, `max` 200: the limit is learnt. The default `min`
 *   (20) exceeds the 8 slots: the min RTT would be measured with a queue in front, and the limit could never go
 *   below 2.5 slots' worth. 4 is half the slots: the measure sees no queue, and costs half the capacity only
 *   while it lasts (50 calls, about 0.25 s every 30 s).
 *
 * Per load step: offered and good (successful, completed in the step) calls per second, goodput as a share of
 * capacity, p50 and p99 of the calls the client let through (admitted, whatever their end: a timed-out call
 * counts with its full wait), calls rejected locally, calls that timed out, and the limit at the step's end.
 * Bounded in calls (the schedule) and in time (`--max-seconds` per contender).
 *
 *   tsx bench/overload.ts [--step-seconds 5] [--hold-seconds 10] [--slots 8] [--service-ms 20] [--min 4]
 *                         [--total-ms 1000] [--max-seconds 120]
 */
import { createMesh, staticRegistry, type Policy } from '../src/index.js';
import { numberFlags } from './lib/args.js';
import { startCapacityServer } from './lib/capacity-server.js';
import { fmt, machine, markdownTable, percentile } from './lib.js';

const flags = numberFlags({ stepSeconds: 5, holdSeconds: 10, slots: 8, serviceMs: 20, min: 4, totalMs: 1_000, maxSeconds: 120 });
const CAPACITY = (flags.slots * 1_000) / flags.serviceMs;
const STEPS: readonly { readonly name: string; readonly load: number; readonly seconds: number }[] = [
  { name: '0.5×', load: 0.5, seconds: flags.stepSeconds },
  { name: '1×', load: 1, seconds: flags.stepSeconds },
  { name: '1.5×', load: 1.5, seconds: flags.stepSeconds },
  { name: '2×', load: 2, seconds: flags.stepSeconds },
  ...(flags.holdSeconds > 0 ? [{ name: '2× held', load: 2, seconds: flags.holdSeconds }] : []),
];

interface Contender {
  readonly name: string;
  readonly policy: Policy;
}
const CONTENDERS: readonly Contender[] = [
  { name: 'no limit', policy: {} },
  { name: `maxConcurrent ${flags.slots}`, policy: { maxConcurrent: flags.slots } },
  { name: `maxConcurrent ${Math.round(flags.slots * 1.5)}`, policy: { maxConcurrent: Math.round(flags.slots * 1.5) } },
  {
    name: `adaptiveConcurrency (min ${flags.min})`,
    policy: { adaptiveConcurrency: { min: flags.min, initial: Math.max(flags.min, flags.slots), max: 200 } },
  },
];

type End = 'ok' | 'rejected' | 'timeout' | 'error';
interface Sample {
  readonly step: number;
  readonly issuedAt: number;
  end: End | undefined;
  doneAt: number;
}
interface StepRow {
  readonly offered: number;
  readonly goodput: number;
  readonly p50: number;
  readonly p99: number;
  readonly rejected: number;
  readonly timedOut: number;
  readonly limit: string;
}

/** Which step `t` ms after the start is in, or -1 past the schedule. */
function stepAt(t: number): number {
  let end = 0;
  for (let i = 0; i < STEPS.length; i++) {
    end += STEPS[i]!.seconds * 1_000;
    if (t < end) return i;
  }
  return -1;
}

/** Calls due by `t` ms after the start: the integral of the schedule's rate. */
function dueBy(t: number): number {
  let due = 0;
  let from = 0;
  for (const s of STEPS) {
    const ms = s.seconds * 1_000;
    due += (Math.min(Math.max(t - from, 0), ms) * s.load * CAPACITY) / 1_000;
    from += ms;
  }
  return Math.floor(due);
}

async function run(address: string, contender: Contender): Promise<StepRow[]> {
  const mesh = createMesh({
    registry: staticRegistry({ overload: [address] }),
    defaults: {
      retry: false,
      breaker: false,
      outlier: false,
      timeout: { attemptMs: flags.totalMs, totalMs: flags.totalMs },
      ...contender.policy,
    },
  });
  const samples: Sample[] = [];
  const inFlight = new Set<Promise<void>>();
  const limits: string[] = STEPS.map(() => '-');
  const fire = (step: number, t0: number): void => {
    const sample: Sample = { step, issuedAt: performance.now() - t0, end: undefined, doneAt: 0 };
    samples.push(sample);
    const p = mesh
      .fetch('http://overload/')
      .then(async (res) => {
        await res.arrayBuffer();
        return res.ok ? 'ok' : 'error';
      })
      .catch((error: unknown) => {
        const code = (error as { code?: string }).code;
        return code === 'EBULKHEAD' || code === 'EADMISSION' ? 'rejected' : code === 'ETIMEDOUT' ? 'timeout' : 'error';
      })
      .then((end: End) => {
        sample.end = end;
        sample.doneAt = performance.now() - t0;
        inFlight.delete(p);
      });
    inFlight.add(p);
  };
  const total = STEPS.reduce((ms, s) => ms + s.seconds * 1_000, 0);
  const t0 = performance.now();
  const stopAt = t0 + flags.maxSeconds * 1_000;
  let sent = 0;
  let lastStep = 0;
  for (;;) {
    const now = performance.now();
    const t = now - t0;
    if (t >= total || now >= stopAt) break;
    const step = stepAt(t);
    if (step !== lastStep) {
      limits[lastStep] = limitOf(mesh.snapshot().services.overload);
      lastStep = step;
    }
    for (const due = dueBy(t); sent < due; sent++) fire(step, t0);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  limits[lastStep] = limitOf(mesh.snapshot().services.overload);
  await Promise.all(inFlight); // each is bounded by totalMs
  await mesh.close();

  const rows: StepRow[] = [];
  let from = 0;
  for (let i = 0; i < STEPS.length; i++) {
    const ms = STEPS[i]!.seconds * 1_000;
    const mine = samples.filter((s) => s.step === i);
    const admitted = mine.filter((s) => s.end !== 'rejected').map((s) => s.doneAt - s.issuedAt).sort((a, b) => a - b);
    const good = samples.filter((s) => s.end === 'ok' && s.doneAt >= from && s.doneAt < from + ms).length;
    rows.push({
      offered: mine.length / STEPS[i]!.seconds,
      goodput: good / STEPS[i]!.seconds,
      p50: percentile(admitted, 50),
      p99: percentile(admitted, 99),
      rejected: mine.filter((s) => s.end === 'rejected').length / Math.max(1, mine.length),
      timedOut: mine.filter((s) => s.end === 'timeout' || s.end === 'error').length / Math.max(1, mine.length),
      limit: limits[i]!,
    });
    from += ms;
  }
  return rows;
}

function limitOf(s: { adaptiveConcurrency: { limit: number } | null } | undefined): string {
  return s?.adaptiveConcurrency ? String(s.adaptiveConcurrency.limit) : '-';
}

const pct = (x: number): string => `${fmt(x * 100, 1)} %`;

async function main(): Promise<void> {
  const server = await startCapacityServer(flags.slots, flags.serviceMs);
  try {
    console.log(
      `\nbench/overload: backend of ${flags.slots} slots × ${flags.serviceMs} ms, FIFO queue behind them (capacity ` +
        `${fmt(CAPACITY)} req/s); open-loop ramp ${STEPS.map((s) => `${s.name} ${s.seconds} s`).join(', ')}; ` +
        `mesh.fetch, total deadline ${flags.totalMs} ms, retries, breakers and ejection off\n${await machine()}\n`,
    );
    // Warm-up, not measured: connections open, the JIT settles.
    const warm = createMesh({ registry: staticRegistry({ overload: [server.address] }) });
    for (let i = 0; i < 200; i++) await (await warm.fetch('http://overload/')).arrayBuffer();
    await warm.close();

    const results = new Map<string, StepRow[]>();
    for (const c of CONTENDERS) {
      results.set(c.name, await run(server.address, c));
      await new Promise((resolve) => setTimeout(resolve, 500)); // the backend's queue empties (abandoned calls are skipped)
    }
    const header = ['contender', 'offered/s', 'good/s', 'goodput', 'p50 ms', 'p99 ms', 'rejected locally', 'timed out', 'limit'];
    STEPS.forEach((step, i) => {
      console.log(`\n#### ${step.name} capacity (${fmt(step.load * CAPACITY)} req/s offered, ${step.seconds} s)\n`);
      const rows = CONTENDERS.map((c) => {
        const r = results.get(c.name)![i]!;
        return [c.name, fmt(r.offered), fmt(r.goodput), pct(r.goodput / CAPACITY), fmt(r.p50, 1), fmt(r.p99, 1), pct(r.rejected), pct(r.timedOut), r.limit];
      });
      console.log(markdownTable(header, rows));
    });
    const unloaded = results.get(CONTENDERS[0]!.name)![0]!.p50;
    console.log(`\nUnloaded latency (no limit, 0.5×, p50): ${fmt(unloaded, 1)} ms; 3 × that: ${fmt(3 * unloaded, 1)} ms.`);
  } finally {
    await server.close();
  }
}

await main();
