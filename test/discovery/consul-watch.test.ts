import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BlockingLoop, nextIndex, WatchHub, type BlockingAnswer, type LoopTiming } from '../../src/discovery/consul-watch.js';
import { endpointsKey } from '../../src/discovery/subscribers.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { deferred, eps, flush, type Deferred } from './fakes.js';

/** A blocking query the test answers by hand: one Deferred per request, with the index it was sent. */
function scriptedQuery<T>() {
  const calls: { index: bigint; signal: AbortSignal; at: number; result: Deferred<BlockingAnswer<T>> }[] = [];
  const query = vi.fn((index: bigint, signal: AbortSignal) => {
    const result = deferred<BlockingAnswer<T>>();
    calls.push({ index, signal, at: Date.now(), result });
    return result.promise;
  });
  return {
    query,
    calls,
    last: () => calls.at(-1)!,
    async answer(index: bigint, value: T): Promise<void> {
      calls.at(-1)!.result.resolve({ index, value });
      await flush();
    },
    async fail(error = new Error('boom')): Promise<void> {
      calls.at(-1)!.result.reject(error);
      await flush();
    },
  };
}

const timing = (over: Partial<LoopTiming> = {}): LoopTiming => ({
  minIntervalMs: 0,
  burst: 2,
  backoffInitialMs: 1_000,
  backoffMaxMs: 30_000,
  now: () => Date.now(),
  random: () => 0.5, // no jitter: 0.8 + 0.4 × 0.5 = 1
  ...over,
});

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('nextIndex (Consul blocking-query client rules)', () => {
  it('follows a growing index', () => {
    expect(nextIndex(0n, 47n)).toBe(47n);
    expect(nextIndex(47n, 47n)).toBe(47n); // a timeout returns the same index
    expect(nextIndex(47n, 52n)).toBe(52n);
  });
  it('resets to 0 when the index goes backwards', () => {
    expect(nextIndex(47n, 12n)).toBe(0n);
    expect(nextIndex(47n, 0n)).toBe(0n);
  });
  it('never sends 0 back after a response: an index <= 0 becomes 1, so the next request blocks', () => {
    expect(nextIndex(0n, 0n)).toBe(1n);
    expect(nextIndex(1n, 1n)).toBe(1n);
  });
  it('keeps precision beyond 2^53', () => {
    expect(nextIndex(9007199254740993n, 9007199254740995n)).toBe(9007199254740995n);
  });
});

