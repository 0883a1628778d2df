/**
 * Resolves after `ms`, or at once when `signal` aborts (it never rejects); clears its timer either way, so an
 * abort leaves no timer behind.
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, Math.min(ms, 2_147_483_647)));
    signal.addEventListener('abort', done, { once: true });
  });
}
