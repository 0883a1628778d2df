import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

it('examples/consul.ts registers, discovers, calls, sees a deregistration at once, and exits by itself', async () => {
  const { code, out } = await new Promise<{ code: number | null; out: string }>((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(root, 'examples/consul.ts')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('error', fail);
    child.on('close', (c) => (clearTimeout(killer), done({ code: c, out })));
  });
  expect(code, out).toBe(0);
  expect(out).toMatch(/4 calls answered by: (users-[12], ){3}users-[12]\n/);
  expect(out).toMatch(/users-1 deregistered; the mesh dropped it after [\d.]+ ms\n4 calls answered by: users-2, users-2, users-2, users-2\ndone\n$/);
});
