/**
 * Discovery reaction time: from a change at the source to the moment the mesh stops sending traffic to the
 * instance that left. Three loopback node:http backends (one per instance) note the arrival time of every
 * request, while `workers` loops keep calling `mesh.fetch('http://api/')` with the default policy.
 *
 * - Consul: the Consul double (test/helpers/consul-double.ts) serves the instances; one turns critical (and the
 *   previous one passing again, in the same step). `consulRegistry` watches with blocking queries, default
 *   options (wait 60 s: a change must not wait for it). Goal: p50 ≤ 100 ms.
 * - DNS: a dns2 server (test/helpers/dns-server.ts) serves SRV records whose targets have a TTL of 1 s; one
 *   record is removed (the previous one restored). `dnsRegistry` looks again when the TTL runs out. Goal:
 *   ≤ TTL + 100 ms.
 *
 * For each change: `update` is the time until the mesh emits `discovery-update` removing the instance;
 * `traffic stop` is the time until the last request that instance received (requests already on their way
 * count; 0 when none came after the change). Changes are spaced 150-350 ms apart, at random phases. The
 * instances, the source and the load share one event loop, so a busy loop delays both figures: that is the
 * point (a mesh reacts from inside a busy process), but it makes p99 noisy on a small machine.
 *
 * - Kubernetes: the Kubernetes API double (test/helpers/kube-double.ts) serves one EndpointSlice; a pod leaves it
 *   (the one that left before comes back, in the same MODIFIED event). `kubernetesRegistry` watches it. Goal:
 *   p50 ≤ 100 ms.
 * - etcd: a real etcd 3.4 (when installed; test/helpers/etcd-server.ts) on loopback ports; an instance's key is
 *   deleted (the previous one put back). `etcdRegistry` watches the prefix. Goal: p50 ≤ 100 ms.
 *
 * `traffic back` is the time until the instance put back gets its first request. For Kubernetes and etcd the goal
 * is on the later of the two ("traffic follows the change").
 *
 *   tsx bench/discovery.ts [--changes 50] [--dns-changes 50] [--kubernetes-changes 50] [--etcd-changes 50]
 *                          [--workers 8] [--warm-ms 2000] [--max-seconds 240]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { consulRegistry } from '../src/discovery/consul.js';
import { dnsRegistry } from '../src/discovery/dns.js';
import { createMesh, etcdRegistry, kubernetesRegistry, type Mesh, type Registry } from '../src/index.js';
import { startConsulDouble } from '../test/helpers/consul-double.js';
import { startDnsServer, type SrvData } from '../test/helpers/dns-server.js';
import { etcdBinary, startEtcd } from '../test/helpers/etcd-server.js';
import { startKubeDouble } from '../test/helpers/kube-double.js';
import { numberFlags } from './lib/args.js';
import { fmt, machine, markdownTable, median, percentile } from './lib.js';

const flags = numberFlags({ changes: 50, dnsChanges: 50, kubernetesChanges: 50, etcdChanges: 50, workers: 8, warmMs: 2_000, maxSeconds: 240 });
const INSTANCES = 3;
const DNS_TTL_S = 1;
const deadline = performance.now() + flags.maxSeconds * 1_000;

interface Instance {
  readonly port: number;
  /** performance.now() of the last request that arrived. */
  last: number;
  count: number;
  /** performance.now() of the first request at or after `from` (0: none yet): when traffic came back to it. */
  first: number;
  from: number;
  readonly server: http.Server;
}

async function startInstances(): Promise<Instance[]> {
  return Promise.all(
    Array.from({ length: INSTANCES }, async () => {
      const instance = { port: 0, last: 0, count: 0, first: 0, from: Infinity } as { -readonly [K in keyof Instance]: Instance[K] };
      instance.server = http.createServer((req, res) => {
        instance.last = performance.now();
        instance.count++;
        if (instance.first === 0 && instance.last >= instance.from) instance.first = instance.last;
        req.resume();
        res.end('ok');
      });
      instance.server.keepAliveTimeout = 10_000;
      await new Promise<void>((resolve) => instance.server.listen(0, '127.0.0.1', resolve));
      instance.port = (instance.server.address() as AddressInfo).port;
      return instance;
    }),
  );
}

