/**
 * `npx tsx examples/consul.ts [--consul http://127.0.0.1:8500]`: two instances of `users` register themselves
 * with Consul (a TTL check they keep passing), a mesh discovers them and calls them, then one deregisters and
 * the mesh's blocking query sees it go at once.
 *
 * Without `--consul`, no Consul is needed: the example starts the Consul double the tests use
 * (test/helpers/consul-double.ts), a node:http server on 127.0.0.1 that speaks Consul's HTTP API. With
 * `--consul <url>` it talks to a real agent instead (CONSUL_HTTP_TOKEN is read as usual).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { consulRegistry, createMesh, registerService, type Registration } from 'proxyless';
import { startConsulDouble } from '../test/helpers/consul-double.js';

const { values } = parseArgs({ options: { consul: { type: 'string' } } });
const double = values.consul === undefined ? await startConsulDouble() : undefined;
const url = values.consul ?? double!.url;
console.log(double ? `Consul double on ${url}` : `Consul agent at ${url}`);

/** One instance of `users`: a local HTTP server that says who it is. */
async function startInstance(name: string): Promise<{ port: number; server: http.Server }> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ from: name })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

const instances = await Promise.all(['users-1', 'users-2'].map(startInstance));
const registrations: Registration[] = [];
for (const [i, { port }] of instances.entries()) {
  // Each instance announces itself; the TTL check is heartbeated every 5 s (a third of the TTL).
  registrations.push(
    await registerService({
      consul: { url },
      service: { name: 'users', id: `users-${i + 1}`, address: '127.0.0.1', port, tags: ['v1'], meta: { version: '1.4.2' } },
      check: { ttlMs: 15_000 },
      deregisterCriticalAfterMs: 60_000,
    }),
  );
  console.log(`registered users-${i + 1} on 127.0.0.1:${port}`);
}

const mesh = createMesh({
  registry: consulRegistry({ url, tag: 'v1' }), // passing instances only, watched with blocking queries
  defaults: { balancer: 'round-robin', timeout: { attemptMs: 2_000, totalMs: 5_000 } },
});
mesh.on('discovery-update', ({ endpoints }) => console.log(`discovery: users = ${endpoints.map((e) => e.id).join(', ') || '(none)'}`));
mesh.on('discovery-error', ({ error, stale }) => console.log(`discovery error (${stale ? 'serving the last list' : 'nothing cached'}): ${error.message}`));

async function callUsers(n: number): Promise<string[]> {
  const from: string[] = [];
  for (let i = 0; i < n; i++) from.push(((await (await mesh.fetch('http://users/whoami')).json()) as { from: string }).from);
  return from;
}

let exitCode = 0;
try {
  console.log(`4 calls answered by: ${(await callUsers(4)).join(', ')}`);

  const started = performance.now();
  await registrations[0]!.close(); // users-1 deregisters; the watch hears it at once
  while (mesh.snapshot().services.users!.endpoints.length !== 1) await new Promise((r) => setTimeout(r, 1));
  console.log(`users-1 deregistered; the mesh dropped it after ${(performance.now() - started).toFixed(1)} ms`);
  const after = await callUsers(4);
  console.log(`4 calls answered by: ${after.join(', ')}`);
  if (after.some((name) => name !== 'users-2')) exitCode = 1;
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  await mesh.close();
  await Promise.all(registrations.map((r) => r.close()));
  await Promise.all(instances.map(({ server }) => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())))));
  await double?.close();
}
console.log(exitCode === 0 ? 'done' : 'FAILED');
process.exitCode = exitCode;
