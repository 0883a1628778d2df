// Issue 12's Kubernetes acceptance, in the loop's DEFAULT timing (backoff 1 s doubling to 30 s, idleTimeoutMs
// 150 s, watches of 300-600 s) on fake timers: a dropped watch, a 410 after a drop and an outage, each with the
// time from the disruption to the change being published. (The tests against the double use short backoffs to
// stay fast; these show that the defaults meet the 5 s.)
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HEALTHY_WATCH_MS } from '../../src/discovery/kubernetes/loop.js';
import { advance, fakeApi, loops, recorder, timing } from '../helpers/kube-double-source.js';

const ACCEPTANCE_MS = 5_000;
const running = loops();
beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  running.stopAll();
  vi.useRealTimers();
});

/** A loop on `fakeApi`, with the default timing, listed and watching; `seen(ips)` is when that set was published. */
async function following() {
  const api = fakeApi(['10.0.0.1', '10.0.0.2']);
  const r = recorder();
  const at: number[] = [];
  const loop = running.start(api.source, timing(), { ...r.handlers, update: (list) => (r.handlers.update(list), at.push(Date.now())) });
  await advance(0);
  expect(r.updates).toEqual([['10.0.0.1', '10.0.0.2']]);
  const seen = (...ips: string[]): number | undefined => {
    const i = r.updates.findIndex((u) => u.join() === [...ips].sort().join());
    return i < 0 ? undefined : at[i];
  };
  /** Moves time on in 100 ms steps until `ips` is published (at most `limit`); returns how long it took. */
  const until = async (limit: number, ...ips: string[]): Promise<number> => {
    const from = Date.now();
    for (let t = 0; seen(...ips) === undefined && t <= limit; t += 100) await advance(100);
    const when = seen(...ips);
    expect(when, `${ips.join(', ')} not published within ${limit} ms`).toBeDefined();
    return when! - from;
  };
  return { api, r, loop, until };
}

/** An outage of `ms` from now: the watch drops, every request is refused, then the API is back. */
async function outage(api: ReturnType<typeof fakeApi>, ms: number): Promise<void> {
  api.goDown();
  await advance(ms);
  api.comeBack();
}

describe('the loop in its default timing', () => {
  it(`a dropped watch is recovered within ${ACCEPTANCE_MS / 1_000} s: at once, also soon after an outage`, async () => {
    const { api, r, loop, until } = await following();
    await advance(2 * 60_000);
    api.drop();
    api.change('10.0.0.3');
    expect(await until(ACCEPTANCE_MS, '10.0.0.3')).toBe(0);

    // Failures in a row (a 20 s outage), then a drop 10 s after recovery, long before the streak is forgotten.
    await outage(api, 20_000);
    for (let t = 0; loop.state.kind !== 'watching' && t < 30_000; t += 100) await advance(100);
    expect(loop.state).toMatchObject({ kind: 'watching' });
    await advance(10_000);
    api.drop();
    api.change('10.0.0.4');
    expect(await until(ACCEPTANCE_MS, '10.0.0.4')).toBe(0);
    expect(r.updates.some((u) => u.length === 0)).toBe(false);
  });

  it(`a drop whose reconnects are refused a while (an API server restart) is recovered within ${ACCEPTANCE_MS / 1_000} s`, async () => {
    const { api, r, until } = await following();
    await advance(HEALTHY_WATCH_MS);
    api.goDown();
    api.change('10.0.0.3');
    const back = advance(2_500).then(() => api.comeBack());
    const took = await until(ACCEPTANCE_MS, '10.0.0.3');
    await back;
    expect(took).toBe(3_000); // refused at 0 s and 1 s; the try at 3 s works
    expect(r.errors).toHaveLength(2); // the refused reconnects, not the drop
  });

  it(`a drop, then 410 Gone on resume (history compacted meanwhile): relisted at once, the change seen within ${ACCEPTANCE_MS / 1_000} s`, async () => {
    for (const http of [true, false]) {
      const { api, r, loop, until } = await following();
      await advance(30_000);
      api.drop();
      api.compact({ http });
      api.change('10.0.0.3');
      expect(await until(ACCEPTANCE_MS, '10.0.0.3'), `http ${http}`).toBe(0);
      expect(loop.counts.relists).toBe(1);
      expect(r.errors).toEqual([]);
      // Even with failures just before (a 3 s outage, then history compacted while it lasted).
      await outage(api, 3_000);
      api.compact({ http });
      api.change('10.0.0.4');
      expect(await until(ACCEPTANCE_MS, '10.0.0.4')).toBeLessThanOrEqual(ACCEPTANCE_MS);
      running.stopAll();
    }
  });

  it('an outage serves the last good list, reports each refused reconnect, and recovers within the backoff step after', async () => {
    const { api, r, loop, until } = await following();
    await advance(HEALTHY_WATCH_MS);
    api.goDown();
    api.change('10.0.0.3'); // made while the API server is unreachable to us
    await advance(4_000);
    expect(loop.endpoints!.map((e) => e.host).sort()).toEqual(['10.0.0.1', '10.0.0.2']); // the last good list
    expect(r.errors.map((e) => e.message)).toEqual(Array(3).fill('connect ECONNREFUSED 10.96.0.1:443')); // at 0, 1 and 3 s
    expect(loop.state).toMatchObject({ kind: 'backing-off', failures: 3 });
    api.comeBack();
    expect(await until(30_000, '10.0.0.3')).toBe(3_000); // the next try, at 7 s: within 5 s of the end
    expect(r.updates.some((u) => u.length === 0)).toBe(false);
    // A long outage: the delay grows to 30 s at most, so recovery takes at most that long after the end.
    await advance(HEALTHY_WATCH_MS);
    await outage(api, 5 * 60_000);
    api.change('10.0.0.5');
    expect(await until(31_000, '10.0.0.5')).toBeLessThanOrEqual(30_000);
  });
});
