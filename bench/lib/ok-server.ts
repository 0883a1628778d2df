/**
 * The throughput benches' loopback backend (bench/fetch.ts, bench/sidecar.ts): a node:http server on 127.0.0.1
 * in a child process of its own, so that neither the client's event loop nor a proxy shares a process with it.
 * Plain JS for `node -e`: it prints its port and exits when its stdin closes (so with us, however we end).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/**
 * Answers `ok\n` at once, keep-alive. The idle timeout is longer than the proxies' upstream idle timeouts
 * (60 s in nginx, haproxy's default 5 s purge), so a proxy never reuses a socket the backend is closing.
 */
const SERVER = `
const http = require('node:http');
const body = Buffer.from('ok\\n');
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }).end(body);
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 125000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.stdin.on('end', () => { server.close(); server.closeAllConnections(); process.exit(0); }).resume();
`;

export interface Backend {
  readonly port: number;
  readonly child: ChildProcess;
  close(): Promise<void>;
}

export async function startBackend(): Promise<Backend> {
  const child: ChildProcess = spawn(process.execPath, ['-e', SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  try {
    const [first] = (await once(lines, 'line', { signal: AbortSignal.timeout(10_000) })) as [string];
    const port = Number(first);
    if (!Number.isInteger(port) || port <= 0) throw new Error(`bench backend printed ${JSON.stringify(first)}`);
    return { port, child, close: () => closeChild(child) };
  } catch (error) {
    child.kill();
    throw error;
  } finally {
    lines.close();
  }
}

/** Ends a `node -e` child by closing its stdin; SIGKILL if it has not exited 5 s later. */
async function closeChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** The outcome of one {@link closedLoop}. */
export interface LoopRun {
  readonly done: number;
  readonly errors: number;
  readonly elapsedMs: number;
  /** This process's CPU time (user + system) over the loop, in seconds. */
  readonly cpuS: number;
  /** Every request's latency in ms, ascending. */
  readonly sorted: Float64Array;
}

/**
 * A closed load loop: `workers` workers, each sending its next request when its last one is done, until
 * `requests` were started or `runMs` passed (bounded in count and time). `get` resolves true for a good answer;
 * false or a throw counts as an error. Every latency is recorded.
 */
export async function closedLoop(get: () => Promise<boolean>, workers: number, requests: number, runMs: number): Promise<LoopRun> {
  const latencies = new Float64Array(requests);
  let started = 0;
  let done = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const stopAt = t0 + runMs;
  const worker = async (): Promise<void> => {
    while (started < requests && performance.now() < stopAt) {
      started++;
      const begin = performance.now();
      try {
        if (!(await get())) errors++;
      } catch {
        errors++;
      }
      latencies[done++] = performance.now() - begin;
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { done, errors, elapsedMs, cpuS: (cpu.user + cpu.system) / 1e6, sorted: latencies.subarray(0, done).sort() };
}
