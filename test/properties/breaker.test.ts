/**
 * Property tests of the circuit breaker as the mesh uses it: `EndpointBreaker` over opossum, with the
 * shared bucket-rotation clock. Fake timers drive opossum's reset timer and the rotation interval, so
 * nothing sleeps. Each run generates a policy and a sequence of operations, runs it against the real
 * breaker and against a small model of the intended state machine, and compares them after every step.
 *
 * The harness drives the breaker exactly as the call step does (run-attempt.ts): an attempt starts only
 * when `allowsRequest` is true (the picker checks it in the same synchronous step); while half-open, that
 * attempt is the probe and runs through `fire()`; otherwise it runs outside opossum and its verdict is
 * given to `record(ok)` when it ends.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMesh, staticRegistry } from '../../src/index.js';
import { BreakerClock, EndpointBreaker, type BreakerState } from '../../src/resilience/breaker.js';

const BUCKETS = 10;

interface Policy {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly resetTimeoutMs: number;
  readonly rollingWindowMs: number;
}

type Op =
  /** An attempt that settles at once (if the breaker lets one through). */
  | { readonly kind: 'call'; readonly ok: boolean }
  /** A long-running attempt (a probe, when half-open): it stays in flight until a `settle`. */
  | { readonly kind: 'start' }
  /** Settles the in-flight attempt at `index` (modulo how many there are). */
  | { readonly kind: 'settle'; readonly index: number; readonly ok: boolean }
  | { readonly kind: 'advance'; readonly ms: number }
  /** Advances to just before (-1), exactly at (0) or just after (+1) the next reset or bucket rotation. */
  | { readonly kind: 'near'; readonly due: 'reset' | 'rotation'; readonly offset: -1 | 0 | 1 };

const policyArb: fc.Arbitrary<Policy> = fc.record({
  errorThresholdPercentage: fc.integer({ min: 0, max: 100 }),
  volumeThreshold: fc.integer({ min: 0, max: 12 }),
  resetTimeoutMs: fc.integer({ min: 1, max: 3_000 }),
  // A whole number of ms per bucket, as the rotation interval is.
  rollingWindowMs: fc.integer({ min: 1, max: 300 }).map((bucket) => bucket * BUCKETS),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('call' as const), ok: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'start' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('settle' as const), index: fc.nat(), ok: fc.boolean() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 400, max: 4_000 })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('near' as const),
      due: fc.constantFrom('reset' as const, 'rotation' as const),
      offset: fc.constantFrom(-1 as const, 0 as const, 1 as const),
    }),
  },
);

/** The rejection of an attempt that counts as a failure (the call step's `AttemptFailure` carries the same flag). */
const failure = (): Error => Object.assign(new Error('attempt failed'), { countsAsFailure: true });

interface Deferred {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * The breaker's intended state machine, with opossum's counting and opening rule: a closed-state verdict
 * counts one fire (and one failure) in the bucket where the attempt ends, and only while the breaker is
 * still closed; the probe counts its fire where it starts and its failure where it ends; the window is the
 * last `BUCKETS` buckets, rotated every `rollingWindowMs / BUCKETS` from the rotation clock's start.
 * Closed opens on a failure once the window holds at least `volumeThreshold` fires and more than
 * `errorThresholdPercentage` % failures; `resetTimeoutMs` after opening it is half-open; the probe's
 * success closes it, with a fresh window holding only the probe, and its failure reopens it.
 */
class Model {
  state: BreakerState = 'closed';
  /** Half-open: the one probe has been let through. */
  probeTaken = false;
  halfOpenAt = Infinity;
  readonly transitions: BreakerState[] = [];
  private buckets: { fires: number; failures: number }[] = [];
  private nextRotation: number;
  private readonly bucketMs: number;

  constructor(
    private readonly policy: Policy,
    start: number,
  ) {
    for (let i = 0; i < BUCKETS; i++) this.buckets.push({ fires: 0, failures: 0 });
    this.bucketMs = policy.rollingWindowMs / BUCKETS;
    this.nextRotation = start + this.bucketMs;
  }

  get allows(): boolean {
    return this.state === 'closed' || (this.state === 'half-open' && !this.probeTaken);
  }

  /** When the next bucket rotation is due. */
  get rotationAt(): number {
    return this.nextRotation;
  }

  window(): { fires: number; failures: number } {
    let fires = 0;
    let failures = 0;
    for (const b of this.buckets) {
      fires += b.fires;
      failures += b.failures;
    }
    return { fires, failures };
  }

