// The list+watch loop alone, against a scripted source, on fake timers: what it requests, when, what it
// publishes, and what it reports. Failures and their timing: kubernetes-loop-failures.test.ts and
// kubernetes-loop-acceptance.test.ts.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KubernetesError } from '../../src/discovery/kubernetes/http.js';
import { selectEndpoints } from '../../src/discovery/kubernetes/slices.js';
import { loops, modified, recorder, scriptedSource, slice, snap, timing } from '../helpers/kube-double-source.js';
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

describe('ListWatchLoop', () => {
  it('lists, watches from the list resourceVersion, applies events per chunk, and follows bookmarks', async () => {
    const s = scriptedSource();
    const r = recorder();
    const loop = start(s.source, timing({ idleTimeoutMs: 1_000_000 }), r.handlers);
    await flush();
    expect(s.lists).toHaveLength(1);
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    expect(r.updates).toEqual([['10.0.0.1']]);
    expect(s.watches.map((w) => [w.resourceVersion, w.timeoutSeconds])).toEqual([['10', 450]]);
    expect(loop.state).toEqual({ kind: 'watching', resourceVersion: '10' });

    // Two events in one chunk (a pod moves from slice a to slice b): one publish, never the gap between them.
    s.lastWatch().send(modified('11', slice('a')), modified('12', slice('b', '10.0.0.1', '10.0.0.2')));
    expect(r.updates).toEqual([['10.0.0.1'], ['10.0.0.1', '10.0.0.2']]);
    s.lastWatch().send({ type: 'DELETED', resourceVersion: '13', slice: slice('b') });
    expect(r.updates.at(-1)).toEqual([]);
    s.lastWatch().send({ type: 'BOOKMARK', resourceVersion: '40' });
    expect(r.updates).toHaveLength(3); // a bookmark publishes nothing

    // The server ends the stream at its timeout: watch again at once, from the bookmark's resourceVersion.
    vi.advanceTimersByTime(450_000);
    s.lastWatch().done.resolve();
    await flush();
    expect(s.watches.map((w) => w.resourceVersion)).toEqual(['10', '40']);
    expect(s.lists).toHaveLength(1);
    expect(r.errors).toEqual([]);
  });

  it('backs off 1 s, 2 s, 4 s ... up to 30 s between failed lists, reports each, and keeps the last list', async () => {
    const s = scriptedSource();
    const r = recorder();
    const loop = start(s.source, timing(), r.handlers);
    await flush();
    const failAt: number[] = [];
    for (let i = 0; i < 7; i++) {
      s.lists.at(-1)!.result.reject(new KubernetesError('users', 'status', `answered 500 (${i})`, { status: 500 }));
      await flush();
      failAt.push(Date.now());
      const state = loop.state;
      expect(state.kind).toBe('backing-off');
      const wait = (state as { untilMs: number }).untilMs - Date.now();
      vi.advanceTimersByTime(wait - 1);
      await flush();
      expect(s.lists).toHaveLength(i + 1); // not a millisecond early
      vi.advanceTimersByTime(1);
      await flush();
      expect(s.lists).toHaveLength(i + 2);
    }
    const gaps = failAt.slice(1).map((t, i) => t - failAt[i]!);
    expect(gaps).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000]);
    expect(r.errors.map((e) => e.message)).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `answered 500 (${i})`));
    expect(r.updates).toEqual([]);
  });

  it('jitters each delay by ±20 %', async () => {
    for (const [random, expected] of [[0, 800], [0.999999, 1_200]] as const) {
      const s = scriptedSource();
      const loop = start(s.source, timing({ random: () => random }), recorder().handlers);
      await flush();
      s.lists[0]!.result.reject(new Error('down'));
      await flush();
      expect(Math.round((loop.state as { untilMs: number }).untilMs - Date.now())).toBe(expected);
      loop.stop();
    }
  });

  it('relists after a garbage line or a non-410 ERROR event, reporting each; the good list between does not reset the backoff', async () => {
    const s = scriptedSource();
    const r = recorder();
    start(s.source, timing(), r.handlers);
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    s.lastWatch().done.reject(new KubernetesError('users', 'garbage', 'a watch line is not JSON (5 bytes)'));
    await flush();
    vi.advanceTimersByTime(1_000);
    await flush();
    expect(s.lists).toHaveLength(2);
    s.lists[1]!.result.resolve(snap('30', slice('a', '10.0.0.1')));
    await flush();
    s.lastWatch().send({ type: 'ERROR', code: 500, reason: 'InternalError', message: 'etcd timed out' });
    await flush();
    vi.advanceTimersByTime(1_999);
    await flush();
    expect(s.lists).toHaveLength(2); // the second failure in a row waits 2 s
    vi.advanceTimersByTime(1);
    await flush();
    expect(s.lists).toHaveLength(3);
    expect(r.errors.map((e) => (e as KubernetesError).kind)).toEqual(['garbage', 'watch-error']);
    expect(r.errors[1]!.message).toMatch(/ERROR event: 500 InternalError: etcd timed out/);
    expect(r.updates).toEqual([['10.0.0.1']]); // the same list, relisted twice: published once
  });

  it('retries a watch that failed to open from the same resourceVersion, reporting it', async () => {
    const s = scriptedSource();
    const r = recorder();
    start(s.source, timing(), r.handlers);
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    s.lastWatch().done.reject(new KubernetesError('users', 'status', 'answered 503', { status: 503 }));
    await flush();
    vi.advanceTimersByTime(1_000);
    await flush();
    expect(s.watches.map((w) => w.resourceVersion)).toEqual(['10', '10']);
    expect(s.lists).toHaveLength(1);
    expect(r.errors).toHaveLength(1);
  });

  it('survives handlers that throw, and a selection error is reported without publishing', async () => {
    const s = scriptedSource();
    let selectFails = false;
    const errors: string[] = [];
    const loop = start(s.source, timing(), {
      service: 'users',
      select: (slices) => {
        if (selectFails) throw new Error('several ports');
        return selectEndpoints('users', slices, undefined);
      },
      update: () => {
        throw new Error('subscriber broke');
      },
      error: (e) => {
        errors.push(e.message);
        throw new Error('error handler broke too');
      },
    });
    await flush();
    s.lists[0]!.result.resolve(snap('10', slice('a', '10.0.0.1')));
    await flush();
    s.lastWatch().send(modified('11', slice('a', '10.0.0.2')));
    expect(loop.endpoints?.map((e) => e.host)).toEqual(['10.0.0.2']);
    selectFails = true;
    s.lastWatch().send(modified('12', slice('a', '10.0.0.3')));
    expect(errors).toEqual(['several ports']);
    expect(loop.endpoints?.map((e) => e.host)).toEqual(['10.0.0.2']);
    expect(loop.state).toEqual({ kind: 'watching', resourceVersion: '12' });
  });

  it('starts from a seed without listing or publishing, and stop() leaves no timer behind', async () => {
    const s = scriptedSource();
    const r = recorder();
    const loop = start(s.source, timing(), r.handlers, snap('77', slice('a', '10.0.0.9')));
    expect(loop.endpoints?.map((e) => e.host)).toEqual(['10.0.0.9']);
    await flush();
    expect(s.lists).toHaveLength(0);
    expect(s.lastWatch().resourceVersion).toBe('77');
    expect(r.updates).toEqual([]);
    s.lastWatch().done.reject(new Error('network down'));
    await flush();
    expect(loop.state.kind).toBe('backing-off');
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    loop.stop();
    await flush();
    expect(loop.state).toEqual({ kind: 'stopped' });
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    await flush();
    expect(s.watches).toHaveLength(1);
  });
});
