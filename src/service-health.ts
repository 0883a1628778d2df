import { DEFAULT_RTT_MS } from './defaults.js';
import type { EndpointState } from './endpoint/endpoint-state.js';
import { medianLatency } from './endpoint/median-latency.js';
import type { MeshEmitter } from './observe/emitter.js';
import type { ResolvedPolicy } from './options.js';
import { EndpointBreaker, type BreakerClock, type BreakerState } from './resilience/breaker.js';
import type { EjectionReason } from './events.js';
import { OutlierDetector } from './resilience/outlier.js';
import { failurePercentOutliers, successRateOutliers, type IntervalSample } from './resilience/outlier-stats.js';
import type { Clock } from './util/clock.js';
import type { Rng } from './util/random.js';
import { samePolicyPart } from './util/same.js';

/** What a service's health tracking needs from the mesh. */
export interface HealthDeps {
  readonly clock: Clock;
  readonly events: MeshEmitter;
  readonly breakerClock: BreakerClock;
  /** The mesh's random source (seedable): the statistical rules' `enforcingPercent` draws from it. */
  readonly random: Rng;
}

/**
 * The health of one service's endpoints: a breaker and an outlier detector per endpoint, the ejection
 * cap, and the panic threshold.
 *
 * - Ejection follows Envoy: at most `maxEjectionPercent` of endpoints are ejected at once, but one can always be.
 *   It is the one path for every rule: consecutive failures (on the attempt), success rate and failure
 *   percentage (every `outlier.intervalMs`), and active health checks (which are not capped: see
 *   {@link ServiceHealth.healthCheckFailed}).
 * - The statistical rules run on one unref'd timer, armed by an attempt when none is armed, so a service with no
 *   traffic has no timer (Envoy's detector re-arms its interval forever; a library in someone's process should
 *   not). The interval they judge runs from the first attempt after the last run to the timer.
 * - Below `panicThresholdPercent` healthy endpoints the service is in panic and balances over ejected ones
 *   too (Envoy's panic threshold); open breakers are always respected.
 * - An endpoint that comes back (restored, breaker half-open or closed) restarts from a neutral latency
 *   cost, the median of its peers, so an old failure peak does not starve it (as Envoy, Linkerd and Finagle
 *   seed new hosts).
 * - Due restorations are checked on the call path (`restoreDue`, a compare per call) and at each interval.
 * - Outlier detection and active health checks hold an endpoint out independently (Envoy's FAILED_OUTLIER_CHECK and
 *   FAILED_ACTIVE_HC flags): each rule that takes it out says so in an `ejected` event, but it is `restored` (and
 *   revived) only once neither holds it, since `restored` means back in the balancing set.
 */
export class ServiceHealth {
  /** Too few endpoints are healthy: ejection is ignored. */
  panic = false;
  private ejected = 0;
  private nextDueAt = Infinity;
  /** The statistical rules' interval timer: set only from an attempt until it fires (or close). */
  private sweepTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Fewest endpoints a statistical rule needs: below it no attempt arms the timer. Infinity when no rule is on, and
   * once closed, so that an attempt settling after close() arms nothing, at no cost to the per-attempt compare.
   */
  private sweepMinHosts: number;
  private closed = false;

