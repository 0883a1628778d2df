import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsRegistry, type DnsRegistryOptions } from '../../src/discovery/dns.js';
import { lookupService } from '../../src/discovery/dns-lookup.js';
import { ZERO_WEIGHT_SHARE } from '../../src/discovery/srv.js';
import type { Endpoint } from '../../src/endpoint/endpoint.js';
import { NoEndpointsError } from '../../src/errors.js';
import { seededRng } from '../../src/util/random.js';
import { freeDnsPort } from '../helpers/dns-server.js';

/**
 * Against a real dnsmasq, configured as test/fixtures/dns/dnsmasq.example.conf (a copy of the project's
 * shared DNS fixture) on a free loopback port. Skipped when dnsmasq is not installed, unless
 * REQUIRE_DNSMASQ=1 (CI), which makes a missing dnsmasq a failure.
 */

const FIXTURE = new URL('../fixtures/dns/dnsmasq.example.conf', import.meta.url);
const REQUIRED = process.env.REQUIRE_DNSMASQ === '1';

/** dnsmasq lives in /usr/sbin, which a non-root PATH often lacks. */
function findDnsmasq(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  return dirs.filter(Boolean).map((d) => join(d, 'dnsmasq')).find((p) => existsSync(p));
}

const DNSMASQ = findDnsmasq();

/** Records of our own, after the fixture's. */
const EXTRA = `
# --- added by test/discovery/dns-dnsmasq.test.ts
# distinct addresses, to see the weighted order
srv-host=_http._tcp.orders.service.test,orders-1.node.test,7001,10,60
srv-host=_http._tcp.orders.service.test,orders-2.node.test,7002,10,30
srv-host=_http._tcp.orders.service.test,orders-3.node.test,7003,10,10
srv-host=_http._tcp.orders.service.test,orders-4.node.test,7004,20,100
host-record=orders-1.node.test,127.0.0.11
host-record=orders-2.node.test,127.0.0.12
host-record=orders-3.node.test,127.0.0.13
host-record=orders-4.node.test,127.0.0.14
# priority 10 has no address (NXDOMAIN under local=/test/): failover to priority 20
srv-host=_http._tcp.failover.service.test,missing.node.test,8080,10,50
srv-host=_http._tcp.failover.service.test,users-4.node.test,9090,20,100
# no target: "." (decidedly not available)
srv-host=_http._tcp.gone.service.test
# A/AAAA only
host-record=web.service.test,127.0.0.21,::1
`;

if (!DNSMASQ && REQUIRED) {
  describe('dnsmasq', () => {
    it('is installed (REQUIRE_DNSMASQ=1)', () => {
      expect.fail('REQUIRE_DNSMASQ=1 but no dnsmasq binary was found on PATH, /usr/sbin, /sbin or /usr/local/sbin');
    });
  });
}