/** Keeps `workers` calls in flight until stopped. */
function load(mesh: Mesh): { stop(): Promise<void>; calls(): number; errors(): number } {
  let running = true;
  let calls = 0;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      try {
        const res = await mesh.fetch('http://api/');
        await res.arrayBuffer();
        calls++;
      } catch {
        errors++;
        await sleep(1);
      }
    }
  };
  const workers = Array.from({ length: flags.workers }, worker);
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
    },
    calls: () => calls,
    errors: () => errors,
  };
}

interface Sample {
  readonly updateMs: number;
  readonly stopMs: number;
  /** From the change to the first request the instance put back received (undefined on the first change: none was away). */
  readonly startMs: number | undefined;
}

/**
 * Runs `changes` changes: change k takes instance k % n away (and restores the one taken before). `apply`
 * makes the change at the source; `idOf` names the endpoint id the mesh gives an instance.
 */
async function measure(
  label: string,
  mesh: Mesh,
  instances: Instance[],
  changes: number,
  apply: (away: number, back: number | undefined) => void,
  idOf: (i: number) => string,
  giveUpMs: number,
): Promise<Sample[]> {
  const removed = new Map<string, number>(); // endpoint id -> when the mesh dropped it
  mesh.on('discovery-update', (u) => {
    for (const e of u.removed) removed.set(e.id, performance.now());
  });
  const traffic = load(mesh);
  await sleep(flags.warmMs); // warm: JIT (a cold process serves a quarter of the calls), connections, EWMA
  const samples: Sample[] = [];
  let back: number | undefined;
  for (let k = 0; k < changes && performance.now() < deadline; k++) {
    const away = k % instances.length;
    const id = idOf(away);
    removed.delete(id);
    const t0 = performance.now();
    const returning = back === undefined ? undefined : instances[back]!;
    if (returning) {
      returning.first = 0;
      returning.from = t0;
    }
    apply(away, back);
    back = away;
    while (!removed.has(id) && performance.now() - t0 < giveUpMs) await sleep(1);
    if (!removed.has(id)) {
      console.log(`${label} #${k + 1}: the mesh still lists ${id} after ${giveUpMs} ms`);
      continue;
    }
    await sleep(30); // requests already on their way land
    const settled = instances[away]!.count;
    await sleep(30);
    if (instances[away]!.count !== settled) console.log(`${label} #${k + 1}: ${id} still gets traffic after the update`);
    while (returning && returning.first === 0 && performance.now() - t0 < giveUpMs) await sleep(1);
    const startMs = returning && returning.first > 0 ? returning.first - t0 : undefined;
    if (returning && startMs === undefined) console.log(`${label} #${k + 1}: the instance put back got no traffic within ${giveUpMs} ms`);
    const sample = { updateMs: removed.get(id)! - t0, stopMs: Math.max(0, instances[away]!.last - t0), startMs };
    samples.push(sample);
    console.log(`${label} #${String(k + 1).padStart(2)}: update ${sample.updateMs.toFixed(1)} ms, traffic stop ${sample.stopMs.toFixed(1)} ms${startMs === undefined ? '' : `, traffic back ${startMs.toFixed(1)} ms`}`);
    await sleep(150 + Math.random() * 200);
  }
  await traffic.stop();
  console.log(`${label}: ${traffic.calls()} calls, ${traffic.errors()} errors`);
  return samples;
}

async function consulRun(instances: Instance[]): Promise<Sample[]> {
  const consul = await startConsulDouble();
  consul.setInstances('api', instances.map((inst, i) => ({ id: `api-${i}`, port: inst.port })));
  const mesh = createMesh({ registry: consulRegistry({ url: consul.url, env: {} }) });
  try {
    await mesh.warmup(['api']);
    return await measure(
      'consul',
      mesh,
      instances,
      flags.changes,
      (away, back) => {
        if (back !== undefined) consul.setCheckStatus(`service:api-${back}`, 'passing');
        consul.setCheckStatus(`service:api-${away}`, 'critical');
      },
      (i) => `api-${i}@node-1`,
      5_000,
    );
  } finally {
    await mesh.close();
    await consul.close();
  }
}

