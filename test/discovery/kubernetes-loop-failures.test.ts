// How the list+watch loop fails and recovers, on fake timers: the backoff streak and what resets it, short
// watches (no busy loop), idle drops on a quiet service (no error), and 410 Gone in the order servers send it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KubernetesError } from '../../src/discovery/kubernetes/http.js';
import { HEALTHY_WATCH_MS } from '../../src/discovery/kubernetes/loop.js';
import { advance, bookmark, gone, loops, modified, recorder, scriptedSource, slice, snap, timing } from '../helpers/kube-double-source.js';
import { flush } from './fakes.js';

const running = loops();
const start = running.start;
beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  running.stopAll();
  vi.useRealTimers();
});
const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);
const garbage = () => new KubernetesError('users', 'garbage', 'a watch line is not JSON (5 bytes)');
const http410 = () => new KubernetesError('users', 'gone', 'answered 410 Expired: too old resource version', { status: 410, reason: 'Expired' });

describe('ListWatchLoop: the backoff streak', () => {
  it('a list that works and a watch that always breaks: relists 1 s, 2 s, 4 s ... 30 s apart; good lists do not reset it', async () => {
    let rv = 10;
    const s = scriptedSource({ list: (l) => l.result.resolve(snap(String(rv++), slice('a', '10.0.0.1'))), watch: (w) => w.done.reject(garbage()) });
    const r = recorder();
    start(s.source, timing(), r.handlers);
    await advance(3_000);
    expect(s.lists).toHaveLength(3); // t = 0, 1 s, 3 s (29 in 3 s, at a 100 ms backoff, before)
    await advance(120_000);
    expect(gaps(s.lists.map((l) => l.at)).slice(0, 7)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    expect(r.errors.length).toBe(s.watches.length); // each one reported
    expect(r.updates).toEqual([['10.0.0.1']]);
  });

  it('an HTTP 410 for every watch from its own list: relists back off, growing, and are reported from the third', async () => {
    let rv = 10;
    const s = scriptedSource({ list: (l) => l.result.resolve(snap(String(rv++), slice('a', '10.0.0.1'))), watch: (w) => w.done.reject(http410()) });
    const r = recorder();
    const loop = start(s.source, timing(), r.handlers);
    await advance(20_000);
    expect(gaps(s.lists.map((l) => l.at))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(loop.counts.relists).toBe(5);
    expect(r.errors).toHaveLength(3); // the 3rd, 4th and 5th in a row
    expect(r.errors[0]).toBeInstanceOf(KubernetesError);
    expect(r.errors[0]!.message).toMatch(/answered 410 Expired.*\(for the resourceVersion its list had just returned; failure 3 in a row, backing off\)/);
    expect((r.errors[0] as KubernetesError).status).toBe(410);
  });

  it(`starts over once a watch has stayed open ${HEALTHY_WATCH_MS / 1_000} s, and only then`, async () => {
    const s = scriptedSource();
    const loop = start(s.source, timing(), recorder().handlers);
    await flush();
    for (const wait of [1_000, 2_000, 4_000]) {
      s.lastList().result.reject(new KubernetesError('users', 'unreachable', 'ECONNREFUSED'));
      await advance(wait);
    }
    s.lastList().result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    await advance(30_000); // open, but not for long enough
    s.lastWatch().done.reject(new KubernetesError('users', 'status', 'answered 500', { status: 500 }));
    await flush();
    expect(loop.state).toMatchObject({ kind: 'backing-off', failures: 4, untilMs: Date.now() + 8_000 });
    await advance(8_000);
    await advance(HEALTHY_WATCH_MS);
    s.lastWatch().done.reject(new KubernetesError('users', 'status', 'answered 500', { status: 500 }));
    await flush();
    expect(loop.state).toMatchObject({ kind: 'backing-off', failures: 1, untilMs: Date.now() + 1_000 });
  });
});

describe('ListWatchLoop: short watches', () => {
  it('a server answering each watch with one BOOKMARK and ending it: watches 1 s, 2 s, 4 s apart, not at once', async () => {
    let n = 0;
    const s = scriptedSource({
      watch: (w) => {
        if (++n > 50) return; // (stops a busy loop from running forever)
        w.send(bookmark(String(100 + n)));
        w.done.resolve();
      },
    });
    const r = recorder();
    start(s.source, timing(), r.handlers);
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await advance(7_000);
    expect(s.watches.map((w) => w.at - s.watches[0]!.at)).toEqual([0, 1_000, 3_000, 7_000]);
    expect(s.watches.map((w) => w.resourceVersion)).toEqual(['10', '101', '102', '103']); // each resumes from the bookmark
    expect(s.lists).toHaveLength(1);
    expect(r.errors.map((e) => e.message)).toEqual([
      'the watch ended 0 ms after it started (within 1000 ms of starting; failure 3 in a row, backing off)',
      'the watch ended 0 ms after it started (within 1000 ms of starting; failure 4 in a row, backing off)',
    ]);
  });

  it('a watch dropped right after an event backs off too; one dropped after a second or more resumes at once', async () => {
    const s = scriptedSource();
    const r = recorder();
    start(s.source, timing(), r.handlers);
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    s.lastWatch().send(modified('15', slice('a', '10.0.0.2')));
    s.lastWatch().done.reject(new KubernetesError('users', 'broken', 'the watch broke: aborted'));
    await advance(999);
    expect(s.watches).toHaveLength(1);
    await advance(1);
    expect(s.watches.map((w) => w.resourceVersion)).toEqual(['10', '15']);
    await advance(1_000);
    s.lastWatch().done.reject(new KubernetesError('users', 'broken', 'the watch broke: aborted'));
    await flush();
    expect(s.watches.map((w) => w.resourceVersion)).toEqual(['10', '15', '15']);
    expect(r.errors).toEqual([]);
    expect(r.updates).toEqual([['10.0.0.1'], ['10.0.0.2']]);
  });
});

describe('ListWatchLoop: a quiet Service', () => {
  it('an idle drop every idleTimeoutMs is a plain reconnect: no error and no growing delay, even after 15 min', async () => {
    const s = scriptedSource();
    const r = recorder();
    const loop = start(s.source, timing(), r.handlers); // the default idleTimeoutMs, 150 s
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    for (let i = 1; i <= 6; i++) {
      await advance(149_999);
      expect(s.watches).toHaveLength(i);
      await advance(1);
      expect(s.watches[i - 1]!.signal.aborted).toBe(true);
      expect(s.watches).toHaveLength(i + 1); // at once, from the same resourceVersion
      expect(loop.state).toEqual({ kind: 'watching', resourceVersion: '10' });
    }
    expect(s.watches.every((w) => w.resourceVersion === '10')).toBe(true);
    expect(s.lists).toHaveLength(1);
    expect(r.errors).toEqual([]);
    // The reconnect itself failing is reported, and waits the first step only.
    await advance(150_000);
    s.lastWatch().done.reject(new KubernetesError('users', 'unreachable', 'connect ECONNREFUSED'));
    await flush();
    expect(r.errors.map((e) => e.message)).toEqual(['connect ECONNREFUSED']);
    expect(loop.state).toMatchObject({ kind: 'backing-off', failures: 1, untilMs: Date.now() + 1_000 });
  });
});

describe('ListWatchLoop: 410 Gone', () => {
  async function watchingFrom15() {
    const s = scriptedSource();
    const r = recorder();
    const loop = start(s.source, timing(), r.handlers);
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1', '10.0.0.2')));
    await flush();
    s.lastWatch().send(modified('15', slice('a', '10.0.0.1', '10.0.0.2', '10.0.0.3')));
    await advance(100_000);
    s.lastWatch().done.reject(new KubernetesError('users', 'broken', 'the watch broke: ECONNRESET')); // an API server restart
    await flush();
    expect(s.lastWatch().resourceVersion).toBe('15'); // resumed at once
    return { s, r, loop };
  }

  it('an ERROR 410 as the first line of a resumed watch relists at once, and publishes only the difference', async () => {
    const { s, r, loop } = await watchingFrom15();
    s.lastWatch().send(gone('15'));
    await flush();
    expect(s.lists).toHaveLength(2); // no timer moved: at once
    expect(loop.state).toEqual({ kind: 'listing' });
    s.lists[1]!.result.resolve(snap('900', slice('a2', '10.0.0.1', '10.0.0.2', '10.0.0.3'))); // same set, other slice
    await flush();
    expect(s.lastWatch().resourceVersion).toBe('900');
    expect(r.updates).toEqual([['10.0.0.1', '10.0.0.2'], ['10.0.0.1', '10.0.0.2', '10.0.0.3']]);
    expect(loop.counts).toMatchObject({ lists: 2, relists: 1 });
    expect(r.errors).toEqual([]); // 410 is the protocol, not a failure
  });

  it('an HTTP 410 to a resumed watch relists at once; a relist that changes the set publishes it whole', async () => {
    const { s, r } = await watchingFrom15();
    s.lastWatch().done.reject(http410());
    await flush();
    expect(s.lists).toHaveLength(2);
    s.lists[1]!.result.resolve(snap('950', slice('a3', '10.0.0.2')));
    await flush();
    expect(r.updates.at(-1)).toEqual(['10.0.0.2']);
    expect(r.updates.some((u) => u.length === 0)).toBe(false);
    expect(r.errors).toEqual([]);
  });

  it("a 410 for the list's own resourceVersion relists at once when the watch had been open, after a backoff when at once", async () => {
    const s = scriptedSource();
    const r = recorder();
    start(s.source, timing(), r.handlers);
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    await advance(10 * 60_000); // a quiet Service without bookmarks: its resourceVersion ages
    s.lastWatch().send(gone('10'));
    await flush();
    expect(s.lists).toHaveLength(2);
    s.lists[1]!.result.resolve(snap('20', slice('a', '10.0.0.1')));
    await flush();
    s.lastWatch().done.reject(http410()); // at once, for what the list just returned: relisting now would loop
    await advance(999);
    expect(s.lists).toHaveLength(2);
    await advance(1);
    expect(s.lists).toHaveLength(3);
    expect(r.errors).toEqual([]); // once is not yet worth a report
  });
});
