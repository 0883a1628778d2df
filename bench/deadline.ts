/**
 * Deadline propagation down a chain A → B → C, over loopback (node:http on 127.0.0.1, every hop on proxyless).
 *
 * - A, the edge, calls B with `mesh.fetch` and a budget of `--budget-ms` (300): `timeout.totalMs`, no retries.
 *   It sends `--requests` (80) requests, one every `--interval-ms` (10), open loop.
 * - B's handler calls C with `mesh.fetch('http://c/work', { deadline: inboundDeadline(req) })`. B's own policy is
 *   a generous one, as a service deep in a call graph often has: `attemptMs` 150, `totalMs` 2 s, 2 retries (the
 *   default budget applies), breakers and ejection off (so only the deadline differs between the rows).
 * - C is two replicas of `--slots` (2) workers each; a request waits for a free worker, then works `--work-ms`
 *   (100, a timer) and answers. With the deadline, C checks `inboundDeadline(req)` as a worker takes the request,
 *   and answers 504 without working when it has passed.
 *
 * C's capacity (4 workers ÷ 100 ms = 40/s) is below what A offers (100/s), so C queues, B's attempts time out and
 * are retried, and A gives up on most requests at 300 ms. Neither B nor C listens for its caller hanging up (most
 * handlers don't): what stops work is the deadline, or nothing. Two rows, alternating over `--runs` (3) runs
 * (medians): the policy `deadline` off, so B's calls run on B's own 2 s; and on, at A and at B, with B passing
 * `inboundDeadline(req)` on and C shedding what has expired.
 *
 * For each request A gave up on, what C received and worked on *after* that moment: requests that arrived at C,
 * work that started there, and work-ms done there (the part of each piece of work after the moment). Each run
 * waits for C to go idle, at most `--drain-seconds` (20).
 *
 *   tsx bench/deadline.ts [--requests 80] [--interval-ms 10] [--budget-ms 300] [--work-ms 100] [--slots 2] [--runs 3]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, inboundDeadline, staticRegistry, type Mesh } from '../src/index.js';
import { numberFlags } from './lib/args.js';
import { fmt, machine, markdownTable, median } from './lib.js';

const flags = numberFlags({ requests: 80, intervalMs: 10, budgetMs: 300, workMs: 100, slots: 2, runs: 3, drainSeconds: 20 });
const ID = 'x-bench-id';

/** What C saw of one request (one attempt of B's). */
interface Visit {
  readonly id: number;
  readonly arrived: number;
  started?: number;
  ended?: number;
  shed?: boolean;
}

interface Server {
  readonly server: http.Server;
  readonly address: string;
}

async function listen(handler: http.RequestListener): Promise<Server> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function close(s: Server): Promise<void> {
  s.server.closeAllConnections();
  await new Promise((resolve) => s.server.close(resolve));
}

/** One replica of C: `slots` workers, a FIFO queue in front of them. */
function replicaOfC(visits: Visit[], withDeadline: boolean): { handler: http.RequestListener; busy(): boolean } {
  const queue: (() => void)[] = [];
  let working = 0;
  const next = (): void => {
    while (working < flags.slots && queue.length > 0) queue.shift()!();
  };
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    const visit: Visit = { id: Number(req.headers[ID]), arrived: Date.now() };
    visits.push(visit);
    // Read as the request arrives: the header says what is left from now.
    const deadline = withDeadline ? inboundDeadline(req) : undefined;
    queue.push(() => {
      if (deadline !== undefined && deadline <= Date.now()) {
        visit.shed = true;
        if (!res.destroyed) res.writeHead(504).end('deadline passed');
        return; // the worker stays free
      }
      working++;
      visit.started = Date.now();
      setTimeout(() => {
        visit.ended = Date.now();
        working--;
        if (!res.destroyed) res.end('done');
        next();
      }, flags.workMs);
    });
    next();
  };
  return { handler, busy: () => working > 0 || queue.length > 0 };
}

interface RunResult {
  readonly gaveUp: number;
  readonly succeeded: number;
  readonly cRequests: number;
  readonly cWorkMs: number;
  readonly arrivedAfter: number;
  readonly startedAfter: number;
  readonly workMsAfter: number;
  readonly lastWorkAfterMs: number;
  readonly shed: number;
}

