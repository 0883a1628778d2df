import type { Endpoint } from './endpoint/endpoint.js';

/**
 * Why an endpoint was ejected: `consecutive` failures in a row, the interval's `success-rate` or
 * `failure-percent` rule (outlier detection), or failed active probes (`health-check`).
 */
export type EjectionReason = 'consecutive' | 'success-rate' | 'failure-percent' | 'health-check';

/** Fields every event has. */
export interface ServiceEvent {
  /** The logical service name. */
  readonly service: string;
}

/** An event about one attempt on one endpoint. */
export interface AttemptEvent extends ServiceEvent {
  /** The endpoint the attempt went to. */
  readonly endpoint: Endpoint;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The route that chose the call's backend (its name); undefined when no route matched. */
  readonly route?: string | undefined;
  /** The backend that route chose. */
  readonly backend?: { readonly subset?: string | undefined; readonly service?: string | undefined } | undefined;
}

/**
 * The mesh's events and their payloads. Listeners never change a call's outcome; a listener that
 * throws is reported on `listener-error` (or on `console.error` when nobody listens to that), not propagated.
 *
 * @example
 * mesh.on('retry', ({ service, endpoint, attempt, error }) => log.warn({ service, endpoint: endpoint.id, attempt }, error));
 */
export interface MeshEvents {
  /** An attempt starts. */
  request: AttemptEvent;
  /** An attempt succeeded. */
  success: AttemptEvent & {
    /** How long the attempt took, in ms. */
    readonly durationMs: number;
  };
  /** An attempt failed (thrown error, failing status or timeout). `status` is set for HTTP responses. */
  failure: AttemptEvent & {
    /** How long the attempt took, in ms. */
    readonly durationMs: number;
    /** What failed: the thrown error, a `TimeoutError`, or an `Error('HTTP 503')` for a failing status. */
    readonly error: Error;
    /** The HTTP status, for a failing response. */
    readonly status?: number | undefined;
  };
  /** A retry will follow the failed attempt `attempt`, after `delayMs`. */
  retry: AttemptEvent & {
    /** Why the attempt failed. */
    readonly error: Error;
    /** The nominal backoff before the retry (before jitter), in ms, a `Retry-After` included. */
    readonly delayMs: number;
  };
  /** A hedged attempt was started. */
  hedge: AttemptEvent & {
    /** The hedge delay that passed before it started, in ms. */
    readonly delayMs: number;
  };
  /** An endpoint's breaker opened: it gets no attempts until its reset timeout. */
  'breaker-open': ServiceEvent & {
    /** The endpoint whose breaker changed state. */
    readonly endpoint: Endpoint;
  };
  /** An endpoint's breaker is half-open: the next attempt is its probe. */
  'breaker-half-open': ServiceEvent & {
    /** The endpoint whose breaker changed state. */
    readonly endpoint: Endpoint;
  };
  /** An endpoint's breaker closed again (its probe succeeded). */
  'breaker-close': ServiceEvent & {
    /** The endpoint whose breaker changed state. */
    readonly endpoint: Endpoint;
  };
  /**
   * Outlier detection (or an active health check) ejected an endpoint. The two hold an endpoint out independently,
   * and each says so: an endpoint both took out gets two `ejected` (one with `reason: 'health-check'`) and one
   * `restored`, once neither holds it.
   */
  ejected: ServiceEvent & {
    /** The ejected endpoint. */
    readonly endpoint: Endpoint;
    /**
     * How long it is ejected for, in ms. For `'health-check'`, the least it stays out: it comes back after
     * `healthyThreshold` passed probes in a row, `healthyThreshold × intervalMs` at the soonest.
     */
    readonly durationMs: number;
    /** Which rule ejected it. */
    readonly reason: EjectionReason;
  };
  /**
   * An ejected endpoint is back in service: its ejection ended and nothing else holds it out (an outlier ejection
   * that ends while its health checks still fail is no restore, nor are passing probes while it is still ejected).
   */
  restored: ServiceEvent & {
    /** The endpoint back in service. */
    readonly endpoint: Endpoint;
  };
  /** Too few endpoints are healthy: the service balances over ejected ones too. */
  panic: ServiceEvent & {
    /** Endpoints neither ejected nor with an open breaker. */
    readonly healthy: number;
    /** Endpoints in the current list. */
    readonly total: number;
  };
  /** A retry or hedge was not made: the retry budget is spent. */
  'budget-exhausted': ServiceEvent & {
    /** The attempt that failed (or was out) when the budget said no. */
    readonly attempt: number;
  };
  /** A call was refused before any attempt, locally: nothing was sent. */
  rejected: ServiceEvent & {
    /**
     * Why: `'bulkhead'`, `maxConcurrent` calls were in flight (`BulkheadFullError`); `'adaptive-concurrency'`, the
     * `adaptiveConcurrency` limit of the moment was (`BulkheadFullError` with `source: 'adaptiveConcurrency'`);
     * `'admission'`, client-side throttling drew it (`AdmissionRejectedError`).
     */
    readonly reason: 'bulkhead' | 'adaptive-concurrency' | 'admission';
  };
  /** Discovery produced a new list. */
  'discovery-update': ServiceEvent & {
    /** The whole new list. */
    readonly endpoints: readonly Endpoint[];
    /** Endpoints new in this list. */
    readonly added: readonly Endpoint[];
    /** Endpoints no longer in the list. */
    readonly removed: readonly Endpoint[];
    /** Endpoints that stayed but whose weight, zone, tags or meta changed. */
    readonly updated: readonly Endpoint[];
  };
  /** Discovery failed; `stale` is true when the last good list keeps serving. */
  'discovery-error': ServiceEvent & {
    /** A `DiscoveryError`, with the registry's error as `cause`. */
    readonly error: Error;
    /** True when the last good list keeps serving. */
    readonly stale: boolean;
  };
  /**
   * Zone-aware balancing (the mesh's `zone`): the share of first attempts sent out of the local zone changed, because
   * the local zone lost (or regained) healthy endpoints. Emitted on changes only, never per call; `spillPercent` 0
   * means all traffic is local again. An endpoint without a zone is listed in `to` as `''`.
   */
  'zone-spill': ServiceEvent & {
    /** The local zone (the mesh's `zone`). */
    readonly from: string;
    /** The zones that now receive spilled traffic. */
    readonly to: readonly string[];
    /** Share of the local zone's endpoints that are healthy, in percent. */
    readonly localHealthyPercent: number;
    /** Share of first attempts now sent out of the local zone, in percent. */
    readonly spillPercent: number;
  };
  /**
   * Policy code of yours threw or answered nonsense: `classify` (the attempt then counts as a failure, as Envoy
   * and Finagle count a classifier failure), a custom balancer's `pick` (nothing is picked: the call fails with
   * `NoEndpointsError`, or with its last failure on a retry; a hedge is not sent), or `unsent` (taken as false).
   * The call still settles; the mesh never crashes on it.
   */
  'callback-error': ServiceEvent & {
    /**
     * Which callback: `'classify'`, `'balancer'`, `'unsent'`, an `endpointClients` `'close'`, or an OpenTelemetry
     * object of `withTelemetry` (`'telemetry'`: a tracer, span, meter, context manager or propagator that threw).
     */
    readonly callback: 'classify' | 'balancer' | 'unsent' | 'close' | 'telemetry';
    /** What it threw, or a `TypeError` describing a bad answer. */
    readonly error: unknown;
  };
  /**
   * A new configuration is in force (`configure`, or a config source's update): calls that start from now on
   * use it; calls in flight finish under theirs.
   */
  'config-update': {
    /** The version now in force (`mesh.config().version`). */
    readonly version: number;
    /** `'api'` for `configure`, else the config source's name. */
    readonly source: string;
    /** The services whose configuration changed. */
    readonly services: readonly string[];
  };
  /** A config source failed, or sent a configuration that does not validate: the last good one stays in force. */
  'config-error': {
    /** The config source's name. */
    readonly source: string;
    /** Why (a `TypeError` naming the option, for an invalid configuration). */
    readonly error: Error;
  };
  /** A listener threw. */
  'listener-error': {
    /** The event whose listener threw. */
    readonly event: string;
    /** What it threw (or rejected with). */
    readonly error: unknown;
  };
}

/** The name of a mesh event: a key of {@link MeshEvents}. */
export type MeshEventName = keyof MeshEvents;
