import type { Service } from '../service.js';

/** One endpoint in {@link MeshSnapshot}. */
export interface EndpointSnapshot {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly zone: string | null;
  readonly inflight: number;
  /** Peak-EWMA latency now, in ms. */
  readonly ewmaMs: number;
  readonly requests: number;
  readonly successes: number;
  readonly failures: number;
  readonly breaker: 'closed' | 'open' | 'half-open' | 'off';
  readonly ejected: boolean;
}

/** One service in {@link MeshSnapshot}. */
export interface ServiceSnapshot {
  readonly balancer: string;
  readonly ready: boolean;
  readonly activeCalls: number;
  readonly calls: number;
  readonly failedCalls: number;
  /** Retries the budget allows now; null when the budget is off. */
  readonly retryBudget: number | null;
  /** Too few endpoints are healthy: ejected ones are balanced over too. */
  readonly panic: boolean;
  /** Milliseconds since the last good endpoint list. */
  readonly discoveryAgeMs: number | null;
  readonly endpoints: readonly EndpointSnapshot[];
}

/** `mesh.snapshot()`: plain JSON, safe to serve (no tokens, no registry internals). */
export interface MeshSnapshot {
  readonly services: Readonly<Record<string, ServiceSnapshot>>;
}

export function takeSnapshot(services: ReadonlyMap<string, Service>, now: number): MeshSnapshot {
  const out: Record<string, ServiceSnapshot> = {};
  for (const [name, svc] of services) {
    out[name] = {
      balancer: svc.balancer.name,
      ready: svc.ready,
      activeCalls: svc.active,
      calls: svc.calls,
      failedCalls: svc.callFailures,
      retryBudget: svc.budget ? svc.budget.balance : null,
      panic: svc.health.panic,
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
        ejected: s.outlier?.ejected ?? false,
      })),
    };
  }
  return { services: out };
}
