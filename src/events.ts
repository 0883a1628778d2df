import type { Endpoint } from './endpoint/endpoint.js';

/** Fields every event has. */
export interface ServiceEvent {
  readonly service: string;
}

/** An event about one attempt on one endpoint. */
export interface AttemptEvent extends ServiceEvent {
  readonly endpoint: Endpoint;
  /** 1 for the first attempt. */
  readonly attempt: number;
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
  success: AttemptEvent & { readonly durationMs: number };
  /** An attempt failed (thrown error, failing status or timeout). `status` is set for HTTP responses. */
  failure: AttemptEvent & { readonly durationMs: number; readonly error: Error; readonly status?: number };
  /** A retry will follow the failed attempt `attempt`, after `delayMs`. */
  retry: AttemptEvent & { readonly error: Error; readonly delayMs: number };
  /** A hedged attempt was started. */
  hedge: AttemptEvent & { readonly delayMs: number };
  'breaker-open': ServiceEvent & { readonly endpoint: Endpoint };
  'breaker-half-open': ServiceEvent & { readonly endpoint: Endpoint };
  'breaker-close': ServiceEvent & { readonly endpoint: Endpoint };
  ejected: ServiceEvent & { readonly endpoint: Endpoint; readonly durationMs: number };
  restored: ServiceEvent & { readonly endpoint: Endpoint };
  panic: ServiceEvent & { readonly healthy: number; readonly total: number };
  'budget-exhausted': ServiceEvent & { readonly attempt: number };
  /** A call was refused before any attempt (bulkhead full). */
  rejected: ServiceEvent & { readonly reason: 'bulkhead' };
  /** Discovery produced a new list. */
  'discovery-update': ServiceEvent & {
    readonly endpoints: readonly Endpoint[];
    readonly added: readonly Endpoint[];
    readonly removed: readonly Endpoint[];
    /** Endpoints that stayed but whose weight, zone, tags or meta changed. */
    readonly updated: readonly Endpoint[];
  };
  /** Discovery failed; `stale` is true when the last good list keeps serving. */
  'discovery-error': ServiceEvent & { readonly error: Error; readonly stale: boolean };
  /**
   * Zone-aware balancing (the mesh's `zone`): the share of first attempts sent out of the local zone changed, because
   * the local zone lost (or regained) healthy endpoints. Emitted on changes only, never per call; `spillPercent` 0
   * means all traffic is local again. An endpoint without a zone is listed in `to` as `''`.
   */
  'zone-spill': ServiceEvent & {
    readonly from: string;
    readonly to: readonly string[];
    readonly localHealthyPercent: number;
    readonly spillPercent: number;
  };
  /** A listener threw. */
  'listener-error': { readonly event: string; readonly error: unknown };
}

export type MeshEventName = keyof MeshEvents;
