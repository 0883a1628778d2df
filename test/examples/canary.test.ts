// examples/canary.ts run as a child process, with short steps: the shares it observed follow the weights it
// configured, it rolls back once v2 fails, and it exits 0 by itself within a bound.
import { describe, expect, it } from 'vitest';
import { runScript } from '../helpers/run-script.js';

/** The example's load: calls in flight at once, so at most this many can straddle a change of weights. */
const WORKERS = 8;
/**
 * Standard deviations allowed between the observed and the configured share. A step's calls are independent
 * draws (the route picks a backend with the mesh's random number generator), so the v2 count of a step of n
 * calls is binomial(n, p): 4.5 sd is a false failure about once in 150,000 checks.
 */
const Z = 4.5;
const STEP_MS = 1_000;

interface Step {
  readonly label: string;
  readonly version: number;
  readonly v2Weight: number;
  readonly total: number;
  readonly v1: number;
  readonly v2: number;
  readonly v1Errors: number;
  readonly v2Errors: number;
  /** Where the line is in the output, to check what came before it. */
  readonly at: number;
}

const STEP_LINE =
  /^(step \d+\/\d+|rollback)\s+config v(\d+): weights v1 (\d+) % \/ v2 (\d+) % \| observed over [\d.]+ s: v1 [\d.-]+ % \/ v2 [\d.-]+ % of (\d+) calls \| errors v1 [\d.-]+ % \((\d+) of (\d+)\), v2 [\d.-]+ % \((\d+) of (\d+)\)$/gm;

function stepsOf(out: string): Step[] {
  return [...out.matchAll(STEP_LINE)].map((m) => {
    const [v1Weight, v2Weight, total, v1Errors, v1, v2Errors, v2] = [m[3], m[4], m[5], m[6], m[7], m[8], m[9]].map(Number) as number[];
    expect(v1Weight! + v2Weight!, m[0]).toBe(100);
    expect(v1! + v2!, m[0]).toBe(total);
    return { label: m[1]!, version: Number(m[2]), v2Weight: v2Weight!, total: total!, v1: v1!, v2: v2!, v1Errors: v1Errors!, v2Errors: v2Errors!, at: m.index };
  });
}

/** How far a step's observed v2 share may be from its weight: binomial noise, plus the calls that straddled the change. */
function tolerance(p: number, n: number): number {
  return Z * Math.sqrt((p * (1 - p)) / n) + WORKERS / n;
}

function expectFollows(step: Step): void {
  const p = step.v2Weight / 100;
  const observed = step.v2 / step.total;
  const what = `${step.label} (${step.v2Weight} %): v2 ${step.v2} of ${step.total}`;
  expect(step.total, `${what}: too few calls to judge`).toBeGreaterThanOrEqual(50);
  expect(Math.abs(observed - p), what).toBeLessThanOrEqual(tolerance(p, step.total));
  // A share that should be there is there, and none where the weight is 0 (bar the straddling calls).
  if (p > 0 && p * step.total >= 20) expect(step.v2, what).toBeGreaterThan(0);
  if (p === 0) expect(step.v2, what).toBeLessThanOrEqual(WORKERS);
  if (p === 1) expect(step.v1, what).toBeLessThanOrEqual(WORKERS);
}

/** The rollback's reason, as the example prints it, and whether its numbers justify it. */
function expectRollbackReason(reason: string): void {
  const byErrors = /^v2 errors [\d.]+ % \((\d+) of (\d+)\) > 5 % over [\d.]+ s/.exec(reason);
  const byShare = /^v2 took (\d+) of the ~(\d+) calls its weight gives it over [\d.]+ s/.exec(reason);
  expect(byErrors ?? byShare, reason).not.toBeNull();
  if (byErrors) {
    const [errors, calls] = [Number(byErrors[1]), Number(byErrors[2])];
    expect(errors, reason).toBeGreaterThanOrEqual(5);
    expect(errors / calls, reason).toBeGreaterThan(0.05);
  } else {
    const [took, expected] = [Number(byShare![1]), Number(byShare![2])];
    expect(expected, reason).toBeGreaterThanOrEqual(50);
    expect(took, reason).toBeLessThan(expected / 2);
  }
}

