import type { MeshConfigView } from '../config/types.js';
import { define } from '../util/own.js';
import type { Service } from '../service.js';
import { CALL_OUTCOMES } from './service-metrics.js';

/** One route's counters in {@link ServiceSnapshot}: calls per backend, faults, mirrors. */
export interface RouteSnapshot {
  readonly name: string;
  /** Per backend label (`v2`, `service:users-canary`, `*`): the weight in force (null when no longer configured) and calls by outcome. */
  readonly backends: readonly {
    readonly backend: string;
    readonly weight: number | null;
    readonly calls: number;
    readonly outcomes: Readonly<Record<string, number>>;
  }[];
  readonly faults: { readonly delay: number; readonly abort: number };
  readonly mirrors: { readonly sent: number; readonly succeeded: number; readonly failed: number };
}

/** One endpoint in {@link MeshSnapshot}. */
export interface EndpointSnapshot {
  /** The endpoint's id (`host:port` unless the registry gave another). */
  readonly id: string;
  /** Host name or IP address. */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
  /** Effective weight. */
  readonly weight: number;
  /** Locality, or null when discovery gave none. */
  readonly zone: string | null;
  /** Attempts in flight now. */
  readonly inflight: number;
  /** Peak-EWMA latency now, in ms. */
  readonly ewmaMs: number;
  /** Attempts started. */
  readonly requests: number;
  /** Attempts that succeeded. */
  readonly successes: number;
  /** Attempts that failed (aborted ones count as neither). */
  readonly failures: number;
  /** Its circuit breaker's state; `off` when the policy turns breakers off. */
  readonly breaker: 'closed' | 'open' | 'half-open' | 'off';
  /** Whether outlier detection ejects it now. */
  readonly ejected: boolean;
}

/** One service in {@link MeshSnapshot}. */
export interface ServiceSnapshot {
  /** The balancer's name. */
  readonly balancer: string;
  /** Whether an endpoint list arrived at least once. */
  readonly ready: boolean;
  /** Calls in flight now. */
  readonly activeCalls: number;
  /** Calls started. */
  readonly calls: number;
  /** Calls that rejected (a fetch that resolved with a failing response is not counted here). */
  readonly failedCalls: number;
  /** Retries the budget allows now; null when the budget is off. */
  readonly retryBudget: number | null;
  /** Too few endpoints are healthy: ejected ones are balanced over too. */
  readonly panic: boolean;
  /**
   * The `adaptiveConcurrency` limit now, with the no-load RTT it compares against (`minRttMs`, 0 until first
   * measured), the latest short-term RTT, and whether that minimum is being measured (the limit then sits at `min`);
   * null when adaptive concurrency is off.
   */
  readonly adaptiveConcurrency: { readonly limit: number; readonly minRttMs: number; readonly rttMs: number; readonly probing: boolean } | null;
  /** Admission throttling now: the rejection probability (0 to 1) and the window's counts; null when it is off. */
  readonly admission: { readonly rejectProbability: number; readonly requests: number; readonly accepts: number } | null;
  /** Failed calls a fallback was run for. */
  readonly fallbacks: number;
  /** Milliseconds since the last good endpoint list. */
  readonly discoveryAgeMs: number | null;
  /** The current endpoints, in discovery order. */
  readonly endpoints: readonly EndpointSnapshot[];
  /** The routes configured for this service since it started (by name, across configurations), with their counters. */
  readonly routes: readonly RouteSnapshot[];
}

/** `mesh.snapshot()`: plain JSON, safe to serve (no tokens, no registry internals). */
export interface MeshSnapshot {
  /** Every service called (or warmed up) so far, by name. */
  readonly services: Readonly<Record<string, ServiceSnapshot>>;
  /** The configuration in force (`mesh.config()`), with its version. */
  readonly config: MeshConfigView;
}

export function takeSnapshot(services: ReadonlyMap<string, Service>, now: number, config: MeshConfigView): MeshSnapshot {
  const out: Record<string, ServiceSnapshot> = {};
  for (const [name, svc] of services) {
    const snapshot: ServiceSnapshot = {
      balancer: svc.plan.whole.balancer.name,
      ready: svc.ready,
      activeCalls: svc.active,
      calls: svc.calls,
      failedCalls: svc.callFailures,
      retryBudget: svc.budget ? svc.budget.balance : null,
      panic: svc.health.panic,
      adaptiveConcurrency: limitOf(svc),
      admission: admissionOf(svc, now),
      fallbacks: svc.metrics.fallbacks,
      discoveryAgeMs: svc.ready ? Math.round(now - svc.updatedAt) : null,
      endpoints: svc.endpoints.states.map((s) => ({
        id: s.id,
        host: s.endpoint.host,
        port: s.endpoint.port,
        weight: s.weight,
        zone: s.endpoint.zone ?? null,
        inflight: s.inflight,
        ewmaMs: Math.round(s.latency.get(now) * 100) / 100,
        requests: s.requests,
        successes: s.successes,
        failures: s.failures,
        breaker: s.breaker ? s.breaker.state : 'off',
        ejected: s.ejected,
      })),
      routes: routesOf(svc),
    };
    // Defined, not assigned: `out['__proto__'] = x` would set the prototype and drop a service of that (legal) name.
    // The result stays a plain object, as JSON.parse of the /snapshot body builds it (an own "__proto__" key).
    define(out, name, snapshot);
  }
  return { services: out, config };
}

function limitOf(svc: Service): ServiceSnapshot['adaptiveConcurrency'] {
  const limiter = svc.guard?.limiter;
  if (limiter === undefined) return null;
  const round = (ms: number): number => Math.round(ms * 100) / 100;
  return { limit: limiter.limit, minRttMs: round(limiter.minRttMs), rttMs: round(limiter.lastRttMs), probing: limiter.probing };
}

function admissionOf(svc: Service, now: number): ServiceSnapshot['admission'] {
  const throttle = svc.guard?.throttle;
  if (throttle === undefined) return null;
  const { requests, accepts } = throttle.counts(now);
  return { rejectProbability: Math.round(throttle.rejectProbability(now) * 10_000) / 10_000, requests, accepts };
}

function routesOf(svc: Service): RouteSnapshot[] {
  const weights = new Map<string, Map<string, number>>();
  for (const route of svc.plan.routes ?? []) weights.set(route.name, route.weights());
  const out: RouteSnapshot[] = [];
  for (const [name, stats] of svc.metrics.routes) {
    const configured = weights.get(name);
    const labels = new Set([...(configured?.keys() ?? []), ...stats.backends.keys()]);
    out.push({
      name,
      backends: [...labels].map((label) => {
        const b = stats.backends.get(label);
        const outcomes: Record<string, number> = {};
        CALL_OUTCOMES.forEach((o, i) => (outcomes[o] = b?.outcomes[i] ?? 0));
        return { backend: label, weight: configured?.get(label) ?? null, calls: b?.total ?? 0, outcomes };
      }),
      faults: { delay: stats.delays, abort: stats.aborts },
      mirrors: { sent: stats.mirrored, succeeded: stats.mirrorSucceeded, failed: stats.mirrorFailed },
    });
  }
  return out;
}
