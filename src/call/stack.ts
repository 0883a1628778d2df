import { AdmissionStep } from './admission.js';
import { AttemptStep } from './attempt.js';
import { EndpointsStep } from './endpoints.js';
import { RouteStep } from './route-step.js';
import { HedgeStep } from './hedge.js';
import { PickStep } from './pick.js';
import { RetryStep } from './retry.js';
import { compose, type Step, type StepFactory } from './step.js';

/**
 * The ordered steps of one call, top first. A call flows down to the attempt; its verdict (settle.ts:
 * classify and record) flows back up through hedge, retry and admission, which hands out the result.
 * - admission: first, so a refused call costs nothing and the deadline and bulkhead cover everything below;
 * - endpoints: before any pick, and the only step that may wait for discovery (cold cache only);
 * - retry: above pick, so each retry is picked afresh, away from the endpoints already tried;
 * - pick: the one place an endpoint is chosen (hedges below use the same function);
 * - hedge: below pick, so the first attempt of each retry can be hedged, each hedge picked like a retry;
 * - attempt: last; sends through the transport, under the attempt timer and the endpoint's breaker.
 */
export const CALL_STEPS: readonly StepFactory[] = Object.freeze<StepFactory[]>([
  (next) => new AdmissionStep(next),
  (next) => new EndpointsStep(next),
  (next) => new RetryStep(next),
  (next) => new PickStep(next),
  (next) => new HedgeStep(next),
  () => new AttemptStep(),
]);

/**
 * The stack of a route that injects faults or mirrors requests: the route step right below admission, so a delay
 * is under the call's deadline and bulkhead, an abort comes before discovery, any pick and the retry loop, and a
 * mirror goes out only for a request admitted and not aborted. Other routes (and every call outside a route)
 * keep {@link CALL_STEPS}: faults and mirrors cost them nothing.
 */
export const ROUTE_STEPS: readonly StepFactory[] = Object.freeze<StepFactory[]>([
  CALL_STEPS[0]!,
  (next) => new RouteStep(next),
  ...CALL_STEPS.slice(1),
]);

/** The stack as its top step; a service composes it once. */
export function composeCallStack(factories: readonly StepFactory[] = CALL_STEPS): Step {
  return compose(factories);
}
