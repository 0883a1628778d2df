/** etcd discovery and registration over etcd's v3 HTTP/JSON gateway (see registry.ts for why no client library). */
export { etcdRegistry, type EtcdRegistry, type EtcdRegistryOptions, type EtcdInvalidKey } from './registry.js';
export { registerEtcd, type RegisterEtcdOptions, type EtcdRegistration } from './register.js';
export { EtcdError } from './gateway.js';
export type { EtcdConnectionOptions, EtcdBackoffOptions } from './options.js';
export type { EtcdLoopState } from './watch-loop.js';
