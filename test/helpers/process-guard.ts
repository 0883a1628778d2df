/**
 * Helpers for the hardening tests of the call path: a temporary stand-in for the process's own
 * `unhandledRejection` and `uncaughtException` handling (so a defect shows up as a failed assertion in the
 * test that caused it, not as a crash of the test run), and a bounded wait for a call to settle.
 */

/** What arrived on `unhandledRejection` / `uncaughtException` while the guard was installed. */
export interface ProcessGuard {
  readonly errors: { event: string; error: unknown }[];
  /** Puts the original listeners back. Call in `finally`. */
  restore(): void;
}

const EVENTS = ['unhandledRejection', 'uncaughtException'] as const;
type Listener = (...args: unknown[]) => void;
/** `process` seen through the two events used here (its overloads do not take a union of event names). */
const proc = process as unknown as {
  listeners(event: string): Listener[];
  removeAllListeners(event: string): void;
  on(event: string, listener: Listener): void;
  off(event: string, listener: Listener): void;
};

/**
 * Replaces the process's listeners for unhandled rejections and uncaught exceptions with a recorder. The test
 * runner's own listeners are put back on `restore()`.
 */
export function guardProcess(): ProcessGuard {
  const errors: ProcessGuard['errors'] = [];
  const saved = new Map<string, Listener[]>();
  const recorders = new Map<string, Listener>();
  for (const event of EVENTS) {
    saved.set(event, proc.listeners(event));
    proc.removeAllListeners(event);
    const recorder: Listener = (error) => {
      errors.push({ event, error });
    };
    recorders.set(event, recorder);
    proc.on(event, recorder);
  }
  return {
    errors,
    restore() {
      for (const event of EVENTS) {
        proc.off(event, recorders.get(event)!);
        for (const listener of saved.get(event) ?? []) proc.on(event, listener);
      }
    },
  };
}

export type Settled<T> = { status: 'fulfilled'; value: T } | { status: 'rejected'; reason: unknown };

/** How `promise` settled, or a rejection naming `what` when it has not settled within `ms` (a hang). */
export function settleWithin<T>(promise: Promise<T>, ms: number, what = 'the call'): Promise<Settled<T>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve({ status: 'fulfilled', value });
      },
      (reason: unknown) => {
        clearTimeout(timer);
        resolve({ status: 'rejected', reason });
      },
    );
  });
}

/** Resolves once `predicate` holds (checked every macrotask), or rejects after `ms`. */
export function until(predicate: () => boolean, ms: number, what = 'the condition'): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const poll = (): void => {
      if (predicate()) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`${what} did not hold within ${ms} ms`));
      setTimeout(poll, 2);
    };
    poll();
  });
}
