/**
 * Loopback HTTP backends for the resilience benches, in a child process so that the client's event loop
 * (where the mesh runs) is the only thing in this one. Each backend answers after a fixed latency, with
 * 200 or, with probability 1 − successRate, with `failStatus`; every request is counted. The child listens
 * on 127.0.0.1 only, draws its failures from a seeded generator, and exits when its stdin closes (so
 * with us, however we end).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface, type Interface } from 'node:readline';

export interface BackendSpec {
  /** Time before the answer, in ms. */
  readonly latencyMs: number;
  /** Share of requests answered 200 (the rest get `failStatus`). */
  readonly successRate: number;
  readonly failStatus?: number;
  /** Never more failures in a row than this (the next answer is a success): an intermittent, not a dead, backend. */
  readonly maxFailuresInARow?: number;
}

export interface Backends {
  /** `127.0.0.1:port` of each backend, in the order of the specs. */
  readonly addresses: readonly string[];
  /** Requests each backend has received since the start or the last `reset()`. */
  counts(): Promise<number[]>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Plain JS for `node -e`: args are the specs (JSON) and a seed; it prints the ports, then answers commands on stdin. */
const CHILD = `
const http = require('node:http');
const specs = JSON.parse(process.argv[1]);
let seed = Number(process.argv[2]) >>> 0;
const rng = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const counts = specs.map(() => 0);
const runs = specs.map(() => 0);
const ok = Buffer.from('ok\\n');
const fail = Buffer.from('failed\\n');
const servers = specs.map((spec, i) => {
  const server = http.createServer((req, res) => {
    counts[i]++;
    req.resume();
    const answer = () => {
      if (res.destroyed) return;
      const capped = spec.maxFailuresInARow !== undefined && runs[i] >= spec.maxFailuresInARow;
      const good = capped || spec.successRate >= 1 || rng() < spec.successRate;
      runs[i] = good ? 0 : runs[i] + 1;
      const body = good ? ok : fail;
      res.writeHead(good ? 200 : (spec.failStatus || 500), { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
    };
    if (spec.latencyMs > 0) setTimeout(answer, spec.latencyMs);
    else answer();
  });
  server.keepAliveTimeout = 60000;
  server.headersTimeout = 65000;
  return server;
});
Promise.all(servers.map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r)))).then(() => {
  console.log(JSON.stringify(servers.map((s) => s.address().port)));
});
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line === 'counts') console.log(JSON.stringify(counts));
  else if (line === 'reset') { counts.fill(0); console.log('[]'); }
});
rl.on('close', () => {
  for (const s of servers) { s.close(); s.closeAllConnections(); }
  process.exit(0);
});
`;

/** Starts the backends; their ports are printed by the child once every one listens. */
export async function startBackends(specs: readonly BackendSpec[], seed = 42): Promise<Backends> {
  const child: ChildProcess = spawn(process.execPath, ['-e', CHILD, JSON.stringify(specs), String(seed)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: Interface = createInterface({ input: child.stdout! });
  const pending: ((line: string) => void)[] = [];
  lines.on('line', (line) => pending.shift()?.(line));
  const next = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('bench backends did not answer within 10 s')), 10_000);
      pending.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  const ports = JSON.parse(await next()) as number[];
  if (!Array.isArray(ports) || ports.length !== specs.length) throw new Error(`bench backends printed ${JSON.stringify(ports)}`);
  const command = async (cmd: 'counts' | 'reset'): Promise<number[]> => {
    const answer = next();
    child.stdin!.write(`${cmd}\n`);
    return JSON.parse(await answer) as number[];
  };
  return {
    addresses: ports.map((p) => `127.0.0.1:${p}`),
    counts: () => command('counts'),
    async reset() {
      await command('reset');
    },
    async close() {
      lines.close();
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin!.end();
      const timer = setTimeout(() => child.kill(), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
