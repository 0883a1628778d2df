import type { EndpointState } from '../endpoint/endpoint-state.js';
import type { Service } from '../service.js';
import { DURATION_BOUNDS_MS, type Histogram } from './histogram.js';
import { METRIC_FAMILIES as F, type MetricFamily } from './metric-families.js';
import { BREAKER_TRANSITIONS, CALL_OUTCOMES } from './service-metrics.js';

/** What {@link renderMetrics} needs besides the services. */
export interface RenderOptions {
  /** Clock reading now (the mesh's monotonic clock). */
  readonly now: number;
  /** How long a removed endpoint's series stay. */
  readonly retiredGraceMs: number;
  /** How long after its latest error discovery still counts as stale (see `ServiceMetrics.stale`). */
  readonly staleHoldMs: number;
}

/** The `Content-Type` of the text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
const LE = DURATION_BOUNDS_MS.map((ms) => String(ms / 1_000));

/** A label value, escaped as the text format wants: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}

/** A sample value: Go's float syntax, with `+Inf`, `-Inf` and `NaN` spelled as the format wants. */
function num(v: number): string {
  if (Number.isFinite(v)) return String(v);
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? '+Inf' : '-Inf';
}

/** One service's label sets for one scrape, escaped once. */
interface ServiceView {
  readonly svc: Service;
  readonly label: string;
  /** Current endpoints and their `service="…",endpoint="…"` labels. */
  readonly current: readonly { readonly state: EndpointState; readonly label: string }[];
  /** Removed endpoints within their grace period (counters only). */
  readonly retired: readonly { readonly state: EndpointState; readonly label: string }[];
}

/**
 * The Prometheus text exposition (format 0.0.4) of every service: each family once, with its HELP and
 * TYPE lines, in {@link METRIC_FAMILIES} order. Runs at scrape time and reads the counters the call path
 * keeps anyway; a scrape of 100 endpoints takes well under a millisecond.
 */
export function renderMetrics(services: Iterable<Service>, options: RenderOptions): string {
  const { now } = options;
  const views: ServiceView[] = [];
  for (const svc of services) {
    const label = `service="${escapeLabelValue(svc.name)}"`;
    const withLabel = (state: EndpointState) => ({ state, label: `${label},endpoint="${escapeLabelValue(state.id)}"` });
    const states = svc.endpoints.states;
    views.push({
      svc,
      label,
      current: states.map(withLabel),
      retired: svc.metrics.retiredStates(states, now, options.retiredGraceMs).map(withLabel),
    });
  }
  const w = new TextWriter();

  w.family(F.requests);
  for (const { svc, label } of views) {
    for (let i = 0; i < CALL_OUTCOMES.length; i++) {
      w.sample(F.requests.name, `${label},outcome="${CALL_OUTCOMES[i]}"`, svc.metrics.outcomes[i]!);
    }
  }
  w.family(F.requestDuration);
  for (const { svc, label } of views) w.histogram(F.requestDuration.name, label, svc.metrics.calls);
  w.family(F.requestsInFlight);
  for (const { svc, label } of views) w.sample(F.requestsInFlight.name, label, svc.active);

  w.family(F.attempts);
  for (const view of views) {
    for (const { state, label } of [...view.current, ...view.retired]) {
      const cancelled = state.requests - state.successes - state.failures - state.inflight;
      w.sample(F.attempts.name, `${label},outcome="success"`, state.successes);
      w.sample(F.attempts.name, `${label},outcome="failure"`, state.failures);
      w.sample(F.attempts.name, `${label},outcome="cancelled"`, Math.max(0, cancelled));
    }
  }
  w.family(F.attemptDuration);
  for (const { svc, label } of views) w.histogram(F.attemptDuration.name, label, svc.metrics.attempts);

  w.family(F.endpointInFlight);
  for (const v of views) for (const { state, label } of v.current) w.sample(F.endpointInFlight.name, label, state.inflight);
  w.family(F.endpointLatency);
  for (const v of views) {
    for (const { state, label } of v.current) w.sample(F.endpointLatency.name, label, state.latency.get(now) / 1_000);
  }
  w.family(F.endpointWeight);
  for (const v of views) for (const { state, label } of v.current) w.sample(F.endpointWeight.name, label, state.weight);
  w.family(F.endpointEjected);
  for (const v of views) {
    for (const { state, label } of v.current) w.sample(F.endpointEjected.name, label, state.ejected ? 1 : 0);
  }
  w.family(F.endpointInfo);
  for (const v of views) {
    for (const { state, label } of v.current) {
      w.sample(F.endpointInfo.name, `${label},zone="${escapeLabelValue(state.endpoint.zone ?? '')}"`, 1);
    }
  }
  w.family(F.breakerState);
  for (const v of views) {
    for (const { state, label } of v.current) {
      const breaker = state.breaker;
      if (breaker === undefined) continue; // breakers off for this service
      const current = breaker.state;
      for (const s of BREAKER_STATES) w.sample(F.breakerState.name, `${label},state="${s}"`, s === current ? 1 : 0);
    }
  }
  w.family(F.endpoints);
  for (const { svc, label } of views) {
    let healthy = 0;
    let ejected = 0;
    let open = 0;
    for (const s of svc.endpoints.states) {
      if (s.breaker?.isOpen) open++;
      else if (s.ejected) ejected++;
      else healthy++;
    }
    w.sample(F.endpoints.name, `${label},state="healthy"`, healthy);
    w.sample(F.endpoints.name, `${label},state="ejected"`, ejected);
    w.sample(F.endpoints.name, `${label},state="open"`, open);
  }
  w.family(F.panic);
  for (const { svc, label } of views) w.sample(F.panic.name, label, svc.health.panic ? 1 : 0);

  const perService = (family: MetricFamily, value: (svc: Service) => number | undefined): void => {
    w.family(family);
    for (const { svc, label } of views) {
      const v = value(svc);
      if (v !== undefined) w.sample(family.name, label, v);
    }
  };
  perService(F.retries, (svc) => svc.metrics.retries);
  perService(F.hedges, (svc) => svc.metrics.hedges);
  perService(F.budgetExhausted, (svc) => svc.metrics.budgetExhausted);
  perService(F.budgetBalance, (svc) => svc.budget?.balance);
  perService(F.ejections, (svc) => svc.metrics.ejections);
  w.family(F.breakerTransitions);
  for (const { svc, label } of views) {
    for (let i = 0; i < BREAKER_TRANSITIONS.length; i++) {
      w.sample(F.breakerTransitions.name, `${label},state="${BREAKER_TRANSITIONS[i]}"`, svc.metrics.breakerTransitions[i]!);
    }
  }
  // The `rejected` outcome less admission throttling's share: what the two concurrency limits refused.
  perService(F.bulkheadRejections, (svc) => svc.metrics.outcomes[CALL_OUTCOMES.indexOf('rejected')]! - svc.metrics.admissionRejections);
  // Every service, so a dashboard can plot in-flight calls against it: the fixed ceiling when nothing adapts.
  perService(F.concurrencyLimit, (svc) => Math.min(svc.policy.maxConcurrent, svc.guard?.limiter?.limit ?? Infinity));
  perService(F.admissionRejections, (svc) => svc.metrics.admissionRejections);
  perService(F.admissionRejectProbability, (svc) => svc.guard?.throttle?.rejectProbability(now) ?? 0);
  perService(F.fallbacks, (svc) => svc.metrics.fallbacks);
  perService(F.discoveryAge, (svc) => (svc.ready ? Math.max(0, now - svc.updatedAt) / 1_000 : undefined));
  perService(F.discoveryStale, (svc) => (svc.metrics.stale(svc.updatedAt, now, options.staleHoldMs) ? 1 : 0));
  perService(F.discoveryErrors, (svc) => svc.metrics.discoveryErrors);
  writeRoutes(w, views);
  return w.text();
}

