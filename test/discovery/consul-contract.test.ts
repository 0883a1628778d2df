import { consulRegistry } from '../../src/discovery/consul.js';
import { registryContract } from '../contracts/registry.contract.js';
import { startConsulDouble } from '../helpers/consul-double.js';

/** Lets a blocking query in flight come back and its push land (loopback answers in about a millisecond). */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 60));

// Watching (the default): blocking queries push every change.
registryContract('consulRegistry (watch)', async () => {
  const consul = await startConsulDouble();
  return {
    registry: consulRegistry({ url: consul.url, env: {}, waitMs: 1_000, minIntervalMs: 0, backoff: { initialMs: 20, maxMs: 100 } }),
    set: (service, endpoints) => consul.setService(service, endpoints),
    fail: () => consul.respondWith(500, 'No cluster leader'),
    recover: () => consul.respondNormally(),
    close: () => consul.close(),
    settle,
  };
});

// Pull only: the mesh's cache refreshes on its TTL.
registryContract('consulRegistry (watch: false)', async () => {
  const consul = await startConsulDouble();
  return {
    registry: consulRegistry({ url: consul.url, env: {}, watch: false }),
    set: (service, endpoints) => consul.setService(service, endpoints),
    fail: () => consul.respondWith(403, 'ACL not found'),
    recover: () => consul.respondNormally(),
    close: () => consul.close(),
    settle,
  };
});
