/**
 * A real etcd for the tests and benches: `startEtcd()` runs the machine's etcd (Debian `etcd-server`, 3.4) on
 * free loopback ports with a temporary data dir, and can stop it and start it again on the same data dir and
 * port ("etcd down", "etcd back"). Plus the raw gateway calls a test needs to change what etcd holds. The TCP
 * proxy that can be switched off is in etcd-proxy.ts, the registrant child process in etcd-registrant.ts; both
 * are re-exported here. Everything listens on 127.0.0.1 only.
 *
 * The suites skip when etcd is missing, unless `REQUIRE_ETCD=1` (CI sets it), which makes them fail: see
 * {@link etcdBinary} and {@link etcdRequired}. `ETCD_PATH` points at another binary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authority, type EndpointInput } from '../../src/endpoint/endpoint.js';
import { findBinary, freePort, required } from '../observe/binaries.js';

/** The etcd binary (on PATH, or `ETCD_PATH`), or undefined when there is none. */
export const etcdBinary: string | undefined = findBinary('etcd', process.env.ETCD_PATH);

/** Whether the etcd suites must run (`REQUIRE_ETCD=1` or `true`): then a missing binary fails them. */
export function etcdRequired(): boolean {
  return required('REQUIRE_ETCD');
}

/** A running (or stopped, restartable) etcd. */
export interface EtcdServer {
  /** The client URL, `http://127.0.0.1:<clientPort>`; it stays the same across `stop()` and `start()`. */
  readonly url: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  /** Whether the process runs (it may be paused). */
  readonly running: boolean;
  /** etcd's output so far (the last 64 KiB), for failure messages. */
  log(): string;
  /** Ends the process (SIGTERM: etcd shuts down cleanly; SIGKILL: a crash) and waits for it; the data dir stays. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts etcd again on the same data dir and ports, and waits until it answers. */
  start(): Promise<void>;
  /** SIGSTOP: etcd keeps its sockets but answers nothing (a hung server). `resume()` sends SIGCONT. */
  pause(): void;
  resume(): void;
  /** Kills etcd and removes its data dir. */
  close(): Promise<void>;
  /** One gateway call (`/v3/kv/put`, ...): the parsed answer, or an Error quoting etcd's. */
  call(path: string, body: unknown): Promise<Record<string, unknown>>;
  /** Puts `key` (a value that is not a string is written as JSON), optionally under a lease. Resolves with the new revision. */
  put(key: string, value: unknown, lease?: string): Promise<bigint>;
  /** Deletes `key`, or every key starting with it with `{ prefix: true }`. */
  del(key: string, options?: { prefix?: boolean }): Promise<void>;
  /** The keys starting with `prefix`, and their values, as text. */
  get(prefix: string): Promise<Map<string, string>>;
  /**
   * Makes `<prefix><service>/` hold exactly these endpoints, in one transaction (so a watcher never sees a
   * half-done change): the key of each is `<prefix><service>/<id or host:port>`, its value the registry's JSON.
   */
  setService(prefix: string, service: string, endpoints: readonly EndpointInput[]): Promise<void>;
  /** A lease with this TTL, in seconds: its ID. */
  grant(ttlSeconds: number): Promise<string>;
  /** The store's current revision. */
  revision(): Promise<bigint>;
  /** Compacts the store at its current revision (physically): watches from older revisions get `compact_revision`. */
  compact(): Promise<bigint>;
}

export interface StartEtcdOptions {
  /** More etcd flags, e.g. `['--experimental-watch-progress-notify-interval=1s']`. */
  readonly args?: readonly string[];
  /** How long to wait for etcd to answer. Default 15000. */
  readonly readyTimeoutMs?: number;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: unknown): string => (typeof text === 'string' ? Buffer.from(text, 'base64').toString('utf8') : '');
/** The end of the prefix range (last byte + 1), as rpc.proto RangeRequest describes. */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  let i = bytes.length - 1;
  while (i >= 0 && bytes[i] === 0xff) i--;
  if (i < 0) return b64('\0');
  const end = Buffer.from(bytes.subarray(0, i + 1));
  end[i]! += 1;
  return end.toString('base64');
}

/** Processes and dirs to clean up if the test process exits without `close()` (a crashed or killed suite). */
export const live = new Set<{ child?: ChildProcess; dir: string }>();
let exitHook = false;
function onExit(): void {
  for (const entry of live) {
    try {
      entry.child?.kill('SIGKILL');
    } catch {
      // already gone
    }
    if (entry.dir) rmSync(entry.dir, { recursive: true, force: true });
  }
}

/** One raw gateway POST (for tests: errors quote etcd's answer). */
export async function etcdCall(url: string, path: string, body: unknown, headers?: Record<string, string>): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body), headers, signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`etcd answered ${response.status} to POST ${path}: ${text.slice(0, 300)}`);
  return JSON.parse(text.split('\n')[0]!) as Record<string, unknown>;
}

