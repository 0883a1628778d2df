// kubernetesRegistry runs the shared registry contract, against the Kubernetes API double.
import * as vitest from 'vitest';
import { kubernetesRegistry, type KubernetesRegistry } from '../../src/discovery/kubernetes/registry.js';
import { toEndpoint, type EndpointInput } from '../../src/endpoint/endpoint.js';
import { registryContract } from '../../src/testing.js';
import { settled, startKubeDouble, type KubeDouble } from '../helpers/kube-double.js';

const TOKEN = 'contract-token';
let api: KubeDouble;
let registry: KubernetesRegistry;

/** An EndpointInput ('127.0.0.1:8081', or { host, port, zone }) as a ready endpoint of a slice. */
const toSpec = (input: EndpointInput, i: number) => {
  const e = toEndpoint(input, `endpoints[${i}]`);
  return { ip: e.host, port: e.port, ...(e.zone !== undefined ? { zone: e.zone } : {}) };
};

registryContract(
  'kubernetesRegistry',
  () => (registry = kubernetesRegistry({ apiUrl: api.url, token: TOKEN, env: {}, namespace: 'default', backoff: { initialMs: 20, maxMs: 100 } })),
  {
    setup: async () => void (api = await startKubeDouble({ token: TOKEN })),
    set: (service, endpoints) => api.setEndpoints(service, endpoints.map(toSpec)),
    // Failing requests, and the open watches dropped: a watch only learns of an outage when its stream breaks.
    fail: () => {
      api.respondWith(500, 'Internal error occurred: etcdserver: leader changed');
      api.dropWatches();
    },
    recover: () => api.respondNormally(),
    teardown: () => api.close(),
    // EndpointSlices carry no weights.
    weights: false,
    // Everything sent has arrived: each watched service's loop is watching at the cluster's resourceVersion,
    // shown by a BOOKMARK round trip, with nothing left unwritten on the double's side.
    settle: () => settled(api, registry, ['users', 'orders']),
    test: vitest,
  },
);
