import { dnsRegistry } from '../../src/discovery/dns.js';
import type { Registry } from '../../src/discovery/registry.js';
import type { EndpointInput } from '../../src/endpoint/endpoint.js';
import { NoEndpointsError } from '../../src/errors.js';
import * as vitest from 'vitest';
import { registryContract } from '../../src/testing.js';
import { startDnsServer, type DnsTestServer } from '../helpers/dns-server.js';

/**
 * The contract says a service the source does not have resolves to `[]`. DNS says more: NXDOMAIN, NODATA
 * and a lone "." reject with NoEndpointsError, so that the mesh keeps the last good list through a
 * transient NXDOMAIN (stale-on-error, as the issue asks). This adapter maps that one error back to `[]`,
 * and leaves everything else (failures, watch pushes, weights) to the contract as it is.
 */
function absentAsEmpty(registry: Registry): Registry {
  return {
    resolve: (service, ctx) =>
      registry.resolve(service, ctx).catch((error: unknown) => {
        if (error instanceof NoEndpointsError) return [];
        throw error;
      }),
    watch: (service, onUpdate, onError) =>
      registry.watch!(service, onUpdate, (error) => (error instanceof NoEndpointsError ? onUpdate([]) : onError(error))),
    close: () => registry.close?.(),
  };
}

/** Writes `service`'s endpoints as SRV records (`_http._tcp.<service>`), one target name per endpoint. */
function setService(dns: DnsTestServer, targets: Map<string, string[]>, service: string, endpoints: readonly EndpointInput[]): void {
  for (const name of targets.get(service) ?? []) dns.remove(name);
  const names: string[] = [];
  const records = endpoints.map((input, i) => {
    const e = typeof input === 'string' ? parse(input) : input;
    const target = `e${i}.${service}.test`;
    names.push(target);
    if (e.host.includes(':')) dns.aaaa(target, [e.host], 1);
    else dns.a(target, [e.host], 1);
    return { target, port: e.port, priority: 10, weight: e.weight ?? 1 };
  });
  targets.set(service, names);
  if (records.length === 0) dns.remove(`_http._tcp.${service}`);
  else dns.srv(`_http._tcp.${service}`, records, 1);
}

function parse(address: string): { host: string; port: number; weight?: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

let dns: DnsTestServer;
let targets: Map<string, string[]>;
registryContract(
  'dnsRegistry (SRV, dns2 server)',
  // Refresh every ≤ 40 ms (records have TTL 1 s; maxTtlMs clamps it), so that changes show within the contract's wait.
  () => absentAsEmpty(dnsRegistry({ servers: [dns.address], minTtlMs: 5, maxTtlMs: 40, timeoutMs: 1_000 })),
  {
    setup: async () => {
      dns = await startDnsServer();
      targets = new Map();
    },
    set: (service, endpoints) => setService(dns, targets, service, endpoints),
    fail: () => dns.behave('SERVFAIL'),
    recover: () => dns.behave('answer'),
    teardown: () => dns.close(),
    // Weights travel as SRV weights (integers); the contract's 3 and 1 come back exactly.
    weights: true,
    waitMs: 3_000,
    // "Nothing arrives" needs a look or two to have happened.
    settle: () => new Promise((r) => setTimeout(r, 100)),
    test: vitest,
  },
);
