import type { MeshEmitter } from './emitter.js';
import { BREAKER_TRANSITIONS, type ServiceMetrics } from './service-metrics.js';
import type { Clock } from '../util/clock.js';

/**
 * Feeds the governance counters (retries, hedges, budget exhaustions, ejections, breaker transitions,
 * discovery errors) from the mesh's own events: observability is a subscriber (no global registry, no setup on
 * import). Only events off the success path are used here; they already build a payload and are rare next to
 * calls. Requests, attempts and durations are counted in place, without events, since an event payload per call
 * allocates.
 *
 * @param metricsOf finds a service's metrics by name (undefined for a service the mesh does not know)
 */
export function subscribeMetrics(
  events: MeshEmitter,
  metricsOf: (service: string) => ServiceMetrics | undefined,
  clock: Clock,
): void {
  const count = (event: 'retry' | 'hedge' | 'budget-exhausted' | 'ejected' | 'breaker-open' | 'breaker-half-open' | 'breaker-close', bump: (m: ServiceMetrics) => void): void => {
    events.on(event, ({ service }: { service: string }) => {
      const m = metricsOf(service);
      if (m !== undefined) bump(m);
    });
  };
  count('retry', (m) => void m.retries++);
  count('hedge', (m) => void m.hedges++);
  count('budget-exhausted', (m) => void m.budgetExhausted++);
  count('ejected', (m) => void m.ejections++);
  const entered = (state: (typeof BREAKER_TRANSITIONS)[number]) => (m: ServiceMetrics) =>
    void m.breakerTransitions[BREAKER_TRANSITIONS.indexOf(state)]!++;
  count('breaker-open', entered('open'));
  count('breaker-half-open', entered('half-open'));
  count('breaker-close', entered('closed'));
  events.on('discovery-error', ({ service, stale }) => {
    const m = metricsOf(service);
    if (m === undefined) return;
    m.discoveryErrors++;
    m.lastDiscoveryError = { at: clock.now(), stale };
  });
}
