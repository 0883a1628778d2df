/**
 * A scripted SliceSource for the unit tests of the list+watch loop (src/discovery/kubernetes/loop.ts): the
 * Kubernetes API double reduced to what the loop sees, each list and watch waiting for the test to settle it, or
 * answered by a script. With vitest's fake timers, the loop's time (backoff, idle timeout, watch lengths) is
 * the test's.
 */
import { vi } from 'vitest';
import { KubernetesError } from '../../src/discovery/kubernetes/http.js';
import { ListWatchLoop, type EventSink, type LoopTiming, type SliceSnapshot, type SliceSource } from '../../src/discovery/kubernetes/loop.js';
import { selectEndpoints, type SliceEvent, type StoredSlice } from '../../src/discovery/kubernetes/slices.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { deferred, type Deferred } from '../discovery/fakes.js';

/** A slice of `users` with these ready IPs on port 8080. */
export function slice(name: string, ...ips: string[]): StoredSlice {
  return {
    name,
    service: 'users',
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, tcp: true }],
    endpoints: ips.map((address) => ({ address, ready: true, serving: true, terminating: false, zone: undefined, uid: undefined, pod: undefined, node: undefined })),
  };
}
export const snap = (resourceVersion: string, ...slices: StoredSlice[]): SliceSnapshot => ({ resourceVersion, slices });
export const modified = (rv: string, s: StoredSlice): SliceEvent => ({ type: 'MODIFIED', resourceVersion: rv, slice: s });
export const bookmark = (rv: string): SliceEvent => ({ type: 'BOOKMARK', resourceVersion: rv });
export const gone = (rv = '1'): SliceEvent => ({ type: 'ERROR', code: 410, reason: 'Expired', message: `too old resource version: ${rv} (900)` });

export interface ScriptedWatch {
  readonly resourceVersion: string;
  readonly timeoutSeconds: number;
  readonly signal: AbortSignal;
  readonly sink: EventSink;
  readonly done: Deferred<void>;
  /** When it was opened (Date.now(), the fake clock). */
  readonly at: number;
  /** Sends one chunk of events (the sink may throw: then the watch fails with it, as the client does). */
  send(...events: SliceEvent[]): void;
}

export interface ScriptedList {
  readonly signal: AbortSignal;
  readonly result: Deferred<SliceSnapshot>;
  readonly at: number;
}

/**
 * A source the test drives: each list and watch waits for the test, unless `script.list` / `script.watch` answer
 * it as it is made (a watch script that settles `done` at once plays a server that ends or refuses every watch).
 */
export function scriptedSource(script: { list?: (l: ScriptedList) => void; watch?: (w: ScriptedWatch) => void } = {}) {
  const lists: ScriptedList[] = [];
  const watches: ScriptedWatch[] = [];
  const source: SliceSource = {
    list(signal) {
      const result = deferred<SliceSnapshot>();
      signal.addEventListener('abort', () => result.reject(signal.reason), { once: true });
      const l = { signal, result, at: Date.now() };
      lists.push(l);
      script.list?.(l);
      return result.promise;
    },
    watch(resourceVersion, timeoutSeconds, signal, sink) {
      const done = deferred<void>();
      signal.addEventListener('abort', () => done.reject(signal.reason), { once: true });
      const w: ScriptedWatch = {
        resourceVersion,
        timeoutSeconds,
        signal,
        sink,
        done,
        at: Date.now(),
        send(...events) {
          sink.activity();
          try {
            sink.events(events);
          } catch (error) {
            done.reject(error);
          }
        },
      };
      watches.push(w);
      sink.activity(); // the headers: the server answered 200
      script.watch?.(w);
      return done.promise;
    },
  };
  return { source, lists, watches, lastWatch: () => watches.at(-1)!, lastList: () => lists.at(-1)! };
}

/** The loop's timing with the registry's defaults, on the fake clock, without jitter. */
export const timing = (over: Partial<LoopTiming> = {}): LoopTiming => ({
  backoffInitialMs: 1_000,
  backoffMaxMs: 30_000,
  idleTimeoutMs: 150_000,
  watchTimeoutSeconds: 300,
  now: () => Date.now(),
  random: () => 0.5, // no jitter: 0.8 + 0.4 × 0.5 = 1, and a watch timeout of 1.5 × 300 s
  ...over,
});

/** Handlers that record what the loop publishes (sorted hosts) and reports. */
export function recorder() {
  const updates: string[][] = [];
  const errors: Error[] = [];
  return {
    updates,
    errors,
    handlers: {
      service: 'users',
      select: (slices: Iterable<StoredSlice>): readonly Endpoint[] => selectEndpoints('users', slices, undefined),
      update: (list: readonly Endpoint[]) => updates.push(list.map((e) => e.host).sort()),
      error: (error: Error) => errors.push(error),
    },
  };
}

/** Starts loops that `stopAll()` stops; install fake timers first. */
export function loops() {
  const started: ListWatchLoop[] = [];
  return {
    start(...args: ConstructorParameters<typeof ListWatchLoop>): ListWatchLoop {
      const loop = new ListWatchLoop(...args);
      started.push(loop);
      return loop;
    },
    stopAll(): void {
      for (const loop of started.splice(0)) loop.stop();
    },
  };
}

/** Moves the fake clock on by `ms`, letting the loop's promise chains run after each timer (see fakes.ts `flush`). */
export async function advance(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

/**
 * The API server in fake time, behind a scripted source: slices of `users` with a history, watches that replay
 * it from their resourceVersion and hear each change at once, a compaction (410 for older resourceVersions,
 * as an ERROR line or an HTTP 410), and an outage (every request refused). The loop's view of the double.
 */
export function fakeApi(initial: readonly string[]) {
  let rv = 10;
  let compacted = 0;
  let http410 = false;
  let down = false;
  let current = slice('users-abc', ...initial);
  const history: { rv: number; slice: StoredSlice }[] = [];
  const open = new Set<ScriptedWatch>();
  const refused = () => new KubernetesError('users', 'unreachable', 'connect ECONNREFUSED 10.96.0.1:443');
  const s = scriptedSource({
    list: (l) => (down ? l.result.reject(refused()) : l.result.resolve(snap(String(rv), current))),
    watch: (w) => {
      const from = Number(w.resourceVersion);
      if (down) return w.done.reject(refused());
      if (from < compacted && http410) return w.done.reject(new KubernetesError('users', 'gone', 'answered 410 Expired', { status: 410 }));
      if (from < compacted) return void (w.send(gone(w.resourceVersion)), w.done.resolve());
      open.add(w);
      w.done.promise.catch(() => {}).finally(() => open.delete(w));
      const missed = history.filter((e) => e.rv > from);
      if (missed.length > 0) w.send(...missed.map((e) => modified(String(e.rv), e.slice)));
    },
  });
  return {
    ...s,
    /** The pods of `users` become these: one MODIFIED event. */
    change(...ips: string[]): void {
      current = slice('users-abc', ...ips);
      history.push({ rv: ++rv, slice: current });
      for (const w of open) w.send(modified(String(rv), current));
    },
    /** Every open watch's connection drops. */
    drop(): void {
      for (const w of [...open]) {
        open.delete(w);
        w.done.reject(new KubernetesError('users', 'broken', 'the watch broke: ECONNRESET'));
      }
    },
    /** History compacted: older resourceVersions get a 410 (as an ERROR line, or with `http`, as the answer). */
    compact(options: { http?: boolean } = {}): void {
      compacted = ++rv;
      http410 = options.http === true;
    },
    goDown(): void {
      down = true;
      this.drop();
    },
    comeBack(): void {
      down = false;
    },
  };
}
