/**
 * The few test functions the published contract needs, taken from whichever runner the adapter author uses.
 * vitest, node:test, jest and mocha all have `describe`, `it` (with `it.skip`), `beforeEach` and `afterEach`;
 * passing the runner's module (`import * as vitest from 'vitest'`, `import * as t from 'node:test'`) or relying on
 * the globals (vitest with `globals: true`, jest, mocha) both work. The kit imports no runner itself, so it costs
 * nothing in a project that uses another one.
 */
export interface ContractTestApi {
  describe(name: string, body: () => void): unknown;
  it: ContractIt;
  beforeEach(body: () => unknown): unknown;
  afterEach(body: () => unknown): unknown;
}

/** A case body. It declares no parameter, so that mocha does not take it for a `done`-callback test. */
export type ContractCase = (...args: unknown[]) => unknown;

export interface ContractIt {
  (name: string, body: ContractCase): unknown;
  skip?: ((name: string, body: ContractCase) => unknown) | undefined;
}

/** The runner's functions: `given` when passed, else the globals; a clear TypeError when neither has them. */
export function testApi(given: unknown, at: string): ContractTestApi {
  const api = (given ?? globalThis) as Partial<Record<keyof ContractTestApi, unknown>>;
  const missing = (['describe', 'it', 'beforeEach', 'afterEach'] as const).filter((k) => typeof api[k] !== 'function');
  if (missing.length > 0) {
    throw new TypeError(
      given === undefined
        ? `${at}: no test globals (${missing.join(', ')}); pass the runner as hooks.test, e.g. \`import * as vitest from 'vitest'\` or \`import * as test from 'node:test'\``
        : `${at}: hooks.test must have describe, it, beforeEach and afterEach functions (missing: ${missing.join(', ')})`,
    );
  }
  return api as ContractTestApi;
}

/**
 * Marks the running case as skipped, from its arguments and `this`: vitest and node:test hand the case a context
 * with `skip()` (vitest's throws to end the case, node:test's only marks it, so the caller returns right after);
 * mocha has `this.skip()`. A runner with neither leaves the case passing, which only happens for a case about an
 * optional method the registry does not have.
 */
export function skipCase(self: unknown, args: readonly unknown[]): void {
  // vitest's context is a function object (calling it reports the removed `done` callback), hence no typeof check.
  const skip = (holder: unknown): (() => void) | undefined => {
    const f = holder == null ? undefined : (holder as { skip?: unknown }).skip;
    return typeof f === 'function' ? () => (f as () => void).call(holder) : undefined;
  };
  (skip(args[0]) ?? skip(self))?.();
}
