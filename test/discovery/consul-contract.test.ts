import { consulRegistry } from '../../src/discovery/consul.js';
import type { EndpointInput } from '../../src/endpoint/endpoint.js';
import * as vitest from 'vitest';
import { registryContract } from '../../src/testing.js';
import { startConsulDouble, type ConsulDouble } from '../helpers/consul-double.js';

/** Lets a blocking query in flight come back and its push land (loopback answers in about a millisecond). */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 60));

let consul: ConsulDouble;
const hooks = {
  setup: async () => void (consul = await startConsulDouble()),
  set: (service: string, endpoints: readonly EndpointInput[]) => consul.setService(service, endpoints),
  recover: () => consul.respondNormally(),
  teardown: () => consul.close(),
  settle,
  test: vitest,
};

// Watching (the default): blocking queries push every change.
registryContract(
  'consulRegistry (watch)',
  () => consulRegistry({ url: consul.url, env: {}, waitMs: 1_000, minIntervalMs: 0, backoff: { initialMs: 20, maxMs: 100 } }),
  { ...hooks, fail: () => consul.respondWith(500, 'No cluster leader') },
);

// Pull only: the mesh's cache refreshes on its TTL.
registryContract('consulRegistry (watch: false)', () => consulRegistry({ url: consul.url, env: {}, watch: false }), {
  ...hooks,
  fail: () => consul.respondWith(403, 'ACL not found'),
});
