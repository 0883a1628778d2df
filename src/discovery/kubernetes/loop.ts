/**
 * The list+watch loop of one Service, as client-go's reflector runs it (tools/cache/reflector.go) and as the
 * API concepts page describes it ("Efficient detection of changes"): list, then watch from the list's
 * resourceVersion; keep the last resourceVersion seen (bookmarks included) and restart a watch from it; on
 * 410 Gone (an ERROR event whose Status code is 410, or an HTTP 410), relist. A relist replaces the slices in
 * one step, and a list is published only when it differs from the last one, so no caller ever sees the empty
 * set that a naive clear-then-refill would show.
 *
 * How a watch ends decides what comes next:
 * - it lasted a second or more and then ended (its timeoutSeconds), dropped, or went silent past
 *   `idleTimeoutMs` (a half-open connection sends nothing, forever; and bookmarks are best-effort, so a quiet
 *   Service looks the same): a routine reconnect, at once, from the last resourceVersion. Not a failure, not
 *   reported; if the reconnect itself fails, that is.
 * - it ended or dropped within SHORT_WATCH_MS of starting, whatever it sent (a server or proxy closing each
 *   watch after one bookmark would otherwise be reopened hundreds of times a second): a failure.
 * - 410 Gone: relist at once, unless it came for the resourceVersion the last list itself returned, on the first
 *   watch after it and at once (relisting again would loop): then a failure.
 * - garbage, an ERROR event other than 410, a line too long: the stream cannot be trusted, a failure; relist.
 * - the request failed (an error status, unreachable, no answer, unreadable credentials): a failure; watch
 *   again from the same resourceVersion.
 *
 * Failures back off (doubling, ±20 % jitter, capped) while the last good list keeps serving. The streak, and with
 * it the delay, starts over only once a watch has stayed open HEALTHY_WATCH_MS (client-go's backoff manager
 * resets after 2 min without failure): a list that works says nothing about the watches after it. Each failure
 * is reported, except the ones that may be a blip (a short watch, a 410 for a fresh list), which are reported
 * from the SOFT_FAILURES_REPORTED_FROM-th in a row.
 */
import type { Endpoint } from '../../endpoint/endpoint.js';
import { pause } from '../../util/pause.js';
import type { Rng } from '../../util/random.js';
import { endpointsKey } from '../subscribers.js';
import { KubernetesError } from './http.js';
import type { SliceEvent, StoredSlice } from './slices.js';

/** A resourceVersion and the slices at it. */
export interface SliceSnapshot {
  readonly resourceVersion: string;
  readonly slices: readonly StoredSlice[];
}

/** Where the watch's events go: `activity` on any byte, `events` for each chunk's parsed events. */
export interface EventSink {
  activity(): void;
  events(batch: readonly SliceEvent[]): void;
}

/** The API requests of one Service (the registry binds them to a client and a path). */
export interface SliceSource {
  list(signal: AbortSignal): Promise<SliceSnapshot>;
  /** Resolves when the server ends the stream; rejects when it breaks, or with what `sink.events` threw. */
  watch(resourceVersion: string, timeoutSeconds: number, signal: AbortSignal, sink: EventSink): Promise<void>;
}

export interface LoopTiming {
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly idleTimeoutMs: number;
  readonly watchTimeoutSeconds: number;
  readonly now: () => number;
  readonly random: Rng;
}

export interface LoopHandlers {
  /** The service, for errors. */
  readonly service: string;
  /** The slices' endpoints (may throw, e.g. several ports and none chosen: reported through `error`). */
  select(slices: Iterable<StoredSlice>): readonly Endpoint[];
  update(endpoints: readonly Endpoint[]): void;
  error(error: Error): void;
}

/** Where the loop is (for tests and debugging). */
export type KubernetesLoopState =
  | { readonly kind: 'listing' }
  | { readonly kind: 'watching'; readonly resourceVersion: string }
  | { readonly kind: 'backing-off'; readonly failures: number; readonly untilMs: number }
  | { readonly kind: 'stopped' };

/** A watch that ends or drops sooner than this after it started is a failure (it must not become a busy loop). */
export const SHORT_WATCH_MS = 1_000;
/** A watch open this long shows the server sound: the failure streak, and with it the backoff, starts over. */
export const HEALTHY_WATCH_MS = 60_000;
/** Failures that may be a blip (a short watch, a 410 for a fresh list) are reported from this many in a row. */
export const SOFT_FAILURES_REPORTED_FROM = 3;

