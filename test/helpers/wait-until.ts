/** Polls `check` (an assertion) every 5 ms until it passes or `timeoutMs` runs out, then rethrows its last error: a bounded wait for integration tests. */
export async function waitUntil<T>(check: () => T | Promise<T>, timeoutMs = 2_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
