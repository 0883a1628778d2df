/**
 * A fake etcd 3.4 gateway for etcdRegistry's unit tests: a fetch that answers in the shapes the real etcd 3.4
 * gives (as recorded against the binary: see src/discovery/etcd/wire.ts). {@link useFakeEtcd} installs fake
 * timers and a fresh {@link FakeEtcd} per test: no sleeping, no sockets.
 */
import { afterEach, beforeEach, vi } from 'vitest';
import type { FetchLike } from '../../src/discovery/consul-config.js';
import { etcdRegistry, type EtcdRegistry, type EtcdRegistryOptions } from '../../src/discovery/etcd/index.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';

export const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
export const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
export const json = (status: number, body: unknown): Response => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

interface LogEntry {
  readonly rev: bigint;
  readonly type: 'PUT' | 'DELETE';
  readonly key: string;
  readonly value?: string;
}

/** One `/v3/watch` stream the fake holds open. */
export class FakeStream {
  closed = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly body: ReadableStream<Uint8Array>;
  constructor(
    readonly key: string,
    readonly end: string,
    readonly start: bigint,
    readonly request: Record<string, unknown>,
  ) {
    this.body = new ReadableStream({ start: (c) => void (this.controller = c), cancel: () => void (this.closed = true) });
  }
  covers(key: string): boolean {
    return Buffer.compare(Buffer.from(key), Buffer.from(this.key)) >= 0 && Buffer.compare(Buffer.from(key), Buffer.from(this.end)) < 0;
  }
  /** Sends one raw line (a message and its newline, as grpc-gateway writes them). */
  line(text: string): void {
    if (!this.closed) this.controller.enqueue(new TextEncoder().encode(`${text}\n`));
  }
  send(result: unknown): void {
    this.line(JSON.stringify({ result }));
  }
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.controller.close();
  }
  fail(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.controller.error(error);
  }
}

/** An etcd gateway in memory: the KV store, its event log, watch streams, and switches to make it fail. */
export class FakeEtcd {
  revision = 1n;
  compacted = 0n;
  readonly kvs = new Map<string, { value: string; mod: bigint }>();
  readonly log: LogEntry[] = [];
  readonly streams: FakeStream[] = [];
  readonly requests: { origin: string; path: string; body: Record<string, unknown>; headers: Headers }[] = [];
  /** Origins that refuse connections. */
  readonly down = new Set<string>();
  /** The next answers to a path, instead of the normal one. */
  readonly overrides = new Map<string, (() => Response)[]>();

  readonly fetch: FetchLike = async (input, init) => {
    const url = new URL(String(input));
    const body = JSON.parse(String(init?.body ?? '{}')) as Record<string, unknown>;
    this.requests.push({ origin: url.origin, path: url.pathname, body, headers: new Headers(init?.headers) });
    const signal = init?.signal ?? undefined;
    if (signal?.aborted) throw signal.reason;
    if (this.down.has(url.origin)) throw new TypeError('fetch failed', { cause: new Error(`connect ECONNREFUSED ${url.host}`) });
    const override = this.overrides.get(url.pathname)?.shift();
    if (override) return override();
    switch (url.pathname) {
      case '/v3/kv/range':
        return json(200, this.range(body));
      case '/v3/watch':
        return this.watch(body, signal);
      default:
        return json(404, { error: 'Not Found', code: 5 });
    }
  };

  header(): Record<string, string> {
    return { cluster_id: '1', member_id: '2', revision: this.revision.toString(), raft_term: '2' };
  }

