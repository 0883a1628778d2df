/**
 * The policy keys of "health beyond consecutive failures" (re-exported by options.ts): statistical ejection lives in
 * {@link OutlierPolicy} (resilience/outlier.ts); these are the overload and liveness mechanisms around a call.
 * Each one names its anchor, and `false` turns it off.
 */

/**
 * Envoy's success-rate outlier detection (gRPC A50): every `outlier.intervalMs`, among endpoints with at least
 * `requestVolume` attempts in the interval, and when at least `minHosts` of them qualify, eject each endpoint whose
 * success rate is below mean − `stdevFactor` × stdev, with probability `enforcingPercent`. Endpoints already out
 * are left out of the figures; outliers go worst first within `outlier.maxEjectionPercent`, for as long as any
 * ejection (`baseEjectionMs` × times ejected); the `ejected` event says `reason: 'success-rate'`.
 * @example { minHosts: 5, requestVolume: 100, stdevFactor: 1.9, enforcingPercent: 100 }
 */
export interface SuccessRatePolicy {
  /** Fewest endpoints with enough volume for the rule to run. Default 5 (Envoy's). */
  minHosts?: number | undefined;
  /** Fewest attempts in the interval for an endpoint to count. Default 100 (Envoy's). */
  requestVolume?: number | undefined;
  /** How many standard deviations below the mean ejects. Default 1.9 (Envoy's `stdev_factor` 1900 ÷ 1000). */
  stdevFactor?: number | undefined;
  /** The chance, in percent, that an endpoint found an outlier is ejected. Default 100 (Envoy's). */
  enforcingPercent?: number | undefined;
}

/**
 * Envoy's failure-percentage outlier detection: every `outlier.intervalMs`, eject each endpoint with at least
 * `requestVolume` attempts whose failure percentage is at or above `threshold`, when at least `minHosts` endpoints
 * have that volume.
 * @example { threshold: 85, minHosts: 5, requestVolume: 50, enforcingPercent: 100 }
 */
export interface FailurePercentPolicy {
  /** Failure percentage at or above which an endpoint is ejected. Default 85 (Envoy's). */
  threshold?: number | undefined;
  /** Fewest endpoints with enough volume for the rule to run. Default 5 (Envoy's). */
  minHosts?: number | undefined;
  /** Fewest attempts in the interval for an endpoint to count. Default 50 (Envoy's). */
  requestVolume?: number | undefined;
  /** The chance, in percent, that an endpoint over the threshold is ejected. Default 100. */
  enforcingPercent?: number | undefined;
}

/**
 * A Gradient2 concurrency limit per service (Netflix concurrency-limits `Gradient2Limit`, the shape of Envoy's
 * adaptive concurrency filter): the limit follows long-term RTT ÷ short-term RTT, the long-term one being the no-load
 * RTT measured as Envoy does (the limit held at `min` for 50 calls, every 30 s plus jitter). Calls over it are
 * rejected at once with `BulkheadFullError` (`source: 'adaptiveConcurrency'`), never queued. It replaces a fixed
 * `maxConcurrent` for the service; with both set, `maxConcurrent` caps it (and `maxQueued` waits for its slots only).
 * @example { initial: 20, min: 20, max: 200, smoothing: 0.2 }
 */
export interface AdaptiveConcurrencyPolicy {
  /** The limit to start from. Default 20. */
  initial?: number | undefined;
  /**
   * The lowest the limit goes, and the concurrency the no-load RTT is measured at: keep it below the backend's own
   * concurrency (its slots), or the measure includes a queue. Default 20.
   */
  min?: number | undefined;
  /** The highest the limit goes. Default 200. */
  max?: number | undefined;
  /** How much of each new estimate moves the limit, from 0 to 1. Default 0.2. */
  smoothing?: number | undefined;
}

