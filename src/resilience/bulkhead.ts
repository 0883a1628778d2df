/** A waiter in the bulkhead's queue. */
interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * The queue of a bulkhead (`maxConcurrent` with `maxQueued > 0`): calls beyond the limit wait here, first in
 * first out, for a slot, bounded by their own deadline and signal. The in-flight count itself lives on the
 * service (`Service.active`), so a call that finds a free slot touches nothing here.
 */
export class BulkheadQueue {
  private readonly waiters: Waiter[] = [];

  /** Mutable: `configure` may change `maxQueued` while calls wait here (they keep their place). */
  constructor(public capacity: number) {}

  get length(): number {
    return this.waiters.length;
  }

  /** Waits for a slot; `undefined` (no room in the queue) means "reject now". */
  wait(signal: AbortSignal | undefined, timeoutMs: number, onTimeout: () => unknown): Promise<void> | undefined {
    if (this.waiters.length >= this.capacity) return undefined;
    return new Promise<void>((resolve, reject) => {
      const leave = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        leave();
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        resolve: () => {
          leave();
          resolve();
        },
        reject: (error) => {
          leave();
          reject(error);
        },
      };
      const timer = setTimeout(() => waiter.reject(onTimeout()), Math.max(0, timeoutMs));
      timer.unref?.();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** A slot was freed: the oldest waiter takes it. Returns true if one did. */
  handOver(): boolean {
    const next = this.waiters[0];
    if (next === undefined) return false;
    next.resolve();
    return true;
  }

  /** Rejects every waiter (the mesh is closing). */
  clear(error: unknown): void {
    for (const w of [...this.waiters]) w.reject(error);
  }
}
