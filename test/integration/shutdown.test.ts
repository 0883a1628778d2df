// Clean shutdown: a process that made calls exits by itself within 200 ms of `await mesh.close()`.
//
// The child (test/fixtures/shutdown-child.ts, run with tsx) prints Date.now() when close returns and again in
// process.on('exit'); both come from the child's own clock, so the test runner's scheduling and the time to
// reap the child do not count. When the child outlives close, its printed getActiveResourcesInfo() and live
// handles name what holds it, and the assertion message carries them.
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = join(root, 'test/fixtures/shutdown-child.ts');
const EXIT_WITHIN_MS = 200;
/** The child is killed after this long; far above any sane exit, so the report can name what held it. */
const KILL_AFTER_MS = 15_000;

let server: http.Server;
let backend: string;
let refused: string;

function listen(s: http.Server): Promise<string> {
  return new Promise((done) => s.listen(0, '127.0.0.1', () => done(`127.0.0.1:${(s.address() as AddressInfo).port}`)));
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    switch (req.url) {
      case '/ok':
        res.end('ok');
        return;
      case '/fail':
        res.writeHead(503).end('unavailable');
        return;
      case '/retry-after':
        res.writeHead(503, { 'retry-after': '3' }).end('later');
        return;
      case '/hang':
        return; // no response until the test closes the server
      default:
        res.writeHead(404).end();
    }
  });
  backend = await listen(server);
  // A loopback port with nothing listening: connections are refused.
  const gone = http.createServer();
  refused = await listen(gone);
  await new Promise<void>((done) => gone.close(() => done()));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((done) => server.close(() => done()));
});

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  killed: boolean;
  lines: Record<string, unknown>[];
  stdout: string;
  stderr: string;
}

function runChild(scenario: string): Promise<ChildRun> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, scenario, backend, refused], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const killer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, KILL_AFTER_MS);
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      const lines = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      done({ code, signal, killed, lines, stdout, stderr });
    });
  });
}

/** Milliseconds from close's return to the exit handler, with a message that names what held the child. */
function exitDelay(run: ChildRun): { ms: number; why: string } {
  const closed = run.lines.find((l) => 'closed' in l)?.closed as number | undefined;
  const exited = run.lines.find((l) => 'exit' in l)?.exit as number | undefined;
  const why = [
    `code ${run.code}, signal ${run.signal}${run.killed ? `, killed after ${KILL_AFTER_MS} ms` : ''}`,
    ...run.lines.filter((l) => 'resources' in l).map((l) => `alive at +${l.at} ms: ${JSON.stringify(l.resources)} handles ${JSON.stringify(l.handles)} ref'd timers from ${JSON.stringify(l.timers)}`),
    ...run.lines.filter((l) => 'outcome' in l).map((l) => `${l.outcome}: ${JSON.stringify(l.result)}`),
    run.stderr.trim() && `stderr: ${run.stderr.trim()}`,
  ]
    .filter(Boolean)
    .join('\n');
  if (closed === undefined) {
    // 13 is Node's exit code for a top-level await that never settled: the event loop emptied while the
    // child still awaited a call, i.e. nothing held the process during that call (an unref'd timer).
    const hint = run.code === 13 ? ' (exit code 13: the event loop emptied while a call was still pending)' : '';
    throw new Error(`the child never reached mesh.close()${hint}\n${why}`);
  }
  if (exited === undefined) throw new Error(`the child never exited by itself\n${why}`);
  return { ms: exited - closed, why };
}

function outcome(run: ChildRun, name: string): unknown {
  return run.lines.find((l) => l.outcome === name)?.result;
}

describe('shutdown', () => {
  it(`a child whose calls have all finished exits within ${EXIT_WITHIN_MS} ms of mesh.close()`, async () => {
    const run = await runChild('settled');
    const { ms, why } = exitDelay(run);
    expect(ms, `exited ${ms} ms after close\n${why}`).toBeLessThan(EXIT_WITHIN_MS);
    expect(run.code, why).toBe(0);
    // The calls really ran: kept-alive sockets, retries and failures are what close must cope with.
    expect(outcome(run, 'fetch ok 4')).toEqual({ value: { status: 200, body: 'ok' } });
    expect(outcome(run, 'fetch 503 after retries')).toEqual({ value: { status: 503, body: 'unavailable' } });
    expect(outcome(run, 'call ok 2')).toEqual({ value: 'ok' });
    expect(outcome(run, 'call refused after retries')).toMatchObject({ rejected: 'CallFailedError' });
  });

  it(`a child that closes with calls in flight exits within ${EXIT_WITHIN_MS} ms of mesh.close()`, async () => {
    const run = await runChild('in-flight');
    const { ms, why } = exitDelay(run);
    expect(ms, `exited ${ms} ms after close\n${why}`).toBeLessThan(EXIT_WITHIN_MS);
    expect(run.code, why).toBe(0);
    // close aborts attempts in flight; their calls reject with MeshClosedError.
    expect(outcome(run, 'fetch waiting for headers'), why).toMatchObject({ rejected: 'MeshClosedError' });
    expect(outcome(run, 'call waiting on its signal'), why).toMatchObject({ rejected: 'MeshClosedError' });
    // No call is left dangling: one asleep between attempts ends with the mesh too.
    expect(outcome(run, 'fetch in backoff'), why).toMatchObject({ rejected: 'MeshClosedError' });
    expect(outcome(run, 'fetch waiting out Retry-After'), why).toMatchObject({ rejected: 'MeshClosedError' });
  });

  it(`a child using meshDispatcher (undici pools, a request in flight) and a per-service fetch dispatcher exits within ${EXIT_WITHIN_MS} ms of mesh.close()`, async () => {
    const run = await runChild('undici');
    const { ms, why } = exitDelay(run);
    expect(ms, `exited ${ms} ms after close\n${why}`).toBeLessThan(EXIT_WITHIN_MS);
    expect(run.code, why).toBe(0);
    expect(outcome(run, 'undici ok 4'), why).toEqual({ value: { status: 200, body: 'ok' } });
    expect(outcome(run, 'fetch via the service dispatcher'), why).toEqual({ value: 'ok' });
    expect(outcome(run, 'undici 503 after retries'), why).toEqual({ value: { status: 503, body: 'unavailable' } });
    expect(outcome(run, 'undici waiting for headers'), why).toMatchObject({ rejected: 'MeshClosedError' });
  });
});
