/**
 * Hedging and the tail at scale, in virtual time, with the mesh's real hedging code.
 *
 * The model of Dean & Barroso, "The Tail at Scale" (CACM 2013): a request fans out to `--fanout` (100)
 * leaf calls and completes when all of them have; a leaf answers in about 10 ms (log-normal, median
 * `--fast-ms`), but 1 % of the time (`--slow-percent`) in about 1 s (`--slow-ms`), independently per attempt.
 * Each leaf call is `mesh.call('leaf', fn, { idempotent: true })` over `--endpoints` (20) endpoints with the
 * default policy, and `hedge` set per variant. Requests run one after another; the clock is virtual (vitest's
 * fake timers, the mesh's injected clock), so a run of thousands of seconds takes seconds, and every figure is
 * exact for its seed (no timing noise: one run each).
 *
 * Fake time moves in whole ticks, so one virtual millisecond is `--ticks-per-ms` (10) ticks: with 1 ms ticks a
 * leaf that ends in the same millisecond as its hedge timer would count as late (timers fire before promise
 * callbacks), which adds a few per cent of hedges that continuous latencies would not have. The mesh sees
 * ticks as its milliseconds, so every time in its policy is scaled to match (timeouts, breaker windows,
 * ejection times, the fixed hedge delays); the one that cannot be is the budget's ttl (validated <= 60 s), so
 * the budget's window is 1 virtual second; it never binds here (hedges stay far below its 20 %).
 *
 * Reports p50 / p99 / p99.9 of request latency, p99.9 ÷ p99.9 without hedging (same run, same seed), and the
 * extra load: attempts ÷ leaf calls − 1.
 *
 * `@sinonjs/fake-timers` is not installed on its own (vitest bundles it), so this file runs inside vitest:
 * started with tsx it launches `vitest run --config bench/lib/vitest.hedge.config.ts` on itself.
 *
 *   tsx bench/hedge.ts [--requests 3000] [--fanout 100] [--endpoints 20] [--fixed-ms 20] [--seed 1]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numberFlags } from './lib/args.js';

const DEFAULTS = {
  requests: 3_000,
  warmup: 50,
  fanout: 100,
  endpoints: 20,
  fastMs: 10,
  slowMs: 1_000,
  slowPercent: 1,
  fixedMs: 20,
  seed: 1,
  ticksPerMs: 10,
};
const ARGS_ENV = 'PROXYLESS_HEDGE_BENCH_ARGS';

if (process.env.VITEST === undefined) {
  await launch();
} else {
  await register();
}

/** Started by tsx: check the flags, then run this file inside vitest (for its fake timers). */
async function launch(): Promise<void> {
  const args = process.argv.slice(2);
  numberFlags(DEFAULTS, args); // fail early on a bad flag
  const require = createRequire(import.meta.url);
  const vitest = join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
  const config = fileURLToPath(new URL('./lib/vitest.hedge.config.ts', import.meta.url));
  const child = spawn(process.execPath, [vitest, 'run', '--config', config], {
    stdio: 'inherit',
    env: { ...process.env, [ARGS_ENV]: JSON.stringify(args) },
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  process.exitCode = code ?? 1;
}

/** Inside vitest: the simulation. */
async function register(): Promise<void> {
  const { test, vi } = await import('vitest');
  const { createMesh, seededRng, staticRegistry } = await import('../src/index.js');
  type Mesh = import('../src/index.js').Mesh;
  type HedgePolicy = import('../src/index.js').HedgePolicy;
  type AttemptContext = import('../src/index.js').AttemptContext;
  const { fmt, machine, markdownTable, percentile } = await import('./lib.js');

  const flags = numberFlags(DEFAULTS, JSON.parse(process.env[ARGS_ENV] ?? '[]') as string[]);
  const TICK = Math.max(1, Math.round(flags.ticksPerMs));

  interface Variant {
    readonly name: string;
    readonly hedge: false | HedgePolicy;
  }
  const variants: Variant[] = [
    { name: 'no hedging', hedge: false },
    { name: "hedge delayMs 'p95' (maxAttempts 2, the default)", hedge: { delayMs: 'p95' } },
    { name: "hedge delayMs 'p95', maxAttempts 3", hedge: { delayMs: 'p95', maxAttempts: 3 } },
    { name: `hedge delayMs ${flags.fixedMs} (maxAttempts 2)`, hedge: { delayMs: flags.fixedMs * TICK } },
    { name: `hedge delayMs ${flags.fixedMs}, maxAttempts 3`, hedge: { delayMs: flags.fixedMs * TICK, maxAttempts: 3 } },
  ];

  interface Result {
    readonly latencies: Float64Array;
    readonly leafCalls: number;
    readonly attempts: number;
    readonly hedges: number;
    readonly budgetExhausted: number;
    readonly failedLeaves: number;
    readonly realSeconds: number;
  }

  /** Runs one variant from a fresh mesh; the leaf latencies come from the same seed for every variant. */
  async function simulate(v: Variant): Promise<Result> {
    const rng = seededRng(flags.seed);
    const slowP = flags.slowPercent / 100;
    /** A leaf's latency, in ticks. */
    const leafLatency = (): number => {
      if (rng() < slowP) return Math.round(flags.slowMs * (0.9 + 0.2 * rng()) * TICK);
      const z = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
      return Math.max(1, Math.round(flags.fastMs * Math.exp(0.25 * z) * TICK));
    };
    let attempts = 0;
    const leaf = (_endpoint: unknown, ctx: AttemptContext): Promise<void> => {
      attempts++;
      const ms = leafLatency();
      const signal = ctx.signal;
      return new Promise((resolve, reject) => {
        const onAbort = (): void => {
          clearTimeout(timer);
          reject(signal.reason);
        };
        const timer = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        }, ms);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    };

    const mesh: Mesh = createMesh({
      registry: staticRegistry({ leaf: Array.from({ length: flags.endpoints }, (_, i) => `127.0.0.1:${20_000 + i}`) }),
      defaults: {
        hedge: v.hedge,
        // The defaults, in ticks.
        timeout: { attemptMs: 10_000 * TICK, totalMs: 30_000 * TICK },
        breaker: { resetTimeoutMs: 10_000 * TICK, rollingWindowMs: 10_000 * TICK },
        outlier: { baseEjectionMs: 30_000 * TICK, maxEjectionMs: 300_000 * TICK },
      },
      clock: { now: () => Date.now() },
      random: seededRng(flags.seed + 1),
    });
    let hedges = 0;
    let budgetExhausted = 0;
    mesh.on('hedge', () => hedges++);
    mesh.on('budget-exhausted', () => budgetExhausted++);
    await mesh.warmup(['leaf']);

    const latencies = new Float64Array(flags.requests);
    let failedLeaves = 0;
    let leafCalls = 0;
    let attemptsAtStart = 0;
    const realStart = performance.now();
    for (let r = -flags.warmup; r < flags.requests; r++) {
      if (r === 0) attemptsAtStart = attempts;
      const start = Date.now();
      let done = false;
      const all = Promise.all(
        Array.from({ length: flags.fanout }, () =>
          mesh.call('leaf', leaf, { idempotent: true }).catch(() => {
            failedLeaves++;
          }),
        ),
      ).then(() => {
        done = true;
      });
      while (!done) {
        // A real macrotask turn lets every promise settle; then virtual time jumps to the next timer.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (done) break;
        if (vi.getTimerCount() === 0) throw new Error('the simulation is stuck: no timer pending and the request is not done');
        vi.advanceTimersToNextTimer();
      }
      await all;
      if (r >= 0) {
        latencies[r] = (Date.now() - start) / TICK;
        leafCalls += flags.fanout;
      }
    }
    const realSeconds = (performance.now() - realStart) / 1_000;
    await mesh.close();
    return {
      latencies: latencies.sort(),
      leafCalls,
      attempts: attempts - attemptsAtStart,
      hedges,
      budgetExhausted,
      failedLeaves,
      realSeconds,
    };
  }

  test('hedging: the tail at scale, in virtual time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    try {
      const q = flags.slowPercent / 100;
      console.log(
        `\nbench/hedge: ${fmt(flags.requests)} requests (after ${flags.warmup} warm-up) × ${flags.fanout} leaf calls over ` +
          `${flags.endpoints} endpoints; leaf ≈ ${flags.fastMs} ms, ${flags.slowPercent} % ≈ ${flags.slowMs} ms; virtual time ` +
          `(${TICK} ticks/ms), seed ${flags.seed}`,
      );
      console.log(`${await machine()}`);
      console.log(
        `Without hedging, P(a request waits for a slow leaf) = 1 − ${(1 - q).toFixed(2)}^${flags.fanout} = ` +
          `${(100 * (1 - (1 - q) ** flags.fanout)).toFixed(1)} %; with 2 attempts per leaf ≈ ` +
          `${(100 * (1 - (1 - q * q) ** flags.fanout)).toFixed(2)} %, with 3 ≈ ${(100 * (1 - (1 - q ** 3) ** flags.fanout)).toFixed(4)} %.\n`,
      );
      const results: [Variant, Result][] = [];
      for (const v of variants) {
        const r = await simulate(v);
        results.push([v, r]);
        console.log(`${v.name}: ${r.realSeconds.toFixed(1)} s of real time, ${fmt(r.attempts)} attempts, ${fmt(r.hedges)} hedges`);
      }
      const base = results[0]![1];
      const p999 = (r: Result): number => percentile(r.latencies, 99.9);
      const rows = results.map(([v, r]) => [
        v.name,
        fmt(percentile(r.latencies, 50), 1),
        fmt(percentile(r.latencies, 99), 1),
        fmt(p999(r), 1),
        fmt(r.latencies[r.latencies.length - 1]!, 1),
        (p999(r) / p999(base)).toFixed(3),
        `${((100 * r.attempts) / r.leafCalls - 100).toFixed(2)} %`,
        fmt(r.hedges),
        fmt(r.budgetExhausted),
        fmt(r.failedLeaves),
      ]);
      console.log(`\nrequest latency in virtual ms; extra load = attempts ÷ leaf calls − 1\n`);
      console.log(
        markdownTable(
          ['hedge policy', 'p50', 'p99', 'p99.9', 'max', 'p99.9 ÷ no hedging', 'extra load', 'hedges', 'budget refusals', 'failed leaves'],
          rows,
        ),
      );
      console.log('\nGoal: p99.9 ratio <= 0.05 with <= 5 % extra load, as measured:');
      for (const [v, r] of results.slice(1)) {
        const ratio = p999(r) / p999(base);
        const extra = r.attempts / r.leafCalls - 1;
        const met = ratio <= 0.05 && extra <= 0.05;
        console.log(`- ${v.name}: ratio ${ratio.toFixed(3)}, extra load ${(100 * extra).toFixed(2)} % — ${met ? 'met' : 'NOT met'}`);
      }
    } finally {
      vi.useRealTimers();
    }
  });
}
