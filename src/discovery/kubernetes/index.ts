/** kubernetesRegistry and its public types, for src/index.ts. */
export { kubernetesRegistry, type KubernetesRegistry } from './registry.js';
export type { KubernetesRegistryOptions, KubernetesPort, KubernetesAddressType } from './options.js';
export { KubernetesError, type KubernetesErrorKind } from './http.js';
export type { KubernetesLoopState } from './loop.js';
