/**
 * Property tests of outlier ejection and the panic threshold, through a real mesh (`ServiceHealth`,
 * `OutlierDetector`, the balancers and the call path), with breakers and retries off so that only
 * ejection decides. The mesh reads an injected clock; the function of each call succeeds or fails by
 * the endpoint it is given, as generated. Nothing sleeps: the attempt function settles at once.
 *
 * A small model of Envoy-style consecutive-failure ejection runs beside it and is compared inside each
 * attempt (after the pick, so after due endpoints were restored) and after each call.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createMesh,
  NoEndpointsError,
  seededRng,
  staticRegistry,
  type Endpoint,
  type Mesh,
  type OutlierPolicy,
} from '../../src/index.js';

type BalancerName = 'round-robin' | 'random' | 'least-request' | 'peak-ewma';

interface Scenario {
  readonly endpoints: number;
  readonly balancer: BalancerName;
  /** The consecutive-failure detector's part: the model is of that rule alone (the statistical ones are off). */
  readonly outlier: Required<Pick<OutlierPolicy, 'consecutiveFailures' | 'baseEjectionMs' | 'maxEjectionMs' | 'maxEjectionPercent'>>;
  readonly panicThresholdPercent: number;
  readonly seed: number;
  /** Which endpoints fail at the start. */
  readonly failing: readonly boolean[];
  readonly ops: readonly Op[];
}

type Op =
  | { readonly kind: 'calls'; readonly n: number }
  /** Endpoint `index` (modulo the count) starts failing or recovers. */
  | { readonly kind: 'flip'; readonly index: number }
  | { readonly kind: 'advance'; readonly ms: number }
  /** Advances to just before, at or just after the next restoration due. */
  | { readonly kind: 'due'; readonly offset: -1 | 0 | 1 };

const outlierArb: fc.Arbitrary<Scenario['outlier']> = fc
  .record({
    consecutiveFailures: fc.integer({ min: 1, max: 4 }),
    baseEjectionMs: fc.integer({ min: 10, max: 5_000 }),
    maxFactor: fc.integer({ min: 1, max: 6 }),
    maxEjectionPercent: fc.oneof(fc.constantFrom(0, 10, 50, 100), fc.integer({ min: 0, max: 100 })),
  })
  .map(({ maxFactor, ...o }) => ({ ...o, maxEjectionMs: o.baseEjectionMs * maxFactor }));

const opArb = (maxMs: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('calls' as const), n: fc.integer({ min: 1, max: 12 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), index: fc.nat() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: maxMs }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('due' as const), offset: fc.constantFrom(-1 as const, 0 as const, 1 as const) }) },
  );

const scenarioArb = (balancers: readonly BalancerName[]): fc.Arbitrary<Scenario> =>
  fc
    .record({
      endpoints: fc.integer({ min: 1, max: 12 }),
      balancer: fc.constantFrom(...balancers),
      outlier: outlierArb,
      panicThresholdPercent: fc.oneof(fc.constantFrom(0, 50, 100), fc.integer({ min: 0, max: 100 })),
      seed: fc.integer(),
    })
    .chain((s) =>
      fc.record({
        endpoints: fc.constant(s.endpoints),
        balancer: fc.constant(s.balancer),
        outlier: fc.constant(s.outlier),
        panicThresholdPercent: fc.constant(s.panicThresholdPercent),
        seed: fc.constant(s.seed),
        failing: fc.array(fc.boolean(), { minLength: s.endpoints, maxLength: s.endpoints }),
        ops: fc.array(opArb(s.outlier.maxEjectionMs * 2), { minLength: 1, maxLength: 60, size: 'max' }),
      }),
    );

interface EndpointModel {
  consecutive: number;
  ejectedUntil: number | undefined;
  timesEjected: number;
  activeSince: number;
}

/** Envoy's consecutive-failure detector with the ejection cap (one can always go), as outlier.ts describes it. */
class Model {
  readonly eps: EndpointModel[];
  panicEvents = 0;
  private panicNow: boolean;
  /** Durations of the ejections, in order, to compare with the `ejected` events. */
  readonly ejections: { id: string; durationMs: number }[] = [];
  readonly restorations: string[] = [];

  constructor(
    private readonly s: Scenario,
    now: number,
  ) {
    this.eps = Array.from({ length: s.endpoints }, () => ({
      consecutive: 0,
      ejectedUntil: undefined,
      timesEjected: 0,
      activeSince: now,
    }));
    this.panicNow = this.computePanic();
  }

  get cap(): number {
    return Math.max(1, Math.floor((this.s.endpoints * this.s.outlier.maxEjectionPercent) / 100));
  }

  get ejectedCount(): number {
    return this.eps.filter((e) => e.ejectedUntil !== undefined).length;
  }

  get panic(): boolean {
    return this.panicNow;
  }

  private computePanic(): boolean {
    const healthy = this.s.endpoints - this.ejectedCount;
    return (healthy * 100) / this.s.endpoints < this.s.panicThresholdPercent;
  }

  private recount(): void {
    const panic = this.computePanic();
    if (panic && !this.panicNow) this.panicEvents++;
    this.panicNow = panic;
  }

