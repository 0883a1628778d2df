import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import { createMesh, staticRegistry, type Mesh, type Policy } from '../../src/index.js';
import { FETCHES, startServer, until, type Server } from './loopback.js';

// A body far larger than the socket buffers: a response nobody reads keeps its connection open and busy (the
// server cannot finish writing it) until the garbage collector happens to reclaim the Response, so every call
// needs one more connection. HTTP/1.1 cannot hand a connection back mid-body, and cancelling closes it (undici
// then even dials a spare): one new connection per discarded body either way. The mesh drains a discarded
// body instead (up to 8 MiB), so the connection goes back to the pool and 40 calls need only a handful.
const CHUNK = Buffer.alloc(64 * 1024, 0x78);
const CHUNKS = 64; // 4 MiB

function bigUnavailable(_req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(503, { 'content-type': 'application/octet-stream', 'content-length': String(CHUNK.length * CHUNKS) });
  let sent = 0;
  const write = (): void => {
    while (sent < CHUNKS) {
      sent++;
      if (!res.write(CHUNK)) {
        res.once('drain', write);
        return;
      }
    }
    res.end();
  };
  res.on('close', () => res.removeAllListeners('drain'));
  write();
}

const CALLS = 40;

const modes: { name: string; policy: Policy; attemptsPerCall: number }[] = [
  { name: 'a hedge that lost', policy: { hedge: { delayMs: 0, maxAttempts: 2 }, retry: false }, attemptsPerCall: 2 },
  {
    name: 'a retried 503',
    policy: { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2, budget: false }, hedge: false, breaker: false, outlier: false },
    attemptsPerCall: 3,
  },
];

describe.each(FETCHES)('bodies the caller never sees, on $name', ({ fetch }) => {
  it.each(modes)('$name: its body is drained, so 40 calls open a handful of connections, not one per call', async ({ policy, attemptsPerCall }) => {
    const a = await startServer(bigUnavailable);
    const b = await startServer(bigUnavailable);
    const mesh: Mesh = createMesh({
      registry: staticRegistry({ svc: [a.address, b.address] }),
      defaults: { balancer: 'round-robin', timeout: { attemptMs: 5_000, totalMs: 8_000 }, breaker: false, outlier: false, ...policy },
      fetch,
    });
    // A hedge goes out only while the first attempt is still out: with delayMs 0 (a 1 ms timer in Node) a loopback
    // 503 now and then comes back first, and that call ends with one attempt. So count the hedges actually sent.
    let hedges = 0;
    mesh.on('hedge', () => hedges++);
    try {
      for (let i = 0; i < CALLS; i++) {
        const res = await mesh.fetch(`http://svc/big/${i}`);
        expect(res.status).toBe(503); // the last 503, handed to the caller as fetch would
        // The caller reads what it was given, as a user would: that body is complete.
        expect((await res.arrayBuffer()).byteLength).toBe(CHUNK.length * CHUNKS);
      }
      const servers: Server[] = [a, b];
      const requests = servers.reduce((n, s) => n + s.seen.length, 0);
      if (policy.hedge) {
        expect(hedges).toBeGreaterThanOrEqual(CALLS / 2); // losing hedges, whose bodies must be drained, were many
        expect(requests).toBe(CALLS + hedges); // every attempt went out
      } else {
        expect(requests).toBe(CALLS * attemptsPerCall); // every attempt went out, the 503s were retried
      }
      // Leaked bodies pile up (19 open at once on the old hedge path); cancelled ones cost a new connection
      // per call (45 to 161 over these 40 calls). Drained, a drain still under way when the next call starts
      // may need one more connection now and then.
      const opened = servers.reduce((n, s) => n + s.connections, 0);
      console.log(`${opened} connections over ${CALLS} calls`);
      expect(opened, `${opened} connections over ${CALLS} calls`).toBeLessThanOrEqual(8);
      for (const s of servers) expect(s.maxOpen).toBeLessThanOrEqual(4);
      // Nothing stays stuck mid-body: every connection the calls used is closed or idle again.
      await until(() => a.open + b.open <= 4, 5_000, 'connections to close');
    } finally {
      await mesh.close();
    }
  }, 30_000);
});
