import type { Call } from './call.js';

/** The rest of the stack below a step. */
export type Next = (call: Call) => Promise<unknown>;

/**
 * One step of a call, in the shape of a Finagle filter: it gets the call's context and the rest of the stack,
 * and decides whether, when and how often to go on. A step that only passes through returns `next(call)`
 * (no promise of its own), so the success path pays only for the steps that must wait.
 */
export interface Step {
  /** What the step does, for the README and stack traces. */
  readonly name: string;
  run(call: Call, next: Next): Promise<unknown>;
}

const bottom: Next = () => Promise.reject(new Error('proxyless: the call stack has no attempt step'));

/** Composes `steps`, top first, into one function. Done once per service, not per call. */
export function compose(steps: readonly Step[]): Next {
  let next = bottom;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i] as Step;
    const below = next;
    next = (call) => step.run(call, below);
  }
  return next;
}
