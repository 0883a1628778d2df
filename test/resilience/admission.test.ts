import { describe, expect, it } from 'vitest';
import { AdmissionRejectedError, CallFailedError, createMesh, staticRegistry, type Mesh } from '../../src/index.js';
import { AdmissionThrottle } from '../../src/resilience/throttle.js';
import { seededRng } from '../../src/util/random.js';
import { parseExposition, value } from '../observe/exposition.js';

const policy = { successRatio: 0.5, maxRejectPercent: 80, windowMs: 10_000 };
const always = (): number => 0; // a draw that rejects whenever p > 0

describe('AdmissionThrottle (SRE book ch. 21, Envoy admission_control)', () => {
  it('rejects with p = (requests − accepts ÷ successRatio) ÷ (requests + 1), taken before the call is counted', () => {
    const t = new AdmissionThrottle(policy, always);
    for (let i = 0; i < 3; i++) {
      expect(t.draw(0)).toBe(0);
      t.accept(0);
    }
    // 3 more requests that fail: 6 − 3 ÷ 0.5 = 0, so none of them is rejected yet.
    for (let i = 0; i < 3; i++) expect(t.draw(0)).toBe(0);
    expect(t.rejectProbability(0)).toBe(0);
    expect(t.draw(0)).toBe(0); // p taken before it counts: (6 − 6) ÷ 7
    expect(t.draw(0)).toBeCloseTo(1 / 8); // (7 − 6) ÷ (7 + 1)
    expect(t.counts(0)).toEqual({ requests: 8, accepts: 3 });
  });

  it('never rejects with more than maxRejectPercent', () => {
    const t = new AdmissionThrottle({ ...policy, maxRejectPercent: 30 }, always);
    for (let i = 0; i < 1_000; i++) t.draw(i);
    expect(t.rejectProbability(999)).toBe(0.3);
  });

  it('ages buckets out as time passes, with no timer: a window later the counts are gone', () => {
    const t = new AdmissionThrottle(policy, always);
    for (let i = 0; i < 100; i++) t.draw(i * 10); // 0 .. 990 ms: the first bucket
    expect(t.rejectProbability(1_000)).toBeGreaterThan(0.7);
    // Half the window later the old requests still count; past the window, they are gone.
    expect(t.counts(5_000).requests).toBe(100);
    expect(t.counts(10_999).requests).toBe(0);
    expect(t.rejectProbability(11_000)).toBe(0);
    // A long idle spell clears everything at once.
    for (let i = 0; i < 10; i++) t.draw(20_000);
    expect(t.counts(500_000)).toEqual({ requests: 0, accepts: 0 });
  });

  it('an accept timed a little before the latest draw (another call drew in a later bucket since) keeps the window', () => {
    const t = new AdmissionThrottle(policy, always);
    for (let i = 0; i < 20; i++) t.draw(500); // bucket 0 (1 s buckets)
    t.draw(1_000); // a later call, bucket 1
    t.accept(999); // the success of a call whose attempt ended at 999
    expect(t.counts(1_000)).toEqual({ requests: 21, accepts: 1 });
    // A clock a whole window back is another matter: the counts start over.
    t.draw(-20_000);
    expect(t.counts(-20_000)).toEqual({ requests: 1, accepts: 0 });
  });

  it('draws from the random it is given, and only when p > 0', () => {
    let draws = 0;
    const t = new AdmissionThrottle(policy, () => (draws++, 0.99));
    for (let i = 0; i < 5; i++) {
      t.draw(0);
      t.accept(0);
    }
    // 5 requests and 5 accepts; failures push p above 0 only past 10 requests.
    for (let i = 0; i < 6; i++) t.draw(0);
    expect(draws).toBe(0);
    t.draw(0);
    expect(draws).toBe(1);
  });
});