async function dnsRun(instances: Instance[]): Promise<Sample[]> {
  const dns = await startDnsServer();
  const record = (i: number): SrvData => ({ priority: 10, weight: 10, port: instances[i]!.port, target: `api-${i}.bench.test` });
  instances.forEach((_, i) => dns.a(`api-${i}.bench.test`, ['127.0.0.1'], DNS_TTL_S));
  const present = new Set(instances.map((_, i) => i));
  const publish = (): void => dns.srv('_http._tcp.api', [...present].sort().map(record), DNS_TTL_S);
  publish();
  const registry: Registry = dnsRegistry({ servers: [dns.address], mode: 'srv' });
  const mesh = createMesh({ registry });
  try {
    await mesh.warmup(['api']);
    const ids = new Map(mesh.snapshot().services.api!.endpoints.map((e) => [e.port, e.id]));
    return await measure(
      'dns',
      mesh,
      instances,
      flags.dnsChanges,
      (away, back) => {
        if (back !== undefined) present.add(back);
        present.delete(away);
        publish();
      },
      (i) => ids.get(instances[i]!.port)!,
      DNS_TTL_S * 1_000 * 3,
    );
  } finally {
    await mesh.close();
    await dns.close();
  }
}

/** The ids the mesh gave each instance, by port (a registry's own id scheme: uid@address, a key's last part). */
function idsByPort(mesh: Mesh): Map<number, string> {
  return new Map(mesh.snapshot().services.api!.endpoints.map((e) => [e.port, e.id]));
}

async function kubernetesRun(instances: Instance[]): Promise<Sample[]> {
  const api = await startKubeDouble({ token: 'bench-token' });
  const present = new Set(instances.map((_, i) => i));
  // One slice, as the EndpointSlice controller keeps a small Service; a removed pod leaves it (a MODIFIED event).
  const publish = (): void => api.setEndpoints('api', [...present].sort().map((i) => ({ ip: '127.0.0.1', port: instances[i]!.port })));
  publish();
  const mesh = createMesh({ registry: kubernetesRegistry({ apiUrl: api.url, token: 'bench-token', namespace: 'default', env: {} }) });
  try {
    await mesh.warmup(['api']);
    const ids = idsByPort(mesh);
    return await measure(
      'kubernetes',
      mesh,
      instances,
      flags.kubernetesChanges,
      (away, back) => {
        if (back !== undefined) present.add(back);
        present.delete(away);
        publish();
      },
      (i) => ids.get(instances[i]!.port)!,
      5_000,
    );
  } finally {
    await mesh.close();
    await api.close();
  }
}

/** A real etcd (when installed): an instance's key is deleted (the one deleted before is put back), as a lease would expire. */
async function etcdRun(instances: Instance[]): Promise<Sample[]> {
  const etcd = await startEtcd();
  const prefix = '/bench/services/';
  const put = (i: number): Promise<bigint> => etcd.put(`${prefix}api/api-${i}`, { host: '127.0.0.1', port: instances[i]!.port });
  await Promise.all(instances.map((_, i) => put(i)));
  const mesh = createMesh({ registry: etcdRegistry({ endpoints: [etcd.url], prefix }) });
  try {
    await mesh.warmup(['api']);
    return await measure(
      'etcd',
      mesh,
      instances,
      flags.etcdChanges,
      (away, back) => {
        // Both writes start now, in order; the clock ran from before them, so their round trips count.
        if (back !== undefined) void put(back);
        void etcd.del(`${prefix}api/api-${away}`);
      },
      (i) => `api-${i}`,
      5_000,
    );
  } finally {
    await mesh.close();
    await etcd.close();
  }
}