  constructor(
    private readonly service: string,
    private policy: ResolvedPolicy,
    private readonly deps: HealthDeps,
    private readonly states: () => readonly EndpointState[],
    /** Called when an endpoint comes back (slow start ramps it again, as Envoy does for hosts turning healthy). */
    private readonly onRevive: (state: EndpointState, now: number) => void = () => {},
  ) {
    this.sweepMinHosts = sweepMinHosts(policy);
  }

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
    // Outlier detection turned off: what it ejected comes back now (as turning health checks off does), announced.
    const back: EndpointState[] = [];
    if (!samePolicyPart(old.outlier, policy.outlier)) {
      for (const state of states) {
        if (policy.outlier === false) {
          if (state.outlier?.ejected) {
            this.ejected--;
            back.push(state);
          }
          state.outlier = undefined;
        } else if (state.outlier !== undefined) {
          state.outlier.policy = policy.outlier;
          state.outlier.resetInterval(); // new rules judge a new interval
        } else state.outlier = new OutlierDetector(policy.outlier, now);
      }
      this.stopSweep(); // the next attempt arms it with the new interval, if a rule applies
    }
    this.sweepMinHosts = this.closed ? Infinity : sweepMinHosts(policy);
    // Listeners run once every detector is in its new state: one that reconfigures again sees a consistent service.
    for (const state of back) if (!state.ejected) this.backInService(state, now);
    this.recount();
  }

  /** The service closes: no timer stays, and nothing arms one again. */
  close(): void {
    this.closed = true;
    this.sweepMinHosts = Infinity;
    this.stopSweep();
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

  /**
   * An attempt's verdict, for outlier detection (the breaker sees it through `fire`). On every attempt: two
   * counter increments in the detector, and a compare that arms the interval timer when none is armed.
   */
  record(state: EndpointState, ok: boolean, now: number): void {
    const outlier = state.outlier;
    if (outlier === undefined) return;
    if (this.sweepTimer === undefined && this.states().length >= this.sweepMinHosts) this.armSweep();
    if (outlier.record(ok)) this.eject(state, 'consecutive', now, 100);
  }

  /**
   * Ejects through the cap (Envoy's `DetectorImpl::ejectHost`): refused when `maxEjectionPercent` of the
   * endpoints are out already (one can always be), then enforced with probability `enforcingPercent` (drawn
   * only below 100, so a default policy draws nothing from the mesh's seeded random). True if ejected.
   */
  private eject(state: EndpointState, reason: EjectionReason, now: number, enforcingPercent: number): boolean {
    const outlier = state.outlier;
    if (outlier === undefined || outlier.ejected || state.removed || this.closed) return false;
    const total = this.states().length;
    const cap = Math.max(1, Math.floor((total * outlier.policy.maxEjectionPercent) / 100));
    if (this.ejected >= cap) return false;
    if (enforcingPercent < 100 && !(this.deps.random() * 100 < enforcingPercent)) return false;
    const durationMs = outlier.eject(now);
    this.ejected++;
    if (outlier.dueAt < this.nextDueAt) this.nextDueAt = outlier.dueAt;
    if (this.deps.events.has('ejected')) {
      this.deps.events.emit('ejected', { service: this.service, endpoint: state.endpoint, durationMs, reason });
    }
    this.recount();
    return true;
  }

  private armSweep(): void {
    const outlier = this.policy.outlier;
    if (outlier === false) return;
    const timer = setTimeout(() => this.sweep(), outlier.intervalMs);
    timer.unref?.();
    this.sweepTimer = timer;
  }

  private stopSweep(): void {
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /**
   * The end of an interval (Envoy's `DetectorImpl::onIntervalTimer`): due ejections end first, then success
   * rate and failure percentage judge the attempts of the endpoints in service, worst first through the cap,
   * and every endpoint's counts start again. It does not re-arm: the next attempt does.
   */
  private sweep(): void {
    this.sweepTimer = undefined;
    const policy = this.policy.outlier;
    if (policy === false || this.closed) return;
    try {
      const now = this.deps.clock.now();
      this.restoreDue(now);
      const candidates: EndpointState[] = [];
      const samples: IntervalSample[] = [];
      for (const state of this.states()) {
        const outlier = state.outlier;
        if (outlier === undefined) continue;
        if (!state.ejected) {
          candidates.push(state);
          samples.push({ attempts: outlier.intervalAttempts, failures: outlier.intervalFailures });
        }
        outlier.resetInterval();
      }
      const rate = policy.successRate;
      if (rate !== false) {
        for (const i of successRateOutliers(samples, rate)) this.eject(candidates[i]!, 'success-rate', now, rate.enforcingPercent);
      }
      const percent = policy.failurePercent;
      if (percent !== false) {
        for (const i of failurePercentOutliers(samples, percent)) this.eject(candidates[i]!, 'failure-percent', now, percent.enforcingPercent);
      }
    } catch {
      // A timer must never crash the host process. Listeners are already isolated by the emitter, and the rest
      // is arithmetic on our own state: there is nothing left to throw, and nobody to tell.
    }
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
        // Still failing its health checks: out until they pass, and announced then (healthCheckPassed).
        if (!state.failedHealthCheck) this.backInService(state, now);
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

  /**
   * Active health checks failed `unhealthyThreshold` times in a row: the endpoint leaves the balancing set
   * until they pass `healthyThreshold` times (`minOutMs` is the least that takes, for the `ejected` event).
   *
   * Not capped by `maxEjectionPercent`, as Envoy does not cap active health checking: a failed probe is the
   * endpoint's own word, where the passive rules infer from the caller's traffic (and a caller-side problem can
   * make every endpoint look bad). The panic threshold is the guard: when too few are healthy, the service
   * balances over all of them again. It is otherwise the same path: the `ejected` and `restored` events, the
   * panic count, and a neutral cost on return.
   */
  healthCheckFailed(state: EndpointState, minOutMs: number): void {
    if (state.failedHealthCheck || state.removed) return;
    state.failedHealthCheck = true;
    if (this.deps.events.has('ejected')) {
      this.deps.events.emit('ejected', { service: this.service, endpoint: state.endpoint, durationMs: minOutMs, reason: 'health-check' });
    }
    this.recount();
  }

  /** Active health checks passed `healthyThreshold` times in a row (or were turned off): back in service. */
  healthCheckPassed(state: EndpointState, now: number): void {
    if (!state.failedHealthCheck) return;
    state.failedHealthCheck = false;
    // Still ejected by outlier detection: out until its time is up, and revived and announced then (restoreDue).
    if (!state.ejected) this.backInService(state, now);
    this.recount();
  }

  /** An endpoint no rule holds out any more: a neutral cost, slow start again, and the `restored` event. */
  private backInService(state: EndpointState, now: number): void {
    this.revive(state, now);
    if (this.deps.events.has('restored')) this.deps.events.emit('restored', { service: this.service, endpoint: state.endpoint });
  }

  /**
   * Endpoints that discovery added to a running service start from the median latency of their healthy peers,
   * not from the default RTT: a new endpoint at 1 ms beside peers at 1 ms would otherwise cost 30× theirs and
   * lose every P2C comparison until the EWMA decays (seconds under light load). The first list keeps the
   * default: there is no peer to take it from.
   */
  seed(added: readonly EndpointState[], now: number): void {
    if (added.length === 0) return;
    const fresh = new Set(added);
    const median = medianLatency(this.states(), now, (s) => fresh.has(s), DEFAULT_RTT_MS);
    for (const state of added) state.revive(median, now);
  }

  /** Restarts an endpoint's latency from the median of its healthy peers (or the default RTT). */
  private revive(state: EndpointState, now: number): void {
    state.revive(medianLatency(this.states(), now, (s) => s === state, DEFAULT_RTT_MS), now);
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

/** The fewest endpoints any statistical rule of `policy` needs (Infinity when none is on). */
function sweepMinHosts(policy: ResolvedPolicy): number {
  const o = policy.outlier;
  if (o === false) return Infinity;
  return Math.min(o.successRate === false ? Infinity : o.successRate.minHosts, o.failurePercent === false ? Infinity : o.failurePercent.minHosts);
}
