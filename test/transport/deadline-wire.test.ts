// Deadline propagation, unit level: the ms header and grpc-timeout on the wire (PROTOCOL-HTTP2.md: at most 8
// digits, units H M S m u n), inboundDeadline over every request shape and hostile input, the per-call `deadline`
// option's validation and effect on totalMs, and the bounded number of call-deadline lists. Fake timers, no sleeps.
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMesh, inboundDeadline, staticRegistry } from '../../src/index.js';
import { resolvePolicy } from '../../src/defaults.js';
import { callSettings } from '../../src/call/settings.js';
import { meshCore } from '../../src/mesh-core.js';
import { formatGrpcTimeout, MAX_DEADLINE_MS, parseDeadlineMs, parseGrpcTimeout, timeLeftMs } from '../../src/transport/deadline.js';
import { durationKey } from '../../src/util/timeout-list.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

beforeEach(() => {
  vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the ms header', () => {
  it('reads whole ms, with optional spaces or tabs around', () => {
    expect(parseDeadlineMs('250')).toBe(250);
    expect(parseDeadlineMs(' 250\t')).toBe(250);
    expect(parseDeadlineMs('0')).toBe(0);
    expect(parseDeadlineMs('0000000042')).toBe(42);
  });

  it('refuses everything else', () => {
    for (const junk of ['', ' ', '-5', '+5', '1e3', '0x10', '12.5', '250ms', '١٢٣', '\u00a0250', '250\n', 'Infinity', 'NaN', '12345678901', ',', '5,']) {
      expect(parseDeadlineMs(junk), JSON.stringify(junk)).toBeUndefined();
    }
    for (const junk of [undefined, null, 250, {}, [], [250], new Array(9).fill('1')]) expect(parseDeadlineMs(junk)).toBeUndefined();
    expect(parseDeadlineMs('1'.repeat(129))).toBeUndefined();
  });

  it('clamps a huge (10-digit) value to 2^31 − 1', () => {
    expect(parseDeadlineMs('9999999999')).toBe(MAX_DEADLINE_MS);
  });

  it('a repeated header reads as its smallest value, if every value reads', () => {
    expect(parseDeadlineMs('300, 200')).toBe(200);
    expect(parseDeadlineMs(['300', '100'])).toBe(100);
    expect(parseDeadlineMs('300, soon')).toBeUndefined();
  });
});

describe('grpc-timeout', () => {
  it('parses every unit', () => {
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('2S')).toBe(2_000);
    expect(parseGrpcTimeout('3M')).toBe(180_000);
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('500u')).toBeCloseTo(0.5, 9);
    expect(parseGrpcTimeout('1000000n')).toBeCloseTo(1, 9);
    expect(parseGrpcTimeout('99999999H')).toBe(MAX_DEADLINE_MS);
  });

  it('refuses a ninth digit, a missing or unknown unit, signs and decimals', () => {
    for (const junk of ['123456789m', '250', 'm', '250ms', '250 m', '-1m', '1.5S', '250h', '250x', '']) {
      expect(parseGrpcTimeout(junk), junk).toBeUndefined();
    }
  });

  it('formats what is left: whole ms rounded down, switching units past 8 digits, µs under 1 ms, 1n when none', () => {
    expect(formatGrpcTimeout(250.9)).toBe('250m');
    expect(formatGrpcTimeout(99_999_999)).toBe('99999999m');
    expect(formatGrpcTimeout(100_000_000)).toBe('100000S');
    expect(formatGrpcTimeout(0.5)).toBe('500u');
    expect(formatGrpcTimeout(0.0000001)).toBe('1u');
    expect(formatGrpcTimeout(0)).toBe('1n');
    expect(formatGrpcTimeout(-20)).toBe('1n');
    expect(formatGrpcTimeout(Number.NaN)).toBe('1n');
    expect(formatGrpcTimeout(1e20)).toBe('99999999H');
  });

  it('any duration formats to a valid value (at most 8 digits) that never says more than what is left', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 1e15, noNaN: true }), (ms) => {
        const text = formatGrpcTimeout(ms);
        expect(text).toMatch(/^[1-9]\d{0,7}[HMSmun]$|^0[HMSmun]$/);
        expect(text.length).toBeLessThanOrEqual(9);
        const back = Number(text.slice(0, -1)) * { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 }[text.at(-1) as 'm'];
        expect(back).toBeLessThanOrEqual(ms * (1 + 1e-12));
      }),
    );
  });
});

