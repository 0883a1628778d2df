import { describe, expect, it } from 'vitest';
import { staticRegistry } from '../../src/index.js';
import { registryContract } from '../../src/testing.js';
import { skipCase } from '../../src/testing/test-api.js';

// The kit's own edges: what an adapter author sees when the call is wrong. The cases themselves run in the
// registry suites (test/discovery/*-contract.test.ts) and from the packed package (test/integration/package.test.ts).
describe('registryContract arguments', () => {
  const make = () => staticRegistry();
  const set = (): void => {};

  it('without a runner and without test globals: a TypeError that says how to pass one', () => {
    // vitest runs without `globals: true` here, so globalThis has no describe/it.
    expect(() => registryContract('r', make, { set })).toThrow(/no test globals \(describe, it, beforeEach, afterEach\); pass the runner as hooks\.test/);
  });

  it('an incomplete runner is named', () => {
    expect(() => registryContract('r', make, { set, test: { describe: () => {} } as never })).toThrow(/hooks\.test must have .*missing: it, beforeEach, afterEach/);
  });

  it('hooks.set is required, and every other hook must be a function', () => {
    expect(() => registryContract('r', make, {} as never)).toThrow(/hooks\.set\(service, endpoints\) is required/);
    expect(() => registryContract('r', make, { set, fail: 'yes' as never })).toThrow(/hooks\.fail must be a function/);
    expect(() => registryContract('', make, { set })).toThrow(/name must be a non-empty string/);
  });

  it('registers one suite with the cases on the runner it is given, error cases as skipped when there is no fail()', () => {
    const seen: string[] = [];
    const runner = {
      describe: (name: string, body: () => void) => (seen.push(`describe ${name}`), body()),
      it: Object.assign((name: string) => seen.push(`it ${name}`), { skip: (name: string) => seen.push(`skip ${name}`) }),
      beforeEach: () => {},
      afterEach: () => {},
    };
    registryContract('mine', make, { set, test: runner });
    expect(seen[0]).toBe('describe mine (registry contract)');
    expect(seen.filter((s) => s.startsWith('it ')).length).toBe(8);
    expect(seen.filter((s) => s.startsWith('skip ')).length).toBe(4);
    registryContract('weightless', make, { set, weights: false, fail: set, test: runner });
    expect(seen).toContain('skip carries weights');
  });

  it('skipCase uses the context’s skip (vitest, node:test), else mocha’s this.skip', () => {
    const calls: string[] = [];
    const ctx = Object.assign(() => {}, { skip: () => calls.push('ctx') }); // vitest's context is a function
    skipCase(undefined, [ctx]);
    skipCase({ skip: () => calls.push('this') }, []);
    expect(calls).toEqual(['ctx', 'this']);
  });
});
