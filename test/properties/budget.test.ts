/**
 * Property tests of `RetryBudget` on an injected clock: random sequences of requests (deposits), retries
 * (withdrawals) and clock steps, with random ratio, reserve and ttl.
 *
 * The budget keeps its window in 10 slices (as Finagle's `WindowedAdder` does), so a token leaves the
 * window between 0.9 × ttl and ttl after it was made. The window bounds below are stated with that
 * granularity; see the edge cases at the end for what it means for the fault matrix's 503 bound.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RetryBudget } from '../../src/resilience/budget.js';

const SLICES = 10;

interface Params {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly ttlMs: number;
}

type Op =
  | { readonly kind: 'request'; readonly n: number }
  | { readonly kind: 'retry'; readonly n: number }
  | { readonly kind: 'advance'; readonly ms: number };

const paramsArb: fc.Arbitrary<Params> = fc.record({
  ratio: fc.oneof(
    fc.constantFrom(0, 0.05, 0.1, 0.2, 0.25, 0.5, 1),
    fc.double({ min: 0.01, max: 1, noNaN: true }),
  ),
  minPerSecond: fc.oneof(fc.constantFrom(0, 1, 10), fc.integer({ min: 0, max: 50 })),
  ttlMs: fc.oneof(fc.constantFrom(1_000, 10_000), fc.integer({ min: 1_000, max: 60_000 })),
});

const opsArb = (ttlMs: number): fc.Arbitrary<Op[]> =>
  fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('request' as const), n: fc.integer({ min: 1, max: 40 }) }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('retry' as const), n: fc.integer({ min: 1, max: 40 }) }) },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('advance' as const),
          // Mostly within one slice, sometimes across several, sometimes past the whole window.
          ms: fc.oneof(
            fc.integer({ min: 0, max: Math.ceil(ttlMs / SLICES) }),
            fc.integer({ min: 0, max: ttlMs }),
            fc.integer({ min: ttlMs, max: 3 * ttlMs }),
          ),
        }),
      },
    ),
    { minLength: 1, maxLength: 120, size: 'max' },
  );

const scenarioArb = paramsArb.chain((p) => fc.tuple(fc.constant(p), opsArb(p.ttlMs)));

interface Trace {
  readonly deposits: number[];
  readonly withdrawals: number[];
  readonly end: number;
}

/** A cheap assertion for the inner loops (expect() is slow there). */
function assert(ok: boolean, message: () => string): void {
  if (!ok) throw new Error(message());
}

/** Runs the ops, checking the step-by-step invariants; returns when each deposit and granted withdrawal happened. */
function run(p: Params, ops: readonly Op[]): Trace {
  let t = 0;
  const clock = { now: () => t };
  const budget = new RetryBudget(p.ratio, p.minPerSecond, p.ttlMs, clock);
  const deposits: number[] = [];
  const withdrawals: number[] = [];
  for (const op of ops) {
    if (op.kind === 'advance') {
      t += op.ms;
    } else if (op.kind === 'request') {
      for (let i = 0; i < op.n; i++) {
        const before = budget.balance;
        budget.onRequest();
        deposits.push(t);
        const after = budget.balance;
        assert(after >= before, () => `a request took budget away at t=${t}: ${before} -> ${after}`);
      }
    } else {
      for (let i = 0; i < op.n; i++) {
        const before = budget.balance;
        const granted = budget.tryWithdraw();
        // `balance` is "retries that could be made now": a retry is granted exactly when it is >= 1,
        // and a granted retry takes exactly one.
        assert(granted === before >= 1, () => `t=${t}: balance ${before} but tryWithdraw() returned ${granted}`);
        const after = budget.balance;
        assert(after === (granted ? before - 1 : before), () => `t=${t}: balance ${before} -> ${after}, granted ${granted}`);
        if (granted) withdrawals.push(t);
      }
    }
    const balance = budget.balance;
    assert(Number.isInteger(balance) && balance >= 0, () => `t=${t}: balance ${balance}`);
  }
  return { deposits, withdrawals, end: t };
}

/** How many of `times` (ascending) fall in [from, to]. */
function countIn(times: readonly number[], from: number, to: number): number {
  let n = 0;
  for (const x of times) if (x >= from && x <= to) n++;
  return n;
}

/**
 * The ratio the budget actually grants: a retry costs `floor(1000 / ratio)` thousandths of a request
 * (Finagle's integer ScaleFactor), a little more than `ratio` when 1000 / ratio is not a whole number
 * (see the known gap below for ratios above 1).
 */
const effectiveRatio = (p: Params): number => (p.ratio === 0 ? 0 : 1_000 / Math.floor(1_000 / p.ratio));