/**
 * Client-side throttling (the SRE book, ch. 21; Envoy's `admission_control`): over a sliding window of `windowMs`,
 * a call is rejected locally with probability `max(0, (requests − accepts ÷ successRatio) ÷ (requests + 1))`,
 * capped at `maxRejectPercent`. `successRatio` is the SRE book's 1 ÷ K.
 * @example { successRatio: 0.5, maxRejectPercent: 80, windowMs: 30_000 }
 */
export interface AdmissionPolicy {
  /** The success ratio below which calls start to be rejected (1 ÷ K). Default 0.5 (the SRE book's K = 2). */
  successRatio?: number | undefined;
  /** The highest rejection probability, in percent. Default 80 (Envoy's `max_rejection_probability`). */
  maxRejectPercent?: number | undefined;
  /** The sliding window requests and accepts are counted over. Default 30 s (Envoy's `sampling_window`). */
  windowMs?: number | undefined;
}

/**
 * Deadline propagation (Finagle's and gRPC's): every attempt carries the time the call has left, in ms, in
 * `header` (fetch and the undici dispatcher), and `mesh.call`'s context carries it as `grpcTimeout` (`'250m'`).
 * @example { header: 'x-request-deadline-ms' }
 */
export interface DeadlinePolicy {
  /** The request header that carries the time left, in ms. Default `x-request-deadline-ms`. */
  header?: string | undefined;
}

/**
 * Active HTTP health checks (Envoy's): each endpoint of a service in use is probed with `GET path` every
 * `intervalMs` (jittered); `unhealthyThreshold` failures in a row eject it, `healthyThreshold` passes in a row bring
 * it back.
 *
 * - A probe is `GET http://host:port/path` (https with the service's `tls` policy; `Host` is the service name with
 *   `host: 'service'`), on a connection of its own, closed once the status is in. A 2xx passes; anything else
 *   fails, a redirect too (never followed), and so do a network error and `timeoutMs` passing.
 * - The first probe of an endpoint comes at a random point of the first interval, and each interval is longer by
 *   up to 10 %, so endpoints and processes do not probe in step.
 * - A service with no call yet, or none for 60 s, is probed every 60 s instead (Envoy's `no_traffic_interval`).
 * - An endpoint starts in service (discovery listed it); probes only take it out and bring it back.
 * - The ejection goes through the same path as outlier detection (the `ejected` event with `reason:
 *   'health-check'`, `restored`, the panic threshold) but is not capped by `outlier.maxEjectionPercent`, as Envoy
 *   does not cap active checks: when too many fail, the panic threshold balances over all of them again.
 * - Probes never count as calls (no metrics, no breaker, no outlier detection), and `close()` ends them all.
 * @example { path: '/healthz', intervalMs: 5_000, timeoutMs: 1_000, unhealthyThreshold: 3, healthyThreshold: 2 }
 */
export interface HealthCheckPolicy {
  /** The path probed. Default `/healthz`. */
  path?: string | undefined;
  /** Between two probes of one endpoint. Default 5 s. */
  intervalMs?: number | undefined;
  /** One probe's bound. Default 1 s. */
  timeoutMs?: number | undefined;
  /** Failed probes in a row that eject. Default 3. */
  unhealthyThreshold?: number | undefined;
  /** Passed probes in a row that bring an ejected endpoint back. Default 2. */
  healthyThreshold?: number | undefined;
}

/** What a fallback learns of the call that failed. */
export interface FallbackContext {
  /** The logical service. */
  readonly service: string;
  /** The route that chose the backend, if any. */
  readonly route?: string | undefined;
}

/**
 * The value a call resolves with once it has failed (every attempt it was allowed is over, or it was rejected
 * before any). A fallback that throws (or rejects) rejects the call with that error.
 * @example (error, { service }) => new Response(JSON.stringify({ service, items: [] }), { status: 200 })
 */
export type Fallback<T = unknown> = (error: unknown, ctx: FallbackContext) => T | Promise<T>;
