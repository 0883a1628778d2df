import { DEFAULT_RTT_MS } from './defaults.js';
import type { EndpointState } from './endpoint/endpoint-state.js';
import type { MeshEmitter } from './observe/emitter.js';
import type { ResolvedPolicy } from './options.js';
import { EndpointBreaker, type BreakerClock, type BreakerState } from './resilience/breaker.js';
import { OutlierDetector } from './resilience/outlier.js';
import type { Clock } from './util/clock.js';
import { samePolicyPart } from './util/same.js';

/** What a service's health tracking needs from the mesh. */
export interface HealthDeps {
  readonly clock: Clock;
  readonly events: MeshEmitter;
  readonly breakerClock: BreakerClock;
}

/**
 * The health of one service's endpoints: a breaker and an outlier detector per endpoint, the ejection
 * cap, and the panic threshold.
 *
 * - Ejection follows Envoy: at most `maxEjectionPercent` of endpoints are ejected at once, but one can always be.
 * - Below `panicThresholdPercent` healthy endpoints the service is in panic and balances over ejected ones
 *   too (Envoy's panic threshold); open breakers are always respected.
 * - An endpoint that comes back (restored, breaker half-open or closed) restarts from a neutral latency
 *   cost, the median of its peers, so an old failure peak does not starve it (as Envoy, Linkerd and Finagle
 *   seed new hosts).
 * - No timers of its own: due restorations are checked on the call path (`restoreDue`), a compare per call.
 */
export class ServiceHealth {
  /** Too few endpoints are healthy: ejection is ignored. */
  panic = false;
  private ejected = 0;
  private nextDueAt = Infinity;

  constructor(
    private readonly service: string,
    private policy: ResolvedPolicy,
    private readonly deps: HealthDeps,
    private readonly states: () => readonly EndpointState[],
    /** Called when an endpoint comes back (slow start ramps it again, as Envoy does for hosts turning healthy). */
    private readonly onRevive: (state: EndpointState, now: number) => void = () => {},
  ) {}

  /** Gives a new endpoint its breaker and detector. */
  attach(state: EndpointState, now: number): void {
    if (this.policy.breaker !== false) {
      state.breaker = new EndpointBreaker(this.policy.breaker, this.deps.breakerClock, (s) => this.onBreaker(state, s));
    }
    if (this.policy.outlier !== false) state.outlier = new OutlierDetector(this.policy.outlier, now);
  }

  /**
   * A new configuration. A breaker or detector whose part of the policy did not change is kept as it is (its
   * window, its state). A changed breaker policy starts every endpoint's breaker again, closed: opossum cannot
   * resize a rolling window in place. A changed outlier policy applies to the detectors as they are (an ejected
   * endpoint stays ejected until its time is up).
   */
  reconfigure(policy: ResolvedPolicy, now: number): void {
    const old = this.policy;
    this.policy = policy;
    const states = this.states();
    if (!samePolicyPart(old.breaker, policy.breaker)) {
      for (const state of states) {
        state.breaker?.shutdown();
        state.breaker = undefined;
        if (policy.breaker !== false) {
          state.breaker = new EndpointBreaker(policy.breaker, this.deps.breakerClock, (s) => this.onBreaker(state, s));
        }
      }
    }
    if (!samePolicyPart(old.outlier, policy.outlier)) {
      for (const state of states) {
        if (policy.outlier === false) {
          if (state.outlier?.ejected) this.ejected--;
          state.outlier = undefined;
        } else if (state.outlier !== undefined) state.outlier.policy = policy.outlier;
        else state.outlier = new OutlierDetector(policy.outlier, now);
      }
    }
    this.recount();
  }

  /** An endpoint left discovery: stop its breaker's timers. */
  detach(state: EndpointState): void {
    state.breaker?.shutdown();
    if (state.outlier?.ejected) this.ejected--;
  }

  /** Re-evaluates the panic state after endpoints came or went. */
  changed(): void {
    this.recount();
  }

  /** An attempt's verdict, for outlier detection (the breaker sees it through `fire`). */
  record(state: EndpointState, ok: boolean, now: number): void {
    const outlier = state.outlier;
    if (outlier === undefined || !outlier.record(ok)) return;
    const total = this.states().length;
    const cap = Math.max(1, Math.floor((total * (this.policy.outlier as { maxEjectionPercent: number }).maxEjectionPercent) / 100));
    if (this.ejected >= cap || state.removed) return;
    const durationMs = outlier.eject(now);
    this.ejected++;
    if (outlier.dueAt < this.nextDueAt) this.nextDueAt = outlier.dueAt;
    if (this.deps.events.has('ejected')) {
      this.deps.events.emit('ejected', { service: this.service, endpoint: state.endpoint, durationMs });
    }
    this.recount();
  }

  /** Brings back endpoints whose ejection is over. Cheap when none is due. */
  restoreDue(now: number): void {
    if (now < this.nextDueAt) return;
    let next = Infinity;
    for (const state of this.states()) {
      const outlier = state.outlier;
      if (outlier === undefined) continue;
      if (outlier.restoreIfDue(now)) {
        this.ejected--;
        this.revive(state, now);
        if (this.deps.events.has('restored')) {
          this.deps.events.emit('restored', { service: this.service, endpoint: state.endpoint });
        }
      } else if (outlier.dueAt < next) {
        next = outlier.dueAt;
      }
    }
    this.nextDueAt = next;
    this.recount();
  }

  private onBreaker(state: EndpointState, s: BreakerState): void {
    if (s !== 'open') this.revive(state, this.deps.clock.now());
    const event = s === 'open' ? 'breaker-open' : s === 'half-open' ? 'breaker-half-open' : 'breaker-close';
    if (this.deps.events.has(event)) this.deps.events.emit(event, { service: this.service, endpoint: state.endpoint });
    this.recount();
  }

  /** Restarts an endpoint's latency from the median of its healthy peers (or the default RTT). */
  private revive(state: EndpointState, now: number): void {
    const peers: number[] = [];
    for (const s of this.states()) if (s !== state && s.healthy) peers.push(s.latency.get(now));
    peers.sort((a, b) => a - b);
    const median = peers.length === 0 ? DEFAULT_RTT_MS : (peers[Math.floor(peers.length / 2)] as number);
    state.revive(median, now);
    this.onRevive(state, now);
  }

  private recount(): void {
    const states = this.states();
    let healthy = 0;
    for (const s of states) if (s.healthy) healthy++;
    const panic = states.length > 0 && (healthy * 100) / states.length < this.policy.panicThresholdPercent;
    if (panic && !this.panic && this.deps.events.has('panic')) {
      this.deps.events.emit('panic', { service: this.service, healthy, total: states.length });
    }
    this.panic = panic;
  }
}
