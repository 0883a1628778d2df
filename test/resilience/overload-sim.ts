/**
 * A discrete-event model of a backend that queues (test helper, no timers): `slots` servers of `serviceMs` each
 * behind one FIFO queue, fed open loop at `rate` calls per second, with a client-side limit in front. Time is
 * simulated, so the test is exact and instant.
 */
export interface Limiter {
  readonly limit: number;
  admitted(inflight: number): void;
  sample(start: number, rttMs: number, now: number): void;
}

export interface SimResult {
  readonly offered: number;
  readonly accepted: number;
  readonly rejected: number;
  /** Accepted calls that completed, per second of simulated time. */
  readonly goodput: number;
  readonly p99: number;
  readonly maxLimit: number;
  readonly lastLimit: number;
}

export function simulate(
  limiter: Limiter | undefined,
  opts: { rate: number; durationMs: number; startMs?: number; slots?: number; serviceMs?: number; overheadMs?: number },
): SimResult {
  const slots = opts.slots ?? 8;
  const serviceMs = opts.serviceMs ?? 20;
  const overhead = opts.overheadMs ?? 0.5;
  const t0 = opts.startMs ?? 0;
  const free = new Array<number>(slots).fill(t0);
  const pending: { start: number; end: number }[] = [];
  const latencies: number[] = [];
  let active = 0;
  let offered = 0;
  let rejected = 0;
  let maxLimit = 0;
  const gap = 1_000 / opts.rate;
  const drain = (until: number): void => {
    pending.sort((a, b) => a.end - b.end);
    while (pending.length > 0 && pending[0]!.end <= until) {
      const done = pending.shift()!;
      active--;
      latencies.push(done.end - done.start);
      limiter?.sample(done.start, done.end - done.start, done.end);
    }
  };
  for (let t = t0; t < t0 + opts.durationMs; t += gap) {
    drain(t);
    offered++;
    if (limiter !== undefined) {
      maxLimit = Math.max(maxLimit, limiter.limit);
      if (active >= limiter.limit) {
        rejected++;
        continue;
      }
      limiter.admitted(active + 1);
    }
    active++;
    // FIFO over `slots` servers: the earliest free one takes the call.
    let i = 0;
    for (let j = 1; j < slots; j++) if (free[j]! < free[i]!) i = j;
    const begin = Math.max(t + overhead / 2, free[i]!);
    free[i] = begin + serviceMs;
    pending.push({ start: t, end: begin + serviceMs + overhead / 2 });
  }
  drain(Infinity);
  latencies.sort((a, b) => a - b);
  return {
    offered,
    accepted: offered - rejected,
    rejected,
    goodput: (latencies.length * 1_000) / opts.durationMs,
    p99: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? 0,
    maxLimit,
    lastLimit: limiter?.limit ?? Infinity,
  };
}
