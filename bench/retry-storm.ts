/**
 * Retry storm: every replica of a service fails (3 loopback node:http backends in a child process, all
 * answering 503), and a client makes calls with 20 workers. How many attempts reach the backends per call?
 *
 * - bare fetch in a loop, up to 3 attempts per call (the naive client);
 * - cockatiel `retry(maxAttempts: 2)` (cockatiel counts retries, so 3 attempts), exponential backoff 25–250 ms;
 * - `mesh.fetch` with the default retry policy (2 retries, budget ratio 0.2, 10/s reserve, ttl 10 s), breakers
 *   and ejection off, so that it measures the budget alone; a short run and a long one;
 * - the same with budget ratio 0.1;
 * - `mesh.fetch` with every default on (budget, breakers, outlier ejection).
 *
 * Amplification = attempts seen by the backends ÷ calls. The budget's reserve (minPerSecond × max(ttl, run))
 * is a fixed allowance, so the table also shows the amplification without it: (attempts − reserve) ÷ calls.
 * Counts are exact (not timings), so one run of each is enough. Each run is bounded in calls and in time.
 *
 *   tsx bench/retry-storm.ts [--calls 2000] [--long-calls 20000] [--workers 20] [--max-seconds 60]
 */
import { ExponentialBackoff, handleWhenResult, retry } from 'cockatiel';
import { createMesh, staticRegistry, type Mesh, type Policy } from '../src/index.js';
import { numberFlags } from './lib/args.js';
import { startBackends, type Backends } from './lib/servers.js';
import { fmt, machine, markdownTable } from './lib.js';

const flags = numberFlags({ calls: 2_000, longCalls: 20_000, workers: 20, maxSeconds: 60 });
const BACKENDS = 3;
const ATTEMPTS = 3;
/** The default budget (the README's Options table): ratio 0.2, 10 retries/s in reserve, ttl 10 s. */
const BUDGET = { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 };

interface RunResult {
  readonly calls: number;
  readonly seconds: number;
  readonly attempts: number;
  /** How the calls ended: a 503 Response, or an error (CircuitOpenError, ...). */
  readonly responses: number;
  readonly errors: number;
  readonly errorKinds: ReadonlyMap<string, number>;
  /** The budget's balance at the end (retries it would allow now), from mesh.snapshot(). */
  readonly budgetLeft: number | null;
}

interface Contender {
  readonly name: string;
  readonly calls: number;
  /** The budget in force, to subtract its reserve; undefined for clients without one. */
  readonly budget?: { ratio: number; minPerSecond: number; ttlMs: number };
  /** One call; resolves with the final status, rejects when the client gives up with an error. */
  setup(addresses: readonly string[]): { call(): Promise<number>; budgetLeft(): number | null; close(): Promise<void> };
}

