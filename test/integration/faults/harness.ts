// Backends as child processes that a test can kill, stall and revive, each reporting what it saw.
//
// Each backend is test/fixtures/faults/backend.mjs run with plain `node` (no tsx), listening on 127.0.0.1. It reports
// every request it fully received, and every socket close, over IPC; the test drives it with IPC commands (see the
// fixture's header). `kill()` sends SIGKILL; `revive()` starts a new process on the SAME port, so a static registry
// entry stays valid. Every backend started here is tracked: call `stopAllBackends()` in afterEach/afterAll.
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const script = resolve(root, 'test/fixtures/faults/backend.mjs');

/** How long a child may take to start listening, or to answer a command, before the test fails. */
const START_TIMEOUT_MS = 10_000;
const COMMAND_TIMEOUT_MS = 5_000;

/** What a backend does with each request. */
export type Behavior =
  | { kind: 'ok'; delayMs?: number }
  | { kind: 'status'; status: number; delayMs?: number }
  /** 1 request in `every` (evenly spread) waits `slowMs`, the others `delayMs`; all answer 200. */
  | { kind: 'slow'; every: number; slowMs: number; delayMs?: number }
  /** Reads the request and never answers; the socket stays open until the client closes it. */
  | { kind: 'stall' }
  /** Reads the body, then destroys the socket without a response. */
  | { kind: 'reset' };

/** One request as the backend saw it. */
export interface Seen {
  /** Per process life; `life` tells lives apart. */
  readonly id: number;
  /** 1 for the first process, 2 after the first revive, ... */
  readonly life: number;
  readonly method: string;
  readonly url: string;
  readonly bodyLength: number;
  /** The child's in-flight count right after this request arrived (itself included). */
  readonly inflight: number;
  /** `performance.now()` in the test process when the report arrived. */
  readonly at: number;
}

/** A socket that carried a request closed. */
export interface SocketClose {
  readonly id: number;
  readonly life: number;
  /** Whether a response had been sent on it for that request. */
  readonly answered: boolean;
  readonly at: number;
}

/** The child's own counters (current life only). */
export interface BackendStats {
  readonly requests: number;
  readonly inflight: number;
  readonly maxInflight: number;
  readonly openSockets: number;
}

type Message =
  | { type: 'listening'; port: number }
  | { type: 'request'; id: number; method: string; url: string; bodyLength: number; inflight: number }
  | { type: 'socket-close'; id: number; answered: boolean }
  | { type: 'ack'; seq: number; stats: BackendStats }
  | { type: 'error'; message: string; code?: string };

const live = new Set<ChildBackend>();

