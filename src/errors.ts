import type { Endpoint } from './endpoint/endpoint.js';

/** One try of a call, as listed on a {@link MeshError}. */
export interface AttemptRecord {
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The endpoint's id (`host:port` unless the registry gave another). */
  readonly endpoint: string;
  /** How long the attempt took, in ms. */
  readonly durationMs: number;
  /** Why it failed: an HTTP status, an error code or an error name. */
  readonly outcome: string;
  /** The failure in words: `fetch failed (ECONNREFUSED 127.0.0.1:8081)`, `HTTP 503`, a timeout's message. */
  readonly message?: string | undefined;
}

/**
 * The `code` of each error class of the core (the registries' own errors add `ECONSUL`, `EETCD`, `EKUBERNETES`).
 * Each class declares its own as a literal type, so `error.code` narrows after `instanceof`.
 */
export type MeshErrorCode =
  | 'ENOENDPOINTS' | 'ECIRCUITOPEN' | 'ETIMEDOUT' | 'EBULKHEAD' | 'EADMISSION' | 'EDISCOVERY' | 'ECALLFAILED'
  | 'EFAULT' | 'ECLOSED' | 'EBADSERVICE';

/** Every error the mesh makes extends this. `code` is stable; `message` is for people. */
export class MeshError extends Error {
  /**
   * A stable code to branch on: `ENOENDPOINTS`, `ETIMEDOUT`, `ECALLFAILED`, ... (see the README's error table).
   * A `string` here, so that adapters may add their own; each subclass narrows it to its literal.
   * @example if (error instanceof TimeoutError) error.code // 'ETIMEDOUT'
   */
  readonly code: string;
  /** The logical service the call was for. */
  readonly service: string;
  /** Every try this call made, in order (empty when it failed before the first attempt). */
  attempts: readonly AttemptRecord[];

  constructor(
    code: string,
    service: string,
    message: string,
    options?: { cause?: unknown; attempts?: readonly AttemptRecord[] | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.service = service;
    this.attempts = options?.attempts ?? [];
  }
}

/** Discovery returned nothing usable for the service. */
export class NoEndpointsError extends MeshError {
  /** Always `'ENOENDPOINTS'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'ENOENDPOINTS';
  constructor(service: string, detail = 'discovery returned no endpoints', options?: { cause?: unknown }) {
    super('ENOENDPOINTS', service, `no endpoints for service '${service}': ${detail}`, options);
  }
}

/** Every endpoint's breaker is open: the call failed fast without touching the network. */
export class CircuitOpenError extends MeshError {
  /** Always `'ECIRCUITOPEN'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'ECIRCUITOPEN';
  constructor(service: string, options?: { cause?: unknown; attempts?: readonly AttemptRecord[] | undefined }) {
    super('ECIRCUITOPEN', service, `every endpoint of '${service}' has an open circuit breaker`, options);
  }
}

/** An attempt's timeout (`scope: 'attempt'`) or the call's total deadline (`scope: 'total'`) passed. */
export class TimeoutError extends MeshError {
  /** Always `'ETIMEDOUT'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'ETIMEDOUT';
  /** Which bound passed: one attempt's (`attemptMs`) or the whole call's (`totalMs`). */
  readonly scope: 'attempt' | 'total';
  /** The bound that passed, in ms. */
  readonly timeoutMs: number;

  constructor(
    service: string,
    scope: 'attempt' | 'total',
    timeoutMs: number,
    options?: { cause?: unknown; attempts?: readonly AttemptRecord[] | undefined; endpoint?: Endpoint | undefined },
  ) {
    const where = options?.endpoint ? ` on ${options.endpoint.id}` : '';
    super('ETIMEDOUT', service, `'${service}' ${scope} timeout of ${timeoutMs} ms passed${where}`, options);
    this.scope = scope;
    this.timeoutMs = timeoutMs;
  }
}

/** `maxConcurrent` calls, or the `adaptiveConcurrency` limit of the moment, were in flight for the service. */
export class BulkheadFullError extends MeshError {
  /** Always `'EBULKHEAD'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'EBULKHEAD';
  /** The limit that was reached. */
  readonly limit: number;
  /** Which limit: the fixed `maxConcurrent` or the adaptive one. */
  readonly source: 'maxConcurrent' | 'adaptiveConcurrency';

  constructor(service: string, limit: number, source: 'maxConcurrent' | 'adaptiveConcurrency' = 'maxConcurrent') {
    super('EBULKHEAD', service, `'${service}' has ${limit} calls in flight (${source})`);
    this.limit = limit;
    this.source = source;
  }
}

/**
 * Client-side throttling (`admission`) rejected the call locally: the service's recent success ratio is below the
 * policy's `successRatio`. Nothing was sent.
 */
export class AdmissionRejectedError extends MeshError {
  /** Always `'EADMISSION'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'EADMISSION';
  /** The rejection probability the call was drawn against, from 0 to 1. */
  readonly probability: number;

  constructor(service: string, probability: number) {
    super('EADMISSION', service, `'${service}' rejected the call locally (admission: reject probability ${(probability * 100).toFixed(1)} %)`);
    this.probability = probability;
  }
}

/** The registry failed and nothing was cached to serve instead. */
export class DiscoveryError extends MeshError {
  /** Always `'EDISCOVERY'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'EDISCOVERY';
  constructor(service: string, message: string, options?: { cause?: unknown }) {
    super('EDISCOVERY', service, `discovery failed for '${service}': ${message}`, options);
  }
}

/**
 * The call failed after every attempt it was allowed; `cause` is the last failure and `attempts` lists
 * every try. (Added beside the five errors that each name one cause, so that every failed call still rejects
 * with a MeshError carrying its last failure.)
 */
export class CallFailedError extends MeshError {
  /** Always `'ECALLFAILED'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'ECALLFAILED';
  constructor(service: string, cause: unknown, attempts: readonly AttemptRecord[]) {
    const last = cause instanceof Error ? cause.message : String(cause);
    const n = attempts.length;
    super('ECALLFAILED', service, `'${service}' call failed after ${n} attempt${n === 1 ? '' : 's'}: ${last}`, {
      cause,
      attempts,
    });
  }
}

/**
 * A route's fault injection aborted the call before any network use (Envoy's fault filter, gRPC A33). Final:
 * never retried. On fetch paths the call resolves with a synthetic Response of `status` instead.
 */
export class FaultInjectedError extends MeshError {
  /** Always `'EFAULT'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'EFAULT';
  constructor(
    service: string,
    /** The status the fault answers with. */
    readonly status: number,
    /** The route whose fault it is. */
    readonly route: string,
  ) {
    super('EFAULT', service, `fault injected by route '${route}' of '${service}': abort with ${status}`);
  }
}

/** The mesh was closed: no new calls, and calls in flight were aborted. */
export class MeshClosedError extends MeshError {
  /** Always `'ECLOSED'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'ECLOSED';
  constructor(service: string) {
    super('ECLOSED', service, `the mesh is closed (service '${service}')`);
  }
}

/** A service name that is not a plain DNS-style label sequence (hostile or malformed input). */
export class InvalidServiceNameError extends MeshError {
  /** Always `'EBADSERVICE'` for this class: narrow on it, or on `instanceof`. */
  declare readonly code: 'EBADSERVICE';
  constructor(service: string, reason: string) {
    super('EBADSERVICE', service, `invalid service name ${JSON.stringify(service.slice(0, 80))}: ${reason}`);
  }
}
