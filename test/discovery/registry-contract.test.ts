import { staticRegistry } from '../../src/discovery/static.js';
import { registryContract } from '../contracts/registry.contract.js';
import { memoryRegistry } from './fakes.js';

registryContract('staticRegistry', () => {
  const registry = staticRegistry();
  return { registry, set: (service, endpoints) => registry.set(service, endpoints) };
});

// A custom registry as a user would write one, polled by TTL (resolve only) ...
registryContract('custom registry (resolve only)', () => {
  const mem = memoryRegistry({ watch: false });
  return { registry: mem.registry, set: mem.set, fail: () => mem.fail(), recover: mem.recover };
});

// ... and pushing through watch().
registryContract('custom registry (resolve + watch)', () => {
  const mem = memoryRegistry({ watch: true });
  return { registry: mem.registry, set: mem.set, fail: () => mem.fail(), recover: mem.recover };
});
