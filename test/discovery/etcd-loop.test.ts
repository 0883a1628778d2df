// etcdRegistry's list+watch loop against the fake gateway (test/helpers/etcd-fake.ts) with fake timers.
import { describe, expect, it, vi } from 'vitest';
import { DiscoveryError } from '../../src/errors.js';
import { b64, E1, ep, fake, flush, ids, make, useFakeEtcd, watch } from '../helpers/etcd-fake.js';

useFakeEtcd();

describe('etcdRegistry: list, then watch', () => {
  it('lists the prefix of the service, then watches from the next revision with progress_notify', async () => {
    fake.put({ '/services/users/a': ep(8081), '/services/users/b': ep(8082, { weight: 3, zone: 'z', tags: ['v1'], meta: { k: 'v' } }) });
    fake.put({ '/services/users2/x': ep(9000), '/services/other/y': ep(9001) });
    const w = watch(make());
    await flush();
    expect(w.updates.map(ids)).toEqual([['a:8081', 'b:8082']]);
    expect(w.updates[0]!.find((e) => e.id === 'b')).toMatchObject({ weight: 3, zone: 'z', tags: ['v1'], meta: { k: 'v' } });
    const range = fake.requests.find((r) => r.path === '/v3/kv/range')!;
    expect(range.body).toEqual({ key: b64('/services/users/'), range_end: b64('/services/users0') }); // '/' + 1 = '0'
    expect(fake.open).toHaveLength(1);
    expect(fake.open[0]!.request).toEqual({ key: b64('/services/users/'), range_end: b64('/services/users0'), start_revision: '4', progress_notify: true });
  });

  it('delivers each change once, in one list per watch response, and nothing when a put changes nothing', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make();
    const w = watch(r);
    await flush();
    fake.put({ '/services/users/b': ep(8082), '/services/users/c': ep(8083) }); // one txn: one list
    await flush();
    fake.put({ '/services/users/a': ep(8081) }); // same value again
    await flush();
    fake.del('/services/users/b');
    await flush();
    expect(w.updates.map(ids)).toEqual([['a:8081'], ['a:8081', 'b:8082', 'c:8083'], ['a:8081', 'c:8083']]);
    expect(r.watchState('users')).toEqual({ kind: 'watching', revision: fake.revision });
  });

  it('a stream that ends is reported, backed off (1 s at jitter 0.5) and resumed from its revision: no relist', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make();
    const w = watch(r);
    await flush();
    fake.open[0]!.finish();
    await flush();
    expect(w.errors).toHaveLength(1);
    expect(w.errors[0]).toBeInstanceOf(DiscoveryError);
    expect(w.errors[0]!.message).toMatch(/etcd ended the watch stream/);
    expect(r.watchState('users')).toMatchObject({ kind: 'backing-off', failures: 1 });
    fake.put({ '/services/users/b': ep(8082) }); // while no stream runs
    await vi.advanceTimersByTimeAsync(999);
    expect(fake.count('/v3/watch')).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await flush();
    expect(fake.count('/v3/watch')).toBe(2);
    expect(fake.count('/v3/kv/range')).toBe(1);
    expect(fake.open[0]!.request.start_revision).toBe('3'); // a was put at 2: resumes at 3, and sees b (3)
    expect(w.updates.map(ids).at(-1)).toEqual(['a:8081', 'b:8082']);
  });

  it('backs off doubling from initialMs with ±20 % jitter up to maxMs while etcd is unreachable, then lists again', async () => {
    let rnd = 0;
    const r = make({ backoff: { initialMs: 100, maxMs: 1_000 }, random: () => rnd });
    fake.down.add(E1);
    const w = watch(r);
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const state = r.watchState('users');
      if (state?.kind !== 'backing-off') throw new Error(`not backing off: ${JSON.stringify(state, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
      delays.push(Math.round(state.untilMs - performance.now()));
      rnd = i % 2 === 0 ? 0.999 : 0;
      await vi.advanceTimersByTimeAsync(delays.at(-1)!);
      await flush();
    }
    // 100 × 0.8, 200 × 1.2, 400 × 0.8, 800 × 1.2, 1000 (capped) × 0.8, 1000 × 1.2 capped at 1000
    [80, 240, 320, 960, 800, 1_000].forEach((expected, i) => expect(Math.abs(delays[i]! - expected), `delay ${i + 1}: ${delays[i]}`).toBeLessThanOrEqual(1));
    expect(w.errors.length).toBe(7);
    expect(w.errors.every((e) => e instanceof DiscoveryError && /ECONNREFUSED/.test(e.message))).toBe(true);
    expect(w.updates).toEqual([]);
    fake.down.delete(E1);
    fake.put({ '/services/users/a': ep(8081) });
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(w.updates.map(ids)).toEqual([['a:8081']]);
  });

  it('compaction: relists and delivers only the difference; the list never passes through empty', async () => {
    fake.put({ '/services/users/a': ep(8081), '/services/users/b': ep(8082) });
    const r = make();
    const w = watch(r);
    await flush();
    fake.open[0]!.fail(new TypeError('terminated'));
    await flush();
    // Meanwhile: b goes, c comes, and the history is compacted away.
    fake.del('/services/users/b');
    fake.put({ '/services/users/c': ep(8083) });
    fake.compact();
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(fake.count('/v3/kv/range')).toBe(2);
    expect(w.updates.map(ids)).toEqual([['a:8081', 'b:8082'], ['a:8081', 'c:8083']]);
    expect(fake.streams[1]!.closed).toBe(true); // the canceled stream, which etcd leaves open, was closed
    expect(fake.open).toHaveLength(1);
    expect(fake.open[0]!.request.start_revision).toBe((fake.revision + 1n).toString());
    expect(w.errors).toHaveLength(1); // the drop; the compaction itself is no error
  });

  it('a compaction that leaves the list as it was delivers nothing', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make();
    const w = watch(r);
    await flush();
    fake.open[0]!.fail(new TypeError('terminated'));
    fake.bump();
    fake.compact();
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    expect(fake.count('/v3/kv/range')).toBe(2);
    expect(w.updates.map(ids)).toEqual([['a:8081']]);
  });

  it('a server that calls every fresh revision compacted is not relisted in a tight loop: after 3, it backs off', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    fake.compacted = 1_000_000n; // nonsense: far past its own revision
    const r = make();
    const w = watch(r);
    await flush();
    expect(fake.count('/v3/kv/range')).toBe(3);
    expect(w.errors.map((e) => e.message)).toEqual([expect.stringMatching(/as compacted, 3 times/)]);
    expect(r.watchState('users')?.kind).toBe('backing-off');
    expect(w.updates.map(ids)).toEqual([['a:8081']]); // delivered once, not once per relist
  });

  it('a progress notification moves the resume revision; a silent stream is resumed quietly after idleTimeoutMs', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make({ idleTimeoutMs: 5_000 });
    const w = watch(r);
    await flush();
    fake.bump();
    fake.bump();
    fake.open[0]!.send({ header: { revision: fake.revision.toString() } }); // progress: no events
    await flush();
    expect(r.watchState('users')).toEqual({ kind: 'watching', revision: 4n });
    await vi.advanceTimersByTimeAsync(4_999);
    expect(fake.count('/v3/watch')).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await flush();
    expect(fake.count('/v3/watch')).toBe(2);
    expect(fake.open[0]!.request.start_revision).toBe('5');
    expect(w.errors).toEqual([]);
    expect(fake.count('/v3/kv/range')).toBe(1);
  });

  it('a stream that opens but never says created is a failure, not a quiet resume', async () => {
    fake.overrides.set('/v3/watch', [() => new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode('{"res')) }), { status: 200 })]);
    const r = make({ idleTimeoutMs: 500 });
    const w = watch(r);
    await flush();
    await vi.advanceTimersByTimeAsync(500);
    await flush();
    expect(w.errors.map((e) => e.message)).toEqual([expect.stringMatching(/sent nothing for 500 ms/)]);
  });

  it('garbage, an error line and a canceled watch end the stream with an error; the loop goes on', async () => {
    fake.put({ '/services/users/a': ep(8081) });
    const r = make();
    const w = watch(r);
    await flush();
    fake.open[0]!.line('not json at all');
    await flush();
    await vi.advanceTimersByTimeAsync(1_000);
    await flush();
    fake.open[0]!.line(JSON.stringify({ error: { grpc_code: 14, http_code: 503, message: 'transport is closing', http_status: 'Service Unavailable' } }));
    await flush();
    await vi.advanceTimersByTimeAsync(2_000); // streams that delivered nothing: the backoff doubles
    await flush();
    fake.open[0]!.send({ header: { revision: '2' }, canceled: true, cancel_reason: 'permission denied' });
    await flush();
    expect(w.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/not JSON/),
      expect.stringMatching(/transport is closing/),
      expect.stringMatching(/canceled the watch: permission denied/),
    ]);
    await vi.advanceTimersByTimeAsync(4_000);
    await flush();
    fake.put({ '/services/users/b': ep(8082) });
    await flush();
    expect(w.updates.map(ids).at(-1)).toEqual(['a:8081', 'b:8082']);
  });

  it('a line longer than maxBodyBytes breaks the stream instead of filling memory', async () => {
    const r = make({ maxBodyBytes: 1_000 });
    const w = watch(r);
    await flush();
    const stream = fake.open[0]!;
    (stream as unknown as { controller: ReadableStreamDefaultController<Uint8Array> }).controller.enqueue(new Uint8Array(1_500).fill(0x61));
    await flush();
    expect(w.errors[0]?.message).toMatch(/longer than maxBodyBytes/);
    expect(stream.closed).toBe(true);
  });
});

