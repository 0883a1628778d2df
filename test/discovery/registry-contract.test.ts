import * as vitest from 'vitest';
import { staticRegistry, type StaticRegistry } from '../../src/discovery/static.js';
import { registryContract } from '../../src/testing.js';
import { memoryRegistry } from './fakes.js';

let registry: StaticRegistry;
registryContract('staticRegistry', () => (registry = staticRegistry()), {
  set: (service, endpoints) => registry.set(service, endpoints),
  test: vitest,
});

// A custom registry as a user would write one, polled by TTL (resolve only) ...
let polled: ReturnType<typeof memoryRegistry>;
registryContract('custom registry (resolve only)', () => polled.registry, {
  setup: () => void (polled = memoryRegistry({ watch: false })),
  set: (service, endpoints) => polled.set(service, endpoints),
  fail: () => polled.fail(),
  recover: () => polled.recover(),
  test: vitest,
});

// ... and pushing through watch().
let pushed: ReturnType<typeof memoryRegistry>;
registryContract('custom registry (resolve + watch)', () => pushed.registry, {
  setup: () => void (pushed = memoryRegistry({ watch: true })),
  set: (service, endpoints) => pushed.set(service, endpoints),
  fail: () => pushed.fail(),
  recover: () => pushed.recover(),
  test: vitest,
});
