import { describe, expect, it } from 'vitest';
import { staticRegistry } from '../../src/index.js';
import type { Backend } from '../helpers/backends.js';
import { testScope } from '../helpers/scope.js';

const scope = testScope();
const mesh = scope.mesh;

/** A backend that answers its name, after `delayMs`. */
function backend(name: string, delayMs = 0): Promise<Backend> {
  return scope.backend((_req, res) => {
    if (delayMs === 0) res.end(name);
    else setTimeout(() => res.end(name), delayMs);
  });
}

describe('balancing with real node:http backends', () => {
  it('round-robin follows the smooth WRR sequence exactly: weights 5,1,1 give a a b a c a a', async () => {
    const [a, b, c] = [await backend('a'), await backend('b'), await backend('c')];
    const m = mesh({
      registry: staticRegistry({
        api: [
          { host: '127.0.0.1', port: a.port, weight: 5 },
          { host: '127.0.0.1', port: b.port, weight: 1 },
          { host: '127.0.0.1', port: c.port, weight: 1 },
        ],
      }),
      defaults: { balancer: 'round-robin' },
      random: () => 0, // start offset 0, so the sequence starts at its beginning
    });
    const order: string[] = [];
    for (let i = 0; i < 14; i++) order.push(await (await m.fetch('http://api/')).text());
    expect(order.join(' ')).toBe('a a b a c a a a a b a c a a');
  });

  it('peak-ewma sends < 5 % of calls to an endpoint that answers 10x slower, once warmed up', async () => {
    const fast1 = await backend('fast1', 10);
    const fast2 = await backend('fast2', 10);
    const slow = await backend('slow', 100);
    const m = mesh({ registry: staticRegistry({ api: [fast1.address, fast2.address, slow.address] }) });
    const worker = async (n: number, counts?: Map<string, number>): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const name = await (await m.fetch('http://api/')).text();
        counts?.set(name, (counts.get(name) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 4 }, () => worker(10))); // warm-up: every endpoint measured
    const counts = new Map<string, number>();
    await Promise.all(Array.from({ length: 4 }, () => worker(100, counts)));
    const total = [...counts.values()].reduce((x, y) => x + y, 0);
    expect(total).toBe(400);
    expect((counts.get('slow') ?? 0) / total, JSON.stringify(m.snapshot())).toBeLessThan(0.05);
    expect(counts.get('fast1')).toBeGreaterThan(50);
    expect(counts.get('fast2')).toBeGreaterThan(50);
  });
});
