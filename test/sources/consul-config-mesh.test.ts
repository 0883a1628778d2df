/**
 * consulConfig driving a mesh against the Consul double: a splitter change moves traffic within one blocking round
 * trip (p50 printed, for the README), and a 500 from Consul keeps the routes in force. Real time, bounded polls.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { consulConfig, consulRegistry, createMesh, type Mesh } from '../../src/index.js';
import { startConsulDouble, type ConsulDouble } from '../helpers/consul-double.js';

const TOKEN = 's3cr3t-token-abcdef';
const SPLITTER = JSON.parse(readFileSync(new URL('../fixtures/consul/discovery-chain-splitter.docs-sample.json', import.meta.url), 'utf8'));

let consul: ConsulDouble;
let mesh: Mesh | undefined;
beforeEach(async () => {
  consul = await startConsulDouble({ datacenter: 'dc2', token: TOKEN });
  consul.setInstances('web', [
    { id: 'web-1', port: 8081, node: 'node-1', meta: { version: 'v1' } },
    { id: 'web-2', port: 8082, node: 'node-2', meta: { version: 'v1' } },
    { id: 'web-3', port: 8083, node: 'node-1', meta: { version: 'v2' } },
  ]);
  consul.setDiscoveryChain('web', split(100, 0));
});
afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
  await consul.close();
});

function split(v1: number, v2: number): unknown {
  const chain = structuredClone(SPLITTER);
  chain.Chain.Nodes['splitter:web'].Splits[0].Weight = v1;
  chain.Chain.Nodes['splitter:web'].Splits[1].Weight = v2;
  return chain;
}

function meshOnConsul(): Mesh {
  const connection = { url: consul.url, token: TOKEN, env: {} };
  return createMesh({
    registry: consulRegistry(connection),
    config: consulConfig({ ...connection, services: ['web'], waitMs: 10_000, minIntervalMs: 20, backoff: { initialMs: 20, maxMs: 50 } }),
  });
}

/** The version of the endpoint one call went to (no network: the function returns it). */
const versionOf = (m: Mesh) => m.call('web', (ep) => ep.meta.version);

async function until(ok: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const start = performance.now();
  while (!(await ok())) {
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

/** 20 calls in a row all went to `version`. */
const allOn = async (m: Mesh, version: string) => {
  for (let i = 0; i < 20; i++) if ((await versionOf(m)) !== version) return false;
  return true;
};

it('a splitter change on Consul moves traffic within one blocking round trip (p50 measured)', async () => {
  mesh = meshOnConsul();
  await until(async () => (await mesh!.config()).sources.web === 'consul' && allOn(mesh!, 'v1'), 5_000);
  const samples: number[] = [];
  for (let i = 0; i < 7; i++) {
    // Each change lands while the chain's blocking query is held (the wait is 10 s): only a wake-up answers it.
    await until(() => consul.held() > 0, 2_000);
    const [v1, v2, want] = i % 2 === 0 ? [0, 100, 'v2'] : [100, 0, 'v1'];
    const changedAt = performance.now();
    consul.setDiscoveryChain('web', split(v1, v2));
    await until(() => allOn(mesh!, want), 2_000);
    samples.push(performance.now() - changedAt);
  }
  samples.sort((a, b) => a - b);
  const p50 = samples[3]!;
  console.log(`consulConfig: splitter change to traffic moved, p50 ${p50.toFixed(1)} ms, max ${samples[6]!.toFixed(1)} ms (7 changes)`);
  expect(samples[6]!).toBeLessThan(1_000); // far below the 10 s wait: the blocking query answered on the change
});

it('a 500 from Consul keeps the routes in force, reports config-error without the token, and recovers', async () => {
  mesh = meshOnConsul();
  const errors: Error[] = [];
  mesh.on('config-error', ({ error }) => errors.push(error));
  await until(async () => mesh!.config().sources.web === 'consul' && allOn(mesh!, 'v1'), 5_000);
  const version = mesh.config().version;
  consul.respondWith(500, 'rpc error making call: No cluster leader', { only: /discovery-chain/ });
  await until(() => errors.length > 0, 3_000);
  expect(mesh.config().version).toBe(version);
  expect(mesh.config().routes.web).toBeDefined();
  expect(await allOn(mesh, 'v1')).toBe(true);
  for (const e of errors) expect(`${e.message} ${String((e as { cause?: unknown }).cause ?? '')}`).not.toContain('cr3t');
  consul.respondNormally();
  consul.setDiscoveryChain('web', split(0, 100));
  await until(() => allOn(mesh!, 'v2'), 3_000);
});
