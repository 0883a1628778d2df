// examples/etcd.ts run as a child process against an etcd of its own (test/helpers/etcd-server.ts): both
// instances register and get calls, the closed one stops getting them, and it exits 0 by itself. Without an etcd
// it says so and exits 1. Skipped when etcd is missing, unless REQUIRE_ETCD=1.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { refusedAddress } from '../helpers/backends.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd-server.js';
import { describeWithEtcd } from '../helpers/etcd-suite.js';
import { runScript } from '../helpers/run-script.js';


describeWithEtcd('examples/etcd.ts', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it('registers two instances, the mesh calls both, then follows one closing its registration', async () => {
    const { code, signal, out } = await runScript('examples/etcd.ts', 20_000, ['--etcd', etcd.url]);
    expect(signal, out).toBeNull();
    expect(code, out).toBe(0);
    expect(out).toContain(`etcd at ${etcd.url}, keys under /proxyless-example-`);
    const registered = [...out.matchAll(/^registered (\/proxyless-example-\d+\/)users\/(users-\d) -> 127\.0\.0\.1:\d+ \(lease \d+, TTL 10 s\)$/gm)];
    expect(registered.map((m) => m[2]), out).toEqual(['users-1', 'users-2']);
    const calls = [...out.matchAll(/^4 calls answered by: (.*)$/gm)].map((m) => m[1]!.split(', '));
    expect(calls, out).toHaveLength(2);
    expect(new Set(calls[0])).toEqual(new Set(['users-1', 'users-2']));
    expect(calls[1]).toEqual(['users-2', 'users-2', 'users-2', 'users-2']);
    const followed = /^users-1 closed its registration; the mesh followed in (\d+) ms$/m.exec(out);
    expect(followed, out).not.toBeNull();
    expect(Number(followed![1])).toBeLessThan(2_000);
    expect(out.indexOf(followed![0])).toBeLessThan(out.lastIndexOf('4 calls answered by'));
    expect(out).toMatch(/done\n?$/);
    expect(out).not.toMatch(/failed:|discovery error/);
    // Everything it wrote went with its leases.
    expect((await etcd.get(registered[0]![1]!)).size).toBe(0);
  }, 30_000);

  it('without an etcd, it says how to start one and exits 1', async () => {
    const { code, out } = await runScript('examples/etcd.ts', 15_000, ['--etcd', `http://${await refusedAddress()}`]);
    expect(code, out).toBe(1);
    expect(out).toMatch(/^no etcd answers at http:\/\/127\.0\.0\.1:\d+ \(.*ECONNREFUSED.*\)\./m);
    expect(out).toContain('etcd --data-dir');
    expect(out).toContain('apt-get install etcd-server');
  });
});
