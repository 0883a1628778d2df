import { describe, expect, it, vi } from 'vitest';
import type { Balancer } from '../../src/balancer/balancer.js';
import { isPrime, MaglevBalancer } from '../../src/balancer/maglev.js';
import { RingHashBalancer } from '../../src/balancer/ring-hash.js';
import type { EndpointState } from '../../src/endpoint/endpoint-state.js';
import { hashOut, murmur3, murmur3x2 } from '../../src/util/hash.js';
import { seededRng } from '../../src/util/random.js';
import { balancerContract, eject, makeStates, request } from '../contracts/balancer.contract.js';

// The ring's granularity, not the pick, sets ring hash's share error: with 16,384 points it is within the
// contract's 2 %; at the default 1,024 points σ ≈ √(p(1−p)/1024) ≈ 1.6 %, hence 5 % (3σ) there.
balancerContract('ring-hash (minRingSize 16384)', (rng) => new RingHashBalancer(rng, { minRingSize: 16_384 }));
balancerContract('ring-hash (defaults)', (rng) => new RingHashBalancer(rng), { shareTolerance: 0.05 });
balancerContract('maglev', (rng) => new MaglevBalancer(rng));
balancerContract('ring-hash with bounded load', (rng) => new RingHashBalancer(rng, { minRingSize: 16_384, hashBalanceFactor: 150 }));
balancerContract('maglev with bounded load', (rng) => new MaglevBalancer(rng, { hashBalanceFactor: 125 }));

const keyed = (key: string, tried: readonly EndpointState[] = [], attempt = tried.length + 1) => ({
  ...request(tried),
  hashKey: key,
  attempt,
});

describe('MurmurHash3 x86_32 (util/hash.ts)', () => {
  it('matches the published test vectors', () => {
    const vectors: [string, number, number][] = [
      ['', 0, 0],
      ['', 1, 0x514e28b7],
      ['', 0xffffffff, 0x81f16f39],
      ['\0\0\0\0', 0, 0x2362f9de],
      ['a', 0x9747b28c, 0x7fa09ea6],
      ['aa', 0x9747b28c, 0x5d211726],
      ['aaa', 0x9747b28c, 0x283e0130],
      ['aaaa', 0x9747b28c, 0x5a97808a],
      ['abc', 0x9747b28c, 0xc84a62dd],
      ['abcd', 0x9747b28c, 0xf0478627],
      ['Hello, world!', 0x9747b28c, 0x24884cba],
      ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
    ];
    for (const [key, seed, expected] of vectors) expect(murmur3(key, seed), JSON.stringify(key)).toBe(expected);
  });

  it('hashes the UTF-8 bytes of non-ASCII keys (same as the byte-wise reference)', () => {
    const reference = (bytes: Uint8Array, seed: number): number => {
      let h = seed >>> 0;
      const n = bytes.length;
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const mixK = (k: number): number => Math.imul(((Math.imul(k, 0xcc9e2d51) << 15) | (Math.imul(k, 0xcc9e2d51) >>> 17)), 0x1b873593);
      for (let i = 0; i + 4 <= n; i += 4) {
        h ^= mixK(dv.getUint32(i, true));
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      }
      const t = n & ~3;
      let k = 0;
      for (let i = n - 1; i >= t; i--) k = (k << 8) | (bytes[i] as number);
      if (n & 3) h ^= mixK(k);
      h ^= n;
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      return h >>> 0;
    };
    const enc = new TextEncoder();
    for (const key of ['π', 'ππππ', 'héllo wörld', '日本語のキー', '🙂 emoji', 'user-42', 'abcdefghi']) {
      expect(murmur3(key, 0x9747b28c), key).toBe(reference(enc.encode(key), 0x9747b28c));
      expect(murmur3(key, 0), key).toBe(reference(enc.encode(key), 0));
    }
  });

  it('gives two halves from two seeds in one pass', () => {
    murmur3x2('user-42', 0, 7);
    const [a, b] = [hashOut[0], hashOut[1]];
    expect(a).toBe(murmur3('user-42', 0));
    expect(b).toBe(murmur3('user-42', 7));
  });
});