function row(label: string, samples: Sample[], goal: string): string[] {
  const sorted = (xs: number[]): number[] => xs.sort((a, b) => a - b);
  const update = sorted(samples.map((s) => s.updateMs));
  const stop = sorted(samples.map((s) => s.stopMs));
  const start = sorted(samples.flatMap((s) => (s.startMs === undefined ? [] : [s.startMs])));
  const p = (xs: number[], q: number): string => (xs.length === 0 ? '-' : fmt(q === 50 ? median(xs) : percentile(xs, q), 1));
  return [label, String(samples.length), p(update, 50), p(update, 99), p(stop, 50), p(stop, 99), p(start, 50), p(start, 99), goal];
}

/** p50 of the time until traffic followed the change both ways: the later of "stopped" and "came back". */
function followP50(samples: Sample[]): number {
  return samples.length === 0 ? Infinity : median(samples.map((s) => Math.max(s.stopMs, s.startMs ?? 0)));
}

const instances = await startInstances();
const reset = (): void => {
  for (const inst of instances) inst.last = 0;
};
try {
  const consul = await consulRun(instances);
  reset();
  const dns = flags.dnsChanges > 0 ? await dnsRun(instances) : [];
  reset();
  const kubernetes = flags.kubernetesChanges > 0 ? await kubernetesRun(instances) : [];
  reset();
  if (etcdBinary === undefined && flags.etcdChanges > 0) console.log('etcd: not installed (apt-get install etcd-server): no etcd row');
  const etcd = flags.etcdChanges > 0 && etcdBinary !== undefined ? await etcdRun(instances) : [];
  console.log(`\nDiscovery reaction time, ${flags.workers} workers of mesh.fetch over ${INSTANCES} loopback instances; ${await machine()}\n`);
  const rows = [row('Consul (blocking query, default options)', consul, 'p50 ≤ 100 ms')];
  if (dns.length > 0) rows.push(row(`DNS SRV (TTL ${DNS_TTL_S} s)`, dns, `≤ ${DNS_TTL_S * 1_000 + 100} ms`));
  if (kubernetes.length > 0) rows.push(row('Kubernetes EndpointSlices (watch, API double)', kubernetes, 'p50 ≤ 100 ms'));
  if (etcd.length > 0) rows.push(row('etcd 3.4 (watch, real etcd)', etcd, 'p50 ≤ 100 ms'));
  const header = ['source', 'changes', 'update p50 ms', 'update p99 ms', 'traffic stop p50 ms', 'traffic stop p99 ms', 'traffic back p50 ms', 'traffic back p99 ms', 'goal'];
  console.log(markdownTable(header, rows));
  const consulP50 = median(consul.map((s) => s.stopMs));
  const dnsP99 = dns.length > 0 ? percentile(dns.map((s) => s.stopMs).sort((a, b) => a - b), 99) : 0;
  const watched = [
    ['Kubernetes', kubernetes, flags.kubernetesChanges],
    ['etcd', etcd, etcdBinary === undefined ? 0 : flags.etcdChanges],
  ] as const;
  const verdicts = [`Consul traffic stop p50 ${consulP50.toFixed(1)} ms`];
  if (dns.length > 0) verdicts.push(`DNS p99 ${dnsP99.toFixed(1)} ms`);
  let met = consulP50 <= 100 && dnsP99 <= DNS_TTL_S * 1_000 + 100;
  for (const [label, samples, asked] of watched) {
    if (asked === 0) continue;
    const p50 = followP50(samples);
    verdicts.push(`${label} traffic follows p50 ${p50.toFixed(1)} ms`);
    met &&= p50 <= 100;
  }
  console.log(`\ngoals ${met ? 'met' : 'NOT met'}: ${verdicts.join(', ')}`);
  process.exitCode = met ? 0 : 1;
} finally {
  await Promise.all(instances.map((inst) => new Promise<void>((resolve) => (inst.server.closeAllConnections(), inst.server.close(() => resolve())))));
}