  /** Runs the timers due up to `now`, in time order. */
  advanceTo(now: number): void {
    for (;;) {
      const next = Math.min(this.nextRotation, this.halfOpenAt);
      if (next > now) return;
      if (this.nextRotation === next) {
        this.buckets.pop();
        this.buckets.unshift({ fires: 0, failures: 0 });
        this.nextRotation += this.bucketMs;
      } else {
        this.halfOpenAt = Infinity;
        this.state = 'half-open';
        this.probeTaken = false;
        this.transitions.push('half-open');
      }
    }
  }

  /** An attempt starts; in half-open it is the probe, counted as a fire now. */
  start(): boolean {
    if (this.state !== 'half-open') return false;
    this.buckets[0]!.fires++;
    this.probeTaken = true;
    return true;
  }

  /** A closed-state attempt ended with this verdict (ignored once the breaker is no longer closed). */
  record(ok: boolean, now: number): void {
    if (this.state !== 'closed') return;
    this.buckets[0]!.fires++;
    if (ok) return;
    this.buckets[0]!.failures++;
    const { fires, failures } = this.window();
    if (fires >= this.policy.volumeThreshold && (failures / fires) * 100 > this.policy.errorThresholdPercentage) this.open(now);
  }

  /** The probe ended. */
  probeEnded(ok: boolean, now: number): void {
    if (ok) return this.close();
    this.buckets[0]!.failures++;
    this.open(now);
  }

  private open(now: number): void {
    this.state = 'open';
    this.probeTaken = false;
    this.halfOpenAt = now + this.policy.resetTimeoutMs;
    this.transitions.push('open');
  }

