/**
 * `npm run bench:overhead [-- --calls N --runs N]`: what one `mesh.call` costs around a no-op async function,
 * with the default policy (peak-EWMA over 3 static endpoints, retries on, retry budget on, 10 s attempt
 * timer), next to a bare `await noop()`, cockatiel (retry + circuit breaker) and opossum (circuit breaker).
 *
 * Sequential awaited calls, so the figure is the latency each layer adds to one call, in ns. Each round runs
 * every contender once (the order rotates per round) and ratios are the median of the per-round ratios, so a
 * noisy machine hits both sides of a ratio alike. Bytes allocated per call come from v8.GCProfiler: the heap
 * growth between collections, summed (Node 20 has no allocation counter); a calibration row checks it.
 */
import { parseArgs } from 'node:util';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleAll, retry, wrap } from 'cockatiel';
import CircuitBreaker from 'opossum';
import { createMesh, staticRegistry } from '../src/index.js';
import { fmt, machine, markdownTable, median } from './lib.js';

const MAX_RUN_MS = 20_000; // a run stops early past this, whatever --calls says

interface Contender {
  readonly name: string;
  readonly call: () => Promise<unknown>;
  /** Rows that only explain the others are left out of the ratios. */
  readonly extra?: boolean;
}

function options(): { calls: number; runs: number } {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '200000' }, runs: { type: 'string', default: '5' } } });
  const calls = Number(values.calls);
  const runs = Number(values.runs);
  if (!Number.isInteger(calls) || calls < 1_000 || calls > 5_000_000) throw new TypeError('--calls must be an integer in [1000, 5e6]');
  if (!Number.isInteger(runs) || runs < 1 || runs > 25) throw new TypeError('--runs must be an integer in [1, 25]');
  return { calls, runs };
}

/** ns per call over up to `calls` sequential awaited calls. */
async function timeCalls(call: () => Promise<unknown>, calls: number): Promise<number> {
  const start = process.hrtime.bigint();
  const stopAt = performance.now() + MAX_RUN_MS;
  let i = 0;
  while (i < calls) {
    await call();
    if ((++i & 1023) === 0 && performance.now() > stopAt) break;
  }
  return Number(process.hrtime.bigint() - start) / i;
}

/**
 * Bytes allocated per call: used heap before each collection minus used heap after the previous one,
 * summed over the run, plus the growth since the last one. Objects that die young are counted too.
 */
async function bytesPerCall(call: () => Promise<unknown>, calls: number): Promise<number> {
  const profiler = new GCProfiler();
  profiler.start();
  const before = getHeapStatistics().used_heap_size;
  for (let i = 0; i < calls; i++) await call();
  const after = getHeapStatistics().used_heap_size;
  const { statistics } = profiler.stop();
  let allocated = 0;
  let base = before;
  for (const gc of statistics) {
    allocated += gc.beforeGC.heapStatistics.usedHeapSize - base;
    base = gc.afterGC.heapStatistics.usedHeapSize;
  }
  allocated += after - base;
  return allocated / calls;
}

async function main(): Promise<void> {
  const { calls, runs } = options();
  const noop = async (): Promise<void> => {};

  const mesh = createMesh({ registry: staticRegistry({ svc: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'] }) });
  await mesh.warmup(['svc']);
  const policy = wrap(
    retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff() }),
    circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
  );
  const opossum = new CircuitBreaker(noop, { timeout: false });
  const opossumTimeout = new CircuitBreaker(noop, {});
  // A known allocation, to check the allocation figures: one 4-field object per call (56 bytes on x64).
  let sink: unknown;
  const calibrate = async (): Promise<void> => {
    sink = { a: 1, b: 2, c: 3, d: sink === undefined ? 0 : 1 };
  };

  const contenders: Contender[] = [
    { name: 'bare `await noop()`', call: noop },
    { name: 'mesh.call (default policy)', call: () => mesh.call('svc', noop) },
    { name: 'cockatiel wrap(retry, circuitBreaker)', call: () => policy.execute(noop) },
    { name: 'opossum fire() (timeout: false)', call: () => opossum.fire() },
    { name: 'opossum fire() (all defaults: 10 s timer)', call: () => opossumTimeout.fire(), extra: true },
    { name: 'calibration: noop + one {a,b,c,d}', call: calibrate, extra: true },
  ];
  const [bare, meshC, cockatielC, opossumC] = contenders as [Contender, Contender, Contender, Contender];

  try {
    console.log(`bench/overhead: ${fmt(calls)} sequential awaited calls per run, ${runs} runs, median shown`);
    console.log(`${await machine()}\n`);
    for (const c of contenders) await timeCalls(c.call, Math.min(calls, 50_000)); // warm-up: let the JIT settle

    const ns = new Map<Contender, number[]>(contenders.map((c) => [c, []]));
    for (let round = 0; round < runs; round++) {
      const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]!);
      for (const c of order) ns.get(c)!.push(await timeCalls(c.call, calls));
      console.log(`run ${round + 1}: ${contenders.map((c) => `${c.name.split(' ')[0]} ${fmt(ns.get(c)![round]!)}`).join(' | ')} ns`);
    }
    const bytes = new Map<Contender, number>();
    for (const c of contenders) bytes.set(c, await bytesPerCall(c.call, Math.min(calls, 100_000)));

    const nsOf = (c: Contender): number => median(ns.get(c)!);
    /** Median over rounds of (mesh ns / other ns). */
    const meshOver = (other: Contender): number => median(ns.get(meshC)!.map((m, i) => m / ns.get(other)![i]!));
    const rows = contenders.map((c) => [
      c.name,
      fmt(nsOf(c)),
      fmt(nsOf(c) - nsOf(bare)),
      c === meshC || c === bare || c.extra ? '' : `${meshOver(c).toFixed(2)}×`,
      fmt(bytes.get(c)! - bytes.get(bare)!),
    ]);
    console.log(`\nmedian of ${runs} runs; "mesh ÷ this" is the median of the per-run ratios\n`);
    console.log(markdownTable(['contender', 'ns/call', 'added ns', 'mesh ÷ this', 'added bytes/call'], rows));
    console.log(
      `\nmesh/bare ${meshOver(bare).toFixed(2)}×, mesh/cockatiel ${meshOver(cockatielC).toFixed(2)}×, mesh/opossum ${meshOver(opossumC).toFixed(2)}×`,
    );
    console.log(
      'opossum runs with its defaults except `timeout: false` (no per-call timer; rolling percentiles and snapshots on, as by default); ' +
        'the extra row keeps its default 10 s timeout, closer to the mesh, which always arms an attempt timer.',
    );
    console.log(
      `added bytes/call: heap allocated per call (GCProfiler deltas) minus the bare loop's own ${fmt(bytes.get(bare)!)} bytes; ` +
        'the calibration row should read about 56 (one 4-field object on x64).',
    );
  } finally {
    opossum.shutdown();
    opossumTimeout.shutdown();
    await mesh.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