/** A node:http backend in a child process. */
export class ChildBackend {
  /** Every request seen, over every life of this backend. */
  readonly seen: Seen[] = [];
  readonly closes: SocketClose[] = [];
  life = 0;
  /** When the current life started listening (`performance.now()` in the test process). */
  listeningAt = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (s: BackendStats) => void; reject: (e: Error) => void }>();
  private behavior: Behavior;

  private constructor(
    public port: number,
    behavior: Behavior,
  ) {
    this.behavior = behavior;
  }

  /** Starts a backend on `port` (0: a free one) with `behavior` (default: 200 at once). */
  static async start(behavior: Behavior = { kind: 'ok' }, port = 0): Promise<ChildBackend> {
    const b = new ChildBackend(port, behavior);
    live.add(b);
    await b.spawn();
    return b;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.child !== undefined;
  }

  /** Requests seen in the current life, or in `life`. */
  seenIn(life = this.life): Seen[] {
    return this.seen.filter((s) => s.life === life);
  }

  /** Changes what the backend does with the next requests; resolves once the child has it. */
  async set(behavior: Behavior): Promise<BackendStats> {
    this.behavior = behavior;
    return this.command({ type: 'behavior', behavior });
  }

  /** Resolves when every report the child sent before now has arrived; returns its counters. */
  sync(): Promise<BackendStats> {
    return this.command({ type: 'sync' });
  }

  /** SIGKILL: the process dies at once, its sockets are reset by the kernel. Resolves when it has exited. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Starts a new process on the same port, with the last behavior set. */
  async revive(): Promise<void> {
    if (this.child !== undefined) throw new Error(`backend ${this.address} is still alive`);
    await this.spawn();
  }

  /** Forgets the requests and socket closes seen so far (after a warm-up). */
  async forget(): Promise<void> {
    await this.sync();
    this.seen.length = 0;
    this.closes.length = 0;
  }

  /** Kills it (if alive) and forgets it. */
  async stop(): Promise<void> {
    live.delete(this);
    await this.kill();
  }

  private spawn(): Promise<void> {
    const child = fork(script, [String(this.port)], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    const life = ++this.life;
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4_000) stderr += chunk;
    });
    this.exited = new Promise<void>((done) => {
      child.once('exit', () => {
        if (this.child === child) this.child = undefined;
        for (const p of this.pending.values()) p.reject(new Error(`backend ${this.address} exited`));
        this.pending.clear();
        done();
      });
    });
    return new Promise<void>((resolveStart, rejectStart) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        rejectStart(new Error(`backend did not listen within ${START_TIMEOUT_MS} ms: ${stderr}`));
      }, START_TIMEOUT_MS);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        rejectStart(new Error(`backend exited before listening (${code ?? signal}): ${stderr}`));
      });
      child.on('message', (raw) => {
        const msg = raw as Message;
        const at = performance.now();
        switch (msg.type) {
          case 'listening':
            clearTimeout(timer);
            this.port = msg.port;
            this.listeningAt = at;
            // The behavior outlives a revive: the new process gets the last one set before it serves.
            this.command({ type: 'behavior', behavior: this.behavior }).then(() => resolveStart(), rejectStart);
            return;
          case 'request':
            this.seen.push({ id: msg.id, life, method: msg.method, url: msg.url, bodyLength: msg.bodyLength, inflight: msg.inflight, at });
            return;
          case 'socket-close':
            this.closes.push({ id: msg.id, life, answered: msg.answered, at });
            return;
          case 'ack': {
            const p = this.pending.get(msg.seq);
            this.pending.delete(msg.seq);
            p?.resolve(msg.stats);
            return;
          }
          case 'error':
            clearTimeout(timer);
            rejectStart(new Error(`backend failed: ${msg.code ?? ''} ${msg.message}`));
        }
      });
    });
  }

  private command(msg: Record<string, unknown>): Promise<BackendStats> {
    const child = this.child;
    if (child === undefined) return Promise.reject(new Error(`backend ${this.address} is not running`));
    const seq = ++this.seq;
    return new Promise<BackendStats>((resolveCmd, rejectCmd) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        rejectCmd(new Error(`backend ${this.address} did not answer ${String(msg.type)} within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(seq, {
        resolve: (s) => {
          clearTimeout(timer);
          resolveCmd(s);
        },
        reject: (e) => {
          clearTimeout(timer);
          rejectCmd(e);
        },
      });
      child.send({ ...msg, seq });
    });
  }
}

/** A tuple of `N` `T`s (for `const [a, b, c] = await startBackends(3)`). */
type Tuple<N extends number, T, R extends T[] = []> = R['length'] extends N ? R : Tuple<N, T, [...R, T]>;

/** Starts `n` backends with the same behavior. */
export function startBackends<N extends number>(n: N, behavior?: Behavior): Promise<Tuple<N, ChildBackend>> {
  return Promise.all(Array.from({ length: n }, () => ChildBackend.start(behavior))) as Promise<Tuple<N, ChildBackend>>;
}

/**
 * Warms backends up with `n` direct GETs each (not through a mesh), so that a cold child (its JIT, its first
 * connection) does not give peak-EWMA a one-off latency peak to remember; then forgets those requests.
 */
export async function warm(backends: readonly ChildBackend[], n = 20): Promise<void> {
  for (const b of backends) {
    for (let i = 0; i < n; i++) {
      const res = await fetch(`http://${b.address}/warm-up`, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
    }
  }
  await Promise.all(backends.map((b) => b.forget()));
}

/** Kills every backend started and not yet stopped (for afterEach/afterAll). */
export async function stopAllBackends(): Promise<void> {
  await Promise.all([...live].map((b) => b.stop()));
}

/** Syncs every backend and returns the total of requests each saw in all its lives. */
export async function totalSeen(backends: readonly ChildBackend[]): Promise<number> {
  await Promise.all(backends.filter((b) => b.alive).map((b) => b.sync()));
  return backends.reduce((n, b) => n + b.seen.length, 0);
}

/** Polls `check` every 10 ms until it is truthy or `timeoutMs` passes; returns whether it became true. */
export async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() >= end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** The q-quantile (0..1) of `values`, nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}