describe.skipIf(!DNSMASQ)('dnsRegistry against dnsmasq', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let server: string;
  let log = '';
  const killOnExit = (): void => void child?.kill('SIGKILL');

  beforeAll(async () => {
    const port = await freeDnsPort();
    server = `127.0.0.1:${port}`;
    const fixture = await readFile(FIXTURE, 'utf8');
    // The file's port= line wins over --port: write our own port into it (never 53, never the system's).
    const conf = fixture.replace(/^port=\d+$/m, `port=${port}`) + EXTRA;
    expect(conf.match(/^port=.*$/gm)).toEqual([`port=${port}`]);
    expect(conf).toMatch(/^no-resolv$/m);
    expect(conf).toMatch(/^listen-address=127\.0\.0\.1$/m);
    dir = await mkdtemp(join(tmpdir(), 'proxyless-dnsmasq-'));
    const confPath = join(dir, 'dnsmasq.conf');
    await writeFile(confPath, conf);
    // -k: foreground; --pid-file with no value: no pid file; --user: drop root (ignored when not root).
    child = spawn(DNSMASQ!, ['-k', '-C', confPath, '--pid-file', '--user=nobody'], { stdio: ['ignore', 'ignore', 'pipe'] });
    process.once('exit', killOnExit);
    child.stderr!.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-8_000);
    });
    const exited = new Promise<never>((_, reject) =>
      child!.once('exit', (code, sig) => reject(new Error(`dnsmasq exited (${code ?? sig}) before answering:\n${log}`))),
    );
    await Promise.race([ready(server), exited]);
  });

  afterAll(async () => {
    process.off('exit', killOnExit);
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 2_000);
      await gone;
      clearTimeout(timer);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const options = (extra: DnsRegistryOptions = {}): DnsRegistryOptions => ({
    servers: [server],
    nameFor: (service, type) => (type === 'srv' ? `_http._tcp.${service}.service.test` : `${service}.service.test`),
    ...extra,
  });
  const resolve = (service: string, extra: DnsRegistryOptions = {}): Promise<readonly Endpoint[]> =>
    dnsRegistry(options(extra)).resolve(service, { signal: new AbortController().signal });
  const summary = (list: readonly Endpoint[]): string[] => list.map((e) => `${e.id} ${e.weight}`).sort();

  it('the fixture’s service: priority 10 only; SRV weights split among addresses and added where they meet', async () => {
    // users-1 (60) has 127.0.0.1 and ::1: 30 each; users-2 (30) is 127.0.0.1 too, on the same port: 30 + 30;
    // users-3 (0) gets 1/1000 of 90; users-4 (priority 20) is failover only.
    expect(summary(await resolve('users'))).toEqual(['127.0.0.1:8080 60', `127.0.0.1:9090 ${90 * ZERO_WEIGHT_SHARE}`, '[::1]:8080 30']);
  });

  it('orders targets as RFC 2782 says: by priority, then weighted random (60 / 30 / 10)', async () => {
    const registry = dnsRegistry(options({ random: seededRng(2782) }));
    const n = 600;
    const first = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const list = await registry.resolve('orders', { signal: new AbortController().signal });
      expect(list.map((e) => e.port).sort()).toEqual([7001, 7002, 7003]); // never priority 20
      first.set(list[0]!.meta.target!, (first.get(list[0]!.meta.target!) ?? 0) + 1);
    }
    expect(Math.abs(first.get('orders-1.node.test')! / n - 0.6)).toBeLessThan(0.08);
    expect(Math.abs(first.get('orders-2.node.test')! / n - 0.3)).toBeLessThan(0.08);
    expect(Math.abs(first.get('orders-3.node.test')! / n - 0.1)).toBeLessThan(0.06);
    const weights = summary(await registry.resolve('orders', { signal: new AbortController().signal }));
    expect(weights).toEqual(['127.0.0.11:7001 60', '127.0.0.12:7002 30', '127.0.0.13:7003 10']);
  });

  it('fails over to priority 20 when no priority-10 target has an address', async () => {
    expect(summary(await resolve('failover'))).toEqual(['127.0.0.1:9090 100']);
  });

  it('a "." target is decidedly not available; an unknown name is NXDOMAIN; both NoEndpointsError naming name and server', async () => {
    const gone = (await resolve('gone').catch((e: unknown) => e)) as Error;
    expect(gone).toBeInstanceOf(NoEndpointsError);
    expect(gone.message).toContain(`DNS SRV query for _http._tcp.gone.service.test to ${server}: the only target is "."`);
    const nobody = (await resolve('nobody').catch((e: unknown) => e)) as Error;
    expect(nobody).toBeInstanceOf(NoEndpointsError);
    expect(nobody.message).toContain(`DNS SRV query for _http._tcp.nobody.service.test to ${server}: no such name (NXDOMAIN)`);
  });

  it("'a' and 'auto' modes: A and AAAA on the configured port, with dnsmasq's local-ttl", async () => {
    expect(summary(await resolve('web', { mode: 'a', port: 8080 }))).toEqual(['127.0.0.21:8080 1', '[::1]:8080 1']);
    expect(summary(await resolve('web', { mode: 'auto', port: 8080 }))).toEqual(['127.0.0.21:8080 1', '[::1]:8080 1']);
    const answer = await lookupService(
      { servers: [server], mode: 'a', nameFor: (s) => `${s}.service.test`, port: 8080, minTtlMs: 1, maxTtlMs: 3_600_000, timeoutMs: 2_000, random: Math.random },
      'web',
      new AbortController().signal,
    );
    expect(answer.ttlMs).toBe(30_000); // local-ttl=30
  });
});

/** Resolves once dnsmasq answers a query (it binds a moment after it starts). */
async function ready(server: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const resolver = new Resolver({ timeout: 200, tries: 1 });
    resolver.setServers([server]);
    try {
      await resolver.resolve4('users-1.node.test');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`dnsmasq did not answer on ${server} within 10 s: ${String(error)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
