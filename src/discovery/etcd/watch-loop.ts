import type { Endpoint } from '../../endpoint/endpoint.js';
import { DiscoveryError } from '../../errors.js';
import { pause } from '../../util/pause.js';
import { endpointsKey } from '../subscribers.js';
import { describe, lines, type EtcdGateway } from './gateway.js';
import { backoffDelay, type Backoff } from './options.js';
import type { ServiceRange } from './records.js';
import { parseRange, parseWatchLine, type KeyValue, type WatchEvent } from './wire.js';

/** Where the loop of one service is (for tests and debugging). Revisions are etcd's, as bigints. */
export type EtcdLoopState =
  | { readonly kind: 'listing' }
  | { readonly kind: 'watching'; readonly revision: bigint }
  | { readonly kind: 'backing-off'; readonly failures: number; readonly untilMs: number }
  | { readonly kind: 'stopped' };

export interface LoopSettings {
  readonly backoff: Backoff;
  /** A stream with no byte for this long is dropped and resumed (a silently stalled connection). */
  readonly idleTimeoutMs: number;
  readonly random: () => number;
  readonly now: () => number;
}

export interface LoopWiring {
  readonly service: string;
  readonly range: ServiceRange;
  /** One key as an endpoint; undefined to leave it out (the parser reports bad keys itself). */
  readonly parse: (kv: KeyValue) => Endpoint | undefined;
  /** Every list that differs from the last one delivered (the first one included). */
  readonly update: (list: readonly Endpoint[]) => void;
  readonly error: (error: DiscoveryError) => void;
}

type StreamEnd = 'compacted' | 'idle' | 'ended' | 'rewound' | 'unauthenticated';

/** A stream that lived this long counts as healthy when it ends, even without an event (client-go's rule, shorter). */
export const HEALTHY_STREAM_MS = 10_000;

/** The header clientv3 WithRequireLeader sets, in the gateway's form: a member that lost its leader cancels the watch. */
const REQUIRE_LEADER = { 'Grpc-Metadata-Hasleader': 'true' } as const;

/** A cancel reason that says the token was refused (etcd 3.4 cancels a watch opened with an expired token). */
const UNAUTHENTICATED = /Unauthenticated|invalid auth token/i;

/**
 * List, then watch, one service's keys, as etcd's own clients keep a cache (clientv3's watch.go resume rules):
 *
 * 1. `POST /v3/kv/range` over `<prefix><service>/`: the endpoints, and the store revision they were read at;
 * 2. `POST /v3/watch` from that revision + 1 (`start_revision` is inclusive), with `progress_notify`. Each
 *    event moves the resume revision to its `mod_revision`, a progress notification to its header's revision;
 * 3. the stream ends (etcd restarted, the connection dropped, an error line): back off (1 s doubling to 30 s,
 *    ±20 %), report the error, and watch again from the resume revision: no relist, nothing missed. The
 *    backoff starts over only after a stream proved healthy (it delivered an event or a progress
 *    notification, or lived {@link HEALTHY_STREAM_MS}): one that says `created` and ends at once is a failure
 *    like any other, so a server doing that is not asked again every second;
 *    a watch canceled for an invalid (expired) token drops the token and is retried once at once;
 *    a `created` whose header revision is below the resume revision means etcd was restored from an older
 *    state (it would accept the future start revision and stay silent): reported once, and relisted;
 * 4. the revision was compacted away meanwhile (`compact_revision` set): relist, and deliver the new list only
 *    if it differs. The endpoints are never cleared first, so no empty list is ever seen in between;
 * 5. no byte for `idleTimeoutMs`: the stream is dropped and resumed at once, quietly. A half-open connection
 *    (a NAT or firewall that forgot it) shows no error and would otherwise hang forever; etcd's progress
 *    notifications come only every 10 minutes (etcd's default `--experimental-watch-progress-notify-interval`),
 *    so a quiet healthy stream is resumed too, which costs one request.
 *
 * The last list delivered keeps serving throughout; `stop()` aborts the request or stream in flight and
 * clears every timer.
 */
export class WatchLoop {
  state: EtcdLoopState = { kind: 'listing' };
  /** The endpoints by id (the key's id part), and what was last delivered. */
  private readonly entries = new Map<string, Endpoint>();
  private delivered: { list: readonly Endpoint[]; key: string } | undefined;
  /** The revision every event up to which has been applied: the watch resumes after it. */
  private revision = 0n;
  private failures = 0;
  /** Whether the last stream was retried with a new token already (reset once a stream is healthy). */
  private reauthenticated = false;
  private readonly controller = new AbortController();

  constructor(
    private readonly gateway: EtcdGateway,
    private readonly settings: LoopSettings,
    private readonly wiring: LoopWiring,
  ) {
    void this.run();
  }

  /** The list last delivered, while the loop is watching (its list is then current); else undefined. */
  get current(): readonly Endpoint[] | undefined {
    return this.state.kind === 'watching' ? this.delivered?.list : undefined;
  }

  /** The list last delivered, current or not. */
  get last(): readonly Endpoint[] | undefined {
    return this.delivered?.list;
  }

  stop(): void {
    if (this.state.kind === 'stopped') return;
    this.state = { kind: 'stopped' };
    this.controller.abort();
  }

  private get stopped(): boolean {
    return this.controller.signal.aborted;
  }

  private async run(): Promise<void> {
    let needList = true;
    let freshCompactions = 0;
    while (!this.stopped) {
      try {
        const fresh = needList;
        if (needList) {
          this.state = { kind: 'listing' };
          await this.list();
          needList = false;
          if (this.stopped) return;
        }
        const end = await this.watchOnce();
        if (end === 'compacted') {
          // Compacted right after a fresh list can happen (a compaction between the two requests), but not
          // three times running: then the server is not making sense, and the loop backs off rather than spin.
          freshCompactions = fresh ? freshCompactions + 1 : 0;
          needList = true;
          if (freshCompactions >= 3) throw new Error(`etcd reported the revision right after its own list (${this.revision}) as compacted, 3 times`);
          continue;
        }
        freshCompactions = 0;
        if (end === 'idle') continue;
        if (end === 'rewound') {
          this.report(new Error(`etcd's revision is below ${this.revision}, the last one seen (restored from an older state?): listing again`));
          needList = true;
          continue;
        }
        if (end === 'unauthenticated') {
          if (!this.reauthenticated) {
            this.reauthenticated = true;
            continue;
          }
          throw new Error('etcd canceled the watch: its auth token is invalid, even after authenticating again');
        }
        if (this.stopped) return;
        throw new Error('etcd ended the watch stream');
      } catch (error) {
        if (this.stopped) return;
        this.failures++;
        this.report(error);
        const delay = backoffDelay(this.settings.backoff, this.failures, this.settings.random); // it survives a throwing `random`
        this.state = { kind: 'backing-off', failures: this.failures, untilMs: this.settings.now() + delay };
        await pause(delay, this.controller.signal);
      }
    }
  }

  /** Reads the whole range afresh and delivers it if it differs (a relist never passes through empty). */
  private async list(): Promise<void> {
    const { range, service } = this.wiring;
    const body = await this.gateway.call({
      path: '/v3/kv/range',
      body: { key: range.key, range_end: range.rangeEnd },
      service,
      signal: this.controller.signal,
    });
    const answer = parseRange(body);
    if (this.stopped) return;
    this.entries.clear();
    for (const kv of answer.kvs) {
      const endpoint = this.wiring.parse(kv);
      if (endpoint) this.entries.set(endpoint.id, endpoint);
    }
    this.revision = answer.revision;
    this.deliver();
  }

  /** One watch stream, from the resume revision on, until it ends; the reason it ended. */
  private async watchOnce(): Promise<StreamEnd> {
    const { range, service } = this.wiring;
    const stream = new AbortController();
    const onStop = (): void => stream.abort();
    this.controller.signal.addEventListener('abort', onStop, { once: true });
    let idle = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        stream.abort();
      }, this.settings.idleTimeoutMs);
    };
    let created = false;
    let opened: number | undefined;
    const healthy = (): void => {
      this.failures = 0;
      this.reauthenticated = false;
    };
    try {
      const { response, token } = await this.gateway.stream({
        path: '/v3/watch',
        body: { create_request: { key: range.key, range_end: range.rangeEnd, start_revision: (this.revision + 1n).toString(), progress_notify: true } },
        service,
        signal: stream.signal,
        headers: REQUIRE_LEADER,
      });
      opened = this.settings.now();
      arm();
      this.state = { kind: 'watching', revision: this.revision };
      for await (const line of lines(response.body!, this.gateway.conn.maxBodyBytes, stream.signal, arm)) {
        const message = parseWatchLine(line);
        switch (message.kind) {
          case 'created':
            created = true;
            // etcd's revision now is below what this loop has seen: it went back in time.
            if (message.revision > 0n && message.revision < this.revision) return 'rewound';
            break;
          case 'progress':
            healthy();
            if (message.revision > this.revision) this.revision = message.revision;
            break;
          case 'events':
            healthy();
            this.apply(message.events);
            break;
          case 'compacted':
            return 'compacted';
          case 'canceled':
            if (UNAUTHENTICATED.test(message.reason) && token !== undefined) {
              this.gateway.dropToken(token);
              return 'unauthenticated';
            }
            throw new Error(`etcd canceled the watch: ${message.reason}`);
          case 'error':
            throw new Error(`the watch stream failed: ${message.message}`);
        }
        if (this.stopped) return 'ended';
        this.state = { kind: 'watching', revision: this.revision };
      }
      return 'ended';
    } catch (error) {
      // An idle stream that had started is resumed; one that never got its `created` is a failure.
      if (idle && created && !this.stopped) return 'idle';
      if (idle) throw new Error(`the watch stream sent nothing for ${this.settings.idleTimeoutMs} ms`);
      throw error;
    } finally {
      if (opened !== undefined && this.settings.now() - opened >= HEALTHY_STREAM_MS) healthy();
      clearTimeout(timer);
      stream.abort(); // closes the connection: after a compaction etcd keeps the stream open
      this.controller.signal.removeEventListener('abort', onStop);
    }
  }

  /** Applies one response's events, in order, then delivers the result once. */
  private apply(events: readonly WatchEvent[]): void {
    for (const event of events) {
      if (event.kv.modRevision > this.revision) this.revision = event.kv.modRevision;
      const text = event.kv.key.toString('utf8');
      if (!text.startsWith(this.wiring.range.keyPrefix)) continue;
      const id = text.slice(this.wiring.range.keyPrefix.length);
      if (event.type === 'DELETE') {
        this.entries.delete(id);
        continue;
      }
      const endpoint = this.wiring.parse(event.kv);
      // A key rewritten with a bad value is gone: what it described before is no longer what it says.
      if (endpoint) this.entries.set(endpoint.id, endpoint);
      else this.entries.delete(id);
    }
    this.deliver();
  }

  private deliver(): void {
    const list = Object.freeze([...this.entries.values()]);
    const key = endpointsKey(list);
    if (this.delivered?.key === key) return;
    this.delivered = { list, key };
    try {
      this.wiring.update(list);
    } catch {
      // the hub guards each subscriber; nothing here may stop the loop
    }
  }

  private report(error: unknown): void {
    const wrapped =
      error instanceof DiscoveryError
        ? error
        : new DiscoveryError(this.wiring.service, `etcd watch of ${this.wiring.range.keyPrefix}: ${describe(error)}`, { cause: error });
    try {
      this.wiring.error(wrapped);
    } catch {
      // same
    }
  }
}