describe.each([
  ['ring-hash', () => new RingHashBalancer(seededRng(1))],
  ['maglev', () => new MaglevBalancer(seededRng(1))],
] as [string, () => Balancer][])('%s affinity', (_name, make) => {
  it('sends a key to the same endpoint every time, in every client, whatever the list order', () => {
    const set = makeStates(Array.from({ length: 10 }, () => 1));
    const a = make();
    const b = make();
    a.update?.(set);
    const shuffled = [...set].reverse();
    b.update?.(shuffled);
    for (let i = 0; i < 1_000; i++) {
      const key = `user-${i}`;
      const first = a.pick(set, keyed(key));
      expect(a.pick(set, keyed(key))).toBe(first);
      expect(b.pick(shuffled, keyed(key))).toBe(first);
    }
  });

  it('never returns an excluded endpoint, and moves only the keys whose endpoint is excluded', () => {
    const set = makeStates(Array.from({ length: 10 }, () => 1));
    const b = make();
    b.update?.(set);
    const before = new Map<string, EndpointState | undefined>();
    for (let i = 0; i < 2_000; i++) before.set(`k${i}`, b.pick(set, keyed(`k${i}`)));
    const down = set[3] as EndpointState;
    eject(down);
    for (const [key, was] of before) {
      const now = b.pick(set, keyed(key));
      expect(now).not.toBe(down);
      if (was !== down) expect(now).toBe(was);
    }
  });

  it('does not rebuild its table on an update() with the same endpoints and weights', () => {
    const set = makeStates([1, 2, 3]);
    const b = make();
    const build = vi.spyOn(b as unknown as { build(s: unknown): void }, 'build');
    b.update?.(set);
    b.update?.([...set]);
    b.pick([...set], keyed('x'));
    expect(build).toHaveBeenCalledTimes(1);
    set[1]?.update({ ...(set[1] as EndpointState).endpoint, weight: 5 }); // a configured weight changed
    b.update?.([...set]);
    expect(build).toHaveBeenCalledTimes(2);
  });

  it('ignores slow start: picks follow configured weights, not the ramped effective weight', () => {
    const set = makeStates([1, 1]);
    const b = make();
    b.update?.(set);
    const before = Array.from({ length: 500 }, (_, i) => b.pick(set, keyed(`k${i}`)));
    (set[0] as EndpointState).weight = 0.1; // what slow start does
    b.update?.(set);
    const after = Array.from({ length: 500 }, (_, i) => b.pick(set, keyed(`k${i}`)));
    expect(after).toEqual(before);
  });

  it('spills keys off an overloaded endpoint with hashBalanceFactor, and keeps them otherwise', () => {
    const set = makeStates(Array.from({ length: 5 }, () => 1));
    const Ctor = make().constructor as new (rng: () => number, o: { hashBalanceFactor: number }) => Balancer;
    const b = new Ctor(seededRng(1), { hashBalanceFactor: 150 });
    b.update?.(set);
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
    const home = new Map(keys.map((k) => [k, b.pick(set, keyed(k))]));
    // Everyone holds 2 in flight: within 1.5 × the mean, nothing moves.
    for (const s of set) s.inflight = 2;
    for (const k of keys) expect(b.pick(set, keyed(k))).toBe(home.get(k));
    // One endpoint holds 20 (mean 5.6, its bound ceil(ceil(29 × 1.5) / 5) = 9): its keys go elsewhere, deterministically.
    const hot = set[0] as EndpointState;
    hot.inflight = 20;
    for (const k of keys) {
      const s = b.pick(set, keyed(k));
      expect(s).not.toBe(hot);
      expect(b.pick(set, keyed(k))).toBe(s);
      if (home.get(k) !== hot) expect(s).toBe(home.get(k));
    }
  });
});

