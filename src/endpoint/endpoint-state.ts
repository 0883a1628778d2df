import type { Endpoint } from './endpoint.js';
import type { EndpointBreaker } from '../resilience/breaker.js';
import type { OutlierDetector } from '../resilience/outlier.js';
import { PeakEwma } from '../util/ewma.js';

/** How fast the failure penalty fades (time constant): a failing endpoint is probed again within a second. */
export const FAILURE_PENALTY_DECAY_MS = 250;
/** The largest failure penalty factor (P2C only compares costs: more adds nothing). */
export const FAILURE_PENALTY_CAP = 1_024;

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
  /** Attempts that ended in success. */
  successes = 0;
  /** Attempts that ended in failure (aborted ones count as neither). */
  failures = 0;
  /** Latency, peak-sensitive. */
  readonly latency: PeakEwma;
  /** Failure penalty factor (1 = none) as of `penaltyStamp`; see {@link EndpointState.end}. */
  private penalty = 1;
  private penaltyStamp = 0;
  /** Set when discovery dropped the endpoint; in-flight attempts still finish and record. */
  removed = false;
  /** Its circuit breaker (absent when the policy turns breakers off). */
  breaker: EndpointBreaker | undefined;
  /** Its outlier detector (absent when the policy turns ejection off). */
  outlier: OutlierDetector | undefined;
  /**
   * Ejected by active health checks (Envoy's FAILED_ACTIVE_HC flag), apart from the outlier detector's
   * ejection: it ends on passed probes, not on a timer, and holds whether or not outlier detection is on.
   */
  failedHealthCheck = false;

  constructor(
    /** The endpoint as discovery last described it. */
    public endpoint: Endpoint,
    options: EndpointStateOptions,
    now: number,
  ) {
    this.weight = endpoint.weight;
    this.latency = new PeakEwma(options.decayMs, options.defaultRttMs, now);
  }

  /** The endpoint's id, the key its state is kept under. */
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
    return panic || (!this.failedHealthCheck && (this.outlier === undefined || !this.outlier.ejected));
  }

  /** Healthy for the panic threshold: breaker not open and not ejected. */
  get healthy(): boolean {
    return !(this.breaker?.isOpen ?? false) && !this.ejected;
  }

  /** Out of the balancing set, by outlier detection or by active health checks. */
  get ejected(): boolean {
    return this.failedHealthCheck || (this.outlier?.ejected ?? false);
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

  /**
   * An attempt ended with no verdict (the caller aborted, a hedge won, the mesh closed) after `elapsedMs`.
   * It is not a success or a failure, but the endpoint had not answered in that time: a censored sample
   * may raise the latency estimate, never lower it. Otherwise an endpoint whose attempts always lose to a
   * hedge would never be measured, and would look cheaper than the endpoints that beat it.
   */
  cancel(elapsedMs: number, now: number): void {
    this.inflight--;
    if (elapsedMs > this.latency.get(now)) this.latency.observe(elapsedMs, now);
  }

  /**
   * The attempt lost a hedge race: another endpoint answered first. Its elapsed time only bounds its
   * latency from below (often under the unmeasured default), so it also takes the fading failure
   * penalty: an endpoint that always loses is avoided, and probed again once the penalty fades.
   */
  lostRace(elapsedMs: number, now: number): void {
    this.cancel(elapsedMs, now);
    this.penalize(now);
  }

  /**
   * End of an attempt. A failure never lowers the latency estimate, and it doubles a separate failure
   * penalty that fades within about a second (`FAILURE_PENALTY_DECAY_MS`). Under P2C a backend that
   * fails fast would otherwise look fast, win every comparison and draw traffic to itself (the "fast
   * failure black hole"); the penalty keeps it out while letting it be probed again soon, so a dead
   * endpoint still reaches ejection and a revived one gets traffic back within a second or two.
   */
  end(rttMs: number, ok: boolean, now: number): void {
    this.inflight--;
    if (ok) {
      this.successes++;
      this.latency.observe(rttMs, now);
    } else {
      this.failures++;
      this.latency.observe(Math.max(rttMs, this.latency.get(now)), now);
      this.penalize(now);
    }
  }

  /**
   * The endpoint asked to be spared (a 429, a `Retry-After`: the transport's `loadPenaltyMs`, Linkerd's load
   * biasing): its latency takes `penaltyMs` as a peak, so P2C compares it as that slow and sends it less while
   * the charge decays with the EWMA (τ 10 s by default: 5 s falls to an 80 ms peer's cost in about 40 s), rather
   * than a fast 429 looking cheap and drawing traffic. Apart from the failure penalty, which fades in about a
   * second and counts failures, not what the server asked for.
   * A `revive` forgets it, as it forgets all past latency: the health machinery chose to give the endpoint
   * traffic again, and a 429 on that traffic charges it again at once.
   */
  shed(penaltyMs: number, now: number): void {
    this.latency.peak(penaltyMs, now);
  }

  /** Doubles the fading failure penalty. */
  private penalize(now: number): void {
    this.penalty = Math.min(FAILURE_PENALTY_CAP, 2 * this.penaltyAt(now));
    this.penaltyStamp = now;
  }

  /** The latency cost a load-aware balancer compares: peak-EWMA latency × the fading failure penalty. */
  cost(now: number): number {
    const latency = this.latency.get(now);
    return this.penalty === 1 ? latency : latency * this.penaltyAt(now);
  }

  /** Forgets past failures: called when an endpoint comes back (restored, breaker half-open or closed). */
  revive(latencyMs: number, now: number): void {
    this.latency.reset(latencyMs, now);
    this.penalty = 1;
  }

  private penaltyAt(now: number): number {
    if (this.penalty === 1) return 1;
    const factor = 1 + (this.penalty - 1) * Math.exp(-(now - this.penaltyStamp) / FAILURE_PENALTY_DECAY_MS);
    if (factor < 1.001) this.penalty = 1;
    return factor;
  }
}
