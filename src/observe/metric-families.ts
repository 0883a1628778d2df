/** A Prometheus metric type, as the text format's `# TYPE` line names it. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * How prom-client's `AggregatorRegistry` (cluster mode) combines one series across workers: the names of
 * prom-client's own `aggregators`.
 */
export type MetricAggregator = 'sum' | 'average' | 'max' | 'min' | 'first' | 'omit';

/** One metric family that `mesh.metrics()` exports: the source of its HELP and TYPE lines and of the README's table. */
export interface MetricFamily {
  readonly name: string;
  readonly type: MetricType;
  /** Label names, besides `mesh` (named meshes only, first) and `le` on histogram buckets. */
  readonly labels: readonly string[];
  readonly help: string;
  /**
   * The cluster aggregation: `sum` for counters, histograms and what adds up across workers (calls in flight,
   * limits, budgets); `max` for 0/1 flags and ages (1 when any worker sees it, the oldest list); `average` for a
   * worker's estimate of something they share (EWMA latency, effective weight, endpoint counts); `first` for info.
   */
  readonly aggregator: MetricAggregator;
  /** The OpenMetrics `# UNIT`, when the name ends in one. */
  readonly unit?: 'seconds' | undefined;
}

/** Counters and histograms add up across workers; gauges say how (see {@link MetricFamily.aggregator}). */
const family = (name: string, type: MetricType, labels: readonly string[], help: string, aggregator: MetricAggregator = 'sum'): MetricFamily => ({
  name: `proxyless_${name}`,
  type,
  labels,
  help,
  aggregator,
  ...(name.endsWith('_seconds') ? { unit: 'seconds' as const } : {}),
});

/**
 * Every family `mesh.metrics()` writes, in the order it writes them. Label values: `service` is the logical
 * service name; `endpoint` the endpoint id (`host:port` for static and DNS lists, the instance id for
 * Consul), exported only for endpoints in the current list or removed less than a minute ago.
 */
export const METRIC_FAMILIES = {
  requests: family('requests_total', 'counter', ['service', 'outcome'],
    'Calls that ended, by outcome: success, failure, timeout, circuit_open, unavailable, rejected, cancelled, fault.'),
  requestDuration: family('request_duration_seconds', 'histogram', ['service'],
    'Duration of admitted calls, retries and backoff included, whatever their outcome.'),
  requestsInFlight: family('requests_in_flight', 'gauge', ['service'], 'Calls in flight (the bulkhead counts these).'),
  attempts: family('attempts_total', 'counter', ['service', 'endpoint', 'outcome'],
    'Attempts that ended, by endpoint and outcome: success, failure, cancelled (caller abort, hedge lost, mesh closed).'),
  attemptDuration: family('attempt_duration_seconds', 'histogram', ['service'],
    'Duration of attempts that got a verdict (success or failure).'),
  endpointInFlight: family('endpoint_in_flight', 'gauge', ['service', 'endpoint'], 'Attempts in flight to the endpoint.'),
  endpointLatency: family('endpoint_latency_ewma_seconds', 'gauge', ['service', 'endpoint'],
    'Peak-EWMA latency of the endpoint, as the balancer measures it (a failure never lowers it).', 'average'),
  endpointWeight: family('endpoint_weight', 'gauge', ['service', 'endpoint'], 'Effective weight of the endpoint.', 'average'),
  endpointEjected: family('endpoint_ejected', 'gauge', ['service', 'endpoint'], '1 while outlier detection or a failing health check ejects the endpoint.', 'max'),
  endpointInfo: family('endpoint_info', 'gauge', ['service', 'endpoint', 'zone'], 'Always 1; carries the endpoint zone.', 'first'),
  breakerState: family('breaker_state', 'gauge', ['service', 'endpoint', 'state'],
    '1 for the state the endpoint breaker is in (closed, open, half-open), 0 for the others.', 'max'),
  endpoints: family('endpoints', 'gauge', ['service', 'state'],
    'Endpoints in the current list by state: healthy, ejected, open (breaker open).', 'average'),
  panic: family('panic', 'gauge', ['service'], '1 while too few endpoints are healthy and ejection is ignored (panic threshold).', 'max'),
  retries: family('retries_total', 'counter', ['service'], 'Retries started.'),
  hedges: family('hedges_total', 'counter', ['service'], 'Hedged attempts started.'),
  budgetExhausted: family('retry_budget_exhausted_total', 'counter', ['service'],
    'Retries or hedges refused because the retry budget was spent.'),
  budgetBalance: family('retry_budget_balance', 'gauge', ['service'], 'Retries the budget allows now.'),
  ejections: family('ejections_total', 'counter', ['service'], 'Outlier ejections of endpoints.'),
  breakerTransitions: family('breaker_transitions_total', 'counter', ['service', 'state'],
    'Breaker state changes, by the state entered: open, half-open, closed.'),
  bulkheadRejections: family('bulkhead_rejections_total', 'counter', ['service'],
    'Calls refused at once because maxConcurrent calls, or the adaptiveConcurrency limit, were in flight.'),
  concurrencyLimit: family('concurrency_limit', 'gauge', ['service'],
    'The limit on calls in flight now: the adaptiveConcurrency (Gradient2) limit, capped by maxConcurrent; +Inf for none.'),
  admissionRejections: family('admission_rejections_total', 'counter', ['service'],
    'Calls client-side throttling (admission) refused locally, without sending them.'),
  admissionRejectProbability: family('admission_reject_probability', 'gauge', ['service'],
    'The probability, from 0 to 1, that admission throttling refuses a call now (0 with admission off).', 'average'),
  fallbacks: family('fallbacks_total', 'counter', ['service'],
    'Failed calls a fallback was run for; each keeps the outcome of its failure in proxyless_requests_total.'),
  discoveryAge: family('discovery_age_seconds', 'gauge', ['service'],
    'Seconds since the last good endpoint list arrived (a watched list is only pushed on change).', 'max'),
  discoveryStale: family('discovery_stale', 'gauge', ['service'],
    '1 while discovery fails and the last good list keeps serving.', 'max'),
  discoveryErrors: family('discovery_errors_total', 'counter', ['service'], 'Failed discovery resolves and watch errors.'),
  routeRequests: family('route_requests_total', 'counter', ['service', 'route', 'backend', 'outcome'],
    'Calls a route sent to a backend (subset name, service:<name>, or * for the whole service), by outcome.'),
  routeFaults: family('route_faults_total', 'counter', ['service', 'route', 'kind'], 'Faults a route injected, by kind: delay, abort.'),
  mirrorRequests: family('mirror_requests_total', 'counter', ['service', 'route', 'outcome'],
    'Mirrored copies of requests, by outcome: success, failure (never seen by the caller).'),
} as const satisfies Record<string, MetricFamily>;