/** How one watch ended: the server ended it, it stayed silent past idleTimeoutMs once open, or it failed. */
type WatchEnd = { readonly kind: 'ended' } | { readonly kind: 'idle' } | { readonly kind: 'failed'; readonly error: Error };

/** Request failures after which the same watch is tried again: nothing is wrong with what was received. */
const RETRY_SAME = new Set(['status', 'unreachable', 'timeout', 'credentials']);

export class ListWatchLoop {
  state: KubernetesLoopState = { kind: 'listing' };
  /** The endpoints last published (undefined before the first good list). */
  endpoints: readonly Endpoint[] | undefined;
  /** Lists done, watches started, relists after 410: for tests and debugging. */
  readonly counts = { lists: 0, watches: 0, relists: 0 };
  private readonly controller = new AbortController();
  private readonly slices = new Map<string, StoredSlice>();
  private resourceVersion: string | undefined;
  private key: string | undefined;
  /** Failures since the last watch that stayed open HEALTHY_WATCH_MS (or since the start). */
  private failures = 0;
  /** The resourceVersion the last list (or the seed) returned, and how many watches started since. */
  private listedRv: string | undefined;
  private watchesSinceList = 0;

  constructor(
    private readonly source: SliceSource,
    private readonly timing: LoopTiming,
    private readonly handlers: LoopHandlers,
    seed?: SliceSnapshot,
  ) {
    if (seed !== undefined) {
      // What resolve() just read: its subscribers already hold that list, so watch from there and stay quiet.
      this.replace(seed);
      try {
        this.endpoints = handlers.select(this.slices.values());
        this.key = endpointsKey(this.endpoints);
      } catch {
        this.resourceVersion = undefined; // let the first list report it
      }
    }
    void this.run();
  }

  stop(): void {
    if (this.state.kind === 'stopped') return;
    this.state = { kind: 'stopped' };
    this.controller.abort(new Error('stopped'));
  }

  private get stopped(): boolean {
    return this.controller.signal.aborted;
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    while (!this.stopped) {
      if (this.resourceVersion === undefined) {
        this.state = { kind: 'listing' };
        let snapshot: SliceSnapshot;
        try {
          snapshot = await this.source.list(signal);
        } catch (error) {
          if (this.stopped) return;
          await this.fail(error);
          continue;
        }
        if (this.stopped) return;
        this.counts.lists++;
        this.replace(snapshot);
        this.publish();
      }
      const rv = this.resourceVersion as string;
      this.state = { kind: 'watching', resourceVersion: rv };
      const startedAt = this.timing.now();
      this.watchesSinceList++;
      const timeoutSeconds = Math.round(this.timing.watchTimeoutSeconds * (1 + this.timing.random()));
      const { end, opened } = await this.watchOnce(rv, timeoutSeconds);
      if (this.stopped) return;
      const lastedMs = this.timing.now() - startedAt;
      if (opened && lastedMs >= HEALTHY_WATCH_MS) this.failures = 0;
      const short = lastedMs < SHORT_WATCH_MS;
      if (end.kind === 'idle') continue; // silent since it opened: a quiet Service, or a dead connection; reconnect
      // The server's timeoutSeconds passed, or the connection dropped: resume from the resourceVersion, nothing is
      // lost. Only a watch that ended at once is a failure.
      if (end.kind === 'ended') {
        if (short) await this.softFail(new KubernetesError(this.handlers.service, 'broken', `the watch ended ${Math.round(lastedMs)} ms after it started`), `within ${SHORT_WATCH_MS} ms of starting`);
        continue;
      }
      const { error } = end;
      const kind = error instanceof KubernetesError ? error.kind : undefined;
      if (kind === 'broken') {
        if (short) await this.softFail(error, `within ${SHORT_WATCH_MS} ms of starting`);
        continue;
      }
      if (kind === 'gone') {
        // The resourceVersion is too old (compacted): relist at once. A 410 for what the list itself has just
        // returned, though, is a server out of step with itself: relisting at once would loop.
        this.counts.relists++;
        this.resourceVersion = undefined;
        if (rv === this.listedRv && this.watchesSinceList === 1 && short) await this.softFail(error, 'for the resourceVersion its list had just returned');
        continue;
      }
      // Garbage and ERROR events mean the stream cannot be trusted up to where it broke: relist. A request that
      // failed is tried again as it was.
      if (kind === undefined || !RETRY_SAME.has(kind)) this.resourceVersion = undefined;
      await this.fail(error);
    }
  }

