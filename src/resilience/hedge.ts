import type { Attempt, AttemptFn } from '../attempt.js';
import type { EndpointState } from '../endpoint/endpoint-state.js';
import {
  AttemptFailure,
  HEDGE_LOST,
  runAttempt,
  type CallEnv,
  type CallProgress,
  type CallRequest,
  type ResolvedHedge,
} from '../run-attempt.js';
import type { Service } from '../service.js';

/** Before 32 samples exist, a `'p95'` hedge waits this long (a conservative guess; 1 ms is the floor). */
const P95_UNKNOWN_MS = 100;

/** The delay before the next hedge: the number given, or the service's recent p95, at least 1 ms. */
export function hedgeDelay(svc: Service, hedge: ResolvedHedge): number {
  if (hedge.delayMs !== 'p95') return hedge.delayMs;
  return Math.max(1, svc.latencyWindow?.p95() ?? P95_UNKNOWN_MS);
}

/**
 * Runs an attempt and, while it is still out after the hedge delay, a hedge on another endpoint (up to
 * `maxAttempts` in all), as "The Tail at Scale" describes and Envoy's and gRPC's hedging do:
 * - only idempotent, replayable requests get here (the request step checks);
 * - each hedge needs a retry-budget token and an endpoint this call has not tried; without either, none;
 * - the first success wins and every other attempt's signal aborts (it counts for no endpoint's health);
 * - a failure waits for the attempts still out; when all have failed, the group fails with the last failure
 *   (and the retry step decides what next);
 * - a caller's abort or the mesh closing ends the group at once.
 */
export function runHedged<T>(
  env: CallEnv,
  svc: Service,
  fn: AttemptFn<T>,
  req: CallRequest,
  hedge: ResolvedHedge,
  first: EndpointState,
  deadline: number,
  progress: CallProgress,
  now: number,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const group: Attempt[] = [];
    let outstanding = 0;
    let launched = 0;
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const finish = (ok: boolean, value: unknown): void => {
      done = true;
      clearTimeout(timer);
      for (const a of group) a.cancel(HEDGE_LOST);
      if (ok) resolve(value);
      else reject(value);
    };

    const launch = (state: EndpointState, at: number): void => {
      outstanding++;
      launched++;
      progress.tried.push(state);
      const attemptNo = ++progress.started;
      runAttempt(env, svc, fn, req, state, attemptNo, deadline, at, group).then(
        (value) => {
          if (!done) finish(true, value);
        },
        (error: unknown) => {
          outstanding--;
          if (done) return;
          if (!(error instanceof AttemptFailure)) return finish(false, error);
          progress.failures.push(error);
          if (outstanding === 0) finish(false, error);
        },
      );
      if (launched < hedge.maxAttempts) schedule();
    };

    const schedule = (): void => {
      timer = setTimeout(fireHedge, hedgeDelay(svc, hedge));
      timer.unref?.();
    };

    const fireHedge = (): void => {
      const at = env.clock.now();
      if (done || env.isClosed() || at >= deadline) return;
      const state = svc.pickUntried(progress.tried, req.hashKey, progress.started + 1, at);
      if (state === undefined) return; // every endpoint is busy with this call already
      if (svc.budget !== undefined && req.retry !== false && req.retry.budget !== false && !svc.budget.tryWithdraw()) {
        if (env.events.has('budget-exhausted')) {
          env.events.emit('budget-exhausted', { service: svc.name, attempt: progress.started });
        }
        return;
      }
      if (env.events.has('hedge')) {
        env.events.emit('hedge', {
          service: svc.name,
          endpoint: state.endpoint,
          attempt: progress.started + 1,
          delayMs: hedgeDelay(svc, hedge),
        });
      }
      launch(state, at);
    };

    launch(first, now);
  });
}
