import type { EndpointState } from '../endpoint/endpoint-state.js';
import {
  AdmissionRejectedError,
  BulkheadFullError,
  CircuitOpenError,
  DiscoveryError,
  FaultInjectedError,
  MeshClosedError,
  NoEndpointsError,
  TimeoutError,
} from '../errors.js';
import { Histogram } from './histogram.js';
import { RouteStats } from './route-stats.js';

/**
 * How a call ended, as the `outcome` label of `proxyless_requests_total` says it. A fixed set, so the
 * label's cardinality is bounded whatever the calls throw.
 * - `success`: a value, or a Response the classification calls a success (4xx included);
 * - `failure`: every attempt it was allowed failed (a failing last Response, or `CallFailedError`);
 * - `timeout`: the total or attempt deadline (`TimeoutError`), or a bulkhead queue wait that timed out;
 * - `circuit_open`: every endpoint's breaker was open (`CircuitOpenError`);
 * - `unavailable`: no endpoint to call (`NoEndpointsError`, `DiscoveryError`);
 * - `rejected`: refused locally before any attempt: the bulkhead or the adaptive concurrency limit was full
 *   (`BulkheadFullError`), or admission throttling drew it (`AdmissionRejectedError`);
 * - `cancelled`: the caller aborted, or the mesh closed;
 * - `fault`: a route's fault injection aborted it (`FaultInjectedError`, or its synthetic Response).
 * A call a `fallback` answered keeps the outcome of its failure (and is counted in {@link ServiceMetrics.fallbacks}).
 */
export const CALL_OUTCOMES = ['success', 'failure', 'timeout', 'circuit_open', 'unavailable', 'rejected', 'cancelled', 'fault'] as const;

/** One of {@link CALL_OUTCOMES}. */
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

/** Index of an outcome in {@link CALL_OUTCOMES} (the counters are one array). */
export const OUTCOME = {
  success: 0,
  failure: 1,
  timeout: 2,
  circuit_open: 3,
  unavailable: 4,
  rejected: 5,
  cancelled: 6,
  fault: 7,
} as const satisfies Record<CallOutcome, number>;

/** Breaker states in the order of {@link ServiceMetrics.breakerTransitions}. */
export const BREAKER_TRANSITIONS = ['open', 'half-open', 'closed'] as const;

/** How long a removed endpoint's series stay exported, so its last increments are scraped. */
export const RETIRED_GRACE_MS = 60_000;
/** At most this many removed endpoints are remembered per service (a churning registry must not grow memory). */
const MAX_RETIRED = 1_000;

/** A removed endpoint, kept for its grace period. */
interface Retired {
  readonly state: EndpointState;
  readonly at: number;
}

/**
 * The counters of one service that no other state already keeps. Per-endpoint attempt counts, in-flight
 * counts, EWMA, breaker and ejection state live on {@link EndpointState} and are read at scrape time; this
 * holds only what needs an increment of its own: call outcomes, the two duration histograms, and the
 * governance counters fed by the mesh's (cold-path) events.
 */
export class ServiceMetrics {
  /** Calls that ended, by outcome (indexed by {@link OUTCOME}). */
  readonly outcomes = new Float64Array(CALL_OUTCOMES.length);
  /** Durations of calls that were admitted, whatever their outcome. */
  readonly calls = new Histogram();
  /** Durations of attempts that got a verdict (aborted ones, such as hedge losers, are left out). */
  readonly attempts = new Histogram();
  /**
   * Clock reading at the latest attempt end of this service. A call that succeeds takes its end time from
   * here instead of reading the clock again: the value is at least its own winning attempt's end (set just
   * before that attempt settled) and at most the moment the call resumes, so either way it is a true end.
   */
  lastEndAt = 0;
  retries = 0;
  hedges = 0;
  budgetExhausted = 0;
  ejections = 0;
  /** Breaker transitions by the state entered, in {@link BREAKER_TRANSITIONS} order. */
  readonly breakerTransitions = new Float64Array(3);
  discoveryErrors = 0;
  /** Calls admission throttling rejected (a part of the `rejected` outcome). */
  admissionRejections = 0;
  /** Failed calls a `fallback` was run for (whatever it then returned or threw). */
  fallbacks = 0;
  /** Whether the latest discovery error left a stale list serving, and when it came (clock reading). */
  lastDiscoveryError: { readonly at: number; readonly stale: boolean } | undefined;
  private readonly retired: Retired[] = [];
  /** Per route, by name: kept across configurations, so a route's counters never restart on a change. */
  readonly routes = new Map<string, RouteStats>();

