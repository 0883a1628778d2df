import type { Call } from './call.js';

/**
 * One step of a call, in the shape of a Finagle filter: it gets the call's context, and holds the rest of the
 * stack below it as `next`, fixed when the stack is composed. It decides whether, when and how often to go on.
 * A step that only passes through returns `next.run(call)` (no promise of its own), so the success path pays
 * only for the steps that must wait. Each step is its own class, so every `next.run` call site sees one kind of
 * step and stays monomorphic: one shared closure per level would see all of them.
 */
export interface Step {
  /** What the step does, for the README and stack traces. */
  readonly name: string;
  run(call: Call): Promise<unknown>;
}

/** Makes a step over the rest of the stack (`next` is undefined for the last step). */
export type StepFactory = (next: Step | undefined) => Step;

/** Composes the factories, top first, into the top step. Done once per service, not per call. */
export function compose(factories: readonly StepFactory[]): Step {
  let next: Step | undefined;
  for (let i = factories.length - 1; i >= 0; i--) next = (factories[i] as StepFactory)(next);
  if (next === undefined) throw new TypeError('a call stack needs at least one step');
  return next;
}

/** The step below `name`, which every step but the last needs. */
export function below(next: Step | undefined, name: string): Step {
  if (next === undefined) throw new TypeError(`the ${name} step cannot be the last step of a call stack`);
  return next;
}
