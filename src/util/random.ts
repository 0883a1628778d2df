/** A source of uniform numbers in [0, 1). Injected so that tests and simulations are repeatable. */
export type Rng = () => number;

export const defaultRng: Rng = Math.random;

/**
 * A seeded generator (mulberry32: 32-bit state, passes gjrand/PractRand up to ample sizes for our use).
 * Not for cryptography; for balancer choices, jitter and simulations that must replay exactly.
 */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
