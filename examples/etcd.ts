/**
 * `npx tsx examples/etcd.ts [--etcd http://127.0.0.1:2379]`: two instances of `users` (node:http servers on
 * 127.0.0.1) register themselves in etcd, each under a lease kept alive; a mesh discovers them through
 * etcdRegistry and calls them; then one closes its registration (its lease is revoked, so its key goes at once)
 * and the mesh's watch follows. Everything is closed at the end, and it exits 0.
 *
 * It needs an etcd (3.4 or later) on loopback. On Debian or Ubuntu:
 *
 *     apt-get install etcd-server
 *     etcd --data-dir /tmp/etcd-example --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379
 *
 * (The package may also start etcd as a system service on 127.0.0.1:2379 where systemd runs; that one works too.)
 * The keys go under a prefix of this run's own, `/proxyless-example-<pid>/`, and are gone when it ends.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createMesh, etcdRegistry, registerEtcd, type EtcdRegistration } from 'proxyless';

const { values } = parseArgs({ options: { etcd: { type: 'string', default: 'http://127.0.0.1:2379' } } });
const url = values.etcd!.replace(/\/+$/, '');
const prefix = `/proxyless-example-${process.pid}/`;

// Is anyone there? A clear message beats a stack trace from the first registration.
try {
  const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
  if (health.status !== 200) throw new Error(`GET /health answered ${health.status}`);
} catch (error) {
  console.error(`no etcd answers at ${url} (${error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)}).`);
  console.error('Start one, e.g.: etcd --data-dir /tmp/etcd-example --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379');
  console.error('(apt-get install etcd-server), or pass --etcd <client URL>.');
  process.exit(1);
}
console.log(`etcd at ${url}, keys under ${prefix}`);

/** One instance of `users`: a local HTTP server that says who it is. */
async function startInstance(name: string): Promise<http.Server> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ from: name })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

const names = ['users-1', 'users-2'];
const servers = await Promise.all(names.map(startInstance));
const registrations: EtcdRegistration[] = [];
const mesh = createMesh({
  registry: etcdRegistry({ endpoints: [url], prefix }), // lists <prefix>users/, then watches it
  defaults: { balancer: 'round-robin', timeout: { attemptMs: 2_000, totalMs: 5_000 } },
});
const removed: string[] = [];
mesh.on('discovery-update', ({ endpoints, removed: gone }) => {
  removed.push(...gone.map((e) => e.id));
  console.log(`discovery: users = ${endpoints.map((e) => e.id).sort().join(', ') || '(none)'}`);
});
mesh.on('discovery-error', ({ error, stale }) => console.log(`discovery error (${stale ? 'serving the last list' : 'nothing cached'}): ${error.message}`));

async function callUsers(n: number): Promise<string[]> {
  const from: string[] = [];
  for (let i = 0; i < n; i++) from.push(((await (await mesh.fetch('http://users/whoami')).json()) as { from: string }).from);
  return from;
}

let exitCode = 0;
try {
  for (const [i, server] of servers.entries()) {
    const { port } = server.address() as AddressInfo;
    // The key is <prefix>users/<id>; the lease (10 s) is kept alive every ~3.3 s and revoked by close().
    const registration = await registerEtcd({
      etcd: { endpoints: [url], prefix },
      service: { name: 'users', id: names[i]!, address: '127.0.0.1', port, tags: ['v1'], meta: { version: '1.4.2' } },
      ttlMs: 10_000,
    });
    registrations.push(registration);
    console.log(`registered ${registration.key} -> 127.0.0.1:${port} (lease ${registration.leaseId}, TTL ${registration.ttlSeconds} s)`);
  }

  console.log(`4 calls answered by: ${(await callUsers(4)).join(', ')}`);

  const started = performance.now();
  await registrations[0]!.close();
  // Bounded wait for the watch to push the delete (it arrives in milliseconds on loopback).
  while (!removed.includes('users-1') && performance.now() - started < 5_000) await new Promise((r) => setTimeout(r, 5));
  if (!removed.includes('users-1')) throw new Error('the mesh did not see users-1 go within 5 s');
  console.log(`users-1 closed its registration; the mesh followed in ${Math.round(performance.now() - started)} ms`);
  console.log(`4 calls answered by: ${(await callUsers(4)).join(', ')}`);
} catch (error) {
  console.error(`failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
} finally {
  await mesh.close();
  await Promise.allSettled(registrations.map((r) => r.close()));
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
}
console.log('done');
process.exitCode = exitCode;
