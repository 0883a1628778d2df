import { expect, it } from 'vitest';
import { runScript } from '../helpers/run-script.js';

it('examples/consul.ts registers, discovers, calls, sees a deregistration at once, and exits by itself', async () => {
  const { code, out } = await runScript('examples/consul.ts');
  expect(code, out).toBe(0);
  expect(out).toMatch(/4 calls answered by: (users-[12], ){3}users-[12]\n/);
  expect(out).toMatch(/users-1 deregistered; the mesh dropped it after [\d.]+ ms\n4 calls answered by: users-2, users-2, users-2, users-2\ndone\n$/);
});