  /** Closing starts the window afresh, holding only the probe that closed it (Hystrix, resilience4j). */
  private close(): void {
    this.state = 'closed';
    this.probeTaken = false;
    this.halfOpenAt = Infinity;
    for (const b of this.buckets) b.fires = b.failures = 0;
    this.buckets[0]!.fires = 1;
    this.transitions.push('closed');
  }
}

/** Lets opossum's promise chains settle (no timer is due at +0). */
const flush = async (): Promise<void> => {
  await vi.advanceTimersByTimeAsync(0);
};

interface Harness {
  readonly breaker: EndpointBreaker;
  readonly model: Model;
  readonly observed: BreakerState[];
  /** Attempts in flight: the probe's deferred (it runs through fire()), and the half-open episode it probes (or -1). */
  readonly inflight: Attempt[];
  episode: number;
  readonly violations: string[];
  close(): void;
}

function harness(policy: Policy): Harness {
  const clock = new BreakerClock();
  const observed: BreakerState[] = [];
  let h: Harness;
  const model = new Model(policy, Date.now());
  const breaker = new EndpointBreaker(
    policy,
    clock,
    (s) => {
      // The claim "closed never opens with fewer than volumeThreshold fires in the window", on the real
      // event (recorded, not thrown: this runs inside opossum's promise chain).
      if (s === 'open' && observed.at(-1) !== 'half-open' && model.window().fires < policy.volumeThreshold) {
        h.violations.push(`opened from closed with ${model.window().fires} fires in the window`);
      }
      if (s === 'half-open') h.episode++;
      observed.push(s);
    },
  );
  h = {
    breaker,
    model,
    observed,
    inflight: [],
    episode: 0,
    violations: [],
    close() {
      breaker.shutdown();
      clock.close();
    },
  };
  return h;
}

interface Attempt {
  /** Set for a probe: it runs through fire() and settles through this. */
  readonly d: Deferred | undefined;
  readonly probeOf: number;
}

/** Starts one attempt as the call step does; undefined when the breaker refuses (the picker skips it). */
function start(h: Harness): Attempt | undefined {
  const b = h.breaker;
  if (!b.allowsRequest) return undefined;
  if (!b.halfOpen) return { d: undefined, probeOf: -1 };
  let d!: Deferred;
  const run = (): Promise<unknown> =>
    new Promise<void>((resolve, reject) => {
      d = { resolve, reject };
    });
  b.probe(run).catch(() => {});
  return { d, probeOf: h.episode };
}

/** Ends an attempt with a verdict, as the call step does; updates the model likewise. */
async function end(h: Harness, a: Attempt, ok: boolean): Promise<void> {
  if (a.d === undefined) {
    h.model.record(ok, Date.now()); // first, so that the real 'open' event can be checked against its window
    h.breaker.record(ok);
    await flush();
    return;
  }
  if (ok) a.d.resolve();
  else a.d.reject(failure());
  await flush();
  h.model.probeEnded(ok, Date.now());
}

async function step(h: Harness, op: Op): Promise<void> {
  const { model, breaker } = h;
  switch (op.kind) {
    case 'call': {
      const a = start(h);
      expect(a !== undefined).toBe(model.allows);
      if (a === undefined) return;
      const probe = model.start();
      expect(a.d !== undefined).toBe(probe);
      if (probe) expect(breaker.allowsRequest).toBe(false); // the probe is out: nothing else gets through
      await end(h, a, op.ok);
      return;
    }
    case 'start': {
      const a = start(h);
      expect(a !== undefined).toBe(model.allows);
      if (a === undefined) return;
      expect(a.d !== undefined).toBe(model.start());
      h.inflight.push(a);
      await flush();
      return;
    }
    case 'settle': {
      if (h.inflight.length === 0) return;
      const [a] = h.inflight.splice(op.index % h.inflight.length, 1);
      await end(h, a!, op.ok);
      return;
    }
    case 'advance': {
      await vi.advanceTimersByTimeAsync(op.ms);
      model.advanceTo(Date.now());
      return;
    }
    case 'near': {
      // The model only says *when* to stop; what happens there is still compared with the real breaker.
      const due = op.due === 'reset' ? model.halfOpenAt : model.rotationAt;
      const ms = due + op.offset - Date.now();
      if (!Number.isFinite(ms) || ms < 0) return;
      await vi.advanceTimersByTimeAsync(ms);
      model.advanceTo(Date.now());
      return;
    }
  }
}

function check(h: Harness): void {
  const { breaker, model } = h;
  expect(h.violations).toEqual([]);
  expect(breaker.state).toBe(model.state);
  expect(breaker.allowsRequest).toBe(model.allows);
  expect(breaker.isOpen).toBe(model.state === 'open');
  if (model.state === 'open') expect(breaker.allowsRequest).toBe(false);
  expect(h.observed).toEqual(model.transitions);
  if (model.state === 'half-open') {
    const probes = h.inflight.filter((e) => e.probeOf === h.episode).length;
    expect(probes).toBeLessThanOrEqual(1);
  }
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('EndpointBreaker (property)', { timeout: 60_000 }, () => {
  it('follows the closed / open / half-open machine: one probe, reset after resetTimeoutMs, probe decides', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }), async (policy, ops) => {
        const h = harness(policy);
        try {
          check(h);
          for (const op of ops) {
            await step(h, op);
            check(h);
          }
        } finally {
          h.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('while closed, opens exactly when the last rollingWindowMs of attempts cross both thresholds', async () => {
    // Long closed runs: the failure rate hovers around the error threshold and calls are spread over
    // several windows, so that old buckets expire while the counts sit near both thresholds.
    type Step = { readonly kind: 'call'; readonly u: number } | { readonly kind: 'wait'; readonly buckets: number } | Op;
    const steps: fc.Arbitrary<Step> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('call' as const), u: fc.double({ min: 0, max: 1, noNaN: true }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), buckets: fc.double({ min: 0, max: 3, noNaN: true }) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('near' as const),
          due: fc.constant('rotation' as const),
          offset: fc.constantFrom(-1 as const, 0 as const, 1 as const),
        }),
      },
    );
    let decisions = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          errorThresholdPercentage: fc.integer({ min: 10, max: 90 }),
          volumeThreshold: fc.integer({ min: 4, max: 20 }),
          resetTimeoutMs: fc.constant(1_000_000),
          rollingWindowMs: fc.integer({ min: 1, max: 10 }).map((b) => b * BUCKETS),
        }),
        fc.double({ min: -0.35, max: 0, noNaN: true }),
        fc.array(steps, { minLength: 1, maxLength: 150, size: 'max' }),
        async (policy, skew, ops) => {
          const h = harness(policy);
          const failRate = policy.errorThresholdPercentage / 100 + skew;
          try {
            for (const op of ops) {
              if (op.kind === 'call' && 'u' in op) {
                await step(h, { kind: 'call', ok: op.u >= failRate });
                decisions++;
              } else if (op.kind === 'wait') {
                await step(h, { kind: 'advance', ms: Math.round((op.buckets * policy.rollingWindowMs) / BUCKETS) });
              } else {
                await step(h, op);
              }
              check(h);
              if (h.model.state !== 'closed') break;
            }
          } finally {
            h.close();
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(decisions).toBeGreaterThan(1_500); // the runs did stay closed for a while
  });

