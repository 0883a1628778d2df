/**
 * `npm run bench:fetch`: `mesh.fetch` (default policy) against the same global `fetch`, both to one
 * keep-alive node:http server on 127.0.0.1 that answers a small body at once. The server runs in a child
 * process, so the client's event loop, where the mesh's cost lands, is the bottleneck being measured.
 *
 * 64 requests in flight (64 workers), each run bounded by REQUESTS and RUN_MS; every round runs each contender,
 * in an order that rotates per round. Prints medians and mesh/bare ratios (median of each round's
 * ratio): req/s (goal >= 0.97), p99 latency, and this process's CPU time per request. A third contender,
 * fetch with `AbortSignal.timeout`, shows what a per-request timeout signal alone costs undici: the mesh
 * hands every attempt a signal to enforce its attempt timeout.
 */
import { createMesh, staticRegistry, type Mesh } from '../src/index.js';
import { fmt, machine, markdownTable, median, percentile } from './lib.js';
import { closedLoop, startBackend } from './lib/ok-server.js';

const WORKERS = 64;
const REQUESTS = 20_000;
const RUN_MS = 3_000;
const RUNS = 5;
const WARMUP_REQUESTS = 3_000;

interface RunResult {
  readonly rps: number;
  readonly p99Ms: number;
  /** This process's CPU time (user + system) per request: the steadiest figure on a busy machine. */
  readonly cpuUs: number;
  readonly errors: number;
}

interface Contender {
  readonly name: string;
  readonly get: () => Promise<Response>;
}

/** One run of a contender: WORKERS in flight, every body read; bounded in count and time. */
async function run(get: Contender['get'], requests: number, runMs: number): Promise<RunResult> {
  const r = await closedLoop(
    async () => {
      const res = await get();
      await res.arrayBuffer();
      return res.ok;
    },
    WORKERS,
    requests,
    runMs,
  );
  return { rps: (r.done * 1_000) / r.elapsedMs, p99Ms: percentile(r.sorted, 99), cpuUs: (r.cpuS * 1e6) / r.done, errors: r.errors };
}

async function main(): Promise<void> {
  const server = await startBackend();
  const address = `127.0.0.1:${server.port}`;
  const mesh: Mesh = createMesh({ registry: staticRegistry({ bench: [address] }) });
  const url = `http://${address}/hello`;
  const contenders: Contender[] = [
    { name: 'global fetch', get: () => fetch(url) },
    { name: 'global fetch + AbortSignal.timeout(10 s)', get: () => fetch(url, { signal: AbortSignal.timeout(10_000) }) },
    { name: 'mesh.fetch (default policy)', get: () => mesh.fetch('http://bench/hello') },
  ];
  const [bare, withSignal, viaMesh] = contenders as [Contender, Contender, Contender];
  try {
    console.log(`bench/fetch: ${WORKERS} in flight, <= ${fmt(REQUESTS)} requests or ${RUN_MS} ms per run, ${RUNS} runs each`);
    console.log(`${await machine()}\n`);
    for (const c of contenders) await run(c.get, WARMUP_REQUESTS, RUN_MS);

    const results = new Map<Contender, RunResult[]>(contenders.map((c) => [c, []]));
    let errors = 0;
    for (let round = 0; round < RUNS; round++) {
      const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]!);
      for (const c of order) {
        const r = await run(c.get, REQUESTS, RUN_MS);
        results.get(c)!.push(r);
        errors += r.errors;
      }
      const line = contenders.map((c) => {
        const r = results.get(c)![round]!;
        return `${fmt(r.rps)} req/s p99 ${fmt(r.p99Ms, 1)} ms cpu ${fmt(r.cpuUs, 1)} µs`;
      });
      console.log(`round ${round + 1}: ${line.join(' | ')}`);
    }
    const med = (c: Contender, key: 'rps' | 'p99Ms' | 'cpuUs'): number => median(results.get(c)!.map((r) => r[key]));
    /** Median over rounds of mesh ÷ other, for one figure. */
    const ratio = (other: Contender, key: 'rps' | 'p99Ms' | 'cpuUs'): number =>
      median(results.get(viaMesh)!.map((r, i) => r[key] / results.get(other)![i]![key]));
    const rows = contenders.map((c) => [
      c.name,
      fmt(med(c, 'rps')),
      c === viaMesh ? '' : ratio(c, 'rps').toFixed(3),
      fmt(med(c, 'p99Ms'), 2),
      c === viaMesh ? '' : `${med(viaMesh, 'p99Ms') >= med(c, 'p99Ms') ? '+' : ''}${fmt(med(viaMesh, 'p99Ms') - med(c, 'p99Ms'), 2)}`,
      fmt(med(c, 'cpuUs'), 1),
      c === viaMesh ? '' : `${med(viaMesh, 'cpuUs') >= med(c, 'cpuUs') ? '+' : ''}${fmt(med(viaMesh, 'cpuUs') - med(c, 'cpuUs'), 1)}`,
    ]);
    console.log(`\nmedians of ${RUNS} runs; "mesh ÷ this" = median of the per-round ratios; "mesh −" = difference of the medians\n`);
    console.log(
      markdownTable(['client', 'req/s', 'mesh ÷ this (req/s)', 'p99 ms', 'mesh − this (p99 ms)', 'CPU µs/req', 'mesh − this (CPU µs)'], rows),
    );
    const goal = ratio(bare, 'rps');
    console.log(`\nthroughput mesh/bare fetch: ${goal.toFixed(3)} (goal >= 0.97: ${goal >= 0.97 ? 'met' : 'NOT met'}); mesh/fetch with a timeout signal: ${ratio(withSignal, 'rps').toFixed(3)}`);
    if (errors > 0) {
      console.error(`bench/fetch: ${errors} requests failed; the figures are not trustworthy`);
      process.exitCode = 1;
    }
  } finally {
    await mesh.close();
    await server.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