  /** The counters of the route called `name`. */
  route(name: string): RouteStats {
    let stats = this.routes.get(name);
    if (stats === undefined) this.routes.set(name, (stats = new RouteStats(name, CALL_OUTCOMES.length)));
    return stats;
  }

  /** An attempt got its verdict (hot path: a bucket increment and two stores). */
  attemptEnded(durationMs: number, now: number): void {
    this.attempts.observe(durationMs);
    this.lastEndAt = now;
  }

  /** A call's first attempt (or hedge group) succeeded; its end is {@link lastEndAt}, no clock read. */
  callSucceeded(start: number): void {
    this.outcomes[0]!++;
    this.calls.observe(this.lastEndAt - start);
  }

  /** A call ended another way (cold path). `durationMs` is left out for calls never admitted. */
  callEnded(outcome: number, durationMs?: number): void {
    this.outcomes[outcome]!++;
    if (durationMs !== undefined) this.calls.observe(durationMs);
  }

  /** Endpoints that left discovery: their series stay for {@link RETIRED_GRACE_MS}. */
  retire(states: readonly EndpointState[], now: number): void {
    if (states.length === 0) return;
    this.prune(now, RETIRED_GRACE_MS);
    for (const state of states) this.retired.push({ state, at: now });
    if (this.retired.length > MAX_RETIRED) this.retired.splice(0, this.retired.length - MAX_RETIRED);
  }

  /**
   * Removed endpoints still within their grace period, newest first, one per id and none whose id is
   * among `current` (an id that came back is exported from its new state only: two series with the same
   * labels would make the exposition invalid). Drops the expired ones: pruning happens here, at scrape time,
   * and on {@link retire}, never on a timer.
   */
  retiredStates(current: readonly EndpointState[], now: number, graceMs: number): EndpointState[] {
    this.prune(now, graceMs);
    if (this.retired.length === 0) return [];
    const seen = new Set<string>();
    for (const s of current) seen.add(s.id);
    const out: EndpointState[] = [];
    for (let i = this.retired.length - 1; i >= 0; i--) {
      const state = this.retired[i]!.state;
      if (seen.has(state.id)) continue;
      seen.add(state.id);
      out.push(state);
    }
    return out;
  }

  /**
   * 1 while discovery fails and the last good list keeps serving: the latest discovery error came after the
   * last good list (`updatedAt`), left a stale list, and is recent (`holdMs`), since some watches (DNS) recover
   * without pushing the unchanged list again.
   */
  stale(updatedAt: number, now: number, holdMs: number): boolean {
    const e = this.lastDiscoveryError;
    return e !== undefined && e.stale && e.at >= updatedAt && now - e.at <= holdMs;
  }

  private prune(now: number, graceMs: number): void {
    let expired = 0;
    while (expired < this.retired.length && now - this.retired[expired]!.at > graceMs) expired++;
    if (expired > 0) this.retired.splice(0, expired);
  }
}

/**
 * The outcome of a call that threw (cold path). The caller's own abort is `cancelled` whatever its reason is;
 * an error the function threw that `classify` called a success ends the call too, and counts as `failure`.
 */
export function callOutcomeOf(error: unknown, signal: AbortSignal | undefined): number {
  if ((signal?.aborted && error === signal.reason) || error instanceof MeshClosedError) return OUTCOME.cancelled;
  if (error instanceof TimeoutError) return OUTCOME.timeout;
  if (error instanceof CircuitOpenError) return OUTCOME.circuit_open;
  if (error instanceof NoEndpointsError || error instanceof DiscoveryError) return OUTCOME.unavailable;
  if (error instanceof BulkheadFullError || error instanceof AdmissionRejectedError) return OUTCOME.rejected;
  if (error instanceof FaultInjectedError) return OUTCOME.fault;
  return OUTCOME.failure;
}