  it('opens on the first failure after volumeThreshold fires over the error threshold, and re-probes after resetTimeoutMs', async () => {
    // Drive it straight into the interesting region: always enough failures to open it, then time.
    await fc.assert(
      fc.asyncProperty(
        policyArb,
        fc.integer({ min: 0, max: 3 }),
        fc.boolean(),
        async (policy, extra, probeOk) => {
          const h = harness(policy);
          try {
            const n = Math.max(1, policy.volumeThreshold) + extra;
            for (let i = 0; i < n && h.breaker.allowsRequest; i++) await step(h, { kind: 'call', ok: false });
            // 100 % errors: it opens unless the threshold is 100 % (never exceeded).
            expect(h.breaker.state).toBe(policy.errorThresholdPercentage < 100 ? 'open' : 'closed');
            check(h);
            if (h.breaker.state !== 'open') return;
            await step(h, { kind: 'advance', ms: policy.resetTimeoutMs - 1 });
            expect(h.breaker.state).toBe('open');
            await step(h, { kind: 'advance', ms: 1 });
            expect(h.breaker.state).toBe('half-open');
            await step(h, { kind: 'start' }); // the probe
            expect(h.breaker.allowsRequest).toBe(false);
            await step(h, { kind: 'call', ok: true }); // refused: the probe is out
            await step(h, { kind: 'settle', index: 0, ok: probeOk });
            expect(h.breaker.state).toBe(probeOk ? 'closed' : 'open');
            check(h);
          } finally {
            h.close();
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

/*
 * Two behaviours opossum alone would have, and that EndpointBreaker corrects: an aborted probe counts as a
 * failure (opossum has no neutral outcome), and closing starts the window afresh.
 */
describe('EndpointBreaker (regressions)', () => {
  it('a probe that ends with no verdict (the caller aborts it) does not close a half-open breaker', async () => {
    // Through the mesh. The probe runs through opossum's fire(); an aborted attempt rejects with the abort
    // reason, and opossum would count that as a success (closing the breaker) unless EndpointBreaker.probe
    // marks it as a failure. The same holds when the probe loses to a hedge.
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      defaults: {
        retry: false,
        outlier: false,
        breaker: { volumeThreshold: 1, errorThresholdPercentage: 50, resetTimeoutMs: 100, rollingWindowMs: 1_000 },
      },
      clock: { now: () => Date.now() },
    });
    const state = (): string | undefined => mesh.snapshot().services.api?.endpoints[0]?.breaker;
    try {
      await mesh
        .call('api', () => {
          throw new Error('down');
        })
        .catch(() => undefined);
      expect(state()).toBe('open');
      await vi.advanceTimersByTimeAsync(100);
      expect(state()).toBe('half-open');
      const caller = new AbortController();
      const probe = mesh
        .call(
          'api',
          (_ep, { signal }) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
          { signal: caller.signal },
        )
        .catch(() => undefined);
      await flush();
      caller.abort(new Error('the caller gave up'));
      await probe;
      await flush();
      expect(state()).not.toBe('closed');
    } finally {
      await mesh.close();
    }
  });

  it('after a probe closes it, one failure does not reopen it (the window starts afresh)', async () => {
    // When resetTimeoutMs < rollingWindowMs, the failures that opened the breaker are still in opossum's
    // window when the probe closes it, so the next single failure reopens it at once (Hystrix and
    // resilience4j reset the counts on close).
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          errorThresholdPercentage: fc.integer({ min: 0, max: 99 }),
          volumeThreshold: fc.integer({ min: 1, max: 12 }),
          resetTimeoutMs: fc.integer({ min: 1, max: 3_000 }),
          rollingWindowMs: fc.integer({ min: 1, max: 300 }).map((b) => b * BUCKETS),
        }),
        async (policy) => {
          const h = harness(policy);
          try {
            while (h.breaker.state === 'closed') await step(h, { kind: 'call', ok: false });
            await step(h, { kind: 'advance', ms: policy.resetTimeoutMs });
            await step(h, { kind: 'call', ok: true }); // the probe succeeds
            expect(h.breaker.state).toBe('closed');
            await step(h, { kind: 'call', ok: false });
            // A fresh window now holds the probe (a success) and this failure: 2 fires, 50 % errors.
            const justified = policy.volumeThreshold <= 2 && policy.errorThresholdPercentage < 50;
            expect(h.breaker.state).toBe(justified ? 'open' : 'closed');
          } finally {
            h.close();
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
