import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { createMesh, seededRng, staticRegistry } from '../../src/index.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

it('peak-ewma does not pour traffic into an endpoint that fails fast (breakers and ejection off)', async () => {
  const mesh = createMesh({
    registry: staticRegistry({ api: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'] }),
    defaults: { breaker: false, outlier: false, retry: false },
    clock: { now: () => Date.now() },
    random: seededRng(7),
  });
  const attempts = new Map<number, number>();
  const fn = (ep: { port: number }): Promise<string> => {
    attempts.set(ep.port, (attempts.get(ep.port) ?? 0) + 1);
    if (ep.port === 1) return Promise.reject(new Error('refused')); // fails in no time
    return new Promise((r) => setTimeout(r, 10, 'ok'));
  };
  // 8 workers x 100 calls, in virtual time
  const worker = async (): Promise<void> => {
    for (let i = 0; i < 100; i++) await mesh.call('api', fn).catch(() => undefined);
  };
  const done = Promise.all(Array.from({ length: 8 }, worker));
  await vi.advanceTimersByTimeAsync(10_000);
  await done;
  const total = [...attempts.values()].reduce((a, b) => a + b, 0);
  expect(total).toBe(800);
  expect((attempts.get(1) ?? 0) / total).toBeLessThan(0.05);
  await mesh.close();
});