/**
 * Starts etcd on two free loopback ports (client and peer, so that nothing uses 2379/2380) with a new temp data
 * dir, and resolves once it answers. Call `close()` at the end (afterAll).
 */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  if (etcdBinary === undefined) throw new Error('etcd is not installed (apt-get install etcd-server), or ETCD_PATH is wrong');
  if (!exitHook) {
    exitHook = true;
    process.once('exit', onExit);
  }
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-etcd-'));
  const entry: { child?: ChildProcess; dir: string } = { dir };
  live.add(entry);
  let clientPort = 0;
  let peerPort = 0;
  let output = '';
  let exited: Promise<void> = Promise.resolve();
  let running = false;

  const launch = async (): Promise<void> => {
    const name = 'proxyless-test';
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const child = spawn(
      etcdBinary!,
      [
        `--name=${name}`,
        `--data-dir=${join(dir, 'data')}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${name}=${peer}`,
        '--logger=zap',
        '--log-outputs=stderr',
        '--log-level=warn',
        ...(options.args ?? []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    entry.child = child;
    running = true;
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-65_536);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    exited = new Promise((done) => {
      child.once('exit', () => {
        running = false;
        done();
      });
      child.once('error', (error) => {
        output += `\nspawn failed: ${error.message}`;
        running = false;
        done();
      });
    });
    const deadline = Date.now() + (options.readyTimeoutMs ?? 15_000);
    for (;;) {
      if (!running) throw new Error(`etcd exited before it answered:\n${output}`);
      try {
        const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1_000) });
        const body = (await res.json()) as { health?: unknown };
        if (body.health === 'true') return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`etcd did not answer on ${client} within ${options.readyTimeoutMs ?? 15_000} ms:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  // Two free ports a moment ago may be taken by the time etcd binds: try afresh a few times.
  for (let attempt = 1; ; attempt++) {
    [clientPort, peerPort] = [await freePort(), await freePort()];
    try {
      await launch();
      break;
    } catch (error) {
      entry.child?.kill('SIGKILL');
      await exited;
      rmSync(join(dir, 'data'), { recursive: true, force: true });
      if (attempt >= 3 || !/address already in use/.test(output)) {
        live.delete(entry);
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
      output = '';
    }
  }

  const url = `http://127.0.0.1:${clientPort}`;
  const call = (path: string, body: unknown) => etcdCall(url, path, body);
  const revisionOf = (answer: Record<string, unknown>): bigint => BigInt(((answer.header as { revision?: string } | undefined)?.revision ?? '0') as string);
  const get = async (prefix: string): Promise<Map<string, string>> => {
    const answer = await call('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) });
    const kvs = (answer.kvs ?? []) as { key: string; value?: string }[];
    return new Map(kvs.map((kv) => [unb64(kv.key), unb64(kv.value)]));
  };

  const server: EtcdServer = {
    url,
    clientPort,
    peerPort,
    dataDir: join(dir, 'data'),
    get running() {
      return running;
    },
    log: () => output,
    async stop(signal = 'SIGTERM') {
      if (!running) return;
      entry.child?.kill('SIGCONT'); // a paused etcd cannot handle SIGTERM
      entry.child?.kill(signal);
      const timer = setTimeout(() => entry.child?.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    async start() {
      if (running) throw new Error('etcd is running already');
      await launch();
    },
    pause: () => void entry.child?.kill('SIGSTOP'),
    resume: () => void entry.child?.kill('SIGCONT'),
    async close() {
      if (running) {
        entry.child?.kill('SIGCONT');
        entry.child?.kill('SIGKILL');
        await exited;
      }
      live.delete(entry);
      rmSync(dir, { recursive: true, force: true });
    },
    call,
    async put(key, value, lease) {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      return revisionOf(await call('/v3/kv/put', { key: b64(key), value: b64(text), ...(lease ? { lease } : {}) }));
    },
    async del(key, opts) {
      await call('/v3/kv/deleterange', { key: b64(key), ...(opts?.prefix ? { range_end: prefixEnd(key) } : {}) });
    },
    get,
    async setService(prefix, service, endpoints) {
      const base = `${prefix}${service}/`;
      const wanted = new Map<string, string>();
      for (const e of endpoints) {
        const input: Exclude<EndpointInput, string> = typeof e === 'string' ? parseAddress(e) : e;
        const { id, ...value } = input;
        wanted.set(`${base}${id ?? authority(input.host, input.port)}`, JSON.stringify(value));
      }
      const present = await get(base);
      const ops: unknown[] = [];
      // etcd refuses a txn that deletes and puts the same key ("duplicate key given in txn request").
      for (const key of present.keys()) if (!wanted.has(key)) ops.push({ request_delete_range: { key: b64(key) } });
      for (const [key, value] of wanted) if (present.get(key) !== value) ops.push({ request_put: { key: b64(key), value: b64(value) } });
      if (ops.length > 0) await call('/v3/kv/txn', { compare: [], success: ops });
    },
    async grant(ttlSeconds) {
      return String((await call('/v3/lease/grant', { TTL: String(ttlSeconds) })).ID);
    },
    async revision() {
      return revisionOf(await call('/v3/kv/range', { key: b64('\0'), limit: '1' }));
    },
    async compact() {
      const rev = await server.revision();
      await call('/v3/kv/compaction', { revision: rev.toString(), physical: true });
      return rev;
    },
  };
  return server;
}

function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) throw new Error(`not host:port: ${address}`);
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) };
}


export { startEtcdProxy, type EtcdProxy } from './etcd-proxy.js';
export { spawnRegistrant, type Registrant } from './etcd-registrant.js';
