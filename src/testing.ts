/**
 * `proxyless/testing`: the registry contract suite for adapter authors. It runs under vitest, node:test, jest or
 * mocha, and imports none of them.
 */
export { registryContract, type RegistryContractHooks, type MakeRegistry } from './testing/registry-contract.js';
export type { ContractTestApi, ContractIt, ContractCase } from './testing/test-api.js';
export type { Registry } from './discovery/registry.js';
export type { Endpoint, EndpointInput } from './endpoint/endpoint.js';