describe('admission on a mesh', () => {
  /** A mesh with a manual clock and seeded random, failing calls unless `healthy`. */
  function rig(): { mesh: Mesh; clock: { t: number }; state: { healthy: boolean }; events: string[] } {
    const clock = { t: 0 };
    const state = { healthy: false };
    const mesh = createMesh({
      registry: staticRegistry({ api: ['127.0.0.1:1'] }),
      clock: { now: () => clock.t },
      random: seededRng(42),
      services: { api: { admission: policy, breaker: false, outlier: false, retry: false } },
    });
    const events: string[] = [];
    mesh.on('rejected', (e) => events.push(e.reason));
    return { mesh, clock, state, events };
  }

  /** One call per 10 ms for `ms`: how many were rejected locally, and the highest probability one was drawn against. */
  async function run(r: ReturnType<typeof rig>, ms: number): Promise<{ calls: number; local: number; maxP: number; sent: number }> {
    let local = 0;
    let sent = 0;
    let maxP = 0;
    const calls = ms / 10;
    for (let i = 0; i < calls; i++) {
      r.clock.t += 10;
      try {
        await r.mesh.call('api', async () => {
          sent++;
          if (!r.state.healthy) throw new Error('down');
          return 'ok';
        });
      } catch (error) {
        if (error instanceof AdmissionRejectedError) {
          local++;
          maxP = Math.max(maxP, error.probability);
        } else {
          expect(error).toBeInstanceOf(CallFailedError);
        }
      }
    }
    return { calls, local, maxP, sent };
  }

  it('a backend failing 100 %: at least 40 % rejected locally, never past the cap; recovered: below 5 % within 3 windows', async () => {
    const r = rig();
    const down = await run(r, 20_000); // two windows of failures
    expect(down.local / down.calls).toBeGreaterThanOrEqual(0.4);
    expect(down.local / down.calls).toBeLessThanOrEqual(0.8);
    expect(down.maxP).toBeLessThanOrEqual(0.8);
    expect(down.sent).toBe(down.calls - down.local); // a local rejection sends nothing
    r.state.healthy = true;
    const windows = [await run(r, 10_000), await run(r, 10_000), await run(r, 10_000)];
    const rates = windows.map((w) => w.local / w.calls);
    // Measured (seed 42): 79.9 % while down; then 70.3 %, 8 % and 0 % per window. The first window still holds
    // the failures; the second starts from 2 × 0.70 − 1 = 40 % and falls as the first one ages out.
    expect(rates[0]).toBeLessThan(down.local / down.calls);
    expect(rates[2]).toBeLessThan(0.05);
    expect(r.events.filter((e) => e === 'admission').length).toBe(down.local + windows.reduce((n, w) => n + w.local, 0));
    // Counted: the `rejected` outcome, its own counter, and the probability now (zero again).
    const f = parseExposition(r.mesh.metrics());
    const local = down.local + windows.reduce((n, w) => n + w.local, 0);
    expect(value(f, 'proxyless_admission_rejections_total', { service: 'api' })).toBe(local);
    expect(value(f, 'proxyless_requests_total', { service: 'api', outcome: 'rejected' })).toBe(local);
    expect(value(f, 'proxyless_bulkhead_rejections_total', { service: 'api' })).toBe(0);
    expect(value(f, 'proxyless_admission_reject_probability', { service: 'api' })).toBe(0);
    const snap = r.mesh.snapshot().services.api!;
    expect(snap.admission!.rejectProbability).toBe(0);
    expect(snap.admission!.accepts).toBe(snap.admission!.requests); // the last window: every call succeeded
    expect(snap.admission!.requests).toBeGreaterThan(800);
    await r.mesh.close();
  });

  it('the window survives a configure that keeps it; admission: false drops it', async () => {
    const r = rig();
    await run(r, 2_000);
    const before = r.mesh.snapshot().services.api!.admission!;
    expect(before.rejectProbability).toBeGreaterThan(0.5);
    r.mesh.configure({ services: { api: { admission: { ...policy, maxRejectPercent: 50 }, breaker: false, outlier: false, retry: false } } });
    const kept = r.mesh.snapshot().services.api!.admission!;
    expect(kept.requests).toBe(before.requests);
    expect(kept.rejectProbability).toBe(0.5);
    r.mesh.configure({ services: { api: { admission: false, breaker: false, outlier: false, retry: false } } });
    expect(r.mesh.snapshot().services.api!.admission).toBeNull();
    const off = await run(r, 1_000);
    expect(off.local).toBe(0);
    await r.mesh.close();
  });
});
