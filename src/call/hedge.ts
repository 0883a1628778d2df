import type { EndpointState } from '../endpoint/endpoint-state.js';
import { LatencyWindow } from '../resilience/latency-window.js';
import type { Call } from './call.js';
import { AttemptFailure, HEDGE_LOST } from './failure.js';
import { pickEndpoint } from './pick.js';
import type { ResolvedHedge } from './settings.js';
import { below, type Step } from './step.js';
import type { CallTarget } from './target.js';

/** Before 32 samples exist, a `'p95'` hedge waits this long (a conservative guess; 1 ms is the floor). */
const P95_UNKNOWN_MS = 100;

/** The delay before the next hedge: the number given, or the service's recent p95, at least 1 ms. */
export function hedgeDelay(target: CallTarget, hedge: ResolvedHedge): number {
  if (hedge.delayMs !== 'p95') return hedge.delayMs;
  const shared = target.shared;
  shared.latencyWindow ??= new LatencyWindow();
  return Math.max(1, shared.latencyWindow.p95() ?? P95_UNKNOWN_MS);
}

/**
 * The hedge step, below the pick step: the picked endpoint gets the first attempt and, while it is still out
 * after the hedge delay, a hedge goes to another endpoint (up to `maxAttempts` in all), as "The Tail at Scale"
 * describes and Envoy's and gRPC's hedging do:
 * - only idempotent, replayable requests are hedged (the settings say `hedge: false` otherwise);
 * - each hedge needs a retry-budget token and an endpoint this call has not tried; without either, none;
 * - the first success wins and every other attempt's signal aborts (it counts for no endpoint's health);
 * - a failure while others are out is dropped at once (its body cancelled); when all have failed, the group
 *   fails with the last failure, and the retry step decides what next;
 * - the call's stop (caller's abort, deadline, close) ends every attempt of the group.
 */
export class HedgeStep implements Step {
  readonly name = 'hedge';
  private readonly next: Step;

  constructor(next: Step | undefined) {
    this.next = below(next, this.name);
  }

  run(call: Call): Promise<unknown> {
    const hedge = call.settings.hedge;
    if (hedge === false) return this.next.run(call);
    return new HedgeGroup(call, this.next, hedge).start();
  }
}

class HedgeGroup {
  private outstanding = 0;
  private launched = 0;
  private done = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private resolve!: (value: unknown) => void;
  private reject!: (error: unknown) => void;

  constructor(
    private readonly call: Call,
    private readonly next: Step,
    private readonly hedge: ResolvedHedge,
  ) {}

  start(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.launch();
    });
  }

  private launch(): void {
    this.outstanding++;
    this.launched++;
    const call = this.call;
    this.next.run(call).then(
      (value) => this.succeeded(value),
      (error: unknown) => this.failed(error),
    );
    if (this.launched < this.hedge.maxAttempts) {
      this.timer = setTimeout(this.fire, hedgeDelay(call.target, this.hedge));
      this.timer.unref?.();
    }
  }

  private readonly fire = (): void => {
    const call = this.call;
    const { env, target } = call;
    const now = env.clock.now();
    if (this.done || call.stopped !== undefined || env.isClosed() || now >= call.expiresAt) return;
    const state: EndpointState | undefined = pickEndpoint(call, now, true);
    if (state === undefined) return; // every endpoint is busy with this call already
    const retry = call.settings.retry;
    if (target.shared.budget !== undefined && retry !== false && retry.budget !== false && !target.shared.budget.tryWithdraw()) {
      if (env.events.has('budget-exhausted')) env.events.emit('budget-exhausted', { service: target.name, attempt: call.started });
      return;
    }
    call.picked = state;
    const delayMs = hedgeDelay(target, this.hedge);
    this.launch();
    if (env.events.has('hedge')) {
      env.events.emit('hedge', { service: target.name, endpoint: state.endpoint, attempt: call.started, delayMs, route: target.route, backend: target.backend });
    }
  };

  private succeeded(value: unknown): void {
    this.outstanding--;
    if (this.done) return;
    this.finish();
    this.resolve(value);
  }

  private failed(error: unknown): void {
    this.outstanding--;
    if (this.done) return;
    if (!(error instanceof AttemptFailure)) {
      this.finish();
      this.reject(error);
      return;
    }
    if (this.outstanding > 0) {
      // Another attempt is still out: this failure can no longer be the call's result.
      error.free(this.call.transport, this.call);
      return;
    }
    this.finish();
    this.reject(error);
  }

  /** The group is decided: no more hedges, and every attempt still out loses. */
  private finish(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.call.cancelLive(HEDGE_LOST);
  }
}