/** The reserve, in retries: minPerSecond × ttl. */
const reserveOf = (p: Params): number => (p.minPerSecond * p.ttlMs) / 1_000;

describe('RetryBudget (property)', { timeout: 60_000 }, () => {
  it('never goes negative; a retry is granted exactly when the balance is >= 1, and takes one', () => {
    fc.assert(
      fc.property(scenarioArb, ([p, ops]) => {
        run(p, ops);
      }),
      { numRuns: 1_000 },
    );
  });

  it('retries granted within any window of a token lifetime <= ratio × requests of the last ttl + minPerSecond × ttl', () => {
    // A token lives more than 0.9 × ttl (9 of 10 slices), so every retry granted in the 0.9 × ttl before a
    // granted retry is still counted against it; and only requests of the last ttl can pay for them.
    fc.assert(
      fc.property(scenarioArb, ([p, ops]) => {
        const { deposits, withdrawals } = run(p, ops);
        const life = p.ttlMs - p.ttlMs / SLICES;
        for (const b of withdrawals) {
          const granted = countIn(withdrawals, b - life + 1e-6, b);
          const paidBy = countIn(deposits, b - p.ttlMs, b);
          assert(granted <= effectiveRatio(p) * paidBy + reserveOf(p) + 1e-9, () => `at t=${b}: ${granted} granted, ${paidBy} requests`);
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it('with no requests at all, only the reserve is granted within any 0.9 × ttl', () => {
    fc.assert(
      fc.property(scenarioArb, ([p, ops]) => {
        const { withdrawals } = run(
          p,
          ops.filter((o) => o.kind !== 'request'),
        );
        const life = p.ttlMs - p.ttlMs / SLICES;
        for (const b of withdrawals) {
          const granted = countIn(withdrawals, b - life + 1e-6, b);
          assert(granted <= Math.floor(reserveOf(p)), () => `at t=${b}: ${granted} granted from a reserve of ${reserveOf(p)}`);
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it('over a whole run, retries <= ratio × requests + reserve × (windows the run spans + 1)', () => {
    // The long-run form: the reserve is renewed at most once per 0.9 × ttl.
    fc.assert(
      fc.property(scenarioArb, ([p, ops]) => {
        const { deposits, withdrawals, end } = run(p, ops);
        const life = p.ttlMs - p.ttlMs / SLICES;
        const renewals = Math.floor(end / life) + 1;
        expect(withdrawals.length).toBeLessThanOrEqual(effectiveRatio(p) * deposits.length + reserveOf(p) * renewals + 1e-9);
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('RetryBudget (edge cases)', () => {
  // Retry costs are scaled by 10^6, so even ratios far above 1 (validate.ts allows up to 1000) round to
  // within 0.1 %: ratio 600 grants 600 retries per request, not 1000.
  it('grants at most ratio × requests retries (ratio 600, no reserve)', () => {
    let t = 0;
    const budget = new RetryBudget(600, 0, 10_000, { now: () => t });
    budget.onRequest();
    let granted = 0;
    while (granted < 10_000 && budget.tryWithdraw()) granted++;
    expect(granted).toBeLessThanOrEqual(600);
    expect(granted).toBeGreaterThanOrEqual(599);
  });

  // The fault matrix's bound, `retries ≤ ratio × requests + minPerSecond × max(ttl, duration)`, is a
  // continuous approximation. Like Finagle's (a 10-slice WindowedAdder), this window lets a token leave
  // between 0.9 × ttl and ttl after it was made, so the reserve can renew once within one ttl: 100 failing
  // calls at t = 999 ms (end of the first slice) get 20 + 100 retries; those tokens leave at t = 10,000 ms,
  // when 100 more failing calls get 120 more: 240 retries for 200 calls in 9 s, where the approximation
  // allows 140. The bound that holds is the renewal form above; the fault-matrix row (1,000 calls within one
  // ttl) meets that bound exactly.
  it('the reserve renews after 0.9 × ttl at the earliest, as with Finagle\'s 10-slice window', () => {
    const p: Params = { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 };
    const { deposits, withdrawals, end } = run(p, [
      { kind: 'advance', ms: 999 },
      { kind: 'request', n: 100 },
      { kind: 'retry', n: 200 },
      { kind: 'advance', ms: 9_001 },
      { kind: 'request', n: 100 },
      { kind: 'retry', n: 200 },
    ]);
    expect(withdrawals.length).toBe(240);
    const renewals = Math.floor(end / (p.ttlMs * 0.9)) + 1;
    expect(withdrawals.length).toBeLessThanOrEqual(p.ratio * deposits.length + reserveOf(p) * renewals);
  });
});