  /** The restorations the pick step makes first. */
  restoreDue(now: number): void {
    let any = false;
    this.eps.forEach((e, i) => {
      if (e.ejectedUntil !== undefined && now >= e.ejectedUntil) {
        e.activeSince = e.ejectedUntil; // back in service when the ejection ended, whenever a pick notices
        e.ejectedUntil = undefined;
        e.consecutive = 0;
        this.restorations.push(id(i));
        any = true;
      }
    });
    if (any) this.recount();
  }

  nextDue(): number | undefined {
    let next: number | undefined;
    for (const e of this.eps) if (e.ejectedUntil !== undefined && (next === undefined || e.ejectedUntil < next)) next = e.ejectedUntil;
    return next;
  }

  record(i: number, ok: boolean, now: number): void {
    const e = this.eps[i]!;
    if (e.ejectedUntil !== undefined) return; // an ejected endpoint picked in panic: not counted
    if (ok) {
      e.consecutive = 0;
      return;
    }
    e.consecutive++;
    if (e.consecutive < this.s.outlier.consecutiveFailures || this.ejectedCount >= this.cap) return;
    const { baseEjectionMs, maxEjectionMs } = this.s.outlier;
    const healthyPeriods = Math.floor((now - e.activeSince) / baseEjectionMs);
    const times = Math.max(0, e.timesEjected - healthyPeriods) + 1;
    const durationMs = Math.min(baseEjectionMs * times, maxEjectionMs);
    e.timesEjected = times;
    e.ejectedUntil = now + durationMs;
    this.ejections.push({ id: id(i), durationMs });
    this.recount();
  }

  /** Whether a pick can find any endpoint. */
  get anyUsable(): boolean {
    return this.panic || this.ejectedCount < this.s.endpoints;
  }
}

const PORT0 = 40_000;
const id = (i: number): string => `127.0.0.1:${PORT0 + i}`;
const indexOf = (ep: Endpoint): number => ep.port - PORT0;

interface RunOptions {
  /** After each op, in panic with endpoints ejected, check that ejected endpoints are picked again. */
  readonly checkPanicPicks: boolean;
}

async function runScenario(s: Scenario, options: RunOptions): Promise<{ ejections: number; panics: number; panicChecks: number }> {
  let t = 1_000;
  const mesh: Mesh = createMesh({
    registry: staticRegistry({ api: Array.from({ length: s.endpoints }, (_, i) => id(i)) }),
    defaults: {
      balancer: s.balancer,
      retry: false,
      breaker: false,
      outlier: { ...s.outlier, successRate: false },
      panicThresholdPercent: s.panicThresholdPercent,
    },
    clock: { now: () => t },
    random: seededRng(s.seed),
  });
  const failing = [...s.failing];
  const ejectedEvents: { id: string; durationMs: number }[] = [];
  const restoredEvents: string[] = [];
  let panicEvents = 0;
  let panicChecks = 0;
  mesh.on('ejected', (e) => ejectedEvents.push({ id: e.endpoint.id, durationMs: e.durationMs }));
  mesh.on('restored', (e) => restoredEvents.push(e.endpoint.id));
  mesh.on('panic', () => panicEvents++);
  await mesh.warmup(['api']);
  const model = new Model(s, t);

  /** What the mesh says about the service now. */
  const observe = () => {
    const svc = mesh.snapshot().services.api!;
    return { panic: svc.panic, ejected: svc.endpoints.map((e) => e.ejected) };
  };
  const expectMatches = (where: string): void => {
    const seen = observe();
    const ejected = seen.ejected.filter(Boolean).length;
    expect(ejected, `${where}: ejected count within the cap`).toBeLessThanOrEqual(model.cap);
    expect(seen.ejected, `${where}: ejected set`).toEqual(model.eps.map((e) => e.ejectedUntil !== undefined));
    expect(seen.panic, `${where}: panic`).toBe(model.panic);
    const healthyShare = ((s.endpoints - ejected) * 100) / s.endpoints;
    expect(seen.panic, `${where}: panic iff healthy share < threshold`).toBe(healthyShare < s.panicThresholdPercent);
  };

  /** One call; returns the index of the endpoint it went to (or undefined when nothing could be picked). */
  const call = async (forceOk = false): Promise<number | undefined> => {
    model.restoreDue(t);
    let picked: number | undefined;
    try {
      await mesh.call('api', (ep) => {
        picked = indexOf(ep);
        // Inside the attempt: the pick has restored what was due, and nothing has been recorded yet.
        expectMatches(`pick at t=${t}`);
        if (!model.panic) {
          expect(model.eps[picked]!.ejectedUntil, `an ejected endpoint (${ep.id}) was picked outside panic`).toBeUndefined();
        }
        if (!forceOk && failing[picked]) throw new Error(`${ep.id} fails`);
        return 'ok';
      });
    } catch (error) {
      if (picked === undefined) {
        // Nothing could be picked: only when every endpoint is ejected and the service is not in panic.
        expect(error).toBeInstanceOf(NoEndpointsError);
        expect(model.anyUsable).toBe(false);
        return undefined;
      }
      if (!(error instanceof Error) || !error.message.endsWith('fails')) {
        // A CallFailedError wrapping our failure is expected; anything else (an assertion) is not.
        const cause = (error as { cause?: unknown }).cause;
        if (!(cause instanceof Error && cause.message.endsWith('fails'))) throw error;
      }
    }
    expect(picked, 'a call ran although no endpoint should be usable').not.toBeUndefined();
    model.record(picked!, forceOk || !failing[picked!], t);
    expectMatches(`after the call at t=${t}`);
    return picked;
  };

  try {
    expectMatches('start');
    for (const op of s.ops) {
      switch (op.kind) {
        case 'calls':
          for (let i = 0; i < op.n; i++) await call();
          break;
        case 'flip': {
          const i = op.index % s.endpoints;
          failing[i] = !failing[i];
          break;
        }
        case 'advance':
          t += op.ms;
          break;
        case 'due': {
          const due = model.nextDue();
          if (due !== undefined && due + op.offset >= t) t = due + op.offset;
          break;
        }
      }
      if (options.checkPanicPicks && model.panic && model.ejectedCount > 0) {
        // In panic the ejected endpoints are candidates again: round robin reaches each within a few rounds
        // (the clock stands still and every call succeeds, so the ejected set does not change meanwhile).
        const seen = new Set<number>();
        const first = await call(true); // its pick restores what is due, as every pick does
        if (first !== undefined) seen.add(first);
        if (model.panic && model.ejectedCount > 0) {
          const ejected = model.eps.flatMap((e, i) => (e.ejectedUntil !== undefined ? [i] : []));
          for (let k = 0; k < 3 * s.endpoints; k++) {
            const p = await call(true);
            if (p !== undefined) seen.add(p);
          }
          for (const i of ejected) expect(seen.has(i), `ejected ${id(i)} was never picked in panic`).toBe(true);
          panicChecks++;
        }
      }
    }
    expect(ejectedEvents).toEqual(model.ejections);
    expect(restoredEvents).toEqual(model.restorations);
    expect(panicEvents).toBe(model.panicEvents);
    return { ejections: model.ejections.length, panics: model.panicEvents, panicChecks };
  } finally {
    await mesh.close();
  }
}