  private range(body: Record<string, unknown>): unknown {
    const key = unb64(body.key as string);
    const end = unb64(body.range_end as string);
    const kvs = [...this.kvs.entries()]
      .filter(([k]) => k >= key && k < end)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => ({ key: b64(k), create_revision: v.mod.toString(), mod_revision: v.mod.toString(), version: '1', value: b64(v.value) }));
    // Proto3 JSON: an empty kvs and a zero count are left out.
    return kvs.length > 0 ? { header: this.header(), kvs, count: String(kvs.length) } : { header: this.header() };
  }

  private watch(body: Record<string, unknown>, signal: AbortSignal | undefined): Response {
    const create = body.create_request as Record<string, string | boolean>;
    const start = BigInt((create.start_revision as string | undefined) ?? '0');
    const stream = new FakeStream(unb64(create.key as string), unb64(create.range_end as string), start, create);
    this.streams.push(stream);
    signal?.addEventListener('abort', () => stream.fail(signal.reason as Error), { once: true });
    stream.send({ header: this.header(), created: true });
    if (start > 0n && start <= this.compacted) {
      // What etcd 3.4 sends, and then it keeps the stream open: the client must close it.
      stream.send({ header: { cluster_id: '1', member_id: '2', raft_term: '2' }, canceled: true, compact_revision: this.compacted.toString() });
    } else {
      for (const entry of this.log) if (entry.rev >= start && stream.covers(entry.key)) stream.send(this.eventsOf([entry]));
    }
    return new Response(stream.body, { status: 200, headers: { 'content-type': 'application/json' } });
  }

  private eventsOf(entries: readonly LogEntry[]): unknown {
    return {
      header: this.header(),
      events: entries.map((e) =>
        e.type === 'PUT'
          ? { kv: { key: b64(e.key), create_revision: e.rev.toString(), mod_revision: e.rev.toString(), version: '1', value: b64(e.value!) } } // PUT is type 0: left out
          : { type: 'DELETE', kv: { key: b64(e.key), mod_revision: e.rev.toString() } },
      ),
    };
  }

  private commit(entries: LogEntry[]): void {
    this.log.push(...entries);
    for (const s of this.streams) {
      if (s.closed) continue;
      const mine = entries.filter((e) => s.covers(e.key) && e.rev >= s.start);
      if (mine.length > 0) s.send(this.eventsOf(mine));
    }
  }

  /** Puts several keys in one revision (a txn): one watch response. */
  put(entries: Record<string, unknown>): void {
    this.revision++;
    const log: LogEntry[] = [];
    for (const [key, value] of Object.entries(entries)) {
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      this.kvs.set(key, { value: text, mod: this.revision });
      log.push({ rev: this.revision, type: 'PUT', key, value: text });
    }
    this.commit(log);
  }

  del(key: string): void {
    if (!this.kvs.delete(key)) return;
    this.revision++;
    this.commit([{ rev: this.revision, type: 'DELETE', key }]);
  }

  /** Changes a key outside every watch: only the revision moves. */
  bump(): void {
    this.revision++;
  }

  compact(): void {
    this.compacted = this.revision;
    this.log.splice(0, this.log.length);
  }

  get open(): FakeStream[] {
    return this.streams.filter((s) => !s.closed);
  }

  count(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }
}

export const E1 = 'http://127.0.0.1:2379';
export const E2 = 'http://127.0.0.1:22379';
export const ep = (port: number, extra: Record<string, unknown> = {}) => ({ host: '127.0.0.1', port, ...extra });
export const ids = (list: readonly Endpoint[] | undefined): string[] => (list ?? []).map((e) => `${e.id}:${e.port}`).sort();
export const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await vi.advanceTimersByTimeAsync(0);
};

/** The fake of the running test (a live binding: set afresh by {@link useFakeEtcd}'s beforeEach). */
export let fake: FakeEtcd;
let registries: EtcdRegistry[] = [];
/** Fake timers and a fresh FakeEtcd for each test of the file; the registries `make` made are closed after it. */
export function useFakeEtcd(): void {
  beforeEach(() => {
    vi.useFakeTimers();
    fake = new FakeEtcd();
    registries = [];
  });
  afterEach(() => {
    for (const r of registries) r.close();
    vi.useRealTimers();
  });
}

export function make(options: EtcdRegistryOptions = {}): EtcdRegistry {
  const r = etcdRegistry({ endpoints: [E1], fetch: fake.fetch, random: () => 0.5, ...options });
  registries.push(r);
  return r;
}
export function watch(r: EtcdRegistry, service = 'users') {
  const updates: (readonly Endpoint[])[] = [];
  const errors: Error[] = [];
  const stop = r.watch(service, (l) => updates.push(l), (e) => errors.push(e));
  return { updates, errors, stop };
}