async function run(withDeadline: boolean): Promise<RunResult> {
  const visits: Visit[] = [];
  const replicas = [replicaOfC(visits, withDeadline), replicaOfC(visits, withDeadline)];
  const cs = await Promise.all(replicas.map((r) => listen(r.handler)));
  const deadline = withDeadline ? {} : false;
  const meshB: Mesh = createMesh({
    registry: staticRegistry({ c: cs.map((c) => c.address) }),
    defaults: { timeout: { attemptMs: 150, totalMs: 2_000 }, breaker: false, outlier: false, deadline },
  });
  const b = await listen((req, res) => {
    req.resume();
    const init = { headers: { [ID]: String(req.headers[ID]) }, deadline: inboundDeadline(req) };
    meshB.fetch('http://c/work', init).then(
      (r) => r.text().then((t) => !res.destroyed && res.writeHead(r.status).end(t)),
      () => !res.destroyed && res.writeHead(504).end(),
    );
  });
  const meshA: Mesh = createMesh({
    registry: staticRegistry({ b: [b.address] }),
    defaults: { timeout: { attemptMs: flags.budgetMs, totalMs: flags.budgetMs }, retry: false, breaker: false, outlier: false, deadline },
  });
  await meshA.warmup(['b']);
  await meshB.warmup(['c']);

  const gaveUpAt = new Map<number, number>();
  let succeeded = 0;
  const calls: Promise<void>[] = [];
  for (let id = 0; id < flags.requests; id++) {
    calls.push(
      meshA.fetch('http://b/', { headers: { [ID]: String(id) } }).then(
        async (r) => {
          await r.text();
          if (r.status === 200) succeeded++;
          else gaveUpAt.set(id, Date.now());
        },
        () => {
          gaveUpAt.set(id, Date.now());
        },
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, flags.intervalMs));
  }
  await Promise.all(calls);
  // Bounded: C goes idle once the queues drain (B's calls end by its 2 s at the latest).
  const stopAt = performance.now() + flags.drainSeconds * 1_000;
  while (performance.now() < stopAt && (replicas.some((r) => r.busy()) || meshB.snapshot().services.c?.endpoints.some((e) => e.inflight > 0))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 50));

  let arrivedAfter = 0;
  let startedAfter = 0;
  let workMsAfter = 0;
  let lastWorkAfterMs = 0;
  let cWorkMs = 0;
  for (const v of visits) {
    if (v.started !== undefined) cWorkMs += (v.ended ?? Date.now()) - v.started;
    const gaveUp = gaveUpAt.get(v.id);
    if (gaveUp === undefined) continue;
    if (v.arrived > gaveUp) arrivedAfter++;
    if (v.started === undefined) continue;
    const end = v.ended ?? Date.now();
    if (v.started > gaveUp) startedAfter++;
    if (end > gaveUp) {
      workMsAfter += end - Math.max(v.started, gaveUp);
      lastWorkAfterMs = Math.max(lastWorkAfterMs, end - gaveUp);
    }
  }
  await meshA.close();
  await meshB.close();
  await close(b);
  await Promise.all(cs.map(close));
  return {
    gaveUp: gaveUpAt.size,
    succeeded,
    cRequests: visits.length,
    cWorkMs,
    arrivedAfter,
    startedAfter,
    workMsAfter,
    lastWorkAfterMs,
    shed: visits.filter((v) => v.shed).length,
  };
}

const modes = [
  { name: '`deadline` off (B calls C on its own 2 s)', on: false },
  { name: '`deadline` on, B passes `inboundDeadline(req)`', on: true },
] as const;

console.log(
  `\nbench/deadline: A → B → C on loopback; ${flags.requests} requests, one per ${flags.intervalMs} ms, A's budget ${flags.budgetMs} ms; ` +
    `C: 2 replicas × ${flags.slots} workers × ${flags.workMs} ms; B: attemptMs 150, totalMs 2000, 2 retries; ${flags.runs} runs each`,
);
const results: RunResult[][] = modes.map(() => []);
for (let r = 0; r < flags.runs; r++) {
  for (const [i, mode] of (r % 2 === 0 ? modes.entries() : [...modes.entries()].reverse())) {
    const result = await run(mode.on);
    results[i]!.push(result);
    console.log(`  run ${r + 1} ${mode.on ? 'on ' : 'off'}: ${JSON.stringify(result)}`);
  }
}

const med = (rs: readonly RunResult[], key: keyof RunResult): number => median(rs.map((x) => x[key]));
const rows = modes.map((mode, i) => {
  const rs = results[i]!;
  return [
    mode.name,
    `${fmt(med(rs, 'gaveUp'))} / ${fmt(flags.requests)}`,
    fmt(med(rs, 'cRequests')),
    fmt(med(rs, 'arrivedAfter')),
    fmt(med(rs, 'startedAfter')),
    fmt(med(rs, 'workMsAfter')),
    fmt(med(rs, 'lastWorkAfterMs')),
    fmt(med(rs, 'cWorkMs')),
    fmt(med(rs, 'shed')),
  ];
});
console.log(`\n${await machine()}; medians of ${flags.runs} runs\n`);
console.log(
  markdownTable(
    [
      'mode',
      'A gave up',
      'requests at C',
      '… arrived after A gave up',
      'work started after',
      'work-ms after',
      'last work after (ms)',
      'C work-ms, all',
      'shed by C (504)',
    ],
    rows,
  ),
);