describe('outlier ejection and panic (property)', { timeout: 60_000 }, () => {
  it('ejects after consecutive failures within the cap, restores on time, and never picks an ejected endpoint outside panic', async () => {
    let ejections = 0;
    let panics = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb(['round-robin', 'random', 'least-request', 'peak-ewma']), async (s) => {
        const r = await runScenario(s, { checkPanicPicks: false });
        ejections += r.ejections;
        panics += r.panics;
      }),
      { numRuns: 200 },
    );
    // The runs did exercise what they claim to.
    expect(ejections).toBeGreaterThan(100);
    expect(panics).toBeGreaterThan(10);
  });

  it('in panic, ejected endpoints are picked again (round robin)', async () => {
    let checks = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb(['round-robin']), async (s) => {
        checks += (await runScenario(s, { checkPanicPicks: true })).panicChecks;
      }),
      { numRuns: 150 },
    );
    expect(checks).toBeGreaterThan(20);
  });

  it('with the default outlier policy, at most one of nine endpoints (10 %) is ejected however many fail', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 9, maxLength: 9 }),
        fc.integer({ min: 10, max: 200 }),
        fc.integer(),
        async (failing, calls, seed) => {
          const s: Scenario = {
            endpoints: 9,
            balancer: 'round-robin',
            outlier: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 10 },
            panicThresholdPercent: 50,
            seed,
            failing,
            ops: [{ kind: 'calls', n: calls }],
          };
          await runScenario(s, { checkPanicPicks: false });
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('outlier ejection (regressions)', () => {
  // Restoration is lazy (noticed by the next pick), but the time "in service" counts from when the ejection
  // ended, as with Envoy's interval sweep; otherwise a quiet service would never bring the multiplier down.
  // Here: ejected for 10 s at t=0, the next call comes at t=110 s and fails; after 100 s back in service the
  // multiplier is back to 1 (10 s), not 2.
  it('the time an endpoint is back in service counts from the end of its ejection, not from the next pick', async () => {
    let t = 0;
    const mesh = createMesh({
      registry: staticRegistry({ api: [id(0), id(1)] }),
      defaults: {
        balancer: 'round-robin',
        retry: false,
        breaker: false,
        outlier: { consecutiveFailures: 1, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
        panicThresholdPercent: 0,
      },
      clock: { now: () => t },
      random: seededRng(1),
    });
    const durations: number[] = [];
    mesh.on('ejected', (e) => durations.push(e.durationMs));
    const failOn0 = (ep: Endpoint): string => {
      if (indexOf(ep) === 0) throw new Error('fails');
      return 'ok';
    };
    try {
      while (durations.length === 0) await mesh.call('api', failOn0).catch(() => undefined);
      t = 110_000;
      while (durations.length === 1) await mesh.call('api', failOn0).catch(() => undefined);
      expect(durations).toEqual([10_000, 10_000]);
    } finally {
      await mesh.close();
    }
  });
});