  /** One watch from `rv`, with the idle timer; never rejects. `opened`: the server answered (200). */
  private async watchOnce(rv: string, timeoutSeconds: number): Promise<{ end: WatchEnd; opened: boolean }> {
    const watch = new AbortController();
    const stop = (): void => watch.abort(this.controller.signal.reason);
    this.controller.signal.addEventListener('abort', stop, { once: true });
    let idle: NodeJS.Timeout | undefined;
    let opened = false;
    let idled = false;
    const idleMs = this.timing.idleTimeoutMs;
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        idled = true;
        watch.abort(new KubernetesError(this.handlers.service, opened ? 'broken' : 'timeout', `the watch sent nothing for ${idleMs} ms (idleTimeoutMs)`));
      }, idleMs);
    };
    arm();
    this.counts.watches++;
    try {
      await this.source.watch(rv, timeoutSeconds, watch.signal, {
        activity: () => {
          opened = true;
          arm();
        },
        events: (batch) => {
          if (this.stopped) return;
          let changed = false;
          for (const event of batch) {
            if (event.type === 'ERROR') {
              const code = event.code;
              const text = `the watch sent an ERROR event: ${code ?? 'no code'}${event.reason ? ` ${event.reason}` : ''}${event.message ? `: ${event.message.slice(0, 200)}` : ''}`;
              if (changed) this.publish();
              throw new KubernetesError(this.handlers.service, code === 410 ? 'gone' : 'watch-error', text, { ...(code !== undefined ? { status: code } : {}) });
            }
            this.resourceVersion = event.resourceVersion;
            if (this.state.kind === 'watching') this.state = { kind: 'watching', resourceVersion: event.resourceVersion };
            if (event.type === 'BOOKMARK') continue;
            changed = true;
            if (event.type === 'DELETED') this.slices.delete(event.slice.name);
            else this.slices.set(event.slice.name, event.slice);
          }
          // One publish per chunk: events that arrive together (a slice emptied, another filled) land together.
          if (changed) this.publish();
        },
      });
      return { end: { kind: 'ended' }, opened };
    } catch (error) {
      if (watch.signal.aborted && !this.stopped) {
        const reason = watch.signal.reason as Error;
        return { end: idled && opened ? { kind: 'idle' } : { kind: 'failed', error: reason }, opened };
      }
      return { end: { kind: 'failed', error: error instanceof Error ? error : new Error(String(error)) }, opened };
    } finally {
      clearTimeout(idle);
      this.controller.signal.removeEventListener('abort', stop);
    }
  }

  private replace(snapshot: SliceSnapshot): void {
    this.slices.clear();
    for (const slice of snapshot.slices) this.slices.set(slice.name, slice);
    this.resourceVersion = snapshot.resourceVersion;
    this.listedRv = snapshot.resourceVersion;
    this.watchesSinceList = 0;
  }

  /** Publishes the endpoints when they differ from the last published ones. */
  private publish(): void {
    let list: readonly Endpoint[];
    try {
      list = Object.freeze(this.handlers.select(this.slices.values()));
    } catch (error) {
      this.report(error);
      return;
    }
    const key = endpointsKey(list);
    if (key === this.key) return;
    this.key = key;
    this.endpoints = list;
    try {
      this.handlers.update(list);
    } catch {
      // the hub shields subscribers; nothing here may end the loop
    }
  }

  /** A failure: reported, and waited out. */
  private async fail(error: unknown): Promise<void> {
    this.failures++;
    this.report(error);
    await this.backOff(this.failures);
  }

  /** A failure that may be a blip: waited out like any, reported once it has happened often enough in a row. */
  private async softFail(error: Error, why: string): Promise<void> {
    this.failures++;
    if (this.failures >= SOFT_FAILURES_REPORTED_FROM) {
      const k = error instanceof KubernetesError ? error : undefined;
      const message = `${error.message} (${why}; failure ${this.failures} in a row, backing off)`;
      this.report(new KubernetesError(this.handlers.service, k?.kind ?? 'broken', message, { ...(k?.status !== undefined ? { status: k.status } : {}), ...(k?.reason !== undefined ? { reason: k.reason } : {}), cause: error }));
    }
    await this.backOff(this.failures);
  }

  private report(error: unknown): void {
    try {
      this.handlers.error(error instanceof Error ? error : new Error(String(error)));
    } catch {
      // as above
    }
  }

  private async backOff(failures: number): Promise<void> {
    const { backoffInitialMs, backoffMaxMs, random } = this.timing;
    const nominal = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(failures - 1, 30));
    const delay = Math.min(backoffMaxMs, nominal * (0.8 + 0.4 * random()));
    this.state = { kind: 'backing-off', failures, untilMs: this.timing.now() + delay };
    await pause(delay, this.controller.signal);
  }
}
