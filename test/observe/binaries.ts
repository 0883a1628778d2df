/**
 * Finding the real binaries the observability suites drive (prometheus, promtool, chromium), and the rule
 * that decides between skipping and failing when one is missing: `REQUIRE_<NAME>=1` (CI sets it) fails.
 */
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';

/** The absolute path of an executable on PATH (or at `explicit`), or undefined. */
export function findBinary(name: string, explicit?: string): string | undefined {
  const candidates = explicit ? [explicit] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Whether the suite must run: its variable (e.g. REQUIRE_PROMETHEUS) is `1` or `true`. */
export function required(variable: string): boolean {
  return ['1', 'true'].includes((process.env[variable] ?? '').toLowerCase());
}

/** A loopback port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs` with the last problem. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
