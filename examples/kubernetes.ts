/**
 * `npx tsx examples/kubernetes.ts`: a mesh discovers the pods of the Service `users` from Kubernetes
 * EndpointSlices, calls them, then follows a scale-up (a new pod gets traffic as soon as it is ready) and a
 * pod terminating (it gets no new calls while others are ready).
 *
 * No cluster is needed: the example starts the Kubernetes API double the tests use (test/helpers/kube-double.ts),
 * a node:http server on 127.0.0.1 that serves and watches EndpointSlices with the API server's shapes, and
 * plays the EndpointSlice controller by hand. The pods are local HTTP servers. In a real pod the registry needs
 * no option at all: `kubernetesRegistry()` reads KUBERNETES_SERVICE_HOST/PORT and the service-account files.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, kubernetesRegistry } from 'proxyless';
import { startKubeDouble, type EndpointSpec } from '../test/helpers/kube-double.js';

const TOKEN = 'example-service-account-token';
/** How long to wait for the mesh to follow a change before calling the example failed. */
const FOLLOW_LIMIT_MS = 5_000;

const api = await startKubeDouble({ token: TOKEN });
console.log(`Kubernetes API double on ${api.url}`);

/** One pod of `users`: a local HTTP server that says who it is. */
async function startPod(name: string): Promise<{ name: string; port: number; server: http.Server }> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ from: name })));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { name, port: (server.address() as AddressInfo).port, server };
}
const pods = await Promise.all(['users-1', 'users-2', 'users-3'].map(startPod));
const zones = ['zone-a', 'zone-b', 'zone-a'];
/** The slice's view of a pod (one port per pod here, since the local servers differ by port). */
const endpoint = (i: number, conditions: Partial<EndpointSpec> = {}): EndpointSpec => ({ ip: '127.0.0.1', port: pods[i]!.port, zone: zones[i], pod: pods[i]!.name, ...conditions });

// Two pods ready; the third is not started yet.
api.setEndpoints('users', [endpoint(0), endpoint(1)]);
console.log(`pods: ${pods.slice(0, 2).map((p, i) => `${p.name} (127.0.0.1:${p.port}, ${zones[i]})`).join(', ')}`);

const mesh = createMesh({
  registry: kubernetesRegistry({ apiUrl: api.url, token: TOKEN, namespace: 'default' }),
  defaults: { balancer: 'round-robin', retry: false, timeout: { attemptMs: 2_000, totalMs: 5_000 } },
});
mesh.on('discovery-update', ({ endpoints }) => console.log(`discovery: users = ${endpoints.map((e) => e.meta.pod + (e.meta.terminating ? ' (terminating)' : '')).sort().join(', ') || '(none)'}`));
mesh.on('discovery-error', ({ error, stale }) => console.log(`discovery error (${stale ? 'serving the last list' : 'nothing cached'}): ${error.message}`));

async function callUsers(n: number): Promise<string[]> {
  const from: string[] = [];
  for (let i = 0; i < n; i++) from.push(((await (await mesh.fetch('http://users/whoami')).json()) as { from: string }).from);
  return from;
}
/** Calls until `done(answers)` holds, for at most FOLLOW_LIMIT_MS; resolves with the time it took. */
async function until(done: (from: string[]) => boolean): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < FOLLOW_LIMIT_MS) {
    if (done(await callUsers(2))) return performance.now() - started;
  }
  throw new Error(`the mesh did not follow within ${FOLLOW_LIMIT_MS} ms`);
}

let exitCode = 0;
try {
  console.log(`6 calls answered by: ${(await callUsers(6)).join(', ')}`);

  // Scale up: the controller adds users-3 to the slices, ready. The watch pushes it at once.
  api.setEndpoints('users', [endpoint(0), endpoint(1), endpoint(2)]);
  const upMs = await until((from) => from.includes('users-3'));
  console.log(`scaled up: users-3 got its first call after ${upMs.toFixed(1)} ms`);
  console.log(`6 calls answered by: ${(await callUsers(6)).join(', ')}`);

  // users-1's pod is deleted: while it drains it is serving but terminating, and no longer ready.
  api.setEndpoints('users', [endpoint(0, { ready: false, serving: true, terminating: true }), endpoint(1), endpoint(2)]);
  const downMs = await until(() => mesh.snapshot().services.users!.endpoints.length === 2);
  const after = await callUsers(6);
  console.log(`users-1 terminating; the mesh stopped calling it after ${downMs.toFixed(1)} ms`);
  console.log(`6 calls answered by: ${after.join(', ')}`);
  if (after.includes('users-1')) exitCode = 1;
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  await mesh.close();
  await Promise.all(pods.map(({ server }) => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())))));
  await api.close();
}
console.log(exitCode === 0 ? 'done' : 'FAILED');
process.exitCode = exitCode;
