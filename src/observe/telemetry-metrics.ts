import type { TelemetryCounter, TelemetryHistogram, TelemetryMeter, TelemetryObservable } from './telemetry-api.js';

/**
 * The HTTP client semantic conventions' advice for `http.client.request.duration` (seconds), which the
 * Prometheus histograms' latency range also spans.
 */
export const HTTP_DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]);

/**
 * The OTel instruments `withTelemetry` records, each the twin of a Prometheus series of `mesh.metrics()` (named
 * after OTel's naming guidance: a `proxyless.client.` namespace, no `_total`, units in `unit`, not in the name):
 * - `http.client.request.duration`: the semantic conventions' own histogram, one sample per HTTP attempt with a
 *   verdict (`proxyless_attempt_duration_seconds`, HTTP attempts only);
 * - `proxyless.client.calls` and `proxyless.client.call.duration`: calls that ended, by outcome
 *   (`proxyless_requests_total`, `proxyless_request_duration_seconds`);
 * - `proxyless.client.active_calls`: calls in flight (`proxyless_requests_in_flight`), an observable up-down
 *   counter read at collection time as the Prometheus gauge is read at scrape time (a synchronous one would cost
 *   every call two more recordings, about a microsecond each with the SDK);
 * - `proxyless.client.attempts` and `proxyless.client.attempt.duration`: attempts by endpoint and outcome
 *   (`proxyless_attempts_total`, `proxyless_attempt_duration_seconds`, any protocol);
 * - `proxyless.client.active_attempts`: attempts in flight by endpoint (`proxyless_endpoint_in_flight`), observed
 *   the same way;
 * - `proxyless.client.retries`, `proxyless.client.hedges`, `proxyless.client.ejections`
 *   (`proxyless_retries_total`, `proxyless_hedges_total`, `proxyless_ejections_total`).
 */
export interface TelemetryInstruments {
  readonly httpDuration: TelemetryHistogram;
  readonly calls: TelemetryCounter;
  readonly callDuration: TelemetryHistogram;
  readonly activeCalls: TelemetryObservable;
  readonly attempts: TelemetryCounter;
  readonly attemptDuration: TelemetryHistogram;
  readonly activeAttempts: TelemetryObservable;
  readonly retries: TelemetryCounter;
  readonly hedges: TelemetryCounter;
  readonly ejections: TelemetryCounter;
}

/** Creates the instruments on `meter` (see {@link TelemetryInstruments}). */
export function createInstruments(meter: TelemetryMeter): TelemetryInstruments {
  const advice = { explicitBucketBoundaries: [...HTTP_DURATION_BUCKETS] };
  return {
    httpDuration: meter.createHistogram('http.client.request.duration', {
      description: 'Duration of HTTP client requests.',
      unit: 's',
      advice,
    }),
    calls: meter.createCounter('proxyless.client.calls', {
      description: 'Calls that ended, by outcome: success, failure, timeout, circuit_open, unavailable, rejected, cancelled, fault.',
      unit: '{call}',
    }),
    callDuration: meter.createHistogram('proxyless.client.call.duration', {
      description: 'Duration of calls, retries and backoff included, whatever their outcome.',
      unit: 's',
      advice,
    }),
    activeCalls: meter.createObservableUpDownCounter('proxyless.client.active_calls', { description: 'Calls in flight.', unit: '{call}' }),
    attempts: meter.createCounter('proxyless.client.attempts', {
      description: 'Attempts that ended, by endpoint and outcome: success, failure, cancelled.',
      unit: '{attempt}',
    }),
    attemptDuration: meter.createHistogram('proxyless.client.attempt.duration', {
      description: 'Duration of attempts that got a verdict (success or failure), any protocol.',
      unit: 's',
      advice,
    }),
    activeAttempts: meter.createObservableUpDownCounter('proxyless.client.active_attempts', {
      description: 'Attempts in flight, by endpoint.',
      unit: '{attempt}',
    }),
    retries: meter.createCounter('proxyless.client.retries', { description: 'Retries started.', unit: '{retry}' }),
    hedges: meter.createCounter('proxyless.client.hedges', { description: 'Hedged attempts started.', unit: '{attempt}' }),
    ejections: meter.createCounter('proxyless.client.ejections', { description: 'Outlier ejections of endpoints, by reason.', unit: '{ejection}' }),
  };
}
