import type { PickRequest } from '../balancer/balancer.js';
import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { BackendLabel, BackendStats } from '../observe/route-stats.js';
import type { ServiceMetrics } from '../observe/service-metrics.js';
import type { ResolvedPolicy } from '../options.js';
import type { RetryBudget } from '../resilience/budget.js';
import type { BulkheadQueue } from '../resilience/bulkhead.js';
import type { LatencyWindow } from '../resilience/latency-window.js';
import type { OverloadGuard } from '../resilience/overload-guard.js';
import type { CallSettings } from './settings.js';

export type { BackendLabel };

/** The part of a service's health the call steps touch. */
export interface TargetHealth {
  /** Too few endpoints are healthy: ejection is ignored. */
  readonly panic: boolean;
  /** Brings back endpoints whose ejection is over (a compare when none is due). */
  restoreDue(now: number): void;
  /** An attempt's verdict, for outlier detection. */
  record(state: EndpointState, ok: boolean, now: number): void;
}

/**
 * What every configuration of a service shares, and the call steps count into: its metrics, health, retry
 * budget, bulkhead queue, overload guard and counters. The service itself: the steps reach it as `target.shared`,
 * a plain field (an accessor per counter would cost the call path its inlining budget).
 */
export interface SharedTarget {
  readonly name: string;
  readonly metrics: ServiceMetrics;
  readonly health: TargetHealth;
  readonly budget: RetryBudget | undefined;
  /** Where calls wait for a bulkhead slot (`maxQueued` > 0). */
  readonly queue: BulkheadQueue | undefined;
  /**
   * The adaptive concurrency limit and the admission throttle the service's policy turns on, or undefined when
   * both are off: the admission step's one field check for them.
   */
  readonly guard: OverloadGuard | undefined;
  /** Recent latencies, kept when a `'p95'` hedge delay needs them (created on first need). */
  latencyWindow: LatencyWindow | undefined;
  /** Calls in flight (the bulkhead counts these). */
  active: number;
  /** When the latest call was admitted (clock reading). */
  lastCallAt: number;
  /** Calls admitted, and how many of them failed. */
  calls: number;
  callFailures: number;
  /** Makes sure a list is there: a promise only while the first list is loading. */
  prepare(now: number): Promise<void> | undefined;
}

/**
 * What the call steps see of a service (a backend of one configuration: the whole service or a route's subset):
 * its policy, its shared counters and the few operations a call needs. The steps never hold the `Service` class
 * itself, so the call path can be read (and tested) on its own.
 */
export interface CallTarget {
  readonly name: string;
  readonly policy: ResolvedPolicy;
  /** The service's own metrics and health (the same objects as `shared`'s, one hop fewer). */
  readonly metrics: ServiceMetrics;
  readonly health: TargetHealth;
  /** What every configuration of the service shares. */
  readonly shared: SharedTarget;
  /** How many endpoints it balances over now. */
  readonly size: number;
  /** The settings of a call with no per-call options (one frozen object, reused). */
  readonly plainSettings: CallSettings;
  /** One balancer pick among the usable endpoints not in `request.tried` (slow-start ramps applied). */
  choose(request: PickRequest): EndpointState | undefined;
  /** True when every endpoint this target balances over has its breaker open. */
  allOpen(): boolean;
  /** The route that chose this target (its name), or undefined outside any route. */
  readonly route: string | undefined;
  /** The backend of that route. */
  readonly backend: BackendLabel | undefined;
  /** The route's counters for this backend (calls by outcome). */
  readonly routeStats: BackendStats | undefined;
}
