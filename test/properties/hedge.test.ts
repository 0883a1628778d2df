/**
 * Hedging through a real mesh, on fake timers and the injected clock (nothing sleeps): for random fleets
 * and hedge delays, the properties hedging must keep. The attempt function answers after a latency chosen
 * by endpoint; every attempt's endpoint is recorded.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMesh, seededRng, staticRegistry, type AttemptContext, type Endpoint, type Mesh } from '../../src/index.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const PORT0 = 41_000;
const id = (i: number): string => `127.0.0.1:${PORT0 + i}`;

interface Fleet {
  /** Latency of each endpoint, in ms. */
  readonly latencies: readonly number[];
  readonly delayMs: number;
  readonly maxAttempts: number;
  readonly seed: number;
}

interface Trace {
  readonly starts: { call: number; endpoint: number; attempt: number; at: number }[];
  readonly results: { call: number; at: number; value: number }[];
}

/** Runs `calls` hedged calls one after another; virtual time moves only when every promise has settled. */
async function run(mesh: Mesh, fleet: Fleet, calls: number): Promise<Trace> {
  const starts: Trace['starts'] = [];
  const results: Trace['results'] = [];
  for (let c = 0; c < calls; c++) {
    const t0 = Date.now();
    let done = false;
    const fn = (ep: Endpoint, ctx: AttemptContext): Promise<number> => {
      const i = ep.port - PORT0;
      starts.push({ call: c, endpoint: i, attempt: ctx.attempt, at: Date.now() - t0 });
      const signal = ctx.signal;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve(i), fleet.latencies[i]!);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
    };
    const p = mesh.call('api', fn, { idempotent: true }).then((value) => {
      results.push({ call: c, at: Date.now() - t0, value });
      done = true;
    });
    while (!done) {
      await new Promise<void>((resolve) => setImmediate(resolve)); // a real turn: every promise settles
      if (done) break;
      vi.advanceTimersToNextTimer();
    }
    await p;
  }
  return { starts, results };
}

function meshFor(fleet: Fleet, hedge: boolean): Mesh {
  return createMesh({
    registry: staticRegistry({ api: fleet.latencies.map((_, i) => id(i)) }),
    defaults: {
      hedge: hedge ? { delayMs: fleet.delayMs, maxAttempts: fleet.maxAttempts } : false,
      breaker: false,
      outlier: false,
    },
    clock: { now: () => Date.now() },
    random: seededRng(fleet.seed),
  });
}

const fleetArb: fc.Arbitrary<Fleet> = fc.record({
  latencies: fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 6 }),
  delayMs: fc.integer({ min: 1, max: 100 }),
  maxAttempts: fc.integer({ min: 2, max: 4 }),
  seed: fc.integer(),
});

describe('hedging (property)', { timeout: 60_000 }, () => {
  it('hedges fire only after delayMs, never twice on one endpoint, at most maxAttempts, and the first answer wins', async () => {
    await fc.assert(
      fc.asyncProperty(fleetArb, fc.integer({ min: 1, max: 15 }), async (fleet, calls) => {
        const mesh = meshFor(fleet, true);
        try {
          const { starts, results } = await run(mesh, fleet, calls);
          for (let c = 0; c < calls; c++) {
            const mine = starts.filter((s) => s.call === c);
            const result = results.find((r) => r.call === c)!;
            // At most maxAttempts, each on a different endpoint.
            expect(mine.length).toBeLessThanOrEqual(Math.min(fleet.maxAttempts, fleet.latencies.length));
            expect(new Set(mine.map((s) => s.endpoint)).size).toBe(mine.length);
            // The k-th attempt starts k-1 delays in, and only while no attempt so far has answered (an
            // answer due at the very same millisecond as the hedge timer counts as not yet in: timers run first).
            mine.forEach((s, k) => {
              expect(s.attempt).toBe(k + 1);
              expect(s.at).toBe(k * fleet.delayMs);
              const answeredBy = Math.min(Infinity, ...mine.slice(0, k).map((p) => p.at + fleet.latencies[p.endpoint]!));
              expect(answeredBy).toBeGreaterThanOrEqual(s.at);
            });
            // The call ends with the earliest answer among the attempts it started, and that answer is its value.
            const earliest = Math.min(...mine.map((s) => s.at + fleet.latencies[s.endpoint]!));
            expect(result.at).toBe(earliest);
            expect(startOf(mine, result.value) + fleet.latencies[result.value]!).toBe(earliest);
            // And no hedge was left out: with attempts to spare, the call had its answer before the next one was due.
            if (mine.length < Math.min(fleet.maxAttempts, fleet.latencies.length)) {
              expect(earliest).toBeLessThan(mine.length * fleet.delayMs);
            }
          }
        } finally {
          await mesh.close();
        }
      }),
      { numRuns: 100 },
    );
  });
});

function startOf(starts: readonly { endpoint: number; at: number }[], endpoint: number): number {
  return starts.find((s) => s.endpoint === endpoint)!.at;
}

describe('hedging (regressions)', () => {
  // An attempt that loses to a hedge never shows how slow it was (only a lower bound). Had losing counted
  // for nothing, an endpoint whose attempts are always hedged away would keep the 30 ms default cost and
  // P2C would keep choosing it (33 % of first attempts here), each such call paying the hedge delay. Losing
  // a race takes the fading failure penalty (EndpointState.lostRace).
  it('an endpoint that is always hedged away is not preferred by peak-EWMA (it learns that it is slow)', async () => {
    const fleet: Fleet = { latencies: [500, 2, 2, 2, 2], delayMs: 10, maxAttempts: 2, seed: 7 };
    const share = async (hedge: boolean): Promise<number> => {
      const mesh = meshFor(fleet, hedge);
      try {
        const { starts } = await run(mesh, fleet, 400);
        return starts.filter((s) => s.attempt === 1 && s.endpoint === 0).length / 400;
      } finally {
        await mesh.close();
      }
    };
    const without = await share(false);
    const withHedge = await share(true);
    expect(without).toBeLessThan(0.01);
    expect(withHedge).toBeLessThan(0.02);
  });
});