describe('inboundDeadline', () => {
  it('reads a node:http request (lower-case headers record): Date.now() + the time left', () => {
    expect(inboundDeadline({ headers: { 'x-request-deadline-ms': '250' } })).toBe(NOW + 250);
    expect(inboundDeadline({ headers: {} })).toBeUndefined();
  });

  it('reads a fetch Request, a Headers and a plain record (any case)', () => {
    expect(inboundDeadline(new Request('http://x/', { headers: { 'X-Request-Deadline-Ms': '80' } }))).toBe(NOW + 80);
    expect(inboundDeadline(new Headers({ 'x-request-deadline-ms': '81' }))).toBe(NOW + 81);
    expect(inboundDeadline({ 'X-Request-Deadline-MS': '82' })).toBe(NOW + 82);
  });

  it('reads grpc-timeout too (the smaller wins), unless told not to', () => {
    expect(inboundDeadline({ headers: { 'grpc-timeout': '40m' } })).toBe(NOW + 40);
    expect(inboundDeadline({ headers: { 'grpc-timeout': '40m', 'x-request-deadline-ms': '30' } })).toBe(NOW + 30);
    expect(inboundDeadline({ headers: { 'grpc-timeout': '20m', 'x-request-deadline-ms': '30' } })).toBe(NOW + 20);
    expect(inboundDeadline({ headers: { 'grpc-timeout': '40m' } }, { grpcTimeout: false })).toBeUndefined();
  });

  it('reads the header the policy names', () => {
    expect(inboundDeadline({ headers: { 'x-budget': '70' } }, { header: 'X-Budget' })).toBe(NOW + 70);
    expect(() => inboundDeadline({ headers: {} }, { header: 'bad header' })).toThrow(/options\.header/);
  });

  it('0 is a deadline that is now: nothing is left', () => {
    expect(inboundDeadline({ headers: { 'x-request-deadline-ms': '0' } })).toBe(NOW);
  });

  it('refuses garbage and never throws on hostile input', () => {
    expect(inboundDeadline({ headers: { 'x-request-deadline-ms': '-1' } })).toBeUndefined();
    expect(inboundDeadline({ headers: { 'x-request-deadline-ms': ['1', 'x'] } })).toBeUndefined();
    const hostile = new Proxy({}, { get: () => { throw new Error('boom'); }, ownKeys: () => { throw new Error('boom'); } });
    expect(inboundDeadline(hostile as never)).toBeUndefined();
    expect(inboundDeadline({ headers: hostile } as never)).toBeUndefined();
    expect(inboundDeadline({ get: () => { throw new Error('boom'); } })).toBeUndefined();
    expect(inboundDeadline(null as never)).toBeUndefined();
    expect(inboundDeadline(Object.create({ 'x-request-deadline-ms': '5' }) as never)).toBeUndefined(); // not own
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.string()), fc.anything()), fc.oneof(fc.string(), fc.anything()), (ms, grpc) => {
        const d = inboundDeadline({ headers: { 'x-request-deadline-ms': ms as string, 'grpc-timeout': grpc as string } });
        if (d !== undefined) {
          expect(d).toBeGreaterThanOrEqual(NOW);
          expect(d).toBeLessThanOrEqual(NOW + MAX_DEADLINE_MS);
        }
      }),
    );
  });
});

