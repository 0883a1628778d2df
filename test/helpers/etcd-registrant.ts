// A child process that registers itself in a test etcd with registerEtcd, to SIGKILL it.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { live } from './etcd-server.js';
import { root } from './run-script.js';

/** A child process that registered itself with `registerEtcd` and waits (until killed). */
export interface Registrant {
  readonly child: ChildProcess;
  readonly key: string;
  readonly leaseId: string;
  /** SIGKILL, without `close()`: the lease is left to expire. Resolves once the process is gone. */
  kill(): Promise<void>;
}

/** Runs `registerEtcd(options)` in a child `node --import tsx`, and resolves once it has registered. */
export async function spawnRegistrant(options: {
  url: string;
  prefix: string;
  service: { name: string; address: string; port: number; id?: string };
  ttlMs: number;
}): Promise<Registrant> {
  const entry = resolve(root, 'src/discovery/etcd/register.ts');
  const code = [
    `const { registerEtcd } = await import(${JSON.stringify(entry)});`,
    `const options = JSON.parse(process.env.REGISTRANT);`,
    `const r = await registerEtcd({ etcd: { endpoints: [options.url], prefix: options.prefix }, service: options.service, ttlMs: options.ttlMs });`,
    `console.log(JSON.stringify({ key: r.key, leaseId: r.leaseId }));`,
    `setInterval(() => {}, 60_000);`, // stay alive: keepalive timers are unref'd
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: root,
    env: { ...process.env, REGISTRANT: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const gone = new Promise<void>((done) => child.once('exit', () => done()));
  const entryForCleanup = { child, dir: '' };
  live.add(entryForCleanup);
  let out = '';
  const line = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`the registrant did not register within 15 s:\n${out}`));
    }, 15_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const first = out.split('\n').find((l) => l.startsWith('{'));
      if (first) {
        clearTimeout(timer);
        done(first);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => void (out += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`the registrant exited (${code}) before registering:\n${out}`));
    });
  });
  const { key, leaseId } = JSON.parse(line) as { key: string; leaseId: string };
  return {
    child,
    key,
    leaseId,
    async kill() {
      child.kill('SIGKILL');
      await gone;
      live.delete(entryForCleanup);
    },
  };
}
