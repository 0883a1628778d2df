import { describe, expect, it } from 'vitest';
import { CallFailedError, createMesh, staticRegistry, type MeshEvents } from '../../src/index.js';
import { closedPort, FETCHES, startServer } from './loopback.js';

// "fetch failed" alone says nothing; the reason must be in the message wherever a user looks first: the
// rejection, MeshError.attempts, and the failure/retry events.

describe.each(FETCHES)('a refused connection on $name', ({ fetch }) => {
  it('the retry event names ECONNREFUSED and the address, and the live endpoint answers', async () => {
    const dead = await closedPort();
    const live = await startServer();
    const mesh = createMesh({
      registry: staticRegistry({ svc: [`127.0.0.1:${dead}`, live.address] }),
      defaults: { balancer: 'round-robin', retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 }, breaker: false, outlier: false },
      random: () => 0, // round robin starts at the first endpoint: the dead one
      fetch,
    });
    try {
      const retries: MeshEvents['retry'][] = [];
      mesh.on('retry', (e) => retries.push(e));
      const res = await mesh.fetch('http://svc/ping');
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('ok');
      expect(live.seen).toHaveLength(1);
      expect(retries).toHaveLength(1);
      const retry = retries[0]!;
      expect(retry.endpoint.port).toBe(dead);
      expect(retry.error.message).toContain('ECONNREFUSED');
      expect(retry.error.message).toContain(`127.0.0.1:${dead}`);
    } finally {
      await mesh.close();
    }
  });

  it('with only the dead endpoint, the rejection, its attempts and the failure event all say why', async () => {
    const dead = await closedPort();
    const mesh = createMesh({
      registry: staticRegistry({ svc: [`127.0.0.1:${dead}`] }),
      defaults: { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 2 }, breaker: false, outlier: false },
      fetch,
    });
    try {
      const failures: MeshEvents['failure'][] = [];
      mesh.on('failure', (e) => failures.push(e));
      const error = await mesh.fetch('http://svc/ping').then(
        () => undefined,
        (e: unknown) => e,
      );
      const expected = `fetch failed (ECONNREFUSED 127.0.0.1:${dead})`;
      expect(error).toBeInstanceOf(CallFailedError);
      const failed = error as CallFailedError;
      expect(failed.message).toContain(expected);
      expect(failed.attempts).toHaveLength(2); // the first attempt and one retry, back on the only endpoint
      for (const record of failed.attempts) {
        expect(record.message).toContain(expected);
        expect(record.outcome).toBe('ECONNREFUSED');
      }
      expect(failures).toHaveLength(2);
      for (const f of failures) expect(f.error.message).toContain(expected);
      // The original error stays reachable, message and all, as the cause.
      expect(String((failed.cause as Error).message)).toContain(expected);
    } finally {
      await mesh.close();
    }
  });
});