describe('the per-call deadline option', () => {
  const policy = resolvePolicy({ timeout: { totalMs: 1_000 } });

  it('bounds totalMs by what is left, and leaves it when more is left', () => {
    expect(callSettings(policy, { deadline: NOW + 250 }, undefined, undefined, true, true).totalMs).toBe(250);
    expect(callSettings(policy, { deadline: NOW + 250.9 }, undefined, undefined, true, true).totalMs).toBe(250);
    expect(callSettings(policy, { deadline: NOW + 60_000 }, undefined, undefined, true, true).totalMs).toBe(1_000);
    expect(callSettings(policy, { deadline: NOW + 60_000, timeout: { totalMs: 50 } }, undefined, undefined, true, true).totalMs).toBe(50);
    expect(callSettings(policy, {}, undefined, undefined, true, true).totalMs).toBe(1_000);
  });

  it('a passed deadline makes totalMs <= 0 (admission then refuses the call)', () => {
    expect(callSettings(policy, { deadline: NOW }, undefined, undefined, true, true).totalMs).toBe(0);
    expect(callSettings(policy, { deadline: NOW - 10 }, undefined, undefined, true, true).totalMs).toBe(-10);
  });

  it('anything but a finite number is a TypeError naming options.deadline', () => {
    for (const bad of ['soon', Number.NaN, Number.POSITIVE_INFINITY, null, new Date(NOW + 5), {}]) {
      expect(() => callSettings(policy, { deadline: bad as number }, undefined, undefined, true, true)).toThrow(/options\.deadline/);
    }
  });

  it('mesh.call and mesh.fetch reject a bad deadline with that TypeError, before any backend', async () => {
    const mesh = createMesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }) });
    try {
      const fn = vi.fn();
      await expect(mesh.call('api', fn, { deadline: 'soon' as never })).rejects.toThrow(/options\.deadline/);
      await expect(mesh.fetch('http://api/', { deadline: Number.NaN })).rejects.toThrow(/options\.deadline/);
      expect(fn).not.toHaveBeenCalled();
    } finally {
      await mesh.close();
    }
  });
});

describe('call-deadline lists stay few', () => {
  it('durationKey: exact up to 32 ms, then 16 keys per doubling, never below the duration, within 1/16 above it', () => {
    for (let ms = 1; ms <= 32; ms++) expect(durationKey(ms)).toBe(ms);
    expect(durationKey(5_000)).toBe(5_120);
    fc.assert(
      fc.property(fc.integer({ min: 33, max: 2 ** 31 - 2 }), (ms) => {
        const key = durationKey(ms);
        expect(key).toBeGreaterThanOrEqual(ms);
        expect((key - ms) / ms).toBeLessThan(1 / 16);
        expect(durationKey(key)).toBe(key);
      }),
    );
  });

  it('calls with 10,000 distinct deadline-derived totals (200 to 1030 ms) share at most 16 lists per doubling', async () => {
    const mesh = createMesh({ registry: staticRegistry({ api: ['127.0.0.1:1'] }) });
    try {
      const env = meshCore(mesh, 'test').env;
      const lists = new Set(Array.from({ length: 10_000 }, (_, i) => env.callDeadlines(200 + i * 0.083)));
      expect(lists.size).toBeLessThanOrEqual(48); // 200–1030 ms spans under 3 doublings
      expect(env.callDeadlines(30_000)).toBe(env.callDeadlines(30_000));
    } finally {
      await mesh.close();
    }
  });
});

describe('timeLeftMs', () => {
  it("reads a mesh attempt's own time left, else the context's deadline", () => {
    expect(timeLeftMs({ timeLeftMs: 42.9 } as never)).toBe(42);
    expect(timeLeftMs({ deadline: NOW + 99 } as never)).toBe(99);
    expect(timeLeftMs({ deadline: NOW - 5 } as never)).toBe(0);
  });
});

describe('the caller headers a deadline header replaces', () => {
  it('drops every header of that name, whatever its case and shape', async () => {
    const { headerObjectWithout, headerPairsWithout } = await import('../../src/transport/request-headers.js');
    const name = 'x-request-deadline-ms';
    expect(headerPairsWithout({ 'X-Request-Deadline-Ms': '9', a: '1' }, name)).toEqual([['a', '1']]);
    expect(headerPairsWithout(new Headers({ [name]: '9', b: '2' }), name)).toEqual([['b', '2']]);
    expect(headerPairsWithout([['a', '1'], [name, '9']], name)).toEqual([['a', '1']]);
    expect(headerPairsWithout(undefined, name)).toEqual([]);
    expect(headerObjectWithout(['a', '1', 'X-REQUEST-DEADLINE-MS', '9', 'a', '2'], name)).toEqual({ a: ['1', '2'] });
    expect(headerObjectWithout({ a: ['1', '2'], [name]: ['9', '8'], u: undefined }, name)).toEqual({ a: ['1', '2'] });
    expect(headerObjectWithout(null, name)).toEqual({});
  });
});