/** Runs the example with these environment variables (the child inherits process.env as it is at spawn). */
function runCanary(env: Record<string, string>, limitMs = 25_000) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return runScript('examples/canary.ts', limitMs);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('examples/canary.ts: a canary rollout with mesh.configure', () => {
  it('shifts traffic in steps, the observed shares follow the weights, and it rolls back when v2 fails', async () => {
    const { code, signal, out } = await runCanary({ STEP_MS: String(STEP_MS), ADMIN_PORT: '0', FAIL_AT: '50' });
    expect(signal, out).toBeNull();
    expect(code, out).toBe(0);
    expect(out).toMatch(/^dashboard: http:\/\/127\.0\.0\.1:\d+\//m);

    const steps = stepsOf(out);
    expect(steps.map((s) => [s.label, s.v2Weight]), out).toEqual([
      ['step 1/5', 0],
      ['step 2/5', 5],
      ['step 3/5', 25],
      ['step 4/5', 50],
      ['rollback', 0],
    ]);
    // One configure per step, each a new version.
    steps.forEach((s, i) => i > 0 && expect(s.version, out).toBe(steps[i - 1]!.version + 1));

    const failureStarts = out.indexOf('v2 starts answering 500');
    const rolledBack = out.search(/^rolled back at 50 %: /m);
    expect(failureStarts, out).toBeGreaterThan(-1);
    const [healthy, failing, rollback] = [steps.slice(0, 3), steps[3]!, steps[4]!];
    for (const s of healthy) {
      expect(s.at).toBeLessThan(failureStarts);
      expectFollows(s);
      expect([s.v1Errors, s.v2Errors], s.label).toEqual([0, 0]);
    }
    // The failing step, then (and only then) the rollback, for one of the two reasons, with numbers that bear it
    // out (counted from the change of weights): v2's errors passed 5 % (over at least 5 of them), or v2 took less
    // than half of its share (the mesh routing around it).
    expect(failing.at).toBeGreaterThan(failureStarts);
    expect(failing.v1Errors, out).toBe(0);
    expect(rolledBack, out).toBeGreaterThan(failing.at);
    expectRollbackReason(/^rolled back at 50 %: (.*)$/m.exec(out)![1]!);
    expect(rollback.at).toBeGreaterThan(rolledBack);
    // After the rollback, v1 takes it all: only calls already in flight on v2 can still end there.
    expectFollows(rollback);
    expect(rollback.v1Errors, out).toBe(0);

    const summary = /^canary: steps ([\d,]+); rolled back at (\d+) %; final v1 share ([\d.]+) %$/m.exec(out);
    expect(summary, out).not.toBeNull();
    expect(summary![1]).toBe('0,5,25,50');
    expect(summary![2]).toBe('50');
    // The summary's share is the one measured in the rollback step.
    expect(summary![3]).toBe(((100 * rollback.v1) / rollback.total).toFixed(1));
  }, 40_000);

  it('without failures, it goes all the way to 100 % v2 and does not roll back', async () => {
    const { code, signal, out } = await runCanary({ STEP_MS: String(STEP_MS), FAIL_AT: 'never' });
    expect(signal, out).toBeNull();
    expect(code, out).toBe(0);
    const steps = stepsOf(out);
    expect(steps.map((s) => s.v2Weight), out).toEqual([0, 5, 25, 50, 100]);
    for (const s of steps) {
      expectFollows(s);
      expect([s.v1Errors, s.v2Errors], s.label).toEqual([0, 0]);
    }
    expect(out).not.toMatch(/rolled back/);
    const summary = /^canary: steps 0,5,25,50,100; no rollback; final v2 share ([\d.]+) %$/m.exec(out);
    expect(summary, out).not.toBeNull();
    expect(summary![1]).toBe(((100 * steps[4]!.v2) / steps[4]!.total).toFixed(1));
  }, 40_000);

  it('rolls back at the step where v2 starts failing, early in the plan too', async () => {
    const { code, out } = await runCanary({ STEP_MS: String(STEP_MS), FAIL_AT: '25' });
    expect(code, out).toBe(0);
    const steps = stepsOf(out);
    expect(steps.map((s) => s.v2Weight), out).toEqual([0, 5, 25, 0]);
    for (const s of steps.slice(0, 2)) expectFollows(s);
    expectRollbackReason(/^rolled back at 25 %: (.*)$/m.exec(out)?.[1] ?? `no rollback at 25 %:\n${out}`);
    expectFollows(steps[3]!);
    expect(out).toMatch(/^canary: steps 0,5,25; rolled back at 25 %; final v1 share [\d.]+ %$/m);
  }, 40_000);

  it('refuses a bad setting at once, with exit 2', async () => {
    const { code, out } = await runCanary({ STEP_MS: 'soon' }, 15_000);
    expect(out).toMatch(/STEP_MS must be/);
    expect(code).toBe(2);
  });
});
