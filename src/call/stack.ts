import { admissionStep } from './admission.js';
import { attemptStep } from './attempt.js';
import { endpointsStep } from './endpoints.js';
import { hedgeStep } from './hedge.js';
import { pickStep } from './pick.js';
import { retryStep } from './retry.js';
import { compose, type Next, type Step } from './step.js';

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
export const CALL_STEPS: readonly Step[] = Object.freeze([admissionStep, endpointsStep, retryStep, pickStep, hedgeStep, attemptStep]);

/** The stack as one function; a service composes it once. */
export function composeCallStack(steps: readonly Step[] = CALL_STEPS): Next {
  return compose(steps);
}
