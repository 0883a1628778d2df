import type { EndpointState } from './endpoint/endpoint-state.js';
import type { HealthCheckPolicy, ResolvedPolicy } from './options.js';
import { probe, type ProbeTarget } from './transport/health-probe.js';
import { tlsConnectOptions, type TlsPolicy } from './transport/tls.js';
import type { Clock } from './util/clock.js';
import { MAX_TIMER_MS } from './validate-primitives.js';
import type { Rng } from './util/random.js';
import { samePolicyPart } from './util/same.js';

/**
 * With no call for this long, a service counts as having no traffic, and is probed at
 * {@link NO_TRAFFIC_INTERVAL_MS} (Envoy's `no_traffic_interval` default, 60 s, applied after 60 s of no call).
 */
export const NO_TRAFFIC_AFTER_MS = 60_000;
/** The probe interval of a service with no traffic (at least its own `intervalMs`). Envoy's default, 60 s. */
export const NO_TRAFFIC_INTERVAL_MS = 60_000;
/** Each interval is longer by up to this share of it, drawn afresh (Envoy's `interval_jitter_percent`). */
export const INTERVAL_JITTER = 0.1;

/** What the checker needs of its service (the `Service` itself). */
export interface HealthCheckHost {
  readonly name: string;
  /** Calls admitted so far, and when the latest was (clock reading): the no-traffic rule. */
  readonly calls: number;
  readonly lastCallAt: number;
  /** The endpoints discovery lists now. */
  readonly states: readonly EndpointState[];
  /** Where a verdict goes: the service's one ejection path. */
  readonly health: {
    healthCheckFailed(state: EndpointState, minOutMs: number): void;
    healthCheckPassed(state: EndpointState, now: number): void;
  };
}

/** The parts of a policy that shape the probes. */
export interface HealthCheckSettings {
  readonly check: Required<HealthCheckPolicy>;
  readonly tls: Readonly<TlsPolicy> | undefined;
  readonly host: 'service' | 'endpoint';
}

interface Session {
  readonly state: EndpointState;
  /** The next probe's timer, or undefined while a probe is in flight (or once stopped). */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Cancels the probe in flight. */
  cancel: (() => void) | undefined;
  /** Probes in a row that passed (counted while the endpoint is out) and that failed. */
  passes: number;
  failures: number;
  stopped: boolean;
}

/**
 * Active HTTP health checks of one service, with Envoy's semantics (envoy
 * source/extensions/health_checkers/common/health_checker_base_impl.cc, `ActiveHealthCheckSession` and
 * `HealthCheckerImplBase::interval`): each endpoint has its own session, `GET path` every `intervalMs`, each
 * probe bounded by `timeoutMs`; `unhealthyThreshold` failures in a row eject it through the service's ejection
 * path, and it stays out until `healthyThreshold` probes in a row pass.
 *
 * - Jitter: the first probe of a session comes at a uniform point of the first interval, and every interval
 *   after it is longer by up to 10 % (Envoy's `interval_jitter_percent`), drawn from the mesh's random source,
 *   so the endpoints of a fleet are not probed in step.
 * - The next interval starts when a probe settles, so an endpoint has at most one probe in flight.
 * - No traffic: a service with no call yet, or none for {@link NO_TRAFFIC_AFTER_MS}, is probed every
 *   {@link NO_TRAFFIC_INTERVAL_MS} (Envoy's `no_traffic_interval`). A service exists only once something used it
 *   (a call, `mesh.service()`, `warmup`), and has endpoints to probe only once its list was loaded.
 * - An endpoint starts in service, unlike Envoy's hosts, which wait for their first passed check: discovery
 *   listed it, and passive detection guards it until the probes speak.
 * - Every timer is unref'd; `close` clears them and destroys the probes in flight.
 */
export class HealthChecker {
  private readonly sessions = new Map<EndpointState, Session>();
  private closed = false;

  constructor(
    private readonly host: HealthCheckHost,
    private settings: HealthCheckSettings,
    private readonly deps: { readonly clock: Clock; readonly random: Rng },
  ) {}

  /** Endpoints to probe (discovery added them, or the checker is new): each starts at a random point of an interval. */
  add(states: readonly EndpointState[]): void {
    if (this.closed) return;
    for (const state of states) {
      if (this.sessions.has(state)) continue;
      const session: Session = { state, timer: undefined, cancel: undefined, passes: 0, failures: 0, stopped: false };
      this.sessions.set(state, session);
      this.schedule(session, this.deps.random() * this.baseInterval(this.deps.clock.now()));
    }
  }

  /** Endpoints discovery removed: their probes stop. */
  remove(states: readonly EndpointState[]): void {
    for (const state of states) {
      const session = this.sessions.get(state);
      if (session === undefined) continue;
      this.stop(session);
      this.sessions.delete(state);
    }
  }