describe('RingHashBalancer', () => {
  it('puts points in proportion to weight, at least minRingSize in all, in powers of two per unit of weight', () => {
    const b = new RingHashBalancer(seededRng(1));
    b.update(makeStates([1, 2, 5]));
    expect(b.size).toBe(128 * 8); // k = 128 points per unit of weight
    b.update(makeStates(Array.from({ length: 10 }, () => 1)));
    expect(b.size).toBe(1_280);
    b.update(makeStates(Array.from({ length: 9 }, () => 1)));
    expect(b.size).toBe(1_152); // the same k: removing one endpoint moves only its keys
    const capped = new RingHashBalancer(seededRng(1), { minRingSize: 1024, maxRingSize: 100 });
    capped.update(makeStates([1, 1, 1, 1]));
    expect(capped.size).toBe(100);
    const light = new RingHashBalancer(seededRng(1));
    light.update(makeStates([0.001, 1]));
    expect(light.size).toBeGreaterThanOrEqual(1024);
  });

  it('walks clockwise past excluded endpoints: where the key would land without them on the ring', () => {
    const set = makeStates(Array.from({ length: 10 }, () => 1));
    const full = new RingHashBalancer(seededRng(1));
    full.update(set);
    const down = [set[2], set[7]] as EndpointState[];
    const without = new RingHashBalancer(seededRng(1));
    const rest = set.filter((s) => !down.includes(s));
    without.update(rest); // 8 endpoints: still 128 points each
    for (let i = 0; i < 2_000; i++) {
      const key = `k${i}`;
      expect(full.pick(set, keyed(key, down))).toBe(without.pick(rest, keyed(key)));
    }
  });

  it('finds the last available endpoint among many excluded ones', () => {
    const set = makeStates(Array.from({ length: 50 }, () => 1));
    const b = new RingHashBalancer(seededRng(1));
    b.update(set);
    const tried = set.slice(1);
    for (let i = 0; i < 100; i++) expect(b.pick(set, keyed(`k${i}`, tried))).toBe(set[0]);
  });
});

describe('MaglevBalancer', () => {
  it('refuses a table size that is not a prime', () => {
    expect(() => new MaglevBalancer(seededRng(1), { tableSize: 65_536 })).toThrow(/prime/);
    expect(() => new MaglevBalancer(seededRng(1), { tableSize: 5_000_101 })).toThrow(/prime/);
    expect(isPrime(65_537)).toBe(true);
    expect(isPrime(5_000_011)).toBe(true);
    expect(isPrime(1)).toBe(false);
  });

  it('fills the table in proportion to weight (Envoy weighted fill), each share within a few slots', () => {
    const set = makeStates([1, 2, 5]);
    const b = new MaglevBalancer(seededRng(1), { tableSize: 65_537 });
    b.update(set);
    const slots = b.slots();
    // The fill stops part-way through a round, so a count can be off by up to the number of endpoints.
    for (const s of set) expect(Math.abs((slots.get(s) ?? 0) - (65_537 * s.weight) / 8)).toBeLessThanOrEqual(set.length);
  });

  it('rehashes a retry with the attempt number, as Envoy does, and never repeats a tried endpoint', () => {
    const set = makeStates(Array.from({ length: 10 }, () => 1));
    const b = new MaglevBalancer(seededRng(1));
    b.update(set);
    let differ = 0;
    for (let i = 0; i < 1_000; i++) {
      const key = `k${i}`;
      const first = b.pick(set, keyed(key)) as EndpointState;
      const retry = b.pick(set, keyed(key, [], 2)); // Service.pick's second round: nothing excluded
      expect(b.pick(set, keyed(key, [], 2))).toBe(retry); // deterministic
      if (retry !== first) differ++;
      expect(b.pick(set, keyed(key, [first]))).not.toBe(first);
    }
    expect(differ).toBeGreaterThan(800); // a salted hash lands elsewhere 9 times in 10
  });

  it('maglev: a tableSize below the endpoint count grows to the next prime, so every endpoint gets traffic, with one warning', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const set = makeStates(Array.from({ length: 20 }, () => 1));
      const b = new MaglevBalancer(seededRng(1), { tableSize: 7 });
      b.update(set);
      const counts = new Map<EndpointState, number>();
      for (let i = 0; i < 2_000; i++) {
        const s = b.pick(set, keyed(`k${i}`)) as EndpointState;
        counts.set(s, (counts.get(s) ?? 0) + 1);
      }
      // A table of 7 slots could send keys to 7 endpoints at most; the table of 23 reaches all 20.
      expect(counts.size).toBe(20);
      expect([...b.slots().values()].reduce((a, n) => a + n, 0)).toBe(23);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]?.[0])).toMatch(/maglev\.tableSize 7 .*20 endpoints.*23/);
      // Once per balancer: a later, larger list rebuilds without warning again.
      b.update(makeStates(Array.from({ length: 30 }, () => 1)));
      expect([...b.slots().values()].reduce((a, n) => a + n, 0)).toBe(31);
      expect(warn).toHaveBeenCalledTimes(1);
      // Back under the configured size, the configured table is used.
      b.update(set.slice(0, 5));
      expect([...b.slots().values()].reduce((a, n) => a + n, 0)).toBe(7);
    } finally {
      warn.mockRestore();
    }
  });
});
