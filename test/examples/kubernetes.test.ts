// examples/kubernetes.ts run as a child process: it discovers two pods from EndpointSlices, sees a scale-up and a
// terminating pod through the watch, and exits 0 by itself.
import { expect, it } from 'vitest';
import { runScript } from '../helpers/run-script.js';

/** The pods that answered, from a "6 calls answered by: ..." line. */
const answered = (line: string | undefined): string[] => (line ?? '').replace(/^6 calls answered by: /, '').split(', ');

it('examples/kubernetes.ts follows a scale-up and a terminating pod, and exits by itself', async () => {
  const { code, signal, out } = await runScript('examples/kubernetes.ts', 20_000);
  expect(signal, out).toBeNull();
  expect(code, out).toBe(0);
  expect(out).toMatch(/^Kubernetes API double on http:\/\/127\.0\.0\.1:\d+$/m);
  const calls = out.split('\n').filter((l) => l.startsWith('6 calls answered by: '));
  expect(calls, out).toHaveLength(3);
  const [before, scaled, drained] = calls.map(answered);
  // Round robin over the ready pods: each gets its share, and only the ready ones answer.
  expect(before!.filter((p) => p === 'users-1')).toHaveLength(3);
  expect(before!.filter((p) => p === 'users-2')).toHaveLength(3);
  expect(new Set(scaled)).toEqual(new Set(['users-1', 'users-2', 'users-3']));
  expect(new Set(drained)).toEqual(new Set(['users-2', 'users-3']));
  // The watch pushed each change: the mesh followed in well under the 5 s the example allows.
  const up = /^scaled up: users-3 got its first call after ([\d.]+) ms$/m.exec(out);
  const down = /^users-1 terminating; the mesh stopped calling it after ([\d.]+) ms$/m.exec(out);
  expect(up, out).not.toBeNull();
  expect(down, out).not.toBeNull();
  expect(Number(up![1])).toBeLessThan(1_000);
  expect(Number(down![1])).toBeLessThan(1_000);
  // The discovery updates, in order: two pods, three, then users-1 out of the ready set.
  expect([...out.matchAll(/^discovery: users = (.*)$/gm)].map((m) => m[1]), out).toEqual(['users-1, users-2', 'users-1, users-2, users-3', 'users-2, users-3']);
  expect(out).not.toMatch(/discovery error/);
  expect(out.trimEnd().endsWith('done'), out).toBe(true);
}, 30_000);
