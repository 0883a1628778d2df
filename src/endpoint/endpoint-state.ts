import type { Endpoint } from './endpoint.js';
import type { EndpointBreaker } from '../resilience/breaker.js';
import type { OutlierDetector } from '../resilience/outlier.js';
import { PeakEwma } from '../util/ewma.js';

/** The highest latency cost a failure can push an endpoint to (P2C only compares costs; more adds nothing). */
export const FAILURE_COST_CAP_MS = 5_000;

/** Tuning shared by every endpoint of a service. */
export interface EndpointStateOptions {
  /** Peak-EWMA decay time constant (Finagle and Linkerd use 10 s). */
  readonly decayMs: number;
  /** Cost of an endpoint with no measurement yet (Linkerd's default RTT is 30 ms). */
  readonly defaultRttMs: number;
}

/**
 * The live state of one endpoint: what balancers measure and what the resilience steps record.
 * Kept by id across discovery updates, so an endpoint that stays keeps its history.
 */
export class EndpointState {
  /** Attempts in flight now. */
  inflight = 0;
  /** Effective weight seen by balancers; equals `endpoint.weight` unless something (slow start) ramps it. */
  weight: number;
  /** Attempts started, and how they ended. */
  requests = 0;
  successes = 0;
  failures = 0;
  /** Latency, peak-sensitive. */
  readonly latency: PeakEwma;
  /** Set when discovery dropped the endpoint; in-flight attempts still finish and record. */
  removed = false;
  /** Its circuit breaker (absent when the policy turns breakers off). */
  breaker: EndpointBreaker | undefined;
  /** Its outlier detector (absent when the policy turns ejection off). */
  outlier: OutlierDetector | undefined;

  constructor(
    public endpoint: Endpoint,
    options: EndpointStateOptions,
    now: number,
  ) {
    this.weight = endpoint.weight;
    this.latency = new PeakEwma(options.decayMs, options.defaultRttMs, now);
  }

  get id(): string {
    return this.endpoint.id;
  }

  /**
   * Whether a balancer may choose it now: its breaker lets a request through (closed, or half-open with
   * the probe not yet taken), and it is not ejected, unless the service is in panic.
   */
  usable(panic: boolean): boolean {
    const b = this.breaker;
    if (b !== undefined && !b.allowsRequest) return false;
    return panic || this.outlier === undefined || !this.outlier.ejected;
  }

  /** Healthy for the panic threshold: breaker not open and not ejected. */
  get healthy(): boolean {
    return !(this.breaker?.isOpen ?? false) && !(this.outlier?.ejected ?? false);
  }

  /** Takes a newer description of the same endpoint (weight, tags or zone may change). */
  update(endpoint: Endpoint): void {
    if (endpoint.weight !== this.endpoint.weight) this.weight = endpoint.weight;
    this.endpoint = endpoint;
  }

  /** Start of an attempt. */
  begin(): void {
    this.inflight++;
    this.requests++;
  }

  /** An attempt ended with no verdict on the endpoint (the caller aborted, or a hedge won). */
  cancel(): void {
    this.inflight--;
  }

  /**
   * End of an attempt. A failure doubles the latency cost (up to {@link FAILURE_COST_CAP_MS}) instead of
   * recording its own, often tiny, duration: under P2C a backend that fails fast would otherwise look
   * fast, win every comparison and draw traffic to itself (the "fast failure black hole"). An endpoint
   * that comes back is re-seeded to a neutral cost by the health step, so the penalty does not outlive
   * the failure.
   */
  end(rttMs: number, ok: boolean, now: number): void {
    this.inflight--;
    if (ok) {
      this.successes++;
      this.latency.observe(rttMs, now);
    } else {
      this.failures++;
      const penalty = Math.min(FAILURE_COST_CAP_MS, Math.max(rttMs, 2 * this.latency.get(now), this.latency.initial));
      this.latency.observe(penalty, now);
    }
  }
}