/** The route families: a series per route that carried calls (kept by name across configurations). */
function writeRoutes(w: TextWriter, views: readonly { readonly svc: Service; readonly label: string }[]): void {
  const routed = views.flatMap(({ svc, label }) =>
    [...svc.metrics.routes.values()].map((stats) => ({ stats, label: `${label},route="${escapeLabelValue(stats.route)}"` })),
  );
  w.family(F.routeRequests);
  for (const { stats, label } of routed) {
    for (const b of stats.backends.values()) {
      for (let i = 0; i < CALL_OUTCOMES.length; i++) {
        w.sample(F.routeRequests.name, `${label},backend="${escapeLabelValue(b.label)}",outcome="${CALL_OUTCOMES[i]}"`, b.outcomes[i]!);
      }
    }
  }
  w.family(F.routeFaults);
  for (const { stats, label } of routed) {
    w.sample(F.routeFaults.name, `${label},kind="delay"`, stats.delays);
    w.sample(F.routeFaults.name, `${label},kind="abort"`, stats.aborts);
  }
  w.family(F.mirrorRequests);
  for (const { stats, label } of routed) {
    w.sample(F.mirrorRequests.name, `${label},outcome="success"`, stats.mirrorSucceeded);
    w.sample(F.mirrorRequests.name, `${label},outcome="failure"`, stats.mirrorFailed);
  }
}

/** Writes the text format line by line. */
class TextWriter {
  private out = '';

  family(f: MetricFamily): void {
    this.out += `# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${f.name} ${f.type}\n`;
  }

  sample(name: string, labels: string, value: number): void {
    this.out += labels === '' ? `${name} ${num(value)}\n` : `${name}{${labels}} ${num(value)}\n`;
  }

  /** `_bucket` (cumulative, `le` in seconds), `_sum` (seconds) and `_count` samples of one histogram. */
  histogram(name: string, labels: string, h: Histogram): void {
    let cumulative = 0;
    for (let i = 0; i < LE.length; i++) {
      cumulative += h.counts[i]!;
      this.sample(`${name}_bucket`, `${labels},le="${LE[i]}"`, cumulative);
    }
    cumulative += h.counts[LE.length]!;
    this.sample(`${name}_bucket`, `${labels},le="+Inf"`, cumulative);
    this.sample(`${name}_sum`, labels, h.sumMs / 1_000);
    this.sample(`${name}_count`, labels, cumulative);
  }

  text(): string {
    return this.out;
  }
}
