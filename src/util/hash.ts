/**
 * The hash behind `ring-hash` and `maglev`: MurmurHash3 x86_32 (Austin Appleby, public domain, `MurmurHash3.cpp`),
 * run with two seeds in one pass over the key's UTF-8 bytes, for 2 × 32 = 64 bits.
 *
 * Why this one: it needs only 32-bit multiplies, which V8 does with `Math.imul` on small integers, so a short key
 * hashes in tens of nanoseconds without allocating. xxHash64 (Envoy's choice) needs 64-bit multiplies: in JavaScript
 * that is BigInt or 16-bit limb arithmetic, several times slower per key. FNV-1a 32 is as cheap but mixes short
 * keys poorly (it needs a finaliser anyway) and gives 32 bits only. The two halves come from seeds 0 and
 * {@link SEED_2}: the block mixing is shared and only the accumulators differ, so the second half costs a few
 * operations per block. The result is not cryptographic: anyone who knows the function can aim keys at one
 * endpoint, which a consistent hash cannot prevent anyway.
 *
 * ASCII keys are read with `charCodeAt` (their UTF-8 bytes are their code units); other keys are encoded into a
 * reused buffer first, so the output is MurmurHash3 of the UTF-8 bytes either way and matches other implementations.
 */

/** The second seed (the one commonly used in MurmurHash3 test vectors). */
export const SEED_2 = 0x9747b28c;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Scratch output of {@link murmur3x2}: [hash with seed 0, hash with {@link SEED_2}], both unsigned. */
export const hashOut = new Uint32Array(2);

const encoder = new TextEncoder();
let buffer = new Uint8Array(256);

/**
 * MurmurHash3 x86_32 of `key`'s UTF-8 bytes with seeds `seed1` (default 0) and `seed2` (default {@link SEED_2}),
 * written to {@link hashOut} (no allocation). Read both halves before the next call.
 *
 * @example
 * murmur3x2('user-42');
 * const [h1, h2] = hashOut;
 */
export function murmur3x2(key: string, seed1 = 0, seed2 = SEED_2): void {
  hashBuffer(utf8(key), seed1 >>> 0, seed2 >>> 0);
}

/** MurmurHash3 x86_32 of `key`'s UTF-8 bytes with one seed, unsigned. */
export function murmur3(key: string, seed = 0): number {
  murmur3x2(key, seed, seed);
  return hashOut[0] as number;
}

/**
 * Writes `key`'s UTF-8 bytes into the shared buffer and returns their count. ASCII keys (the usual case) are
 * copied a char code at a time, which is cheaper than `TextEncoder` for short strings.
 */
function utf8(key: string): number {
  const n = key.length;
  if (buffer.length < n * 3) buffer = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f) return encoder.encodeInto(key, buffer).written;
    buffer[i] = c;
  }
  return n;
}

/** MurmurHash3 x86_32 over the first `n` bytes of the shared buffer, with two seeds in one pass. */
function hashBuffer(n: number, seed1: number, seed2: number): void {
  const b = buffer;
  let h1 = seed1;
  let h2 = seed2;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = (b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 ^= k;
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail !== 0) {
    let k = b[blocks] as number;
    if (tail >= 2) k ^= (b[blocks + 1] as number) << 8;
    if (tail === 3) k ^= (b[blocks + 2] as number) << 16;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h1 ^= k;
    h2 ^= k;
  }
  hashOut[0] = fmix(h1 ^ n);
  hashOut[1] = fmix(h2 ^ n);
}

/** MurmurHash3's finaliser: forces every input bit to affect every output bit. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A 32-bit mixer of a 32-bit value (MurmurHash3's finaliser): turns a counter or a combined value into
 * well-spread bits, e.g. to derive a probe sequence from a key's hash.
 */
export function mix32(x: number): number {
  return fmix(x | 0);
}
