// examples/backends.ts, the demo's and benches' servers: failRate spreads its 503s evenly rather than at random, so
// the demo's flaky (0.3) never answers five 503s in a row and consecutive-failure ejection cannot take it out while
// it is alive (a random 30 % did, in about one run in fifteen). Real servers on 127.0.0.1.
import { afterEach, describe, expect, it } from 'vitest';
import { startBackend, type Backend } from '../../examples/backends.js';

describe('examples/backends.ts failRate', () => {
  let backend: Backend | undefined;
  afterEach(async () => void (await backend?.close()));

  it('answers 3 requests in 10 with 503 at 0.3, never two in a row', async () => {
    backend = await startBackend({ name: 'flaky', failRate: 0.3 });
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`http://${backend.address}/`);
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(statuses.filter((s) => s === 503)).toHaveLength(12);
    expect(statuses.filter((s) => s !== 503).every((s) => s === 200)).toBe(true);
    expect(statuses.some((s, i) => s === 503 && statuses[i + 1] === 503)).toBe(false);
  });

  it('never fails at 0, and always at 1', async () => {
    backend = await startBackend({ name: 'ok' });
    const ok = await Promise.all(Array.from({ length: 10 }, () => fetch(`http://${backend!.address}/`).then(async (r) => (await r.arrayBuffer(), r.status))));
    expect(ok).toEqual(Array(10).fill(200));
    await backend.close();
    backend = await startBackend({ name: 'down', failRate: 1 });
    const down = await Promise.all(Array.from({ length: 10 }, () => fetch(`http://${backend!.address}/`).then(async (r) => (await r.arrayBuffer(), r.status))));
    expect(down).toEqual(Array(10).fill(503));
  });
});