  /**
   * A new configuration changed the probes: thresholds and counts carry on, and the probes waiting for their
   * time are spread again over the new interval (a probe in flight finishes, then follows the new settings).
   */
  retune(settings: HealthCheckSettings): void {
    this.settings = settings;
    const now = this.deps.clock.now();
    for (const session of this.sessions.values()) {
      if (session.timer === undefined) continue;
      clearTimeout(session.timer);
      this.schedule(session, this.deps.random() * this.baseInterval(now));
    }
  }

  /** Stops every probe: no timer and no socket of the checker stays. */
  close(): void {
    this.closed = true;
    for (const session of this.sessions.values()) this.stop(session);
    this.sessions.clear();
  }

  private stop(session: Session): void {
    session.stopped = true;
    if (session.timer !== undefined) clearTimeout(session.timer);
    session.timer = undefined;
    session.cancel?.();
    session.cancel = undefined;
  }

  private schedule(session: Session, delayMs: number): void {
    if (session.timer !== undefined) clearTimeout(session.timer); // one timer per session, whatever the path
    // An interval near setTimeout's limit plus its jitter would overflow it, and Node fires an overflowing timer
    // after 1 ms: a probe a millisecond instead of one every 24 days.
    const timer = setTimeout(() => this.run(session), Math.min(delayMs, MAX_TIMER_MS));
    timer.unref?.();
    session.timer = timer;
  }

  private run(session: Session): void {
    session.timer = undefined;
    if (session.stopped || this.closed) return;
    try {
      session.cancel = probe(this.target(session.state), (passed) => {
        session.cancel = undefined;
        this.verdict(session, passed);
      });
    } catch {
      // A timer must never crash the host process: count it as a failed probe, and go on probing.
      this.verdict(session, false);
    }
  }

  /** Envoy's `handleSuccess` and `handleFailure`: the thresholds, then the next probe. */
  private verdict(session: Session, passed: boolean): void {
    if (session.stopped || this.closed) return;
    const { state } = session;
    const { check } = this.settings;
    const now = this.deps.clock.now();
    // The next probe is armed before the verdict is applied: a listener of `ejected` or `restored` that closes the
    // mesh or turns health checks off then stops it too (armed after, it would outlive the close), and nothing the
    // health bookkeeping throws can leave the endpoint unprobed, out for good.
    const base = this.baseInterval(now);
    this.schedule(session, base + this.deps.random() * base * INTERVAL_JITTER);
    if (passed) {
      session.failures = 0;
      if (state.failedHealthCheck && ++session.passes >= check.healthyThreshold) {
        session.passes = 0;
        this.host.health.healthCheckPassed(state, now);
      }
    } else {
      session.passes = 0;
      if (++session.failures >= check.unhealthyThreshold && !state.failedHealthCheck) {
        this.host.health.healthCheckFailed(state, check.healthyThreshold * check.intervalMs);
      }
    }
  }

  /** `intervalMs`, or the no-traffic interval when the service had no call for a while. */
  private baseInterval(now: number): number {
    const { intervalMs } = this.settings.check;
    const idle = this.host.calls === 0 || now - this.host.lastCallAt >= NO_TRAFFIC_AFTER_MS;
    return idle ? Math.max(intervalMs, NO_TRAFFIC_INTERVAL_MS) : intervalMs;
  }

  private target(state: EndpointState): ProbeTarget {
    const { check, tls, host } = this.settings;
    const { host: address, port } = state.endpoint;
    return {
      host: address,
      port,
      path: check.path,
      timeoutMs: check.timeoutMs,
      tls: tls === undefined ? undefined : tlsConnectOptions(tls, this.host.name, address),
      hostHeader: host === 'service' ? this.host.name : undefined,
    };
  }
}

/** The probe settings of a policy, or undefined when `healthCheck` is off. */
export function healthCheckSettings(policy: ResolvedPolicy): HealthCheckSettings | undefined {
  return policy.healthCheck === false ? undefined : { check: policy.healthCheck, tls: policy.tls, host: policy.host };
}

/**
 * The checker a configuration wants, from the one in force: kept as it is when the parts that shape probes
 * (`healthCheck`, `tls`, `host`) are the same, retuned when they changed, made when health checks were turned
 * on, closed when turned off; then every endpoint they had ejected comes back (nothing probes it any more).
 */
export function adoptHealthCheck(
  current: HealthChecker | undefined,
  host: HealthCheckHost,
  old: ResolvedPolicy | undefined,
  policy: ResolvedPolicy,
  deps: { readonly clock: Clock; readonly random: Rng },
): HealthChecker | undefined {
  if (old !== undefined && samePolicyPart([policy.healthCheck, policy.tls, policy.host], [old.healthCheck, old.tls, old.host])) {
    return current;
  }
  const settings = healthCheckSettings(policy);
  if (settings === undefined) {
    if (current === undefined) return undefined;
    current.close();
    const now = deps.clock.now();
    for (const state of host.states) host.health.healthCheckPassed(state, now);
    return undefined;
  }
  if (current !== undefined) {
    current.retune(settings);
    return current;
  }
  const checker = new HealthChecker(host, settings, deps);
  checker.add(host.states);
  return checker;
}
