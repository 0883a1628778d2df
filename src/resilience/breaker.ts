import type { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';

/**
 * Circuit breaker per endpoint (opossum).
 * @example { errorThresholdPercentage: 50, volumeThreshold: 20, resetTimeoutMs: 10_000, rollingWindowMs: 10_000 }
 */
export interface BreakerPolicy {
  /** The breaker opens above this failure percentage in the rolling window. Default 50. */
  errorThresholdPercentage?: number | undefined;
  /** Attempts the window must hold before the breaker may open. Default 20. */
  volumeThreshold?: number | undefined;
  /** How long an open breaker waits before it lets one probe through (half-open), in ms. Default 10 s. */
  resetTimeoutMs?: number | undefined;
  /** The window failures are counted over, in ms. Default 10 s. */
  rollingWindowMs?: number | undefined;
}

/** A breaker's state as the mesh reports it. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** opossum splits its rolling window into this many buckets (its default). */
const BUCKETS = 10;

/** opossum's bucket rotation, as it registers it for the 'rotate' event. */
type RotateListener = () => void;

/**
 * One breaker's `rotateBucketController`: opossum registers its bucket rotation here (`listenerCount`,
 * `on`, and `removeListener` on shutdown). A controller of its own keeps those calls O(1): on one emitter
 * shared by the mesh, opossum's `listenerCount` and `removeListener` scan every breaker's listener, which
 * made adding or removing an endpoint O(endpoints in the mesh).
 */
class RotationSlot {
  private listener: RotateListener | undefined;

  constructor(private readonly members: Set<RotationSlot>) {}

  listenerCount(_event: string, listener?: RotateListener): number {
    return this.listener !== undefined && (listener === undefined || listener === this.listener) ? 1 : 0;
  }

  on(_event: string, listener: RotateListener): this {
    this.listener = listener;
    this.members.add(this);
    return this;
  }

  removeListener(_event: string, listener: RotateListener): this {
    if (listener === this.listener) {
      this.listener = undefined;
      this.members.delete(this);
    }
    return this;
  }

  rotate(): void {
    this.listener?.();
  }
}

/**
 * One bucket-rotation interval per rolling-window length, so 10,000 endpoints run one interval instead of
 * 20,000. Each tick rotates every live breaker of that window length; a breaker joins the set when opossum
 * registers on its slot and leaves it on shutdown, both O(1). Intervals are unref'd and stop on `close()`.
 */
export class BreakerClock {
  private readonly groups = new Map<number, { slots: Set<RotationSlot>; timer: ReturnType<typeof setInterval> }>();

  /** A fresh controller for one breaker (opossum's `rotateBucketController` option). */
  controller(rollingWindowMs: number): EventEmitter {
    let g = this.groups.get(rollingWindowMs);
    if (g === undefined) {
      const slots = new Set<RotationSlot>();
      const timer = setInterval(() => {
        for (const slot of slots) slot.rotate();
      }, Math.max(1, Math.floor(rollingWindowMs / BUCKETS)));
      timer.unref?.();
      g = { slots, timer };
      this.groups.set(rollingWindowMs, g);
    }
    // opossum's types ask for an EventEmitter; it calls only the three methods RotationSlot has.
    return new RotationSlot(g.slots) as unknown as EventEmitter;
  }

  /** Breakers currently rotated (for tests: a breaker that shut down must not stay here). */
  get size(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.slots.size;
    return n;
  }

  close(): void {
    for (const g of this.groups.values()) {
      clearInterval(g.timer);
      g.slots.clear();
    }
    this.groups.clear();
  }
}

/**
 * opossum's `Status.increment`, which its own event listeners call for every fire, success and failure.
 * It is in opossum's JavaScript (since v5) but not in @types/opossum; the breaker tests pin its behaviour.
 */
interface CountingStatus {
  increment(property: 'fires'): void;
}

/** A probe that ended with no verdict, wrapped so opossum counts it as a failure; unwrapped for the caller. */
class AbortedProbe {
  readonly countsAsFailure = true;
  constructor(readonly reason: unknown) {}
}

/** What counts as a failure for the breaker: set by the call step on the promise it fires. */
export interface BreakerOutcome {
  readonly countsAsFailure: boolean;
}

/**
 * An opossum circuit breaker for one endpoint, configured to stay cheap: percentiles and snapshots off
 * (else about 28 ms per failure), the shared rotation clock, `timeout: false` (our AbortSignal times attempts
 * out), and opossum's own abort controller unused (it would abort every call in flight on that breaker at once).
 *
 * How it is driven, and why:
 * - Closed: the call step already has each attempt's verdict, so it records it straight into opossum's
 *   rolling window (`status.increment`) and applies opossum's own opening rule (at least
 *   `volumeThreshold` fires in the window and a failure rate above `errorThresholdPercentage`).
 *   `fire()` would cost a promise and three event emits on every call (about half of a call's cost).
 * - Open: opossum's reset timer moves it to half-open after `resetTimeoutMs`.
 * - Half-open: the probe runs through `fire()`, so opossum lets exactly one through (`pendingClose`) and
 *   closes or reopens on its outcome. Only rejections with `countsAsFailure: true` count as failures.
 * An aborted attempt (caller, hedge lost, mesh closed) records nothing.
 */
export class EndpointBreaker {
  private readonly cb: CircuitBreaker<[() => Promise<unknown>], unknown>;
  private readonly volumeThreshold: number;
  private readonly threshold: number;

  constructor(
    policy: Required<BreakerPolicy>,
    clock: BreakerClock,
    onChange: (state: BreakerState) => void,
  ) {
    this.volumeThreshold = policy.volumeThreshold;
    this.threshold = policy.errorThresholdPercentage;
    this.cb = new CircuitBreaker((run: () => Promise<unknown>) => run(), {
      timeout: false,
      errorThresholdPercentage: policy.errorThresholdPercentage,
      volumeThreshold: policy.volumeThreshold,
      resetTimeout: policy.resetTimeoutMs,
      rollingCountTimeout: policy.rollingWindowMs,
      rollingCountBuckets: BUCKETS,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: clock.controller(policy.rollingWindowMs),
      errorFilter: (error: unknown) => !(error as Partial<BreakerOutcome> | undefined)?.countsAsFailure,
    });
    this.cb.on('open', () => onChange('open'));
    this.cb.on('halfOpen', () => onChange('half-open'));
    this.cb.on('close', () => {
      // Start the window afresh, as Hystrix and resilience4j do: the failures that opened the breaker
      // must not reopen it on the first failure after the probe succeeded.
      const window = this.cb.status.window as unknown as { fires: number; failures: number }[];
      for (const bucket of window) {
        bucket.fires = 0;
        bucket.failures = 0;
      }
      if (window[0] !== undefined) window[0].fires = 1; // the probe that closed it
      onChange('closed');
    });
  }

  get state(): BreakerState {
    if (this.cb.closed) return 'closed';
    return this.cb.halfOpen ? 'half-open' : 'open';
  }

  /** Whether an attempt may start now: closed, or half-open with its one probe not yet taken. */
  get allowsRequest(): boolean {
    return this.cb.closed || this.cb.pendingClose;
  }

  /** Half-open: the next attempt is the probe and must go through {@link fire}. */
  get halfOpen(): boolean {
    return this.cb.halfOpen;
  }

  /** Records a closed-state verdict in opossum's window, and opens the breaker by opossum's rule. */
  record(ok: boolean): void {
    if (!this.cb.closed) return; // a late answer from before it opened: the window is no longer ours to judge
    const status = this.cb.status as unknown as CountingStatus;
    status.increment('fires');
    // opossum's rule reads only fires and failures; its 'successes' count would also push a latency
    // sample per call into the bucket (an allocation on every success), so it is left out.
    if (ok) return;
    // Counted on the bucket itself: increment('failures') would also keep a latency sample per failure.
    const bucket = this.cb.status.window[0] as { failures: number } | undefined;
    if (bucket !== undefined) bucket.failures++;
    const stats = this.cb.stats;
    if (stats.fires >= this.volumeThreshold && (stats.failures / stats.fires) * 100 > this.threshold) this.cb.open();
  }

  /** Whether the breaker is open (not half-open): the endpoint counts as unhealthy. */
  get isOpen(): boolean {
    return this.cb.opened;
  }

  /**
   * Runs the half-open probe through opossum's `fire()`. A probe that ends with no verdict (caller abort,
   * hedge lost, mesh closed) counts as a failure here: opossum has no neutral outcome, and counting it as a
   * success would close the breaker on no evidence. It reopens, and probes again after `resetTimeoutMs`.
   */
  probe(run: () => Promise<unknown>): Promise<unknown> {
    return this.cb
      .fire(() =>
        run().catch((error: unknown) => {
          throw (error as Partial<BreakerOutcome> | null)?.countsAsFailure ? error : new AbortedProbe(error);
        }),
      )
      .catch((error: unknown) => {
        throw error instanceof AbortedProbe ? error.reason : error;
      });
  }

  /** Stops its timers; called when the endpoint leaves discovery or the mesh closes. */
  shutdown(): void {
    this.cb.shutdown();
  }
}