describe('BlockingLoop', () => {
  it('sends the index back, resets to 0 when it goes backwards, and uses 1 after an index of 0', async () => {
    const q = scriptedQuery<string>();
    const answers: string[] = [];
    const loop = new BlockingLoop(q.query, timing(), (a) => answers.push(a.value), () => {});
    await flush();
    expect(q.last().index).toBe(0n);
    await q.answer(47n, 'a');
    expect(q.last().index).toBe(47n);
    await q.answer(47n, 'a'); // wait expired, nothing new
    expect(q.last().index).toBe(47n);
    await q.answer(12n, 'b'); // snapshot restore: backwards
    expect(q.last().index).toBe(0n);
    await q.answer(0n, 'b'); // Consul bug: index 0
    expect(q.last().index).toBe(1n);
    await q.answer(0n, 'b'); // still 0 after the wait: not "backwards" (1 was ours, not Consul's)
    expect(q.last().index).toBe(1n);
    await q.answer(13n, 'c');
    expect(q.last().index).toBe(13n);
    expect(answers).toEqual(['a', 'a', 'b', 'b', 'b', 'c']);
    loop.stop();
  });

  it('delivers answers at once, then rate-limits churn with a token bucket (burst 2, one per minIntervalMs)', async () => {
    const q = scriptedQuery<number>();
    const loop = new BlockingLoop(q.query, timing({ minIntervalMs: 1_000 }), () => {}, () => {});
    await flush();
    const start = Date.now();
    await q.answer(1n, 1); // token 1 was spent on the first request, token 2 now
    expect(q.calls).toHaveLength(2);
    await q.answer(2n, 2); // bucket empty: the third request waits for a token
    expect(q.calls).toHaveLength(2);
    expect(loop.state.kind).toBe('rate-limited');
    await vi.advanceTimersByTimeAsync(999);
    expect(q.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(q.calls).toHaveLength(3);
    expect(q.last().at - start).toBe(1_000);
    // a quiet period refills the bucket: two quick answers pass again without waiting
    await vi.advanceTimersByTimeAsync(5_000);
    await q.answer(3n, 3);
    await q.answer(4n, 4);
    expect(q.calls).toHaveLength(5);
    loop.stop();
  });

  it('backs off exponentially with jitter after errors, capped, reports each error, and restarts from index 0', async () => {
    const q = scriptedQuery<number>();
    const errors: Error[] = [];
    let r = 0.5;
    const loop = new BlockingLoop(q.query, timing({ backoffInitialMs: 100, backoffMaxMs: 1_000, random: () => r }), () => {}, (e) => errors.push(e));
    await flush();
    await q.answer(40n, 1);
    expect(q.last().index).toBe(40n);
    const gaps: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = Date.now();
      await q.fail(new Error(`down ${i}`));
      expect(loop.state).toMatchObject({ kind: 'backing-off', failures: i + 1 });
      await vi.advanceTimersToNextTimerAsync();
      gaps.push(Date.now() - before);
      expect(q.last().index).toBe(0n); // after a failure the loop restarts non-blocking
    }
    expect(gaps).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(errors.map((e) => e.message)).toEqual(['down 0', 'down 1', 'down 2', 'down 3', 'down 4', 'down 5']);

    // jitter: ±20 %, still capped
    r = 0;
    await q.fail();
    expect((loop.state as { untilMs: number }).untilMs - Date.now()).toBeCloseTo(800, 5);
    await vi.advanceTimersToNextTimerAsync();
    r = 1;
    await q.answer(41n, 1); // a success resets the failure count
    await q.fail();
    expect((loop.state as { untilMs: number }).untilMs - Date.now()).toBeCloseTo(120, 5);
    loop.stop();
  });

  it('stop() aborts the request in flight and leaves no timer, whether querying, rate-limited or backing off', async () => {
    const q = scriptedQuery<number>();
    const a = new BlockingLoop(q.query, timing(), () => {}, () => {});
    await flush();
    const inflight = q.last().signal;
    a.stop();
    expect(inflight.aborted).toBe(true);
    expect(a.state.kind).toBe('stopped');
    await q.answer(5n, 1); // a late answer is ignored
    expect(q.calls).toHaveLength(1);

    const b = new BlockingLoop(q.query, timing(), () => {}, () => {});
    await flush();
    await q.fail();
    expect(b.state.kind).toBe('backing-off');
    expect(vi.getTimerCount()).toBe(1);
    b.stop();
    expect(vi.getTimerCount()).toBe(0);

    const c = new BlockingLoop(q.query, timing({ minIntervalMs: 10_000 }), () => {}, () => {});
    await flush();
    await q.answer(1n, 1);
    await q.answer(2n, 2);
    expect(c.state.kind).toBe('rate-limited');
    c.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(q.calls).toHaveLength(4); // a: 1, b: 1, c: 2, and nothing after stop()
  });

  it('a throwing handler does not end the loop', async () => {
    const q = scriptedQuery<number>();
    const loop = new BlockingLoop(q.query, timing(), () => { throw new Error('handler'); }, () => { throw new Error('handler'); });
    await flush();
    await q.answer(1n, 1);
    await q.fail();
    await vi.advanceTimersToNextTimerAsync();
    expect(q.calls).toHaveLength(3);
    loop.stop();
  });
});

