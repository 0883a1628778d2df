import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Runs a TypeScript script of the repository (`examples/consul.ts`) in a child `node --import tsx`, and
 * resolves with its exit code and its stdout and stderr together. A child still running after `limitMs` is
 * killed (then `signal` is set), so a script that does not exit by itself fails its test instead of hanging it.
 */
export function runScript(
  path: string,
  limitMs = 15_000,
  args: readonly string[] = [],
): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(root, path), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      done({ code, signal, out }); // `signal` is set when the limit killed it
    });
  });
}
