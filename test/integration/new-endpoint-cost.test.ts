/**
 * An endpoint that discovery adds to a running service starts from its peers' median cost (API.md, "Health beyond
 * consecutive failures"): real node:http servers on 127.0.0.1, the default peak-EWMA balancer, sequential calls.
 *
 * Why three rounds: at equal cost, which of three endpoints P2C favours over 300 sequential calls is decided by
 * their RTT noise (the costs stay within 0.01 ms of each other, and a strict comparison settles every pick), so
 * any one endpoint, peer or newcomer, gets anywhere from about 10 % to 60 % in a single round. Pooled over three
 * rounds, the newcomer's share is its fair third, give or take; with the default 30 ms cost it got 0 calls in 14
 * rounds of 15 (measured with the seeding turned off).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh } from '../../src/index.js';
import { startBackend, type Backend } from '../helpers/backends.js';

/** Answers after about 1 ms. */
const oneMs = (): Promise<Backend> => startBackend((_req, res) => void setTimeout(() => res.end('ok'), 1));

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function sequential(mesh: Mesh, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await mesh.fetch('http://api/');
    await res.arrayBuffer();
  }
}

/** One round: two measured peers, a third added, 300 sequential calls; the newcomer's share of them. */
async function round(): Promise<number> {
  const [a, b, c] = await Promise.all([oneMs(), oneMs(), oneMs()]);
  cleanup.push(() => a!.close(), () => b!.close(), () => c!.close());
  // Warm what is not under test: undici's first fetch and each TCP connection (kept alive in the global pool),
  // so that the costs measured are the endpoints' own, not a module load or a handshake.
  for (const backend of [a!, b!, c!]) for (let i = 0; i < 3; i++) await (await fetch(`http://${backend.address}/`)).arrayBuffer();
  const warmed = c!.seen.length;
  const registry = staticRegistry({ api: [a!.address, b!.address] });
  const mesh = createMesh({ registry });
  cleanup.push(() => mesh.close());

  await mesh.warmup(['api']);
  // Endpoints of the first list keep the default cost (30 ms, Linkerd's): there is no peer to take one from.
  for (const e of mesh.snapshot().services.api!.endpoints) expect(e.ewmaMs).toBeCloseTo(30, 0); // it decays as it is read
  await sequential(mesh, 200);
  const peers = mesh.snapshot().services.api!.endpoints.map((e) => e.ewmaMs);
  expect(Math.max(...peers)).toBeLessThan(30);

  registry.set('api', [a!.address, b!.address, c!.address]);
  const added = mesh.snapshot().services.api!.endpoints.find((e) => e.port === c!.port)!;
  // The peers' median (the mean of the two), give or take what the costs decayed between the two readings.
  expect(Math.abs(added.ewmaMs - (peers[0]! + peers[1]!) / 2)).toBeLessThan(0.5);
  expect(c!.seen.length).toBe(warmed);

  await sequential(mesh, 300);
  await mesh.close();
  return (c!.seen.length - warmed) / 300;
}

describe('a new endpoint starts from the median cost of its peers', () => {
  it('a 1 ms endpoint added beside two 1 ms peers gets at least 15 % of the next 300 sequential calls (pooled over 3 rounds)', async () => {
    const shares: number[] = [];
    for (let r = 0; r < 3; r++) shares.push(await round());
    const pooled = shares.reduce((x, y) => x + y, 0) / shares.length;
    console.log(`new endpoint's share of 300 calls, by round: ${shares.map((s) => `${(100 * s).toFixed(1)} %`).join(', ')}; pooled ${(100 * pooled).toFixed(1)} %`);
    for (const s of shares) expect(s).toBeGreaterThan(0); // never starved, as it was at the default cost
    expect(pooled).toBeGreaterThanOrEqual(0.15);
  });
});