describe('WatchHub', () => {
  const A = eps({ host: '127.0.0.1', port: 8081, id: 'a@n' });
  const AB = eps({ host: '127.0.0.1', port: 8081, id: 'a@n' }, { host: '127.0.0.1', port: 8082, id: 'b@n' });

  function hub() {
    const q = scriptedQuery<readonly Endpoint[]>();
    const queryFor = vi.fn((_service: string) => q.query);
    return { q, queryFor, hub: new WatchHub(queryFor, timing()) };
  }

  it('runs one loop per service for every subscriber, and pushes only lists that changed', async () => {
    const { q, queryFor, hub: h } = hub();
    const one: string[][] = [];
    const two: string[][] = [];
    const stopOne = h.subscribe('users', (l) => one.push(l.map((e) => e.id)), () => {});
    const stopTwo = h.subscribe('users', (l) => two.push(l.map((e) => e.id)), () => {});
    await flush();
    expect(queryFor).toHaveBeenCalledTimes(1);
    expect(q.calls).toHaveLength(1);
    await q.answer(10n, A);
    await q.answer(10n, eps({ host: '127.0.0.1', port: 8081, id: 'a@n' })); // same content, new objects
    await q.answer(11n, [...A].reverse()); // same set, another order
    await q.answer(12n, AB);
    expect(one).toEqual([['a@n'], ['a@n', 'b@n']]);
    expect(two).toEqual(one);

    stopOne();
    await q.answer(13n, A);
    expect(one).toHaveLength(2);
    expect(two).toHaveLength(3);
    const signal = q.last().signal;
    stopTwo();
    expect(signal.aborted).toBe(true);
    expect(h.size).toBe(0);
    stopTwo(); // twice is harmless
  });

  it('hands a late subscriber the current list (it may have resolved before the last change)', async () => {
    const { q, hub: h } = hub();
    h.subscribe('users', () => {}, () => {});
    await flush();
    await q.answer(10n, AB);
    const late: string[][] = [];
    const stop = h.subscribe('users', (l) => late.push(l.map((e) => e.id)), () => {});
    expect(late).toEqual([]); // not re-entrant: delivered in a microtask
    await flush();
    expect(late).toEqual([['a@n', 'b@n']]);
    stop();
  });

  it('a watch that starts right after resolve() blocks from its index and does not push the same list again', async () => {
    const { q, hub: h } = hub();
    h.seed('users', 47n, A);
    const heard: string[][] = [];
    h.subscribe('users', (l) => heard.push(l.map((e) => e.id)), () => {});
    await flush();
    expect(q.last().index).toBe(47n);
    await q.answer(47n, A);
    expect(heard).toEqual([]);
    await q.answer(48n, AB);
    expect(heard).toEqual([['a@n', 'b@n']]);
  });

  it('errors reach every subscriber; a subscriber whose onUpdate throws hears its own error, the others still update', async () => {
    const { q, hub: h } = hub();
    const errors: string[] = [];
    const heard: number[] = [];
    h.subscribe('users', () => { throw new Error('bad subscriber'); }, (e) => errors.push(`1:${e.message}`));
    h.subscribe('users', (l) => heard.push(l.length), (e) => errors.push(`2:${e.message}`));
    await flush();
    await q.answer(5n, A);
    expect(heard).toEqual([1]);
    expect(errors).toEqual(['1:bad subscriber']);
    await q.fail(new Error('consul down'));
    expect(errors).toEqual(['1:bad subscriber', '1:consul down', '2:consul down']);
  });

  it('endpointsKey ignores order and sees every field', () => {
    const base = eps({ host: '127.0.0.1', port: 1, id: 'x', tags: ['a'], meta: { k: 'v' }, zone: 'z', weight: 2 });
    expect(endpointsKey(base)).toBe(endpointsKey(eps({ host: '127.0.0.1', port: 1, id: 'x', tags: ['a'], meta: { k: 'v' }, zone: 'z', weight: 2 })));
    for (const other of [
      { weight: 3 }, { zone: 'y' }, { tags: ['b'] }, { meta: { k: 'w' } }, { port: 2 },
    ]) {
      expect(endpointsKey(eps({ host: '127.0.0.1', port: 1, id: 'x', tags: ['a'], meta: { k: 'v' }, zone: 'z', weight: 2, ...other }))).not.toBe(endpointsKey(base));
    }
  });
});
