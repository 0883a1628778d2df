/**
 * A monotonic millisecond clock. Injected everywhere time is read, so tests can drive it.
 * The default reads `performance.now()`, which vitest's fake timers also control.
 */
export interface Clock {
  /** Milliseconds from an arbitrary origin; never goes backwards. */
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };
