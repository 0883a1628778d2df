import type { Endpoint } from '../endpoint/endpoint.js';
import { pause } from '../util/pause.js';
import { deliver, endpointsKey, publishError, publishList, type OnError, type OnUpdate, type Subscriber } from './subscribers.js';

/** What one blocking query returned: `X-Consul-Index` and the parsed body. */
export interface BlockingAnswer<T> {
  readonly index: bigint;
  readonly value: T;
}

/** One request of the loop: block while Consul's index is still `index` (0: answer at once). */
export type BlockingQuery<T> = (index: bigint, signal: AbortSignal) => Promise<BlockingAnswer<T>>;

/** How the loop paces itself. */
export interface LoopTiming {
  /** Token bucket: one request token per `minIntervalMs`, at most `burst` saved up. */
  readonly minIntervalMs: number;
  readonly burst: number;
  /** Backoff after a failure: initial × 2^(failures − 1), ±20 % jitter, capped at max. */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly now: () => number;
  readonly random: () => number;
}

/** Where the loop is (a discriminated union, for tests and debugging). */
export type LoopState =
  | { readonly kind: 'querying'; readonly index: bigint }
  | { readonly kind: 'rate-limited'; readonly untilMs: number }
  | { readonly kind: 'backing-off'; readonly failures: number; readonly untilMs: number }
  | { readonly kind: 'stopped' };

/**
 * The index to send next, by Consul's client rules (website/content/api-docs/features/blocking.mdx,
 * "Implementation Details"):
 * - "Reset the index if it goes backwards ... check to see if a returned index is lower than the previous
 *   value, and if it is, should reset index to 0 - effectively restarting their blocking loop" (a snapshot
 *   restore, or a Consul upgrade, can lower it);
 * - "Sanity check index is greater than zero ... clients should sanity check that their index is at least 1
 *   after each blocking response is handled to be sure they actually block on the next request" (an index of
 *   0 would make every request return at once: a busy loop).
 * So an index ≤ 0 is not sent back as 0 (that would never block) but as 1, which "is always safe". `previous`
 * is the index Consul returned last time (not the 1 we may have sent instead of its 0), so an index stuck at 0
 * is not mistaken for one going backwards on every answer.
 */
export function nextIndex(previous: bigint, returned: bigint): bigint {
  if (returned < previous) return 0n;
  if (returned <= 0n) return 1n;
  return returned;
}

/**
 * A long-poll loop over one blocking query. Answers go to `onAnswer` as soon as they arrive (no sleep in the
 * happy path). Pacing follows the same page's "Rate limit" rule: a token bucket with a burst of 2, so a couple
 * of quick deliveries pass at once and only churn is slowed to one request per `minIntervalMs`. A failure is
 * reported to `onError` and retried after an exponential backoff with jitter, capped, from index 0 (as the Go
 * watch plan restarts when a call gave no index). `stop()` aborts the request in flight and clears the timer:
 * nothing is left behind.
 */
export class BlockingLoop<T> {
  state: LoopState;
  private readonly controller = new AbortController();
  /** The index to send next, and the one Consul returned last (they differ after a reset or a 0). */
  private index: bigint;
  private returned: bigint;
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly query: BlockingQuery<T>,
    private readonly timing: LoopTiming,
    private readonly onAnswer: (answer: BlockingAnswer<T>) => void,
    private readonly onError: (error: Error) => void,
    startIndex = 0n,
  ) {
    this.index = startIndex;
    this.returned = startIndex;
    this.state = { kind: 'querying', index: startIndex };
    this.tokens = timing.burst;
    this.refilledAt = timing.now();
    void this.run();
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
    const signal = this.controller.signal;
    let failures = 0;
    while (!this.stopped) {
      await this.takeToken();
      if (this.stopped) return;
      this.state = { kind: 'querying', index: this.index };
      let answer: BlockingAnswer<T>;
      try {
        answer = await this.query(this.index, signal);
      } catch (error) {
        if (this.stopped) return;
        failures++;
        this.index = 0n;
        this.returned = 0n;
        this.safely(() => this.onError(error instanceof Error ? error : new Error(String(error))));
        const delay = this.backoff(failures);
        this.state = { kind: 'backing-off', failures, untilMs: this.timing.now() + delay };
        await pause(delay, signal);
        continue;
      }
      if (this.stopped) return;
      failures = 0;
      this.index = nextIndex(this.returned, answer.index);
      this.returned = this.index === 0n ? 0n : answer.index; // a reset restarts the loop from scratch
      this.safely(() => this.onAnswer(answer));
    }
  }

  /** Waits for a request token (bucket of `burst`, refilled one per `minIntervalMs`). */
  private async takeToken(): Promise<void> {
    const { minIntervalMs, burst } = this.timing;
    if (minIntervalMs <= 0) return;
    this.refill();
    if (this.tokens < 1) {
      const waitMs = (1 - this.tokens) * minIntervalMs;
      this.state = { kind: 'rate-limited', untilMs: this.timing.now() + waitMs };
      await pause(waitMs, this.controller.signal);
      this.refill();
    }
    this.tokens = Math.max(0, Math.min(burst, this.tokens) - 1);
  }

  private refill(): void {
    const now = this.timing.now();
    this.tokens = Math.min(this.timing.burst, this.tokens + (now - this.refilledAt) / this.timing.minIntervalMs);
    this.refilledAt = now;
  }

  private backoff(failures: number): number {
    const { backoffInitialMs, backoffMaxMs, random } = this.timing;
    const nominal = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(failures - 1, 30));
    return Math.min(backoffMaxMs, nominal * (0.8 + 0.4 * random()));
  }

  /** A handler that throws must not end the loop. */
  private safely(fn: () => void): void {
    try {
      fn();
    } catch {
      // the hub routes subscriber errors itself; anything else here has nowhere better to go
    }
  }
}

interface SharedWatch {
  readonly subscribers: Set<Subscriber>;
  loop: BlockingLoop<readonly Endpoint[]> | undefined;
  /** The last list delivered, and its {@link endpointsKey}. */
  list: readonly Endpoint[] | undefined;
  key: string | undefined;
}

/** A list that `resolve()` just read, so that a watch starting right after blocks from its index. */
interface Seed {
  readonly index: bigint;
  readonly list: readonly Endpoint[];
  readonly at: number;
}

const SEED_MAX_AGE_MS = 10_000;
const MAX_SEEDS = 1_024;

/**
 * The watches of one registry: one blocking loop per watched service, shared by every subscriber (every mesh
 * using the registry). A list is pushed only when it differs from the last one pushed; the loop stops when
 * its last subscriber leaves.
 */
export class WatchHub {
  private readonly watches = new Map<string, SharedWatch>();
  private readonly seeds = new Map<string, Seed>();

  constructor(
    private readonly queryFor: (service: string) => BlockingQuery<readonly Endpoint[]>,
    private readonly timing: LoopTiming,
  ) {}

  /** Notes what `resolve()` read, so that a watch starting soon after begins from there. */
  seed(service: string, index: bigint, list: readonly Endpoint[]): void {
    this.seeds.delete(service);
    if (this.seeds.size >= MAX_SEEDS) this.seeds.delete(this.seeds.keys().next().value as string);
    this.seeds.set(service, { index, list, at: this.timing.now() });
  }

  subscribe(service: string, onUpdate: OnUpdate, onError: OnError): () => void {
    const subscriber: Subscriber = { onUpdate, onError };
    let watch = this.watches.get(service);
    if (watch === undefined) {
      watch = { subscribers: new Set([subscriber]), loop: undefined, list: undefined, key: undefined };
      this.watches.set(service, watch);
      this.start(service, watch);
    } else {
      watch.subscribers.add(subscriber);
      // A late subscriber may have resolved before the loop's last answer: hand it the current list.
      const current = watch.list;
      if (current !== undefined) {
        queueMicrotask(() => {
          if (watch!.subscribers.has(subscriber)) deliver(subscriber, current);
        });
      }
    }
    const shared = watch;
    return () => {
      if (!shared.subscribers.delete(subscriber) || shared.subscribers.size > 0) return;
      shared.loop?.stop();
      if (this.watches.get(service) === shared) this.watches.delete(service);
    };
  }

  /** Services with a running loop. */
  get size(): number {
    return this.watches.size;
  }

  /** The loop state of a service (tests, debugging). */
  stateOf(service: string): LoopState | undefined {
    return this.watches.get(service)?.loop?.state;
  }

  /** Stops the loops nobody subscribes to any more, and forgets seeds. Live subscriptions are left alone. */
  close(): void {
    this.seeds.clear();
    for (const [service, watch] of this.watches) {
      if (watch.subscribers.size === 0) {
        watch.loop?.stop();
        this.watches.delete(service);
      }
    }
  }

  private start(service: string, watch: SharedWatch): void {
    const seed = this.seeds.get(service);
    this.seeds.delete(service);
    let startIndex = 0n;
    if (seed !== undefined && this.timing.now() - seed.at <= SEED_MAX_AGE_MS && seed.index > 0n) {
      startIndex = seed.index;
      watch.list = seed.list;
      watch.key = endpointsKey(seed.list);
    }
    watch.loop = new BlockingLoop(
      this.queryFor(service),
      this.timing,
      ({ value }) => {
        const key = endpointsKey(value);
        if (key === watch.key) return;
        watch.key = key;
        watch.list = value;
        publishList(watch.subscribers, value);
      },
      (error) => publishError(watch.subscribers, error),
      startIndex,
    );
  }
}
