import type { EndpointState } from '../endpoint/endpoint-state.js';
import { CircuitOpenError, NoEndpointsError } from '../errors.js';
import type { Call } from './call.js';
import { below, type Step } from './step.js';

/**
 * The one pick entry point, for first attempts, retries and hedges alike: due ejections end first, then the
 * balancer chooses among usable endpoints this call has not tried. A retry may go back to a tried endpoint
 * when no other is left (better than failing); a hedge never does (two attempts on one endpoint buy nothing).
 * A custom balancer that throws picks nothing (reported on `callback-error`).
 */
export function pickEndpoint(call: Call, now: number, hedge: boolean): EndpointState | undefined {
  const target = call.target;
  target.health.restoreDue(now);
  call.beforePick(now, target.health.panic);
  try {
    const chosen = target.choose(call);
    if (chosen !== undefined || hedge || call.tried.length === 0) return chosen;
    const tried = call.tried;
    call.tried = [];
    try {
      return target.choose(call);
    } finally {
      call.tried = tried;
    }
  } catch (error) {
    if (call.env.events.has('callback-error')) {
      call.env.events.emit('callback-error', { service: target.name, callback: 'balancer', error });
    }
    return undefined;
  }
}

/**
 * The pick step. With nothing to pick, a first attempt fails fast without touching the network
 * (`CircuitOpenError` when every breaker is open, else `NoEndpointsError`); a retry ends the call with its
 * last failure instead, keeping its attempts (requests did go out: "failed fast, nothing sent" would lie).
 */
export class PickStep implements Step {
  readonly name = 'pick';
  private readonly next: Step;

  constructor(next: Step | undefined) {
    this.next = below(next, this.name);
  }

  run(call: Call): Promise<unknown> {
    // A first attempt picks at the clock reading admission (or the discovery wait) took: one read fewer.
    const now = call.started === 0 ? call.now : call.env.clock.now();
    const state = pickEndpoint(call, now, false);
    const failures = call.failures;
    if (state !== undefined) {
      // A retry goes out: the failure it replaces can no longer be the call's result. Its value (a 503's body)
      // is freed here, not before the pick, so that a retry finding nothing can still end the call with it.
      if (failures !== undefined) failures[failures.length - 1]?.free(call.transport, call);
      call.picked = state;
      return this.next.run(call);
    }
    if (failures !== undefined && failures.length > 0) {
      const last = failures[failures.length - 1]!;
      last.retryable = false;
      return Promise.reject(last);
    }
    const target = call.target;
    if (target.allOpen()) return Promise.reject(new CircuitOpenError(target.name));
    if (target.size === 0) return Promise.reject(new NoEndpointsError(target.name));
    return Promise.reject(new NoEndpointsError(target.name, 'every endpoint is ejected or unavailable'));
  }
}