/** `workers` workers make `calls` calls in all, or stop starting new ones at `maxMs`. */
async function drive(call: () => Promise<number>, calls: number, workers: number, maxMs: number) {
  let started = 0;
  let responses = 0;
  let errors = 0;
  const errorKinds = new Map<string, number>();
  const t0 = performance.now();
  const stopAt = t0 + maxMs;
  const worker = async (): Promise<void> => {
    while (started < calls && performance.now() < stopAt) {
      started++;
      try {
        await call();
        responses++;
      } catch (error) {
        errors++;
        const kind = (error as { code?: string; name?: string }).code ?? (error as Error).name ?? 'error';
        errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return { calls: started, seconds: (performance.now() - t0) / 1_000, responses, errors, errorKinds };
}

/** Reads the body so that the keep-alive connection is reused; returns the status. */
async function drain(res: Response): Promise<number> {
  await res.arrayBuffer();
  return res.status;
}

const bareLoop: Contender = {
  name: `bare fetch, loop of up to ${ATTEMPTS} attempts`,
  calls: flags.calls,
  setup(addresses) {
    let next = 0;
    return {
      async call() {
        let status = 0;
        for (let a = 0; a < ATTEMPTS; a++) {
          const address = addresses[next++ % addresses.length]!;
          status = await drain(await fetch(`http://${address}/storm`));
          if (status < 500) break;
        }
        return status;
      },
      budgetLeft: () => null,
      close: async () => {},
    };
  },
};

const cockatiel: Contender = {
  name: 'cockatiel retry, maxAttempts 2 (3 attempts), backoff 25–250 ms',
  calls: flags.calls,
  setup(addresses) {
    let next = 0;
    const policy = retry(
      handleWhenResult((status) => typeof status === 'number' && status >= 500),
      { maxAttempts: ATTEMPTS - 1, backoff: new ExponentialBackoff({ initialDelay: 25, maxDelay: 250 }) },
    );
    return {
      call: () => policy.execute(async () => drain(await fetch(`http://${addresses[next++ % addresses.length]!}/storm`))),
      budgetLeft: () => null,
      close: async () => {},
    };
  },
};

function meshContender(name: string, calls: number, policy: Policy, budget: Contender['budget']): Contender {
  return {
    name,
    calls,
    ...(budget ? { budget } : {}),
    setup(addresses) {
      const mesh: Mesh = createMesh({ registry: staticRegistry({ storm: addresses }), defaults: policy });
      return {
        call: async () => drain(await mesh.fetch('http://storm/storm')),
        budgetLeft: () => mesh.snapshot().services.storm?.retryBudget ?? null,
        close: () => mesh.close(),
      };
    },
  };
}

const budgetOnly: Policy = { breaker: false, outlier: false };
const contenders: Contender[] = [
  bareLoop,
  cockatiel,
  meshContender('mesh.fetch, retry + budget (breaker, outlier off)', flags.calls, budgetOnly, BUDGET),
  meshContender('mesh.fetch, retry + budget (breaker, outlier off), long run', flags.longCalls, budgetOnly, BUDGET),
  meshContender(
    'mesh.fetch, retry + budget ratio 0.1 (breaker, outlier off), long run',
    flags.longCalls,
    { ...budgetOnly, retry: { budget: { ratio: 0.1 } } },
    { ...BUDGET, ratio: 0.1 },
  ),
  meshContender('mesh.fetch, every default on (budget, breakers, ejection)', flags.calls, {}, BUDGET),
];

async function runOne(c: Contender, backends: Backends): Promise<RunResult> {
  const client = c.setup(backends.addresses);
  await backends.reset();
  try {
    const r = await drive(() => client.call(), c.calls, flags.workers, flags.maxSeconds * 1_000);
    const attempts = (await backends.counts()).reduce((a, b) => a + b, 0);
    return { ...r, attempts, budgetLeft: client.budgetLeft() };
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const backends = await startBackends(Array.from({ length: BACKENDS }, () => ({ latencyMs: 0, successRate: 0, failStatus: 503 })));
  try {
    console.log(
      `bench/retry-storm: ${BACKENDS} backends on 127.0.0.1, every one answering 503; ${flags.workers} workers; ` +
        `at most ${flags.maxSeconds} s per run`,
    );
    console.log(`${await machine()}\n`);
    const results: [Contender, RunResult][] = [];
    for (const c of contenders) {
      const r = await runOne(c, backends);
      results.push([c, r]);
      const kinds = [...r.errorKinds].map(([k, n]) => `${k} ${fmt(n)}`).join(', ');
      console.log(`${c.name}: ${fmt(r.calls)} calls in ${r.seconds.toFixed(1)} s, ${fmt(r.attempts)} attempts${kinds ? ` (errors: ${kinds})` : ''}`);
    }
    /** The reserve the budget may spend over a run: minPerSecond × max(ttl, run). */
    const reserveOf = (c: Contender, r: RunResult): number =>
      c.budget ? (c.budget.minPerSecond * Math.max(c.budget.ttlMs / 1_000, r.seconds)) : 0;
    const rows = results.map(([c, r]) => {
      const amp = r.attempts / r.calls;
      const reserve = reserveOf(c, r);
      return [
        c.name,
        fmt(r.calls),
        r.seconds.toFixed(1),
        fmt(r.attempts),
        amp.toFixed(3),
        c.budget ? fmt(reserve) : '–',
        c.budget ? (Math.max(0, r.attempts - reserve) / r.calls).toFixed(3) : '–',
        c.budget ? `${(1 + c.budget.ratio).toFixed(2)}` : '–',
        r.budgetLeft === null ? '–' : fmt(r.budgetLeft),
        `${fmt(r.responses)} / ${fmt(r.errors)}`,
      ];
    });
    console.log('');
    console.log(
      markdownTable(
        [
          'client',
          'calls',
          'run (s)',
          'attempts at backends',
          'attempts / call',
          'reserve (retries)',
          'excl. reserve',
          'bound 1 + ratio',
          'budget left at end',
          'ended 503 / error',
        ],
        rows,
      ),
    );
    const amp = (i: number): number => results[i]![1].attempts / results[i]![1].calls;
    const [, , short, long, tenth] = [0, 1, 2, 3, 4].map(amp) as [number, number, number, number, number];
    const longR = results[3]![1];
    const exReserve = Math.max(0, longR.attempts - reserveOf(results[3]![0], longR)) / longR.calls;
    console.log(`\nIn this run: the budget cuts attempts per call from ${amp(0).toFixed(2)} (bare loop) to ${short.toFixed(3)} ` +
      `over ${fmt(results[2]![1].calls)} calls (${(amp(0) / short).toFixed(2)}× fewer) and to ${long.toFixed(3)} over ` +
      `${fmt(longR.calls)} calls in ${longR.seconds.toFixed(1)} s (${(amp(0) / long).toFixed(2)}× fewer); ` +
      `without the reserve ${exReserve.toFixed(3)}.`);
    console.log(`Goal <= 1.1× with the default budget on the long run: ${long <= 1.1 ? 'met' : 'NOT met'} (${long.toFixed(3)}); ` +
      `with ratio 0.1: ${tenth <= 1.1 ? 'met' : 'NOT met'} (${tenth.toFixed(3)}). A budget of ratio r allows 1 + r attempts per call ` +
      `plus the reserve, so the default ratio 0.2 tends to 1.2×.`);
  } finally {
    await backends.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
