export { createMesh, type Mesh, type ServiceClient } from './mesh.js';
export { endpointClients, type EndpointClients } from './endpoint-clients.js';
export { staticRegistry, type StaticRegistry } from './discovery/static.js';
export type { Registry } from './discovery/registry.js';
export { dnsRegistry, type DnsRegistryOptions, type DnsMode } from './discovery/dns.js';
export { orderSrv, type SrvRecord } from './discovery/srv.js';
export { consulRegistry, type ConsulRegistry, type ConsulRegistryOptions } from './discovery/consul.js';
export {
  registerService,
  type Registration,
  type RegisterServiceOptions,
  type TtlCheck,
  type HttpCheck,
} from './discovery/consul-register.js';
export { etcdRegistry, registerEtcd, EtcdError, type EtcdRegistry, type EtcdRegistryOptions, type RegisterEtcdOptions, type EtcdRegistration, type EtcdConnectionOptions, type EtcdBackoffOptions, type EtcdInvalidKey, type EtcdLoopState } from './discovery/etcd/index.js';
export { ConsulError } from './discovery/consul-http.js';
export type { ConsulConnectionOptions, FetchLike } from './discovery/consul-config.js';
export { kubernetesRegistry, KubernetesError, type KubernetesRegistry, type KubernetesRegistryOptions, type KubernetesPort, type KubernetesLoopState, type KubernetesAddressType } from './discovery/kubernetes/index.js';
export { toEndpoint, type Endpoint, type EndpointInput } from './endpoint/endpoint.js';
export type { AttemptContext, AttemptFn } from './transport/attempt-context.js';
export type { Balancer, PickRequest } from './balancer/balancer.js';
export type { BalancerName } from './balancer/create.js';
export type { EndpointState } from './endpoint/endpoint-state.js';
export {
  MeshError,
  NoEndpointsError,
  CircuitOpenError,
  TimeoutError,
  BulkheadFullError,
  AdmissionRejectedError,
  DiscoveryError,
  CallFailedError,
  MeshClosedError,
  InvalidServiceNameError,
  FaultInjectedError,
  type AttemptRecord,
  type MeshErrorCode,
} from './errors.js';
export type { MeshEvents, MeshEventName, ServiceEvent, AttemptEvent, EjectionReason } from './events.js';
export type {
  MeshOptions,
  Policy,
  CallOptions,
  TimeoutPolicy,
  RetryPolicy,
  BudgetPolicy,
  BreakerPolicy,
  OutlierPolicy,
  HedgePolicy,
  DiscoveryOptions,
  RingHashPolicy,
  MaglevPolicy,
  SlowStartPolicy,
  LocalityPolicy,
  TlsPolicy,
  SuccessRatePolicy,
  FailurePercentPolicy,
  AdaptiveConcurrencyPolicy,
  AdmissionPolicy,
  DeadlinePolicy,
  HealthCheckPolicy,
  Fallback,
  FallbackContext,
  Outcome,
  Verdict,
  MeshRequestInit,
} from './options.js';
export type { MeshSnapshot, ServiceSnapshot, EndpointSnapshot, RouteSnapshot } from './observe/snapshot.js';
export type {
  ConfigSource,
  MeshConfigInput,
  MeshConfigView,
  RouteSpec,
  RouteMatch,
  PathMatch,
  StringMatch,
  BackendRef,
  SubsetSpec,
  FaultSpec,
  MirrorSpec,
} from './config/types.js';
export { fileConfig, type FileConfigOptions } from './sources/file-config.js';
export { consulConfig, type ConsulConfigOptions, type ConsulConfigSource } from './sources/consul-config.js';
export type { AdminHandler, AdminHandlerOptions, AdminRequest, AdminResponse } from './observe/admin.js';
export { registerMeshMetrics, type PromClientRegistry, type PromClientMetric, type PromClientValue } from './observe/prom-client.js';
export { renderMeshMetrics } from './observe/render-meshes.js';
export { negotiateMetricsFormat, type NegotiatedFormat } from './observe/metrics-negotiation.js';
export { OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, type MetricsFormat, type MetricsOptions } from './observe/exposition-sink.js';
export type { MetricAggregator } from './observe/metric-families.js';
export { withTraceContext, type TraceContextApi } from './observe/trace-context.js';
export { withTelemetry, type Telemetry } from './observe/telemetry.js';
export type { TelemetryApi } from './observe/telemetry-api.js';
export type { Clock } from './util/clock.js';
export { seededRng, type Rng } from './util/random.js';
export { inboundDeadline, type InboundDeadlineOptions, type InboundRequest } from './deadline.js';
